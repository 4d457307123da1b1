package builtin

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// needPackageManager skips when neither apt nor dnf is here.
func needPackageManager(t *testing.T) *packageManager {
	t.Helper()
	pm, err := findPackageManager("auto")
	if errors.Is(err, errNoPackageManager) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

// Checks of the installed state against real packages: coreutils is in
// every Debian and Fedora system, the other name in none.
func TestPackageChecksInstalledStateFirst(t *testing.T) {
	pm := needPackageManager(t)
	const missing = "opsconductor-no-such-package"
	tests := []struct {
		name          string
		params        obj
		wantStatus    sdk.Status
		wantInstalled string
	}{
		{"an installed package is present", obj{"name": "coreutils", "action": "present"}, sdk.StatusSucceeded, "true"},
		{"installing an installed package changes nothing", obj{"name": "coreutils"}, sdk.StatusSucceeded, "true"},
		{"removing a package that is not installed changes nothing", obj{"name": missing, "action": "remove"}, sdk.StatusSucceeded, "false"},
		{"a package that is not installed is not present", obj{"name": missing, "action": "present"}, sdk.StatusFailed, "false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _, err := run(t, context.Background(), Package{}, tt.params)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Status != tt.wantStatus || res.Changed || res.Outputs["installed"] != tt.wantInstalled ||
				res.Outputs["manager"] != pm.name {
				t.Errorf("result = %+v, want status %v, changed=false, installed=%s, manager=%s",
					res, tt.wantStatus, tt.wantInstalled, pm.name)
			}
		})
	}
}

func TestPackageRefusesAManagerThatIsAbsent(t *testing.T) {
	pm := needPackageManager(t)
	other := "dnf"
	if pm.name == "dnf" {
		other = "apt"
	}
	if _, err := findPackageManager(other); err == nil {
		t.Skipf("both apt and dnf are installed here")
	}
	_, _, err := run(t, context.Background(), Package{}, obj{"name": "coreutils", "manager": other})
	wantParamError(t, err, "params.manager")
}

// A real install and removal of a small package ("hello", GNU's example
// program). It needs root and the package mirror; without either it skips
// and says which.
func TestPackageInstallAndRemove(t *testing.T) {
	pm := needPackageManager(t)
	if testing.Short() {
		t.Skip("installs a real package from the mirror; skipped in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("installing packages needs root; this runs as uid", os.Geteuid())
	}
	const name = "hello"
	if installed, err := pm.installed(context.Background(), name); err != nil || installed {
		t.Skipf("%s is already installed here (or the check failed: %v); the test will not remove a package it did not install", name, err)
	}
	t.Cleanup(func() {
		_, _, _ = run(t, context.Background(), Package{}, obj{"name": name, "action": "remove"})
	})
	res, rec, err := run(t, context.Background(), Package{}, obj{"name": name})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	if res.Status == sdk.StatusFailed {
		out := rec.stdout() + rec.stderr()
		for _, offline := range []string{"Temporary failure resolving", "Failed to fetch", "Could not resolve", "Unable to locate package", "No match for argument"} {
			if strings.Contains(out, offline) {
				t.Skipf("the package mirror is not reachable or does not list %s: %s", name, offline)
			}
		}
		t.Fatalf("install: %+v\n%s", res, out)
	}
	steps := []struct {
		name          string
		params        obj
		wantChanged   bool
		wantInstalled string
	}{
		{"installing it again changes nothing", obj{"name": name}, false, "true"},
		{"removing it changes the host", obj{"name": name, "action": "remove"}, true, "false"},
		{"removing it again changes nothing", obj{"name": name, "action": "remove"}, false, "false"},
	}
	if !res.Changed || res.Outputs["installed"] != "true" {
		t.Fatalf("install: %+v, want changed=true installed=true", res)
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			res, rec, err := run(t, context.Background(), Package{}, st.params)
			if err != nil || res.Status != sdk.StatusSucceeded || res.Changed != st.wantChanged || res.Outputs["installed"] != st.wantInstalled {
				t.Fatalf("result %+v err %v, want changed=%v installed=%s\n%s", res, err, st.wantChanged, st.wantInstalled, rec.stdout()+rec.stderr())
			}
		})
	}
}
