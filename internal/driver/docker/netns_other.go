//go:build !linux

package docker

import (
	"context"
	"errors"
	"net"
)

var errNoNetNS = errors.New("dialing into a container's network namespace needs Linux")

func openNetNS(pid int) (int, error) { return -1, errNoNetNS }

func closeFD(fd int) {}

func dialInNS(ctx context.Context, fd int, addr string) (net.Conn, error) { return nil, errNoNetNS }
