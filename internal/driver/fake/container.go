package fake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// container is a container of the fake engine (a program's or a job's).
type container struct {
	id, name string
	order    uint64
	image    *image
	job      bool
	labels   map[string]string
	runtime  string
	user     string
	env      []string
	args     []string
	mounts   []driver.Mount
	limits   driver.Limits
	network  bool

	outMu sync.Mutex
	out   io.Writer // a job's output while its RunJob waits (nil: gone)

	// d.mu guards the rest.
	proc                  *Process // nil when not running
	runs                  int      // starts so far
	startedAt, finishedAt time.Time
	exitCode              int
	oom                   bool
	pid                   int
	removed               bool

	logs     []logRecord
	logFirst uint64 // sequence number of logs[0]
	logBytes int64
	changed  chan struct{} // closed and replaced at every change (log, state)
}

func (c *container) broadcast() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *container) info() driver.ContainerInfo {
	return driver.ContainerInfo{
		ID: c.id, Name: c.name, Image: c.image.id, Labels: cloneMap(c.labels),
		Running: c.proc != nil, Pid: c.pid, ExitCode: c.exitCode, OOMKilled: c.oom,
		StartedAt: c.startedAt, FinishedAt: c.finishedAt, Runtime: c.runtime,
	}
}

// newContainerLocked files a container of img; the caller has validated
// the spec. The labels are the image's (those under driver.LabelPrefix
// blanked, as the Docker driver does), then the spec's, then LabelManaged.
func (d *Driver) newContainerLocked(name string, img *image, labels map[string]string, blankImageLabels bool) (*container, error) {
	if name != "" && d.names[name] != nil {
		return nil, fmt.Errorf("fake: create container %s: the name is already in use by container %s", name, d.names[name].id)
	}
	c := &container{id: d.newID(), name: name, image: img, labels: map[string]string{}, changed: make(chan struct{})}
	if c.name == "" {
		c.name = "fake-" + c.id[:12]
	}
	for k, v := range img.labels {
		if _, set := labels[k]; !set && blankImageLabels && strings.HasPrefix(strings.ToLower(k), driver.LabelPrefix) {
			v = ""
		}
		c.labels[k] = v
	}
	for k, v := range labels {
		c.labels[k] = v
	}
	c.labels[driver.LabelManaged] = "true"
	d.order++
	c.order = d.order
	d.containers[c.id] = c
	d.names[c.name] = c
	return c, nil
}

// mergeEnv is a container's environment as the engine makes it: the
// image's (of an imported image), then env, whose entries replace the
// image's of the same name.
func mergeEnv(img *image, env []string) []string {
	var out []string
	if base := img.importedBase(); base != nil {
		for _, kv := range base.spec.Env {
			k, _, _ := strings.Cut(kv, "=")
			if !slices.ContainsFunc(env, func(s string) bool { return strings.HasPrefix(s, k+"=") || s == k }) {
				out = append(out, kv)
			}
		}
	}
	return append(out, env...)
}

// checkSources fails as the engine does when a bind mount's source does
// not exist.
func checkSources(ms []driver.Mount) error {
	for _, m := range ms {
		if _, err := os.Stat(m.Source); err != nil {
			return fmt.Errorf("invalid mount config: bind source path does not exist: %s", m.Source)
		}
	}
	return nil
}

// CreateContainer creates a container under the sandbox contract
// (spec.Check: a weaker spec is refused with driver.ErrInvalidSpec). The
// image must exist (driver.ErrNotFound), every mount source must exist,
// and the name must be free.
func (d *Driver) CreateContainer(ctx context.Context, spec driver.ContainerSpec) (string, error) {
	call := Call{Method: "CreateContainer", Ref: spec.Name, Spec: spec}
	h, err := d.begin(ctx, call)
	if err != nil {
		return "", err
	}
	id, err := d.create(spec)
	if err = end(ctx, h, call, err); err != nil {
		return "", err
	}
	return id, nil
}

func (d *Driver) create(spec driver.ContainerSpec) (string, error) {
	if err := spec.Check(); err != nil {
		return "", fmt.Errorf("fake: %w", err)
	}
	d.mu.Lock()
	kept := d.volumeDir
	d.mu.Unlock()
	mounts := append([]driver.Mount(nil), spec.Mounts...)
	if kept == nil {
		if err := driver.BindOnly(spec.Mounts); err != nil {
			return "", fmt.Errorf("fake: %w", err)
		}
		if err := checkSources(spec.Mounts); err != nil {
			return "", fmt.Errorf("fake: create container %s: %w", spec.Name, err)
		}
	} else {
		for i, m := range mounts {
			if m.Kind == driver.MountBind {
				return "", fmt.Errorf("fake: %w: mount of %s: this engine mounts no Host folder", driver.ErrInvalidSpec, m.Target)
			}
			dir, ok := kept(m)
			if !ok {
				return "", fmt.Errorf("fake: mount of %s: %s %s: %w", m.Target, m.Kind, m.Source, driver.ErrNotFound)
			}
			// What the container's processes see: the volume's folder.
			mounts[i] = driver.Mount{Source: dir, Target: m.Target, ReadOnly: m.ReadOnly || m.Kind == driver.MountSecret}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usableLocked("CreateContainer"); err != nil {
		return "", err
	}
	img := d.image(spec.Image)
	if img == nil {
		return "", fmt.Errorf("fake: inspect image %s: %w", spec.Image, driver.ErrNotFound)
	}
	c, err := d.newContainerLocked(spec.Name, img, spec.Labels, true)
	if err != nil {
		return "", err
	}
	c.runtime, c.user = driver.SpecRuntime(spec.Runtime), spec.User
	c.env, c.mounts = mergeEnv(img, spec.Env), mounts
	if base := img.importedBase(); base != nil {
		c.args = slices.Clone(base.spec.Entrypoint)
	}
	c.limits, c.network = spec.Limits, spec.Network
	return c.id, nil
}

// StartContainer starts a created or exited container: a new process runs
// its image's Program. Starting a running container does nothing.
func (d *Driver) StartContainer(ctx context.Context, id string) error {
	call := Call{Method: "StartContainer", Ref: id}
	h, err := d.begin(ctx, call)
	if err != nil {
		return err
	}
	return end(ctx, h, call, d.start(id))
}

func (d *Driver) start(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usableLocked("StartContainer"); err != nil {
		return err
	}
	c := d.lookup(id)
	if c == nil {
		return fmt.Errorf("fake: start container %s: %w", id, driver.ErrNotFound)
	}
	if c.proc != nil {
		return nil
	}
	if d.broken[c.runtime] {
		return fmt.Errorf("fake: start container %s: %w: %s", id, driver.ErrRuntimeMissing, c.runtime)
	}
	def := d.opts.Program
	if def == nil {
		def = Idle
	}
	d.runLocked(c, d.programOf(c.image, def))
	return nil
}

// runLocked starts a process of c running prog.
func (d *Driver) runLocked(c *container, prog Program) *Process {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Process{
		d: d, c: c, ctx: ctx, cancel: cancel,
		term: make(chan struct{}), done: make(chan struct{}),
		listeners: map[string]*listener{}, conns: map[*pipeConn]struct{}{}, tmp: map[string][]byte{},
	}
	d.pids++
	c.proc, c.pid = p, d.pids
	c.runs++
	c.startedAt, c.finishedAt, c.exitCode, c.oom = now(), time.Time{}, 0, false
	d.emitLocked(c, eventStart, 0)
	c.broadcast()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		code := prog(ctx, p)
		d.mu.Lock()
		p.exitLocked(code, false)
		d.mu.Unlock()
	}()
	return p
}

// StopContainer sends SIGTERM (Process.Term), kills the process after
// grace (exit code 137), and returns once it has exited. A missing or
// stopped container is not an error. If ctx ends or the engine dies first
// it returns that error; the process goes on.
func (d *Driver) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	call := Call{Method: "StopContainer", Ref: id}
	h, err := d.begin(ctx, call)
	if err != nil {
		return err
	}
	return end(ctx, h, call, d.stop(ctx, id, grace))
}

func (d *Driver) stop(ctx context.Context, id string, grace time.Duration) error {
	d.mu.Lock()
	if err := d.usableLocked("StopContainer"); err != nil {
		d.mu.Unlock()
		return err
	}
	c := d.lookup(id)
	if c == nil || c.proc == nil {
		d.mu.Unlock()
		return nil
	}
	p, crashed := c.proc, d.crashed
	p.termLocked()
	d.mu.Unlock()
	kill := time.NewTimer(max(grace, 0))
	defer kill.Stop()
	select {
	case <-p.done:
		return nil
	case <-kill.C:
		d.mu.Lock()
		p.exitLocked(137, false)
		d.mu.Unlock()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("fake: stop container %s: %w", id, ctx.Err())
	case <-crashed:
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.usableLocked("StopContainer")
	}
}

// RemoveContainer removes a container, killing its process first (a die
// with 137). A missing container is not an error.
func (d *Driver) RemoveContainer(ctx context.Context, id string) error {
	call := Call{Method: "RemoveContainer", Ref: id}
	h, err := d.begin(ctx, call)
	if err != nil {
		return err
	}
	return end(ctx, h, call, d.removeContainer(id))
}

func (d *Driver) removeContainer(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usableLocked("RemoveContainer"); err != nil {
		return err
	}
	c := d.lookup(id)
	if c == nil {
		return nil
	}
	if c.proc != nil {
		c.proc.exitLocked(137, false)
	}
	c.removed = true
	delete(d.containers, c.id)
	delete(d.names, c.name)
	c.broadcast()
	return nil
}

// InspectContainer returns a container's facts (driver.ErrNotFound when it
// does not exist).
func (d *Driver) InspectContainer(ctx context.Context, id string) (driver.ContainerInfo, error) {
	call := Call{Method: "InspectContainer", Ref: id}
	h, err := d.begin(ctx, call)
	if err != nil {
		return driver.ContainerInfo{}, err
	}
	d.mu.Lock()
	var info driver.ContainerInfo
	err = d.usableLocked("InspectContainer")
	if err == nil {
		if c := d.lookup(id); c != nil {
			info = c.info()
		} else {
			err = fmt.Errorf("fake: inspect container %s: %w", id, driver.ErrNotFound)
		}
	}
	d.mu.Unlock()
	if err = end(ctx, h, call, err); err != nil {
		return driver.ContainerInfo{}, err
	}
	return info, nil
}

// ListContainers returns every container (jobs included, in any state)
// carrying all the given labels, in the order they were created.
func (d *Driver) ListContainers(ctx context.Context, labels map[string]string) ([]driver.ContainerInfo, error) {
	call := Call{Method: "ListContainers"}
	h, err := d.begin(ctx, call)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	var cs []*container
	err = d.usableLocked("ListContainers")
	if err == nil {
	next:
		for _, c := range d.containers {
			for k, v := range labels {
				if got, ok := c.labels[k]; !ok || got != v {
					continue next
				}
			}
			cs = append(cs, c)
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].order < cs[j].order })
	out := make([]driver.ContainerInfo, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.info())
	}
	d.mu.Unlock()
	if err = end(ctx, h, call, err); err != nil {
		return nil, err
	}
	return out, nil
}

// errNotRunning is the cause of a dial into a container that is not running.
var errNotRunning = errors.New("not running")
