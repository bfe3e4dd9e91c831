package hersh

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hershyorg/hershy/hersh/internal/ring"
)

// ManagedFunc is the function a Watcher runs: once at start, then once per
// user message and once per batch of changed watched variables. Returning a
// control error (Stop, Kill, Crash) ends the watcher; any other error counts
// as a failure and is retried with backoff.
type ManagedFunc func(c *Context) error

// CleanupFunc runs exactly once when a session ends, whatever the terminal
// state. cause is nil after a stop, the *KillError or *CrashError otherwise.
// c is cancelled after Config.CleanupTimeout; watches cannot be used in it,
// context state can.
type CleanupFunc func(c *Context, cause error)

// Watcher runs one managed function reactively. Create it with New, start it
// with Start (or Run), end it with Stop or Kill. All methods are safe for
// concurrent use.
type Watcher struct {
	cfg     Config
	managed ManagedFunc
	logs    *logs
	store   *stateStore
	recent  *ring.Buffer[recentSignal]
	clock   *wallClock // timestamps of messages and other signals
	handler http.Handler

	runSeq atomic.Uint64 // run ids, across sessions (engine side)
	_      [56]byte      // keep the producers' counter off the engine's cache line
	msgSeq atomic.Uint64 // message ids, across sessions (given under the queue's lock)
	_      [56]byte
	cur    atomic.Pointer[session]

	mu      sync.Mutex // guards the fields below
	cleanup CleanupFunc
	last    *session // most recent session, running or ended
	final   State    // StateKilled or StateCrashed once final
	loaded  bool     // durable state read from disk
}

// New validates cfg and returns a watcher for managed. It does not start it.
func New(cfg Config, managed ManagedFunc) (*Watcher, error) {
	if managed == nil {
		return nil, ErrNoManaged
	}
	rc, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	w := &Watcher{
		cfg:     rc,
		managed: managed,
		logs:    newLogs(rc.MaxLogEntries),
		recent:  ring.New[recentSignal](recentSignals),
		clock:   newWallClock(time.Now()),
	}
	w.store = newStateStore(rc.StateDir, w.logs)
	w.handler = newAPI(w)
	return w, nil
}

// OnCleanup sets the function run once when a session ends. It takes effect
// at the next Start.
func (w *Watcher) OnCleanup(fn CleanupFunc) {
	w.mu.Lock()
	w.cleanup = fn
	w.mu.Unlock()
}

// Config returns the resolved configuration (defaults filled in).
func (w *Watcher) Config() Config {
	c := w.cfg
	c.Env = make(map[string]string, len(w.cfg.Env))
	for k, v := range w.cfg.Env {
		c.Env[k] = v
	}
	return c
}

// Start begins a session: it restores durable state (first start only),
// opens the WatcherAPI listener, and schedules the initial run. It returns
// once the session is running. A stopped watcher can be started again (memos
// and watches start afresh, context state is kept); a killed or crashed one
// cannot (ErrTerminated).
func (w *Watcher) Start() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.final.Final() {
		return ErrTerminated
	}
	if w.last != nil && !w.last.ended() {
		return ErrAlreadyRunning
	}
	if !w.loaded {
		if err := w.store.load(); err != nil {
			return err
		}
		w.loaded = true
	}
	s := newSession(w, w.cleanup)
	if !w.cfg.DisableAPIServer {
		ln, err := net.Listen("tcp", w.cfg.APIAddr)
		if err != nil {
			return fmt.Errorf("hersh: WatcherAPI listen on %s: %w", w.cfg.APIAddr, err)
		}
		s.serveAPI(ln, w.handler)
	}
	w.last = s
	w.cur.Store(s)
	s.startBackground()
	go s.loop()
	return nil
}

// Run starts the watcher and blocks until it ends or ctx is done; then it
// stops the watcher gracefully (bounded by Config.CleanupTimeout plus the
// run timeout) and returns how it ended (see Err).
func (w *Watcher) Run(ctx context.Context) error {
	if err := w.Start(); err != nil {
		return err
	}
	s := w.lastSession()
	select {
	case <-s.done:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), w.cfg.CleanupTimeout+w.cfg.RunTimeout)
		err := w.Stop(sctx)
		cancel()
		if err != nil {
			return err
		}
	}
	return w.Err()
}

// Stop ends the current session gracefully: the in-flight run may finish,
// queued signals are discarded, watches end, cleanup runs. It is idempotent
// and safe to call from many goroutines. It waits until the session has
// ended or ctx is done; in the latter case it cancels the in-flight run's
// context and returns an error wrapping ctx.Err() (the session still ends
// as Stopped once the run returns).
func (w *Watcher) Stop(ctx context.Context) error {
	return w.end(ctx, reqStop)
}

// Kill ends the current session at once: the in-flight run's context is
// cancelled, queued signals are discarded, cleanup runs, and the watcher
// ends as Killed and cannot be started again. It waits like Stop.
func (w *Watcher) Kill(ctx context.Context) error {
	return w.end(ctx, reqKill)
}

func (w *Watcher) end(ctx context.Context, kind int32) error {
	s := w.lastSession()
	if s == nil {
		return nil
	}
	s.request(kind)
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		s.cancelRun()
		return fmt.Errorf("hersh: session did not end in time: %w", ctx.Err())
	}
}

// Done returns a channel closed when the current (or last) session has
// ended and everything it started has been torn down. Before the first
// Start it returns nil.
func (w *Watcher) Done() <-chan struct{} {
	if s := w.lastSession(); s != nil {
		return s.done
	}
	return nil
}

// Err reports how the last session ended: nil while running, after a stop,
// or before any start; the *KillError or *CrashError otherwise.
func (w *Watcher) Err() error {
	s := w.lastSession()
	if s == nil || !s.ended() {
		return nil
	}
	return s.err
}

// State reports the watcher's current state.
func (w *Watcher) State() State {
	if s := w.lastSession(); s != nil {
		return s.state()
	}
	return StateNotRun
}

// APIAddr reports the address the WatcherAPI listens on while a session
// runs (useful with port 0), or "" when it is not listening.
func (w *Watcher) APIAddr() string {
	if s := w.cur.Load(); s != nil && s.apiLn != nil {
		return s.apiLn.Addr().String()
	}
	return ""
}

// Handler returns the WatcherAPI as an http.Handler, to mount elsewhere.
func (w *Watcher) Handler() http.Handler { return w.handler }

// Send queues a user message. If the queue is full it waits for room until
// ctx is done and then returns an error wrapping both ErrQueueFull and
// ctx.Err() (a nil ctx waits as long as the session runs). It returns
// ErrNotRunning when no session is running.
func (w *Watcher) Send(ctx context.Context, content string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := w.send(ctx, content); err != errFull {
		return err
	}
	return fmt.Errorf("%w: %w", ErrQueueFull, ctx.Err())
}

// TrySend queues a user message or fails at once with ErrQueueFull.
func (w *Watcher) TrySend(content string) error { return w.send(nil, content) }

// send queues a message, waiting for room until ctx is done (nil: not at
// all, errFull at once).
func (w *Watcher) send(ctx context.Context, content string) error {
	s := w.cur.Load()
	if s == nil || s.closing.Load() {
		return ErrNotRunning
	}
	at := w.clock.unixNano()
	if err := s.msgs.push(ctx, content, at, s.done); err != nil {
		return err
	}
	w.noteSignal(SignalUser, content, at)
	return nil
}

// ClearMemo forgets one memoized value; the next Memo call recomputes it.
// It reports whether there was one.
func (w *Watcher) ClearMemo(name string) bool {
	s := w.cur.Load()
	if s == nil {
		return false
	}
	return s.clearMemo(name)
}

// ClearMemos forgets every memoized value of the running session.
func (w *Watcher) ClearMemos() {
	if s := w.cur.Load(); s != nil {
		s.clearMemos()
	}
}

func (w *Watcher) lastSession() *session {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// SignalKind names the three signal queues, highest priority first.
type SignalKind string

const (
	SignalSystem SignalKind = "system"
	SignalUser   SignalKind = "user"
	SignalVar    SignalKind = "var"
)

// SignalInfo describes a recently received signal.
type SignalInfo struct {
	Type      SignalKind `json:"type"`
	Content   string     `json:"content"`
	CreatedAt time.Time  `json:"createdAt"`
}

const recentSignals = 64

// recentSignal is a SignalInfo as the recent-signals ring keeps it: one
// pointer instead of three, since every Send writes one.
type recentSignal struct {
	content string
	at      int64 // unix ns
	kind    uint8 // index in signalKinds
}

var signalKinds = [...]SignalKind{SignalSystem, SignalUser, SignalVar}

func (w *Watcher) noteSignal(kind SignalKind, content string, at int64) {
	k := uint8(0)
	for i, sk := range signalKinds {
		if sk == kind {
			k = uint8(i)
		}
	}
	w.recent.Push(recentSignal{content: content, at: at, kind: k})
}

// recentSignals returns the newest signals received, oldest first.
func (w *Watcher) recentSignals() []SignalInfo {
	rs := w.recent.Last(0)
	out := make([]SignalInfo, len(rs))
	for i, r := range rs {
		out[i] = SignalInfo{Type: signalKinds[r.kind], Content: r.content, CreatedAt: time.Unix(0, r.at)}
	}
	return out
}
