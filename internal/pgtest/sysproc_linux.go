package pgtest

import "syscall"

// sysProcAttr runs a program with cred (nil: as this process's user), and
// has the kernel kill it if the test process dies first (a timed-out test
// runs no cleanup), so that no server outlives its test.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}
