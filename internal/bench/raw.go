package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/host"
)

// The baselines run the program's image by hand on the same engine, with
// the flags a careful `docker run` would give it and the Host gives it:
// the runtime, read-only root, every capability dropped, the program's
// user, a writable /state, no network, the same limits. They are told
// apart from the Host's containers by their label.
const labelRaw = "hershy.bench.raw"

// rawSpec is the container a baseline runs for image.
func (r *runner) rawSpec(name, image, stateDir string, memory int64) driver.ContainerSpec {
	lim := host.DefaultLimits
	if memory > 0 {
		lim.MemoryBytes = memory
	}
	if r.rt == driver.RuntimeRunsc && lim.Pids < driver.MinPidsRunsc {
		lim.Pids = driver.MinPidsRunsc
	}
	return driver.ContainerSpec{
		Name:    "hershy-bench-raw-" + name,
		Image:   image,
		Runtime: r.rt,
		User:    strconv.Itoa(builder.ProgramUID) + ":" + strconv.Itoa(builder.ProgramGID),
		Env:     []string{"HERSH_API_ADDR=127.0.0.1:8080", "HERSH_STATE_DIR=/state"},
		// The driver wants every container to name its program; no Host
		// manages these (they have no instance label).
		Labels: map[string]string{labelRaw: "true", driver.LabelProgram: "bench-raw-" + name},
		Mounts: []driver.Mount{{Source: stateDir, Target: "/state"}},
		Limits: lim,
	}
}

// rawStateDir makes an empty /state for a baseline container, owned by the
// program's user as the Host makes it.
func (r *runner) rawStateDir(name string) (string, error) {
	dir := filepath.Join(r.o.WorkDir, "raw-state", r.rt+"-"+name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.Chown(dir, builder.ProgramUID, builder.ProgramGID); err != nil {
		return "", fmt.Errorf("a baseline's /state (run as root): %w", err)
	}
	return dir, nil
}

// rawRun creates and starts a container by hand and probes its WatcherAPI
// every interval until /watcher/ready answers 200. It returns the
// container and the time from the create call to that answer.
func (r *runner) rawRun(ctx context.Context, spec driver.ContainerSpec, interval time.Duration, slots chan struct{}) (string, time.Duration, error) {
	start := time.Now()
	cid, err := r.rawLaunch(ctx, spec, slots)
	if err != nil {
		return cid, 0, err
	}
	if err := r.awaitAnswer(ctx, cid, interval); err != nil {
		return cid, 0, err
	}
	return cid, time.Since(start), nil
}

// rawLaunch creates and starts a container as the Host's launch does: the
// engine calls hold one of slots (nil: no bound) and have the Host's
// default --launch-timeout, so a call a loaded engine never answers fails
// and is tried again on both sides alike.
func (r *runner) rawLaunch(ctx context.Context, spec driver.ContainerSpec, slots chan struct{}) (string, error) {
	if slots != nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		defer func() { <-slots }()
	}
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cid, err := r.engine.CreateContainer(lctx, spec)
	if err != nil {
		return "", err
	}
	return cid, r.engine.StartContainer(lctx, cid)
}

// awaitAnswer probes a container's /watcher/ready every interval until it
// answers 200.
func (r *runner) awaitAnswer(ctx context.Context, cid string, interval time.Duration) error {
	hc := r.netnsClient(cid, false)
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://program/watcher/ready", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("container %.12s: no WatcherAPI answer: %w", cid, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// netnsClient is an HTTP client whose connections are dialled inside the
// container's network namespace (its 127.0.0.1:8080), as the Host's are.
func (r *runner) netnsClient(cid string, keepAlive bool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DisableKeepAlives:   !keepAlive,
		MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return r.engine.DialContext(ctx, cid, "127.0.0.1:8080")
		},
	}}
}

// removeRaw removes baseline containers.
func (r *runner) removeRaw(ids ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return parallel(ctx, len(ids), 8, func(ctx context.Context, i int) error {
		return r.engine.RemoveContainer(ctx, ids[i])
	})
}
