package builtin

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// Without systemd the step must fail with an error that says so, for every
// action, before running anything.
func TestServiceWithoutSystemdSaysSo(t *testing.T) {
	if systemdRunning() == nil {
		t.Skip("systemd is running here; TestServiceDrivesAUnit covers this host")
	}
	for _, action := range []string{"start", "stop", "restart", "reload", "enable", "disable", "status"} {
		t.Run(action, func(t *testing.T) {
			_, rec, err := run(t, context.Background(), Service{}, obj{"name": "ssh", "action": action})
			if !errors.Is(err, errNoSystemd) || !strings.Contains(err.Error(), "PID 1 is ") {
				t.Fatalf("err = %v, want errNoSystemd naming PID 1", err)
			}
			if rec.stdout()+rec.stderr() != "" {
				t.Errorf("printed %q before refusing", rec.stdout()+rec.stderr())
			}
		})
	}
}

// The real behaviour needs a host where systemd is PID 1; a fake systemctl
// would prove nothing about it, so elsewhere the test skips and says why.
func TestServiceDrivesAUnit(t *testing.T) {
	if err := systemdRunning(); err != nil {
		t.Skip(err.Error())
	}
	if os.Geteuid() != 0 {
		t.Skip("starting and stopping units needs root; this runs as uid", os.Geteuid())
	}
	// A transient unit of our own, so the test never touches a real service.
	unit := "opsconductor-test-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + ".service"
	if _, _, code, err := captureCommand(context.Background(), nil, "systemd-run", "--unit", unit, "--remain-after-exit",
		"--service-type=oneshot", "true"); err != nil || code != 0 {
		t.Fatalf("systemd-run: exit %d, %v", code, err)
	}
	t.Cleanup(func() {
		_, _, _, _ = captureCommand(context.Background(), nil, "systemctl", "stop", unit)
	})
	tests := []struct {
		action      string
		wantChanged bool
		wantActive  string
	}{
		{"status", false, "active"},
		{"start", false, "active"},
		{"stop", true, "inactive"},
		{"stop", false, "inactive"},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			res, _, err := run(t, context.Background(), Service{}, obj{"name": unit, "action": tt.action})
			if err != nil || res.Status != sdk.StatusSucceeded {
				t.Fatalf("Run: %+v %v", res, err)
			}
			if res.Changed != tt.wantChanged || res.Outputs["active"] != tt.wantActive {
				t.Errorf("result = %+v, want changed=%v active=%s", res, tt.wantChanged, tt.wantActive)
			}
		})
	}
}
