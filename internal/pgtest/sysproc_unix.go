//go:build unix && !linux

package pgtest

import "syscall"

// sysProcAttr runs a program with cred (nil: as this process's user).
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
