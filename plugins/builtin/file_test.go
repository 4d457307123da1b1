package builtin

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// Each case runs the file step against a file prepared by setup and checks
// the result, the file afterwards, and that a second identical run changes
// nothing.
func TestFile(t *testing.T) {
	tests := []struct {
		name        string
		setup       func(t *testing.T, path string)
		params      func(path string) obj
		wantChanged bool
		wantContent string
		wantMode    fs.FileMode
		wantOut     []string // substrings of stdout
		notOut      []string
	}{
		{
			name:        "a missing file is created with mode 0644 and shown as all new",
			params:      func(p string) obj { return obj{"path": p, "content": "a\nb\n"} },
			wantChanged: true, wantContent: "a\nb\n", wantMode: 0o644,
			wantOut: []string{"created ", "--- /dev/null", "+a\n+b\n"},
		},
		{
			name:        "a file already right is left alone",
			setup:       writeFile("same\n", 0o640),
			params:      func(p string) obj { return obj{"path": p, "content": "same\n", "mode": "0640"} },
			wantChanged: false, wantContent: "same\n", wantMode: 0o640,
			wantOut: []string{"already as wanted"}, notOut: []string{"@@"},
		},
		{
			name:        "changed content is written and shown as a diff",
			setup:       writeFile("keep\nold\n", 0o600),
			params:      func(p string) obj { return obj{"path": p, "content": "keep\nnew\n"} },
			wantChanged: true, wantContent: "keep\nnew\n", wantMode: 0o600,
			wantOut: []string{"updated the content", "@@ -1,2 +1,2 @@", " keep\n-old\n+new\n"},
		},
		{
			name:        "only the mode is changed",
			setup:       writeFile("x\n", 0o600),
			params:      func(p string) obj { return obj{"path": p, "mode": "755"} },
			wantChanged: true, wantContent: "x\n", wantMode: 0o755,
			wantOut: []string{"changed the mode"}, notOut: []string{"@@", "content"},
		},
		{
			name:        "the diff can be turned off for files with secrets",
			setup:       writeFile("password=old\n", 0o600),
			params:      func(p string) obj { return obj{"path": p, "content": "password=new\n", "show_diff": false} },
			wantChanged: true, wantContent: "password=new\n", wantMode: 0o600,
			wantOut: []string{"updated the content"}, notOut: []string{"password="},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f.conf")
			if tt.setup != nil {
				tt.setup(t, path)
			}
			res, rec, err := run(t, context.Background(), File{}, tt.params(path))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Changed != tt.wantChanged || res.Status != sdk.StatusSucceeded {
				t.Errorf("result = %+v, want changed=%v", res, tt.wantChanged)
			}
			for _, s := range tt.wantOut {
				if !strings.Contains(rec.stdout(), s) {
					t.Errorf("stdout %q lacks %q", rec.stdout(), s)
				}
			}
			for _, s := range tt.notOut {
				if strings.Contains(rec.stdout(), s) {
					t.Errorf("stdout %q has %q", rec.stdout(), s)
				}
			}
			checkFile(t, path, tt.wantContent, tt.wantMode)
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only the file (no temporary left)", len(entries))
			}
			again, _, err := run(t, context.Background(), File{}, tt.params(path))
			if err != nil || again.Changed {
				t.Errorf("second run: %+v %v, want changed=false", again, err)
			}
		})
	}
}

func TestFileRefusals(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	writeFile("x", 0o644)(t, target)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		params obj
		path   string
	}{
		{"a symbolic link is refused", obj{"path": link, "content": "y"}, "params.path"},
		{"a directory is refused", obj{"path": dir, "content": "y"}, "params.path"},
		{"a missing file without content is refused", obj{"path": filepath.Join(dir, "nope"), "mode": "0644"}, "params.content"},
		{"an unknown owner is refused", obj{"path": target, "owner": "no-such-user-xyz"}, "params.owner"},
		{"an unknown group is refused", obj{"path": target, "group": "no-such-group-xyz"}, "params.group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, context.Background(), File{}, tt.params)
			wantParamError(t, err, tt.path)
		})
	}
}

func TestFileOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root; this runs as uid", os.Geteuid())
	}
	path := filepath.Join(t.TempDir(), "owned")
	params := obj{"path": path, "content": "x\n", "owner": "nobody", "group": "nogroup", "mode": "0640"}
	res, _, err := run(t, context.Background(), File{}, params)
	if err != nil || !res.Changed {
		t.Fatalf("create: %+v %v", res, err)
	}
	st := stat(t, path)
	if st.Uid != 65534 || st.Gid != 65534 {
		t.Errorf("owner %d:%d, want 65534:65534", st.Uid, st.Gid)
	}
	checkFile(t, path, "x\n", 0o640)
	if err := os.Chown(path, 0, 0); err != nil {
		t.Fatal(err)
	}
	res, rec, err := run(t, context.Background(), File{}, params)
	if err != nil || !res.Changed || !strings.Contains(rec.stdout(), "changed the owner") {
		t.Fatalf("owner drift: %+v %v %q, want the owner changed back", res, err, rec.stdout())
	}
	if st := stat(t, path); st.Uid != 65534 {
		t.Errorf("owner %d after repair, want 65534", st.Uid)
	}
	if res, _, err := run(t, context.Background(), File{}, params); err != nil || res.Changed {
		t.Errorf("third run: %+v %v, want changed=false", res, err)
	}
}

func writeFile(content string, mode fs.FileMode) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // the umask applies to WriteFile
			t.Fatal(err)
		}
	}
}

func checkFile(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != content {
		t.Errorf("content = %q, want %q", b, content)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("mode = %o, want %o", fi.Mode().Perm(), mode)
	}
}

func stat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}
