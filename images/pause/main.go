// Command pause is the sandbox ("pause") process of every pod in a region
// (scripts/region.sh): it holds the pod's namespaces and waits for SIGTERM or
// SIGINT, as registry.k8s.io/pause does. As PID 1 of the sandbox it also reaps
// the children that are re-parented to it.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	children := make(chan os.Signal, 1)
	signal.Notify(children, syscall.SIGCHLD)
	for {
		select {
		case <-stop:
			os.Exit(0)
		case <-children:
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		}
	}
}
