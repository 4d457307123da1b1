//go:build unix

package host

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the plugin in its own process group so that a kill
// reaches whatever the step started too.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	// Errors mean the group is already gone.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
