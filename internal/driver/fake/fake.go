package fake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// ErrEngineDown is returned (wrapped, with the cause given to Crash) by
// every call while the engine is down, and ends event streams, log follows
// and waits that were open when it died. It is the driver package's, so the
// Host tells a dead engine the same way on either driver.
var ErrEngineDown = driver.ErrEngineDown

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("fake: the driver is closed")

// WatcherAddr is where the Host expects a program's WatcherAPI, inside the
// container's own loopback: Script.API is served there.
const WatcherAddr = "127.0.0.1:8080"

// Options configure a fake Driver. The zero value is ready to use.
type Options struct {
	// Program is what a container runs when neither its image nor an image
	// it was built on has one of its own (SetProgram). Nil: Idle.
	Program Program
	// Job is what RunJob runs when the job's image has no program of its
	// own. Nil: the job prints nothing and exits 0.
	Job Program
	// Hooks script calls (see Hooks); SetHooks changes them later.
	Hooks Hooks
}

// Call describes one driver call, for Hooks.
type Call struct {
	Method string // the driver method: "CreateContainer", "StartContainer", ...
	// Ref is the container (id or name) or image (id or tag) the call
	// names, or the name of the container CreateContainer and RunJob
	// make; "" for calls that name none (ListContainers, Events).
	Ref string
	// Spec is the driver.ImageSpec, driver.ImportSpec, driver.ContainerSpec
	// or driver.JobSpec of BuildImage, ImportImage, CreateContainer and
	// RunJob; nil for the others.
	Spec any
}

// Hooks script the driver's calls. Each runs on the caller's goroutine, for
// every call, and may be called concurrently.
type Hooks struct {
	// Before runs at the start of a call, once its context and the engine
	// have been checked. A non-nil error fails the call (wrapped, so
	// errors.Is finds it) before it has any effect. It may block to delay
	// the call or to hold it until the test lets it go; it should give up
	// when ctx ends. Once it returns nil the call takes effect even if ctx
	// has ended meanwhile, as an engine completes a request it received.
	Before func(ctx context.Context, c Call) error
	// After runs when a call has taken effect, with the call's error, and
	// its result replaces that error (return err to keep it). An error for
	// a call that succeeded is a reply the caller never got: a container
	// created whose id is lost, a removal reported as failed.
	After func(ctx context.Context, c Call, err error) error
	// Build runs inside BuildImage once the context and the Dockerfile
	// have passed the driver's checks, before the image exists. It may
	// write build output to out, take time (honouring ctx) or fail the
	// build: then no image is made and BuildImage returns its error.
	Build func(ctx context.Context, spec driver.ImageSpec, out io.Writer) error
}

// Driver is the in-memory driver. It is safe for concurrent use; create it
// with New and end it with Close.
type Driver struct {
	opts Options

	mu      sync.Mutex
	hooks   Hooks
	down    error           // the cause of a crash while the engine is down
	broken  map[string]bool // runtimes made missing by BreakRuntime
	crashed chan struct{}   // closed by Crash; a new one after Restore
	gen     uint64          // crash count: streams opened before a crash are broken
	closed  bool
	seq     uint64 // ids
	pids    int
	ports   int // ephemeral ports of dialled connections

	// volumeDir, set by WithVolumes, gives the folder of a kept volume a
	// mount names; nil: an engine of Host folders only.
	volumeDir func(driver.Mount) (string, bool)

	images     map[string]*image // id -> image
	tags       map[string]*image // normalised tag -> image
	programs   map[string]Program
	containers map[string]*container // id -> container
	names      map[string]*container
	order      uint64 // creation order of containers, for stable lists
	subs       map[*subscription]struct{}

	wg sync.WaitGroup // goroutines the driver started
}

var _ driver.Driver = (*Driver)(nil)

// New returns an empty engine: no images, no containers.
func New(opts Options) *Driver {
	return &Driver{
		opts:       opts,
		hooks:      opts.Hooks,
		crashed:    make(chan struct{}),
		pids:       1000,
		ports:      40000,
		images:     map[string]*image{},
		tags:       map[string]*image{},
		programs:   map[string]Program{},
		containers: map[string]*container{},
		names:      map[string]*container{},
		subs:       map[*subscription]struct{}{},
	}
}

// SetHooks replaces the hooks for the calls that start from now on.
func (d *Driver) SetHooks(h Hooks) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hooks = h
}

// Close ends the engine: event streams end with ErrClosed, every process is
// killed, and Close returns once every goroutine the driver started has
// ended (so a Program must return when its context ends). Later calls fail
// with ErrClosed. Close is idempotent.
func (d *Driver) Close() error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		for s := range d.subs {
			s.end(ErrClosed)
		}
		for _, c := range d.containers {
			if c.proc != nil {
				c.proc.exitLocked(137, false)
			}
			c.broadcast()
		}
	}
	d.mu.Unlock()
	d.wg.Wait()
	return nil
}

// Crash makes the engine die with cause: every open event stream ends with
// an error wrapping ErrEngineDown and cause, log follows and calls waiting
// on the engine (StopContainer, RunJob) fail, and every call fails until
// Restore. Containers keep running, as with the engine's live-restore, and
// Exit and OOMKill still act on them: their events are lost.
func (d *Driver) Crash(cause error) {
	if cause == nil {
		cause = errors.New("crashed")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down != nil || d.closed {
		return
	}
	d.down = cause
	d.gen++
	close(d.crashed)
	for s := range d.subs {
		s.end(fmt.Errorf("fake: events: %w: %w", ErrEngineDown, cause))
	}
	for _, c := range d.containers {
		c.broadcast()
	}
}

// BreakEvents ends every open event stream with an error wrapping cause,
// as a dropped connection to a live engine does: the engine goes on, and
// events until the caller subscribes again are lost to it.
func (d *Driver) BreakEvents(cause error) {
	if cause == nil {
		cause = errors.New("connection reset")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for s := range d.subs {
		s.end(fmt.Errorf("fake: events: %w", cause))
	}
}

// Restore brings a crashed engine back: calls work again; streams broken
// by the crash stay broken (the caller subscribes again).
func (d *Driver) Restore() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down == nil {
		return
	}
	d.down = nil
	d.crashed = make(chan struct{})
}

// Exit makes the program of a running container exit with code now, as if
// it called os.Exit (or the kernel killed it: 137).
func (d *Driver) Exit(id string, code int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.lookup(id)
	if c == nil {
		return fmt.Errorf("fake: exit %s: %w", id, driver.ErrNotFound)
	}
	if c.proc == nil {
		return fmt.Errorf("fake: exit %s: not running", id)
	}
	c.proc.exitLocked(code, false)
	return nil
}

// OOMKill kills the program of a running container as the kernel does when
// it exceeds its memory limit: an oom event, then a die with code 137.
func (d *Driver) OOMKill(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.lookup(id)
	if c == nil {
		return fmt.Errorf("fake: oom kill %s: %w", id, driver.ErrNotFound)
	}
	if c.proc == nil {
		return fmt.Errorf("fake: oom kill %s: not running", id)
	}
	c.proc.exitLocked(137, true)
	return nil
}

// SetProgram makes containers of the image ref (a tag or an id), and of
// images built on it, run p from their next start. The tag need not exist
// yet: an image built or imported with it later runs p.
func (d *Driver) SetProgram(ref string, p Program) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.programs[normalizeRef(ref)] = p
}

// AddImage makes an image tagged ref exist, with labels and no files, as
// an operator's base image put on the engine by hand would: it returns its
// id. (The driver method ImportImage is the Host's way in, from a layer.)
func (d *Driver) AddImage(ref string, labels map[string]string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	img := &image{id: d.newImageID(), labels: cloneMap(labels)}
	d.images[img.id] = img
	d.tag(img, ref)
	return img.id
}

// begin starts a call: it checks the context, a closed driver and a dead
// engine, then runs the Before hook. It returns the hooks for the After
// step.
func (d *Driver) begin(ctx context.Context, c Call) (Hooks, error) {
	if err := ctx.Err(); err != nil {
		return Hooks{}, fmt.Errorf("fake: %s %s: %w", c.Method, c.Ref, err)
	}
	d.mu.Lock()
	h, err := d.hooks, d.usableLocked(c.Method)
	d.mu.Unlock()
	if err != nil {
		return Hooks{}, err
	}
	if h.Before != nil {
		if err := h.Before(ctx, c); err != nil {
			return Hooks{}, fmt.Errorf("fake: %s %s: %w", c.Method, c.Ref, err)
		}
		d.mu.Lock()
		err = d.usableLocked(c.Method)
		d.mu.Unlock()
		if err != nil {
			return Hooks{}, err
		}
	}
	return h, nil
}

// end runs the After hook.
func end(ctx context.Context, h Hooks, c Call, err error) error {
	if h.After == nil {
		return err
	}
	return h.After(ctx, c, err)
}

// usableLocked is the error of a call to a closed driver or a dead engine.
func (d *Driver) usableLocked(method string) error {
	switch {
	case d.closed:
		return fmt.Errorf("fake: %s: %w", method, ErrClosed)
	case d.down != nil:
		return fmt.Errorf("fake: %s: %w: %w", method, ErrEngineDown, d.down)
	}
	return nil
}

// lookup finds a container by id or name.
func (d *Driver) lookup(ref string) *container {
	if c, ok := d.containers[ref]; ok {
		return c
	}
	return d.names[ref]
}

// newID returns a fresh 64-digit hex id. Ids are deterministic per driver
// (a counter), so a test run is repeatable.
func (d *Driver) newID() string {
	d.seq++
	sum := sha256.Sum256([]byte("hershy-fake-" + strconv.FormatUint(d.seq, 10)))
	return hex.EncodeToString(sum[:])
}

func (d *Driver) newImageID() string { return "sha256:" + d.newID() }

// now is the engine's clock: the bubble's under testing/synctest.
func now() time.Time { return time.Now() }

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
