package hersh

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Control errors end a watcher on purpose. Return one from the managed
// function (wrapped or not: they are recognised with errors.As) to leave the
// run loop. Each has its own terminal state:
//
//   - StopError  -> Stopped: a normal end; Err reports nil and the watcher may be started again.
//   - KillError  -> Killed: an end the program chose but that is not success; Err reports it
//     and the watcher cannot be started again.
//   - CrashError -> Crashed: an unrecoverable failure; recovery is skipped, Err reports it
//     and the watcher cannot be started again.
//
// Cleanup runs exactly once in every terminal state.

// StopError asks the watcher to stop gracefully.
type StopError struct{ Reason string }

func (e *StopError) Error() string { return "hersh: stop: " + e.Reason }

// KillError asks the watcher to end at once; pending messages are dropped.
type KillError struct{ Reason string }

func (e *KillError) Error() string { return "hersh: kill: " + e.Reason }

// CrashError marks the watcher as crashed without trying to recover.
type CrashError struct {
	Reason string
	Err    error // the failure that caused it, if any
}

func (e *CrashError) Error() string {
	if e.Err != nil {
		return "hersh: crash: " + e.Reason + ": " + e.Err.Error()
	}
	return "hersh: crash: " + e.Reason
}

func (e *CrashError) Unwrap() error { return e.Err }

// Stop returns a *StopError; returning it from the managed function stops the watcher.
func Stop(reason string) error { return &StopError{Reason: reason} }

// Kill returns a *KillError; returning it from the managed function kills the watcher.
func Kill(reason string) error { return &KillError{Reason: reason} }

// Crash returns a *CrashError; returning it from the managed function crashes the watcher.
func Crash(reason string, err error) error { return &CrashError{Reason: reason, Err: err} }

// PanicError is what a panic in user code (the managed function, a watch
// function, an update function, cleanup) becomes. The engine survives it.
type PanicError struct {
	Where string // "run", "poll", "update", "cleanup", ...
	Value any
	Stack string
}

func (e *PanicError) Error() string {
	return "hersh: panic in " + e.Where + ": " + describe(e.Value)
}

// TimeoutError reports a run that exceeded Config.RunTimeout. Its context
// was cancelled when the deadline passed; the next run started only after
// this one returned.
type TimeoutError struct {
	Timeout string
	Err     error // what the managed function returned, possibly nil
}

func (e *TimeoutError) Error() string {
	if e.Err != nil {
		return "hersh: run exceeded its timeout of " + e.Timeout + ": " + e.Err.Error()
	}
	return "hersh: run exceeded its timeout of " + e.Timeout
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// HookError reports a watch or memo used inconsistently: the same name with
// another kind, type or setting than before, twice in one run, or outside
// the run it belongs to (the "rules of hooks"). The run that caused it fails
// with this error; the hook call itself returns a zero value.
type HookError struct {
	Name   string
	Kind   string // "WatchCall", "WatchFlow", "WatchTick", "Memo"
	Reason string
}

func (e *HookError) Error() string {
	return fmt.Sprintf("hersh: %s %q: %s", e.Kind, e.Name, e.Reason)
}

// TypeError reports a context-state value read or updated as another type
// than the one it holds.
type TypeError struct {
	Key  string
	Want string
	Err  error
}

func (e *TypeError) Error() string {
	return fmt.Sprintf("hersh: state key %q does not hold a %s: %v", e.Key, e.Want, e.Err)
}

func (e *TypeError) Unwrap() error { return e.Err }

// Sentinel errors.
var (
	ErrQueueFull      = errors.New("hersh: message queue is full")
	ErrNotRunning     = errors.New("hersh: watcher is not running")
	ErrAlreadyRunning = errors.New("hersh: watcher is already running")
	// ErrTerminated is returned by Start after the watcher was killed or crashed.
	ErrTerminated  = errors.New("hersh: watcher was killed or crashed and cannot be started again")
	ErrNoManaged   = errors.New("hersh: no managed function registered")
	ErrMemoFull    = errors.New("hersh: memo cache is full")
	ErrEmptyKey    = errors.New("hersh: empty name")
	ErrUnencodable = errors.New("hersh: value cannot be serialised")
)

// describe renders a user value (a panic value, a state value for the log)
// as text without risking the process: fmt's %v recurses without limit
// through a cyclic map or slice, and that stack overflow is fatal, not a
// recoverable panic. Strings, errors and scalars are printed (fmt guards
// Error and String methods against panics); anything else is shown as JSON,
// which detects cycles, or else by its type alone.
func describe(v any) (s string) {
	defer func() {
		if r := recover(); r != nil {
			s = fmt.Sprintf("<%T>", v)
		}
	}()
	switch x := v.(type) {
	case nil:
		return "<nil>"
	case string:
		return x
	case error, fmt.Stringer, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64,
		uintptr, float32, float64, complex64, complex128:
		return fmt.Sprint(x)
	}
	if b, err := json.Marshal(v); err == nil {
		return string(b)
	}
	return fmt.Sprintf("<%T>", v)
}
