package peers

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill a child when the test process dies: a
// test that times out must not leave a system running.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
