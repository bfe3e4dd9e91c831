package builder

import (
	"os/exec"
	"syscall"
	"time"
)

// killGroup makes cmd run in its own process group and, when its context
// ends, kills the whole group: `go build` runs the compiler and linker as
// children, which must not outlive a timeout.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
}
