// Package host is the Host's core: it turns a program's source into a
// sandboxed, supervised, long-running container. It owns the store, the
// builder, the runtime driver and one supervisor per program, and exposes
// what the HTTP API and the CLI serve as plain Go methods (one file per
// verb: create.go, start.go, ...).
//
// Data directory layout:
//
//	hershy.db                    programs, transitions, builds (SQLite)
//	lock                         held while a Host runs (one Host per directory)
//	programs/<id>/src/           the stored source (the build context)
//	programs/<id>/state.img      the program's /state filesystem: a sparse ext4 image of
//	                             its size cap (package statefs)
//	programs/<id>/state/         where state.img is loop-mounted; bind-mounted at /state,
//	                             the program's only writable place
//	programs/<id>/logs/          captured container output, rotated
//	logs/<build id>.log          build logs (package builder)
//	cache/, framework/, work/    builder caches and scratch (package builder)
package host

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/logstore"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/statefs"
	"github.com/hershyorg/hershy/internal/stats"
	"github.com/hershyorg/hershy/internal/store"
	"github.com/hershyorg/hershy/internal/supervisor"
	"github.com/hershyorg/hershy/internal/tokens"
)

// Options configure a Host. Zero fields take the defaults below.
type Options struct {
	DataDir      string
	Runtime      string        // driver.RuntimeRunsc (default) or RuntimeRunc, the operator's choice
	StartTimeout time.Duration // until the WatcherAPI must answer (default 60s)
	StopGrace    time.Duration // SIGTERM to SIGKILL (default 10s)
	BuildTimeout time.Duration // whole build (default 10m)
	// Launches is how many programs' containers are created and started on
	// the engine at once (default DefaultLaunches); the other launches wait
	// their turn. LaunchTimeout bounds one launch's create and start
	// (default 60s): a call the engine never answers becomes a failed start,
	// which the restart policy retries, instead of a program stuck Starting.
	Launches      int
	LaunchTimeout time.Duration
	// Halts is how many containers are stopped and removed at once
	// (default DefaultHalts); the other stops wait their turn.
	Halts       int
	Limits      driver.Limits
	LogMaxBytes int64 // per captured log file before rotation (default 8 MiB)
	LogKeep     int   // rotated files kept (default 3)
	Source      source.Limits
	Backoff     lifecycle.Backoff
	Build       builder.Options
	Logger      *slog.Logger
	// Quotas are the operator's limits per user (zero fields: defaults).
	Quotas Quotas
	// StateBytes is the size cap of a program's /state when it sets none
	// (default DefaultStateBytes); MaxStateBytes the most a program may
	// ask for (default DefaultMaxStateBytes).
	StateBytes, MaxStateBytes int64
	// KeepReleases is how many releases each program keeps, with their
	// sources and images, for rollback (default DefaultKeepReleases).
	KeepReleases int
	// UncappedState leaves /state a plain directory with no size cap, for
	// development without root or loop devices. Never in production: a
	// program can then fill the Host's disk.
	UncappedState bool
	// Stats is how often running programs' resources are sampled and how
	// long the history is kept (zero: stats.DefaultPolicy); StatsReads how
	// many containers are read at once (default DefaultStatsReads).
	Stats      stats.Policy
	StatsReads int
	// HealthEvery is how often the engine and the runtime are checked for
	// Health (default DefaultHealthEvery).
	HealthEvery time.Duration
	// AnswerEvery is how often each Ready program's WatcherAPI is asked
	// whether it is ready still (default DefaultAnswerEvery; see Answering).
	AnswerEvery time.Duration
	// Alerts configure webhook alerts.
	Alerts AlertOptions
}

// DefaultLaunches is the default of Options.Launches. A thousand programs
// started at once on two cores wedged Docker 20.10: 703 start calls went
// unanswered for minutes. A few at a time keep the engine busy without
// drowning it (the 100-at-once figure in BENCHMARKS.md was measured so).
const DefaultLaunches = 8

// DefaultHalts is the default of Options.Halts: a stop holds its slot
// through the program's grace period, so there are more than launches.
const DefaultHalts = 16

// Default resource limits for a program container. Pids leaves room for
// gVisor's own threads (about 45 for an idle sandbox).
var DefaultLimits = driver.Limits{MemoryBytes: 256 << 20, CPUs: 1, Pids: 128, LogBytes: 4 << 20}

func (o Options) withDefaults() (Options, error) {
	if o.DataDir == "" {
		return o, errors.New("host: a data directory is required")
	}
	abs, err := filepath.Abs(o.DataDir)
	if err != nil {
		return o, err
	}
	o.DataDir = abs
	switch o.Runtime {
	case "":
		o.Runtime = driver.RuntimeRunsc
	case driver.RuntimeRunsc, driver.RuntimeRunc:
	default:
		return o, fmt.Errorf("host: unknown runtime %q (want runsc or runc)", o.Runtime)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.StartTimeout, 60*time.Second)
	def(&o.StopGrace, 10*time.Second)
	def(&o.BuildTimeout, 10*time.Minute)
	def(&o.LaunchTimeout, 60*time.Second)
	if o.Launches <= 0 {
		o.Launches = DefaultLaunches
	}
	if o.Halts <= 0 {
		o.Halts = DefaultHalts
	}
	if o.Limits.MemoryBytes <= 0 {
		o.Limits.MemoryBytes = DefaultLimits.MemoryBytes
	}
	if o.Limits.CPUs <= 0 {
		o.Limits.CPUs = DefaultLimits.CPUs
	}
	if o.Limits.Pids <= 0 {
		o.Limits.Pids = DefaultLimits.Pids
	}
	if o.Limits.LogBytes <= 0 {
		o.Limits.LogBytes = DefaultLimits.LogBytes
	}
	if o.LogMaxBytes <= 0 {
		o.LogMaxBytes = 8 << 20
	}
	if o.LogKeep <= 0 {
		o.LogKeep = 3
	}
	if o.Backoff == (lifecycle.Backoff{}) {
		o.Backoff = lifecycle.DefaultBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Quotas, err = o.Quotas.withDefaults(o.Limits.MemoryBytes); err != nil {
		return o, err
	}
	if o.StateBytes <= 0 {
		o.StateBytes = DefaultStateBytes
	}
	if o.KeepReleases <= 0 {
		o.KeepReleases = DefaultKeepReleases
	}
	if o.MaxStateBytes <= 0 {
		o.MaxStateBytes = max(DefaultMaxStateBytes, o.StateBytes)
	}
	o.Alerts = o.Alerts.withDefaults()
	if o.Stats == (stats.Policy{}) {
		o.Stats = stats.DefaultPolicy
	}
	if err := o.Stats.Check(); err != nil {
		return o, fmt.Errorf("host: %w", err)
	}
	if o.HealthEvery <= 0 {
		o.HealthEvery = DefaultHealthEvery
	}
	if o.AnswerEvery <= 0 {
		o.AnswerEvery = DefaultAnswerEvery
	}
	if o.StatsReads <= 0 {
		o.StatsReads = DefaultStatsReads
	}
	if o.StateBytes < statefs.MinBytes || o.StateBytes > o.MaxStateBytes {
		return o, fmt.Errorf("host: the default /state size %d must be between %d and the maximum %d", o.StateBytes, int64(statefs.MinBytes), o.MaxStateBytes)
	}
	return o, nil
}

// Host runs programs. Create it with Open; Close stops supervising (the
// containers keep running and are re-adopted by the next Host).
type Host struct {
	opts     Options
	alerts   *alerter
	log      *slog.Logger
	store    *store.Store
	tokens   *tokens.Tokens
	driver   driver.Driver
	builder  *builder.Builder
	machine  lifecycle.Machine
	instance string
	lock     *os.File
	healthMu sync.Mutex
	health   Health
	answers  answers // the last check of each Ready program's WatcherAPI (answering.go)
	// healthNow asks healthLoop for a check at once.
	healthNow chan struct{}
	buildsMu  sync.RWMutex // builds (shared) against collectBuilds (exclusive)
	// quotaMu makes each quota check and the change it admits one step
	// (a create's count and record, a start's memory sum and command).
	// Taken before mu, never while holding it.
	quotaMu sync.Mutex
	// secretsMu makes a secret's count check and its write one step.
	secretsMu sync.Mutex
	// updateMu runs one Update at a time: the parts of two updates (the
	// source folder's swap, a /state resize) must not interleave. Updates
	// are rare; a resize of a stopped program's /state holds it longest.
	updateMu sync.Mutex
	states   *statefs.Manager    // the programs' /state filesystems (nil: uncapped, or volumes)
	volumes  driver.VolumeKeeper // the engine's volumes for /state and secrets (nil: the Host's own)
	// keepState holds the programs whose delete keeps their /state volume
	// (DeleteOptions.KeepState), from the request to the purge.
	keepState sync.Map
	// liveQuotas, once SetQuotas has run, replaces opts.Quotas.
	liveQuotas atomic.Pointer[Quotas]
	saveMu     sync.Mutex // one read-modify-write of a program's row at a time (save, updateOptions)
	usageMu    sync.Mutex
	usage      map[string]usageAt // recent /state usage per program, for lists (StateUsageRecent)
	samples    sampler            // the resource history's state (stats.go)

	watcher  *http.Client  // reaches WatcherAPIs through the driver
	checker  *http.Client  // the same, a connection per request (answering.go)
	probing  atomic.Int64  // readiness probes running now (probeReady shares a budget)
	breaks   atomic.Int64  // times the engine's event stream ended (an engine restart ends it)
	launches chan struct{} // a slot per engine launch running now (Options.Launches)
	halts    chan struct{} // a slot per container being stopped now (Options.Halts)
	wt       *http.Transport

	ctx    context.Context // lives until Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	sups map[string]*supervisor.Supervisor
	rows map[string]store.Program // each program's row: as saved, or as it is when a save failed
	// unsaved holds the programs whose last change the store refused (a
	// full disk), with the state the store still has; their next change or
	// a retry every persistRetry writes them (supervise.go).
	unsaved  map[string]lifecycle.State
	captures map[string]*capture       // container id -> log capture
	files    map[string]*logstore.File // program id -> container log
	oom      map[string]bool           // container ids the engine reported OOM for

	subsMu sync.Mutex
	subs   map[int]func(Change) // replaced, never changed in place (observe reads it unlocked)
	subSeq int
	paths  pathScrubber // hides the data directory in messages (relpath.go)
}

// Open starts a Host on opts.DataDir with driver: it takes the directory's
// lock, opens the store, reconciles with the engine, and starts one
// supervisor per program and the engine event loop.
func Open(ctx context.Context, opts Options, engine driver.Driver) (*Host, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{o.DataDir, filepath.Join(o.DataDir, "programs"), filepath.Join(o.DataDir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("host: data directory: %w", err)
		}
	}
	// An engine that keeps programs' volumes itself (Kubernetes) holds
	// /state: no filesystem of the Host's is needed.
	volumes, _ := engine.(driver.VolumeKeeper)
	var states *statefs.Manager
	if volumes == nil {
		if states, err = openStates(o); err != nil {
			return nil, err
		}
	}
	lock, err := lockDir(o.DataDir)
	if err != nil {
		return nil, err
	}
	h := &Host{
		opts: o, log: o.Logger, driver: engine, lock: lock, states: states, volumes: volumes,
		machine:   lifecycle.Machine{Backoff: o.Backoff},
		sups:      map[string]*supervisor.Supervisor{},
		rows:      map[string]store.Program{},
		unsaved:   map[string]lifecycle.State{},
		captures:  map[string]*capture{},
		oom:       map[string]bool{},
		paths:     newPathScrubber(o.DataDir),
		launches:  make(chan struct{}, o.Launches),
		halts:     make(chan struct{}, o.Halts),
		samples:   sampler{meters: map[string]*programMeter{}, latest: map[string]ProgramUsage{}},
		healthNow: make(chan struct{}, 1),
	}
	ok := false
	defer func() {
		if !ok {
			h.closeResources()
		}
	}()
	h.store, err = store.Open(filepath.Join(o.DataDir, "hershy.db"))
	if err != nil {
		return nil, err
	}
	h.tokens = tokens.New(h.store)
	h.instance, err = h.store.EnsureMeta(ctx, store.MetaInstanceID, newInstanceID())
	if err != nil {
		return nil, err
	}
	bo := o.Build
	if bo.Runtime == "" {
		bo.Runtime = o.Runtime // builds run under the programs' sandbox runtime
	}
	bo.Instance = h.instance
	if be, ok := engine.(driver.BuildEngine); ok {
		bo.Jobs = be.BuildEngine()
	}
	h.builder, err = builder.New(o.DataDir, engine, bo)
	if err != nil {
		return nil, err
	}
	os.RemoveAll(filepath.Join(o.DataDir, "tmp")) // half-made programs of a crashed create
	if err := os.MkdirAll(filepath.Join(o.DataDir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	h.wt = newWatcherTransport(engine)
	h.watcher = &http.Client{Transport: h.wt}
	h.checker = newChecker(h.wt)
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.alerts = newAlerter(o.Alerts)
	if err := h.startAlerts(ctx); err != nil {
		h.cancel()
		return nil, fmt.Errorf("host: webhooks: %w", err)
	}

	// Subscribe to engine events before reconciling, so no exit between the
	// two is missed.
	events, errs := engine.Events(h.ctx)
	if err := h.reconcile(ctx); err != nil {
		h.cancel()
		return nil, fmt.Errorf("host: reconcile: %w", err)
	}
	if err := h.migrateBuildIDs(ctx); err != nil {
		h.cancel()
		return nil, fmt.Errorf("host: build ids: %w", err)
	}
	h.collectBuildsLogged(ctx) // left over from deletes or upgrades a previous Host did not finish
	if err := h.restoreStats(ctx); err != nil {
		h.log.Error("restoring the resource history's open steps", "err", err)
	}
	h.checkHealth(ctx)
	h.wg.Add(1)
	go h.healthLoop()
	h.every(persistRetry, h.persistUnsaved, h.persistUnsaved)
	h.every(h.opts.AnswerEvery, func() { h.checkAnswers(h.ctx) }, nil)
	if h.states != nil { // a cluster's volumes are not read here
		h.every(h.opts.Alerts.StateEvery, h.checkStateAlerts, nil)
	}
	h.wg.Add(1)
	go h.eventLoop(events, errs)
	h.wg.Add(1)
	go h.sampleLoop()
	h.wg.Add(1)
	go h.warmUp()
	ok = true
	h.log.Info("host ready", "data", o.DataDir, "runtime", o.Runtime, "instance", h.instance)
	return h, nil
}

// every runs fn every d from now until the Host closes, then final (when
// not nil), in a goroutine of the Host's.
func (h *Host) every(d time.Duration, fn, final func()) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-h.ctx.Done():
				if final != nil {
					final()
				}
				return
			case <-t.C:
				fn()
			}
		}
	}()
}

// Close stops the supervisors, event loop and log captures, and unmounts
// the programs' /state filesystems from the data directory. Containers
// keep running, each with its own /state: a Host restart re-adopts them
// and mounts their filesystems here again.
func (h *Host) Close() error {
	h.cancel()
	h.mu.Lock()
	sups := make([]*supervisor.Supervisor, 0, len(h.sups))
	for _, s := range h.sups {
		sups = append(sups, s)
	}
	h.mu.Unlock()
	for _, s := range sups {
		<-s.Done()
	}
	h.wg.Wait()
	if h.builder != nil {
		h.builder.Close() // the build sandboxes kept up between builds
	}
	h.wt.CloseIdleConnections()
	h.alerts.sender.Close()
	h.closeLogs()
	h.releaseStates()
	return h.closeResources()
}

func (h *Host) closeResources() error {
	var errs []error
	if h.store != nil {
		errs = append(errs, h.store.Close())
	}
	if h.lock != nil {
		errs = append(errs, h.lock.Close())
	}
	return errors.Join(errs...)
}

// warmUp fills the builder's shared cache layer in the background (see
// builder.Builder.WarmUp); builds that start meanwhile wait for it.
func (h *Host) warmUp() {
	defer h.wg.Done()
	start := time.Now()
	if err := h.builder.WarmUp(h.ctx, io.Discard); err != nil {
		if h.ctx.Err() == nil {
			h.log.Warn("warming the shared build cache failed; builds will compile the standard library themselves", "err", err)
		}
		return
	}
	h.log.Debug("shared build cache warm", "took", time.Since(start).Round(time.Millisecond))
}

// QueuePosition reports where the build of buildID waits: n when n-1
// builds are ahead of it, 0 when it runs or is not building.
func (h *Host) QueuePosition(buildID string) int { return h.builder.QueuePosition(buildID) }

// Runtime reports the OCI runtime programs run under.
func (h *Host) Runtime() string { return h.opts.Runtime }

// Instance is this Host's id (stable for its data directory).
func (h *Host) Instance() string { return h.instance }

// Tokens are the API's bearer tokens, kept in the Host's store.
func (h *Host) Tokens() *tokens.Tokens { return h.tokens }

// Builds lists the build records (for the operator's metrics).
func (h *Host) Builds(ctx context.Context) ([]store.Build, error) { return h.store.ListBuilds(ctx, "") }

func (h *Host) programDir(id string) string { return filepath.Join(h.opts.DataDir, "programs", id) }

// lockDir takes an exclusive lock on the data directory: two Hosts on one
// directory would both supervise the same containers.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("host: data directory %s is in use by another Host: %w", dir, err)
	}
	return f, nil
}

func newInstanceID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
