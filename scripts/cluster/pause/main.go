// Command pause is the sandbox ("pause") image of the test cluster that
// scripts/cluster.sh brings up: the first process of every pod, which holds
// the pod's namespaces. There is no registry to pull the usual one from,
// so the script builds this one into an image FROM scratch. It waits,
// reaps the children it inherits, and exits on SIGTERM or SIGINT.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for reap() {
		}
	}
}

// reap collects one exited child, if there is one.
func reap() bool {
	var status syscall.WaitStatus
	pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
	return err == nil && pid > 0
}
