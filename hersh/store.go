package hersh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
	"unicode/utf8"
)

// Context state: typed key-value state that outlives runs and, with a state
// directory, restarts. Values are kept typed in memory; when durable, each
// is also kept as its JSON encoding, which is what gets written to disk and
// what a restarted program decodes lazily on the first typed read.

// Scope is what a Key reads and writes through: the *Context of a run (or
// of cleanup), or the *Watcher itself, so main, tests and other goroutines
// can read and seed state too.
type Scope interface{ contextState() *stateStore }

func (c *Context) contextState() *stateStore { return c.s.w.store }
func (w *Watcher) contextState() *stateStore { return w.store }

// Key names a context-state value of type T. Declare keys once, at package
// level: var count = hersh.NewKey[int]("count"). Unlike watches and memos,
// keys work with any Context of the watcher: in a run, in cleanup, and in
// goroutines a run started, also after that run has ended.
type Key[T any] struct{ name string }

// NewKey returns the key for name.
func NewKey[T any](name string) Key[T] { return Key[T]{name: name} }

// Name returns the key's name.
func (k Key[T]) Name() string { return k.name }

// Get returns the value and whether it is set. A value of another type
// (say, restored from a file written by an older program) reads as unset and
// is recorded in the state-fault log; use Load to get the error itself.
func (k Key[T]) Get(c Scope) (T, bool) {
	v, err := k.Load(c)
	return v, err == nil
}

// Load returns the value, ErrNotSet, or a *TypeError.
func (k Key[T]) Load(c Scope) (T, error) {
	var zero T
	if k.name == "" {
		return zero, ErrEmptyKey
	}
	v, _, err := load[T](c.contextState(), k.name)
	return v, err
}

// Set stores v. With durable state, a value that cannot be encoded as JSON
// is rejected with an error wrapping ErrUnencodable and nothing changes.
func (k Key[T]) Set(c Scope, v T) error {
	if k.name == "" {
		return ErrEmptyKey
	}
	st := c.contextState()
	raw, err := st.encode(k.name, v)
	if err != nil {
		return err
	}
	st.commit(k.name, v, raw, 0, false, "set")
	return nil
}

// Update atomically replaces the value with fn(current); current is the
// zero value when unset. fn runs without any lock held and may run more than
// once if another goroutine changes the key meanwhile; it should be a pure
// function of its input, and must not change the key itself (that update
// could never win: it fails after many retries). fn may read and write other
// keys. An error or panic in fn leaves the value unchanged and is returned
// (a panic as a *PanicError).
func (k Key[T]) Update(c Scope, fn func(current T) (T, error)) (T, error) {
	var zero T
	if k.name == "" {
		return zero, ErrEmptyKey
	}
	st := c.contextState()
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		cur, ver, err := load[T](st, k.name)
		if err != nil && !errors.Is(err, ErrNotSet) {
			return zero, err
		}
		next, err := safeUpdate(fn, cur)
		if err != nil {
			return zero, err
		}
		raw, err := st.encode(k.name, next)
		if err != nil {
			return zero, err
		}
		if st.commit(k.name, next, raw, ver, true, "update") {
			return next, nil
		}
		// Lost a race: let the others run before trying again. Without
		// this, updaters with equally slow functions fall into step and the
		// later one keeps losing.
		runtime.Gosched()
	}
	return zero, fmt.Errorf("hersh: state key %q: update lost %d races in a row", k.name, maxUpdateAttempts)
}

// Delete removes the value.
func (k Key[T]) Delete(c Scope) error {
	if k.name == "" {
		return ErrEmptyKey
	}
	c.contextState().remove(k.name)
	return nil
}

// ErrNotSet is returned by Key.Load for a key with no value.
var ErrNotSet = errors.New("hersh: state key not set")

// maxUpdateAttempts bounds the retries of one Update, so an update function
// that changes its own key (and so can never win) returns an error instead
// of looping forever. Real contention stays far below it: in tests, up to
// 64 goroutines hammering one key with sub-millisecond functions lost up to
// about 140 races in a row (so 100, the first limit, failed real updates).
const maxUpdateAttempts = 10_000

type stateEntry struct {
	val   any    // typed value; nil until decoded when restored
	typed bool   // val holds the typed value
	raw   []byte // JSON encoding (durable or restored), else nil
	ver   uint64 // bumped on every change, for optimistic updates
}

type stateStore struct {
	dir  string
	logs *logs

	mu      sync.Mutex
	entries map[string]*stateEntry
	ver     uint64 // global change counter
	saved   uint64 // ver written to disk last
	wake    chan struct{}
	writeMu sync.Mutex // one file write at a time
}

func newStateStore(dir string, l *logs) *stateStore {
	return &stateStore{dir: dir, logs: l, entries: map[string]*stateEntry{}, wake: make(chan struct{}, 1)}
}

func (st *stateStore) durable() bool { return st.dir != "" }

func (st *stateStore) path() string { return filepath.Join(st.dir, DefaultStateFileName) }

// load reads key as a T, decoding a restored value outside the lock.
func load[T any](st *stateStore, key string) (T, uint64, error) {
	var zero T
	st.mu.Lock()
	e, ok := st.entries[key]
	if !ok {
		st.mu.Unlock()
		return zero, 0, ErrNotSet
	}
	val, typed, raw, ver := e.val, e.typed, e.raw, e.ver
	st.mu.Unlock()

	if typed {
		if val == nil && isInterface[T]() {
			// A nil interface value (Key[any].Set(c, nil)) fails the type
			// assertion below, yet it is exactly what was stored.
			return zero, ver, nil
		}
		v, ok := val.(T)
		if !ok {
			err := &TypeError{Key: key, Want: fmt.Sprintf("%T", zero), Err: fmt.Errorf("it holds a %T", val)}
			st.logs.fault(key, err)
			return zero, ver, err
		}
		return v, ver, nil
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		terr := &TypeError{Key: key, Want: fmt.Sprintf("%T", zero), Err: err}
		st.logs.fault(key, terr)
		return zero, ver, terr
	}
	st.mu.Lock()
	if e, ok := st.entries[key]; ok && e.ver == ver && !e.typed {
		e.val, e.typed = v, true
	}
	st.mu.Unlock()
	return v, ver, nil
}

// encode returns v's JSON encoding when state is durable (nil otherwise).
func (st *stateStore) encode(key string, v any) (raw []byte, err error) {
	if !st.durable() {
		return nil, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("hersh: state key %q: %w: panic while encoding: %v", key, ErrUnencodable, r)
		}
	}()
	raw, err = json.Marshal(v)
	if err != nil {
		// Both wrapped: errors.Is finds ErrUnencodable and, say, the error
		// a MarshalJSON method returned.
		return nil, fmt.Errorf("hersh: state key %q: %w: %w", key, ErrUnencodable, err)
	}
	return raw, nil
}

// commit stores a value. With check set it only does so if the entry's
// version is still ver (0: still unset), and reports whether it did.
//
// The context log entry is pushed under the lock, so the log lists changes
// in the order they were made (the last entry for a key shows its value);
// the value is formatted before, since formatting may call user code (a
// String method) that must never run with the lock held.
func (st *stateStore) commit(key string, v any, raw []byte, ver uint64, check bool, op string) bool {
	shown := showValue(v, raw)
	st.mu.Lock()
	e, ok := st.entries[key]
	var cur uint64
	if ok {
		cur = e.ver
	}
	if check && cur != ver {
		st.mu.Unlock()
		return false
	}
	st.ver++
	st.entries[key] = &stateEntry{val: v, typed: true, raw: raw, ver: st.ver}
	st.logs.context(key, op, shown)
	st.mu.Unlock()
	st.changed()
	return true
}

func (st *stateStore) remove(key string) {
	st.mu.Lock()
	_, ok := st.entries[key]
	if ok {
		delete(st.entries, key)
		st.ver++
		st.logs.context(key, "delete", "")
	}
	st.mu.Unlock()
	if ok {
		st.changed()
	}
}

// changed wakes the writer.
func (st *stateStore) changed() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// showValue formats a value for the context log: its JSON when it has one,
// else %v (which may run user code: call it without the lock).
func showValue(v any, raw []byte) string {
	var shown string
	switch {
	case raw != nil:
		shown = string(raw)
	case v != nil:
		shown = describe(v)
	}
	return truncShown(shown)
}

// truncShown shortens s to about maxShown bytes, on a rune boundary.
func truncShown(s string) string {
	if len(s) <= maxShown {
		return s
	}
	n := maxShown
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

const maxShown = 512

// snapshot returns every key's encoding and the version it reflects.
func (st *stateStore) snapshot() (map[string]json.RawMessage, uint64, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ver == st.saved {
		return nil, 0, false
	}
	out := make(map[string]json.RawMessage, len(st.entries))
	for k, e := range st.entries {
		if e.raw != nil {
			out[k] = e.raw
		}
	}
	return out, st.ver, true
}

// stateFile is the on-disk format.
type stateFile struct {
	Version int                        `json:"version"`
	SavedAt time.Time                  `json:"savedAt"`
	Values  map[string]json.RawMessage `json:"values"`
}

// flush writes the state file if anything changed since the last write.
func (st *stateStore) flush() {
	if !st.durable() {
		return
	}
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	values, ver, dirty := st.snapshot()
	if !dirty {
		return
	}
	data, err := json.Marshal(stateFile{Version: 1, SavedAt: time.Now().UTC(), Values: values})
	if err == nil {
		err = writeAtomic(st.path(), data)
	}
	if err != nil {
		st.logs.fault("", fmt.Errorf("saving context state: %w", err))
		return
	}
	st.mu.Lock()
	if ver > st.saved {
		st.saved = ver
	}
	st.mu.Unlock()
}

// persistLoop writes changes as they come, at most one write at a time, so
// a burst of changes costs one write, not one per change.
func (st *stateStore) persistLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-st.wake:
			st.flush()
		}
	}
}

// writeAtomic replaces path with data: temp file in the same directory,
// fsync, rename, fsync of the directory. A crash leaves the old or the new
// file, never a torn one.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// load restores the state file. A missing file is a fresh start; a corrupt
// one is moved aside (kept, never deleted) and reported as a state fault.
// A directory that cannot be created or written to, or a state file that
// cannot be read, is an error: Start fails rather than run without
// durability. (A write that fails later is a state fault, retried at the
// next change and at Stop.)
func (st *stateStore) load() error {
	if !st.durable() {
		return nil
	}
	if err := os.MkdirAll(st.dir, 0o700); err != nil {
		return fmt.Errorf("hersh: state directory: %w", err)
	}
	// Refuse a directory we cannot write to now, rather than run and find
	// out at the first save (a state fault the program may never notice).
	if err := writeAtomic(filepath.Join(st.dir, ".probe-"+DefaultStateFileName), nil); err != nil {
		return fmt.Errorf("hersh: state directory %s is not writable: %w", st.dir, err)
	}
	os.Remove(filepath.Join(st.dir, ".probe-"+DefaultStateFileName))
	data, err := os.ReadFile(st.path())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hersh: reading state file: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version != 1 {
		if err == nil {
			err = fmt.Errorf("unknown version %d", f.Version)
		}
		aside := fmt.Sprintf("%s.corrupt-%d", st.path(), time.Now().UnixNano())
		if rerr := os.Rename(st.path(), aside); rerr != nil {
			return fmt.Errorf("hersh: state file is unreadable (%v) and could not be moved aside: %w", err, rerr)
		}
		st.logs.fault("", fmt.Errorf("state file unreadable, moved to %s: %w", aside, err))
		return nil
	}
	st.mu.Lock()
	for k, raw := range f.Values {
		st.ver++
		st.entries[k] = &stateEntry{raw: raw, ver: st.ver}
	}
	st.saved = st.ver
	st.mu.Unlock()
	for k, raw := range f.Values {
		st.logs.context(k, "restore", truncShown(string(raw)))
	}
	return nil
}

// isInterface reports whether T is an interface type.
func isInterface[T any]() bool { return reflect.TypeFor[T]().Kind() == reflect.Interface }

func safeUpdate[T any](fn func(T) (T, error), cur T) (next T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Where: "update", Value: r, Stack: string(debug.Stack())}
		}
	}()
	return fn(cur)
}
