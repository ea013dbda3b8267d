package runtime_test

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes a worker process die if the test process does.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
