// pause: the lab's pod sandbox process (the role of registry.k8s.io/pause, which cannot be
// pulled here). Sleeps until SIGINT/SIGTERM and reaps zombies when it is PID 1 of a pod.
// Built with the Kubernetes binaries (static, CGO_ENABLED=0) and packed into an image by
// hack/lab/images.sh.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
