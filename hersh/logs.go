package hersh

import (
	"sync/atomic"
	"time"

	"github.com/hershyorg/hershy/hersh/internal/ring"
)

// Execution logs. Each kind lives in its own bounded ring buffer
// (Config.MaxLogEntries); ids are monotonic across all kinds, so entries of
// different logs can be put back in order.

// EffectLog records an effect the engine performed besides runs (which
// are in the results): a recovery scheduled, queued messages discarded at a
// stop, cleanup run.
type EffectLog struct {
	ID     uint64    `json:"id"`
	Time   time.Time `json:"time"`
	Effect string    `json:"effect"` // "schedule-recovery", "discard", "cleanup"
	Detail string    `json:"detail,omitempty"`
}

// EffectResult records one run: what triggered it and how it ended.
type EffectResult struct {
	ID         uint64        `json:"id"`
	RunID      uint64        `json:"runId"`
	Trigger    TriggerKind   `json:"trigger"`
	MessageID  uint64        `json:"messageId,omitempty"`
	Message    string        `json:"message,omitempty"` // content of the triggering message
	Vars       []string      `json:"vars,omitempty"`    // changed variables
	StartedAt  time.Time     `json:"startedAt"`
	Duration   time.Duration `json:"durationNs"`
	Success    bool          `json:"success"`
	Error      string        `json:"error,omitempty"`
	Stack      string        `json:"stack,omitempty"` // set when the run panicked
	Failures   int           `json:"consecutiveFailures"`
	StateAfter State         `json:"stateAfter"`
}

// ReduceLog records a lifecycle state transition. The Ready/Running churn
// of every run is not logged (it is visible in EffectResult); transitions
// between lifecycle phases are.
type ReduceLog struct {
	ID     uint64    `json:"id"`
	Time   time.Time `json:"time"`
	From   State     `json:"from"`
	To     State     `json:"to"`
	Reason string    `json:"reason,omitempty"`
}

// WatchErrorLog records a failed poll, a panicking watch function, or a
// hook misuse noticed too late to fail its run.
type WatchErrorLog struct {
	ID    uint64    `json:"id"`
	Time  time.Time `json:"time"`
	Var   string    `json:"var"`
	Phase string    `json:"phase"` // "poll", "flow", "hook"
	Error string    `json:"error"`
	Stack string    `json:"stack,omitempty"`
}

// ContextLog records a change to context state.
type ContextLog struct {
	ID    uint64    `json:"id"`
	Time  time.Time `json:"time"`
	Key   string    `json:"key"`
	Op    string    `json:"op"` // "set", "update", "delete", "restore"
	Value string    `json:"value,omitempty"`
}

// StateFaultLog records a problem with context state: a value of the wrong
// type, a failed write of the state file, a corrupt file set aside.
type StateFaultLog struct {
	ID    uint64    `json:"id"`
	Time  time.Time `json:"time"`
	Key   string    `json:"key,omitempty"`
	Error string    `json:"error"`
}

// runRecord is how the results ring keeps an EffectResult: 96 bytes with
// three pointer words instead of 160 with six. The ring holds up to
// MaxLogEntries of them, written once per run and scanned by every GC
// cycle, so their size is paid in the burst that fills the ring and in
// every collection after. Logs turns them back into EffectResults.
type runRecord struct {
	id, runID, messageID uint64
	message              string
	vars                 []string
	startedAt            int64 // unix nanoseconds
	duration             time.Duration
	failure              *runFailure // nil after a successful run
	failures             int32
	trigger              uint8 // TriggerKind
	stateAfter           uint8 // State
}

type runFailure struct{ err, stack string }

func effectResults(recs []runRecord) []EffectResult {
	out := make([]EffectResult, len(recs))
	for i, r := range recs {
		out[i] = EffectResult{
			ID: r.id, RunID: r.runID, Trigger: TriggerKind(r.trigger), MessageID: r.messageID,
			Message: r.message, Vars: r.vars, StartedAt: time.Unix(0, r.startedAt), Duration: r.duration,
			Success: r.failure == nil, Failures: int(r.failures), StateAfter: State(r.stateAfter),
		}
		if f := r.failure; f != nil {
			out[i].Error, out[i].Stack = f.err, f.stack
		}
	}
	return out
}

type logs struct {
	seq         atomic.Uint64
	effects     *ring.Buffer[EffectLog]
	results     *ring.Buffer[runRecord]
	reduces     *ring.Buffer[ReduceLog]
	watchErrors *ring.Buffer[WatchErrorLog]
	contexts    *ring.Buffer[ContextLog]
	faults      *ring.Buffer[StateFaultLog]
}

func newLogs(n int) *logs {
	return &logs{
		effects:     ring.New[EffectLog](n),
		results:     ring.New[runRecord](n),
		reduces:     ring.New[ReduceLog](n),
		watchErrors: ring.New[WatchErrorLog](n),
		contexts:    ring.New[ContextLog](n),
		faults:      ring.New[StateFaultLog](n),
	}
}

func (l *logs) id() uint64 { return l.seq.Add(1) }

func (l *logs) watchError(name, phase string, err error) {
	e := WatchErrorLog{ID: l.id(), Time: time.Now(), Var: name, Phase: phase, Error: err.Error()}
	if p, ok := asPanic(err); ok {
		e.Stack = p.Stack
	}
	l.watchErrors.Push(e)
}

func (l *logs) fault(key string, err error) {
	l.faults.Push(StateFaultLog{ID: l.id(), Time: time.Now(), Key: key, Error: err.Error()})
}

func (l *logs) context(key, op, value string) {
	l.contexts.Push(ContextLog{ID: l.id(), Time: time.Now(), Key: key, Op: op, Value: value})
}

// Logs is a copy of the newest execution-log entries, oldest first.
type Logs struct {
	EffectLogs     []EffectLog     `json:"effectLogs"`
	ReduceLogs     []ReduceLog     `json:"reduceLogs"`
	WatchErrorLogs []WatchErrorLog `json:"watchErrorLogs"`
	ContextLogs    []ContextLog    `json:"contextLogs"`
	StateFaultLogs []StateFaultLog `json:"stateFaultLogs"`
	EffectResults  []EffectResult  `json:"effectResults"`
}

// LogKinds are the values accepted by Watcher.Logs and the logs route.
var LogKinds = []string{"all", "effect", "reduce", "effect_result", "watch_error", "context", "state_fault"}

// Logs returns up to limit newest entries (limit <= 0: all kept) of the
// given kind ("all" or one of LogKinds). Kinds not asked for are empty, never
// nil, so the JSON shape is always the same.
func (w *Watcher) Logs(kind string, limit int) (Logs, bool) {
	out := Logs{
		EffectLogs: []EffectLog{}, ReduceLogs: []ReduceLog{}, WatchErrorLogs: []WatchErrorLog{},
		ContextLogs: []ContextLog{}, StateFaultLogs: []StateFaultLog{}, EffectResults: []EffectResult{},
	}
	all := kind == "all"
	known := all
	l := w.logs
	if all || kind == "effect" {
		out.EffectLogs, known = l.effects.Last(limit), true
	}
	if all || kind == "reduce" {
		out.ReduceLogs, known = l.reduces.Last(limit), true
	}
	if all || kind == "effect_result" {
		out.EffectResults, known = effectResults(l.results.Last(limit)), true
	}
	if all || kind == "watch_error" {
		out.WatchErrorLogs, known = l.watchErrors.Last(limit), true
	}
	if all || kind == "context" {
		out.ContextLogs, known = l.contexts.Last(limit), true
	}
	if all || kind == "state_fault" {
		out.StateFaultLogs, known = l.faults.Last(limit), true
	}
	return out, known
}
