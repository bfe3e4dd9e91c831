// Package alerts tells people outside the machine what happened to their
// programs: it finds the events worth an alert in the programs' lifecycle
// changes (a crash, a crash loop, a memory kill, a failed build, a nearly
// full /state), and delivers each to the webhooks that asked for it, signed
// and retried.
//
// A webhook is a way out of the machine, and so a way in: the Host itself
// makes the request, from inside whatever network it sits in. Guard keeps
// deliveries to public addresses unless the operator allows more, checked
// on the address actually dialled, so a name that resolves (or rebinds) to
// loopback or to the cloud's metadata address is refused too.
//
// Detection is pure (no clock, no I/O): Classify, CrashLoops and Fullness
// take the time they are given. Sender does the I/O.
package alerts

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/lifecycle"
)

// Kind is what happened.
type Kind string

const (
	// Crashed: the program's container exited with a non-zero code while
	// it was meant to run (not for a stop, and not a memory kill).
	Crashed Kind = "crashed"
	// CrashLoop: the program crashed a webhook's N times within its window.
	CrashLoop Kind = "crash_loop"
	// OOMKilled: the program was killed for exceeding its memory limit.
	OOMKilled Kind = "oom_killed"
	// BuildFailed: the program's source did not build.
	BuildFailed Kind = "build_failed"
	// StateNearlyFull: the program's /state passed FullAt of what it can
	// hold.
	StateNearlyFull Kind = "state_nearly_full"
	// Ping: a test delivery the user asked for.
	Ping Kind = "ping"
)

// Kinds lists the kinds a webhook may subscribe to, in a stable order.
var Kinds = []Kind{Crashed, CrashLoop, OOMKilled, BuildFailed, StateNearlyFull}

// ParseKinds checks a webhook's list of kinds; an empty list means all.
// Duplicates are dropped.
func ParseKinds(names []string) ([]Kind, error) {
	if len(names) == 0 {
		return append([]Kind(nil), Kinds...), nil
	}
	seen := map[Kind]bool{}
	var out []Kind
	for _, n := range names {
		k := Kind(strings.TrimSpace(n))
		if !k.valid() {
			return nil, fmt.Errorf("unknown event %q (want one of %s)", n, kindList())
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out, nil
}

func (k Kind) valid() bool {
	for _, v := range Kinds {
		if k == v {
			return true
		}
	}
	return false
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// Event is one alert, as a webhook receives it (the body of the POST, in
// JSON). Only the fields of its kind are set.
type Event struct {
	ID        string    `json:"id"` // unique; a receiver can drop a retried duplicate by it
	Kind      Kind      `json:"type"`
	At        time.Time `json:"at"`
	ProgramID string    `json:"program_id,omitempty"`
	UserID    string    `json:"user_id,omitempty"`

	ExitCode *int   `json:"exit_code,omitempty"` // crashed, oom_killed
	Message  string `json:"message,omitempty"`   // what the Host says about it
	// crash_loop: the crashes counted, and the window they fell in.
	Crashes       int     `json:"crashes,omitempty"`
	WindowSeconds float64 `json:"window_seconds,omitempty"`
	// state_nearly_full: bytes used, bytes the program can still write,
	// and the cap (the filesystem keeps some of it for itself).
	StateUsed  int64 `json:"state_used_bytes,omitempty"`
	StateAvail int64 `json:"state_available_bytes,omitempty"`
	StateLimit int64 `json:"state_limit_bytes,omitempty"`
}

// NewID makes an event id.
func NewID() string {
	var b [12]byte
	rand.Read(b[:])
	return "evt_" + hex.EncodeToString(b[:])
}

// Classify tells which alerts one lifecycle change raises: at most one of
// Crashed, OOMKilled and BuildFailed. A container exit counts only when
// the program was meant to run (Starting or Ready before the change) and it
// failed: a non-zero code or a memory kill. A clean exit, a stop, and a
// launch the engine refused are not alerts.
func Classify(prev, next lifecycle.Program) (Kind, bool) {
	if next.State != lifecycle.Error {
		return "", false
	}
	switch prev.State {
	case lifecycle.Building:
		if strings.HasPrefix(next.ErrorMsg, "build failed") {
			return BuildFailed, true
		}
	case lifecycle.Starting, lifecycle.Ready:
		if next.LastExitCode == nil {
			return "", false // the launch failed; no container ran
		}
		if next.LastOOM {
			return OOMKilled, true
		}
		if *next.LastExitCode != 0 {
			return Crashed, true
		}
	}
	return "", false
}
