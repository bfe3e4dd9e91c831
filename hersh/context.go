package hersh

import (
	"strings"
	"time"
)

// TriggerKind says why a run happened.
type TriggerKind int

const (
	TriggerStart    TriggerKind = iota // the first run of a session
	TriggerMessage                     // a user message
	TriggerVars                        // one or more watched variables changed
	TriggerRecovery                    // the system re-runs after a failed run
	TriggerCleanup                     // the context handed to the cleanup function
)

var triggerNames = [...]string{"start", "message", "vars", "recovery", "cleanup"}

func (k TriggerKind) String() string {
	if k >= 0 && int(k) < len(triggerNames) {
		return triggerNames[k]
	}
	return "unknown"
}

// MarshalText makes trigger kinds appear as strings in JSON.
func (k TriggerKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Trigger describes what caused a run.
type Trigger struct {
	Kind    TriggerKind `json:"kind"`
	Message *Message    `json:"message,omitempty"` // set for TriggerMessage
	Vars    []string    `json:"vars,omitempty"`    // names of the changed variables, sorted
}

// System reports whether the run was started by the engine itself.
func (t Trigger) System() bool {
	return t.Kind == TriggerStart || t.Kind == TriggerRecovery || t.Kind == TriggerCleanup
}

func (t Trigger) String() string {
	switch t.Kind {
	case TriggerMessage:
		if t.Message != nil {
			return "message:" + t.Message.Content
		}
	case TriggerVars:
		return "vars:" + strings.Join(t.Vars, ",")
	}
	return t.Kind.String()
}

// Message is a user message; each one causes exactly one run, in order.
type Message struct {
	ID         uint64    `json:"id"`
	Content    string    `json:"content"`
	ReceivedAt time.Time `json:"receivedAt"`
}

// Context is handed to the managed function for one run (and to cleanup).
// It is a context.Context that is cancelled when the run times out or the
// watcher is killed, and it is the handle that watches, memos and context
// state take. It is valid only during the run it was made for: hooks called
// through it afterwards report a *HookError.
//
// Every run gets its own Context (the one allocation of a run): a Context
// kept past its run must keep telling its own run's story (a goroutine the
// run started may read its Message later) and must be recognisable as
// stale, and a recycled one could do neither. It is kept to 128 bytes
// instead: what a run needs only sometimes (a done channel, AfterFunc
// callbacks) is allocated when it is asked for, and hook errors are
// collected by the session.
type Context struct {
	rc    runCtx
	s     *session
	runID uint64
	vars  []string    // the changed variables (TriggerVars)
	msg   Message     // the triggering message (TriggerMessage)
	kind  TriggerKind // what caused the run
}

// Message returns the user message that triggered this run, or nil.
func (c *Context) Message() *Message {
	if c.kind != TriggerMessage {
		return nil
	}
	return &c.msg
}

// Trigger reports what caused this run.
func (c *Context) Trigger() Trigger {
	return Trigger{Kind: c.kind, Message: c.Message(), Vars: c.vars}
}

// Changed reports whether the watched variable name is among those that
// triggered this run.
func (c *Context) Changed(name string) bool {
	for _, v := range c.vars {
		if v == name {
			return true
		}
	}
	return false
}

// RunID is the run's number within the watcher's life, starting at 1.
func (c *Context) RunID() uint64 { return c.runID }

// Env returns an immutable environment value from Config.Env.
func (c *Context) Env(key string) (string, bool) {
	v, ok := c.s.w.cfg.Env[key]
	return v, ok
}

// Watcher returns the watcher this run belongs to.
func (c *Context) Watcher() *Watcher { return c.s.w }

// live reports whether c's run is in flight. The watchdog watches exactly
// the in-flight run, so this costs the run nothing extra; a cleanup Context
// is never live.
func (c *Context) live() bool { return c.s.wd.cur.Load() == &c.rc }

// hookCheck enforces the rules of hooks that need no hook table: a name,
// and a call during the run c belongs to. (At most once per run under a
// name is checked by register.)
func (c *Context) hookCheck(kind, name string) error {
	if name == "" {
		return c.fail(&HookError{Name: name, Kind: kind, Reason: "empty name"})
	}
	if !c.live() {
		return c.fail(&HookError{Name: name, Kind: kind, Reason: "used outside the run it belongs to"})
	}
	return nil
}

// fail records a hook error, which the run will end with, and returns it.
func (c *Context) fail(err error) error {
	if !c.live() {
		// No run to fail: keep a trace in the watch-error log.
		c.s.w.logs.watchError("", "hook", err)
		return err
	}
	c.s.runErrs = append(c.s.runErrs, err)
	return err
}
