//go:build linux

package docker

import (
	"context"
	"fmt"
	"net"
	goruntime "runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

func openNetNS(pid int) (int, error) {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open network namespace of process %d: %w", pid, err)
	}
	return fd, nil
}

func closeFD(fd int) { unix.Close(fd) }

// dialInNS dials addr from inside the network namespace fd refers to, and
// takes ownership of fd.
//
// The dial runs on a new goroutine locked to its OS thread. The thread joins
// the namespace with setns and is never unlocked: when the goroutine ends the
// Go runtime terminates the thread instead of reusing it, so no other
// goroutine ever runs in the container's namespace. The socket keeps the
// namespace it was created in, so the returned connection works from any
// goroutine.
func dialInNS(ctx context.Context, fd int, addr string) (net.Conn, error) {
	ch := make(chan dialResult, 1)
	go dialThread(ctx, fd, addr, ch, 0)
	select {
	case r := <-ch:
		return r.conn, r.err
	case <-ctx.Done():
		go func() { // the dial ends soon (it honours ctx); drop its result
			if r := <-ch; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

type dialResult struct {
	conn net.Conn
	err  error
}

// dialThread does the work of dialInNS on the calling goroutine's thread.
//
// The process's main thread is the one thread the Go runtime cannot end
// with its goroutine: it would be parked for ever, still in the container's
// namespace (holding that namespace alive after the container is gone). So
// when the goroutine finds itself there, it keeps the main thread locked,
// and so unavailable, while a second goroutine (necessarily on another
// thread) does the dial; then it releases the main thread untouched.
func dialThread(ctx context.Context, fd int, addr string, ch chan<- dialResult, depth int) {
	goruntime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		if depth > 0 { // cannot happen: the main thread is held by our caller
			unix.Close(fd)
			goruntime.UnlockOSThread()
			ch <- dialResult{err: fmt.Errorf("setns: refusing to use the main thread")}
			return
		}
		done := make(chan struct{})
		go func() {
			dialThread(ctx, fd, addr, ch, depth+1)
			close(done)
		}()
		<-done
		goruntime.UnlockOSThread()
		return
	}
	// From here on, deliberately no UnlockOSThread: see dialInNS.
	err := unix.Setns(fd, unix.CLONE_NEWNET)
	unix.Close(fd)
	if err != nil {
		ch <- dialResult{err: fmt.Errorf("setns: %w", err)}
		return
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	ch <- dialResult{conn, err}
}
