package builtin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// maxManagedFile bounds what the file and template steps read and write:
// they manage configuration, not bulk data.
const maxManagedFile = 64 << 20

// fileProps are the schema properties the file and template steps share.
const fileProps = `
    "path":  {"type": "string", "pattern": "^/", "description": "Absolute path of the file."},
    "mode":  {"type": "string", "pattern": "^0?[0-7]{3,4}$", "description": "Permissions in octal (\"0644\"); new files default to 0644."},
    "owner": {"type": "string", "minLength": 1, "description": "Owner (name or uid); needs root."},
    "group": {"type": "string", "minLength": 1, "description": "Group (name or gid); needs root."},
    "show_diff": {"type": "boolean", "description": "Print a unified diff of content changes (default true); turn off for files holding secrets."}`

// fileSpec is the state a file should be in. Nil fields are left as they
// are.
type fileSpec struct {
	path     string
	content  []byte
	mode     *fs.FileMode
	uid, gid int // -1: leave as is
}

// fileReport says what syncFile changed.
type fileReport struct {
	created, content, mode, owner bool
	diff                          string
}

func (r fileReport) changed() bool { return r.created || r.content || r.mode || r.owner }

// fileOwnership resolves the owner and group parameters to ids (-1 when not
// given).
func fileOwnership(owner, group string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if owner != "" {
		u, err := user.Lookup(owner)
		if err != nil {
			if u, err = user.LookupId(owner); err != nil {
				return 0, 0, paramError("owner", "user", "no such user %q", owner)
			}
		}
		uid, _ = strconv.Atoi(u.Uid)
		if uid != os.Geteuid() && os.Geteuid() != 0 {
			return 0, 0, paramError("owner", "user", "giving a file to %q needs the agent to run as root (it runs as uid %d)",
				owner, os.Geteuid())
		}
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			if g, err = user.LookupGroupId(group); err != nil {
				return 0, 0, paramError("group", "group", "no such group %q", group)
			}
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	return uid, gid, nil
}

func fileMode(s string) (*fs.FileMode, error) {
	if s == "" {
		return nil, nil
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return nil, paramError("mode", "pattern", "not an octal mode: %v", err)
	}
	m := fs.FileMode(n) & fs.ModePerm
	if n&0o7000 != 0 {
		// setuid, setgid and sticky live outside ModePerm in Go.
		if n&0o4000 != 0 {
			m |= fs.ModeSetuid
		}
		if n&0o2000 != 0 {
			m |= fs.ModeSetgid
		}
		if n&0o1000 != 0 {
			m |= fs.ModeSticky
		}
	}
	return &m, nil
}

// syncFile brings the file at spec.path to spec, changing only what
// differs, so that a second run with the same spec reports nothing changed.
// New content is written to a temporary file in the same directory and
// renamed over the old one, so that a reader sees the old file or the new
// one, never half of it, and a crash leaves the old file intact.
func syncFile(spec fileSpec, contentParam string) (fileReport, error) {
	var rep fileReport
	fi, err := os.Lstat(spec.path)
	exists := err == nil
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return rep, fmt.Errorf("stat %s: %w", spec.path, err)
	case exists && fi.Mode()&fs.ModeSymlink != 0:
		// Renaming over a link would replace it with a file: refuse
		// rather than guess which of the two was meant.
		return rep, paramError("path", "file", "%s is a symbolic link; give the path it points to", spec.path)
	case exists && !fi.Mode().IsRegular():
		return rep, paramError("path", "file", "%s is not a regular file", spec.path)
	case !exists && spec.content == nil:
		return rep, paramError(contentParam, "required", "required: %s does not exist", spec.path)
	}

	var old []byte
	if exists {
		if fi.Size() > maxManagedFile {
			return rep, paramError("path", "size", "%s is larger than %d bytes", spec.path, maxManagedFile)
		}
		if old, err = os.ReadFile(spec.path); err != nil {
			return rep, fmt.Errorf("read %s: %w", spec.path, err)
		}
	}
	mode := fs.FileMode(0o644)
	uid, gid := spec.uid, spec.gid
	if exists {
		mode = fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		st := fi.Sys().(*syscall.Stat_t)
		if uid >= 0 && uint32(uid) != st.Uid || gid >= 0 && uint32(gid) != st.Gid {
			rep.owner = true
		}
		if uid < 0 {
			uid = int(st.Uid)
		}
		if gid < 0 {
			gid = int(st.Gid)
		}
	}
	if spec.mode != nil {
		rep.mode = exists && *spec.mode != mode
		mode = *spec.mode
	}

	if spec.content != nil && (!exists || !bytes.Equal(old, spec.content)) {
		rep.created, rep.content = !exists, exists
		from := spec.path + " (before)"
		if !exists {
			from = "/dev/null"
		}
		rep.diff = unifiedDiff(from, spec.path+" (after)", string(old), string(spec.content))
		if err := writeAtomic(spec.path, spec.content, mode, uid, gid); err != nil {
			return rep, err
		}
		return rep, nil
	}
	if rep.mode {
		if err := os.Chmod(spec.path, mode); err != nil {
			return rep, fmt.Errorf("chmod %s: %w", spec.path, err)
		}
	}
	if rep.owner {
		if err := os.Lchown(spec.path, uid, gid); err != nil {
			return rep, fmt.Errorf("chown %s: %w", spec.path, err)
		}
	}
	return rep, nil
}

// writeAtomic writes data to path by way of a temporary file in the same
// directory (rename is atomic only within a file system), synced before the
// rename and with the directory synced after, so the new name survives a
// crash. uid and gid of -1 leave the owner as created.
func writeAtomic(path string, data []byte, mode fs.FileMode, uid, gid int) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	// Chown before chmod: chown clears setuid and setgid bits.
	if (uid >= 0 && uid != os.Geteuid()) || (gid >= 0 && gid != os.Getegid()) {
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", tmp, err)
		}
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: some file systems refuse to sync a directory
		d.Close()
	}
	return nil
}

// reportFile prints what syncFile did and turns it into a result.
func reportFile(out sdk.Output, path string, rep fileReport, showDiff bool) sdk.Result {
	switch {
	case rep.created:
		sdk.Printf(out, "created %s", path)
	case rep.content:
		sdk.Printf(out, "updated the content of %s", path)
	}
	if showDiff && rep.diff != "" {
		io.WriteString(out.Stdout(), rep.diff)
	}
	if rep.mode {
		sdk.Printf(out, "changed the mode of %s", path)
	}
	if rep.owner {
		sdk.Printf(out, "changed the owner of %s", path)
	}
	if !rep.changed() {
		sdk.Printf(out, "%s is already as wanted", path)
	}
	return sdk.Result{Changed: rep.changed(), Outputs: map[string]string{
		"path": path, "changed": strconv.FormatBool(rep.changed())}}
}
