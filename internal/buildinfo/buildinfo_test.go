package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

// stamp sets the link-time variables for one test, as -ldflags -X would.
func stamp(t *testing.T, v, c, d string) {
	t.Helper()
	oldV, oldC, oldD := version, commit, date
	version, commit, date = v, c, d
	t.Cleanup(func() { version, commit, date = oldV, oldC, oldD })
}

func TestStampedValuesWin(t *testing.T) {
	platform := runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	tests := []struct {
		name                  string
		version, commit, date string
		want                  string
	}{
		{"a release names its version, commit and date", "v1.4.0", "3f2a9c81d0e4b7a6c5d4e3f2a1b0c9d8e7f6a5b4", "2026-11-28T02:00:00Z",
			"opsconductor v1.4.0 (commit 3f2a9c81d0e4, 2026-11-28T02:00:00Z; " + platform + ")"},
		{"a short commit is printed whole", "v1.4.0", "3f2a9c8", "2026-11-28T02:00:00Z",
			"opsconductor v1.4.0 (commit 3f2a9c8, 2026-11-28T02:00:00Z; " + platform + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stamp(t, tt.version, tt.commit, tt.date)
			if got := String("opsconductor"); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
			if Version() != tt.version || Commit() != tt.commit || Date() != tt.date {
				t.Errorf("Version, Commit, Date = %q, %q, %q; want the stamped values", Version(), Commit(), Date())
			}
		})
	}
}

// A test binary carries no VCS stamp, so without link-time values the
// version is "dev" and the description names only the platform.
func TestUnstampedBinaryIsDev(t *testing.T) {
	stamp(t, "", "", "")
	if got := Version(); got != "dev" && !strings.HasPrefix(got, "dev-") {
		t.Errorf("Version = %q, want dev or dev-<revision>", got)
	}
	got := String("opsconductor-agent")
	if !strings.HasPrefix(got, "opsconductor-agent dev") || !strings.HasSuffix(got, runtime.GOOS+"/"+runtime.GOARCH+")") {
		t.Errorf("String = %q", got)
	}
}
