// Package docker implements the Host's driver.Driver on a Docker Engine
// (API 1.41 and later, verified against Docker 20.10 with gVisor's runsc).
//
// The driver enforces the sandbox contract itself (see CreateContainer): the
// Host cannot ask it for a container that is less isolated than the contract,
// only for more or less memory, CPU and pids within it. Programs are reached
// through DialContext, which dials inside the container's own network
// namespace, so no port is ever published and network "none" still works.
package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"

	"github.com/hershyorg/hershy/internal/driver"
)

// EgressNetwork is the Host-owned bridge network that containers granted
// outbound network are attached to. It is created on demand with
// inter-container communication disabled, so programs cannot reach each
// other over it.
const EgressNetwork = "hershy-egress"

// MinPidsRunsc is the smallest pids limit accepted under runsc. gVisor's
// sandbox threads are counted by the container's pids cgroup: measured on
// this platform, an idle sandbox of a Go program under the full contract
// holds 51-62 tasks and about 80 under concurrent load, and with a limit of
// 64 the sandbox died at start now and then (exit 2, no output). 128 leaves
// room; runc has no such overhead.
const MinPidsRunsc = driver.MinPidsRunsc

// ErrImageInUse is driver.ErrInUse, under the name the tests use.
var ErrImageInUse = driver.ErrInUse

// Driver is the Docker implementation of driver.Driver. It is safe for
// concurrent use.
type Driver struct {
	cli *client.Client

	netMu sync.Mutex // serialises creation of the egress network

	ns    byContainer[nsTarget]     // init process (pid + start time)
	stats byContainer[*statsTarget] // where Stats reads the run's usage
	// statsViaEngine makes Stats ask the engine's stats API for every
	// container (tests compare it with the files).
	statsViaEngine bool
}

var _ driver.Driver = (*Driver)(nil)

// New connects to the engine named by the environment (DOCKER_HOST etc.,
// default the local socket), negotiating the API version. It does not
// contact the engine; use Check for that.
func New() (*Driver, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker: client: %w", err)
	}
	return &Driver{cli: cli}, nil
}

// Client exposes the engine client, for diagnostics and tests.
func (d *Driver) Client() *client.Client { return d.cli }

// Close releases the engine client.
func (d *Driver) Close() error { return d.cli.Close() }

// Check pings the engine and verifies that every named OCI runtime is
// registered with it (e.g. driver.RuntimeRunsc) and, when the engine is on
// this machine, that the runtime's binary is still where the engine's
// configuration says: an uninstalled gVisor stays registered until dockerd
// reloads, and every start would fail.
func (d *Driver) Check(ctx context.Context, runtimes ...string) error {
	if _, err := d.cli.Ping(ctx); err != nil {
		return fmt.Errorf("docker: %w: %w", driver.ErrEngineDown, err)
	}
	if len(runtimes) == 0 {
		return nil
	}
	info, err := d.cli.Info(ctx)
	if err != nil {
		return fmt.Errorf("docker: info: %w: %w", driver.ErrEngineDown, err)
	}
	local := strings.HasPrefix(d.cli.DaemonHost(), "unix://")
	for _, want := range runtimes {
		rt, ok := info.Runtimes[want]
		if !ok {
			have := slices.Sorted(maps.Keys(info.Runtimes))
			return fmt.Errorf("docker: %w: %q is not registered with the engine (have %v); run scripts/setup-engine.sh", driver.ErrRuntimeMissing, want, have)
		}
		if local && filepath.IsAbs(rt.Path) {
			if _, err := os.Stat(rt.Path); err != nil {
				return fmt.Errorf("docker: %w: %q is registered, but its binary: %w", driver.ErrRuntimeMissing, want, err)
			}
		}
	}
	return nil
}

// notFound wraps an engine error so that errors.Is(err, driver.ErrNotFound)
// holds when the engine said the object does not exist.
func notFound(err error, what, ref string) error {
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: %s %s: %w: %w", what, ref, driver.ErrNotFound, err)
	}
	return fmt.Errorf("docker: %s %s: %w", what, ref, err)
}

// ctxErr prefers the context's error when it ended, so callers see
// context.DeadlineExceeded / Canceled rather than a transport error.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && err != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}
