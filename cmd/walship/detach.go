package main

import "syscall"

// detached starts a child in its own session, so it outlives the shell
// PostgreSQL ran restore_command in and receives none of its signals.
func detached() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
