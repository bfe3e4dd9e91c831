// Package lifecycle is the program lifecycle as a pure reducer:
//
//	Reduce(program, event, now, rand) -> (program, effects)
//
// It does no I/O and reads no clock: the supervisor (package supervisor)
// executes the effects asynchronously and feeds their results back as
// events. Every effect that produces a result carries an id; the program
// remembers the id of the one effect it is waiting for, and a result with
// any other id is stale (say, a build that finished after a stop) and is
// dropped. That single rule is what makes stop-during-build, stop during
// start and restart races safe.
package lifecycle

import (
	"fmt"
	"time"
)

// State is a program's lifecycle state, as the API shows it.
type State string

const (
	Created  State = "Created"
	Building State = "Building"
	Starting State = "Starting"
	Ready    State = "Ready"
	Stopping State = "Stopping"
	Stopped  State = "Stopped"
	Error    State = "Error"
	// Deleting is entered by a delete request; the record disappears when
	// the purge effect finishes.
	Deleting State = "Deleting"
)

// States lists every state, in lifecycle order.
var States = []State{Created, Building, Starting, Ready, Stopping, Stopped, Error, Deleting}

// Desired is what the user asked for last.
type Desired string

const (
	DesiredRunning Desired = "running"
	DesiredStopped Desired = "stopped"
)

// RestartPolicy says when a program whose container exited is started again.
type RestartPolicy string

const (
	RestartAlways    RestartPolicy = "always"     // after any exit
	RestartOnFailure RestartPolicy = "on-failure" // after a non-zero exit or an OOM kill (default)
	RestartNever     RestartPolicy = "never"
)

// ParseRestartPolicy validates a policy name; "" means on-failure.
func ParseRestartPolicy(s string) (RestartPolicy, error) {
	switch p := RestartPolicy(s); p {
	case "":
		return RestartOnFailure, nil
	case RestartAlways, RestartOnFailure, RestartNever:
		return p, nil
	}
	return "", fmt.Errorf("unknown restart policy %q (want always, on-failure or never)", s)
}

// Program is the part of a program's record the lifecycle owns.
type Program struct {
	State       State
	Desired     Desired
	BuildID     string // the source's build id
	ImageID     string // image built from BuildID ("" until built)
	ContainerID string // current or last container ("" when none)
	ErrorMsg    string
	Policy      RestartPolicy

	RestartCount  int       // automatic restarts since the last manual start or healthy period
	NextRestartAt time.Time // zero unless an automatic restart is scheduled
	HealthySince  time.Time // when it last became Ready
	LastExitCode  *int
	LastOOM       bool
	LastExitAt    time.Time

	Seq     uint64 // last effect id issued
	Waiting uint64 // id of the effect whose result is awaited (0: none)
	// StartAfterStop makes a finished stop start again (restart, or a start
	// requested while stopping).
	StartAfterStop bool
}

// Backoff is the automatic-restart schedule: Base doubling to Max, shortened
// by up to Jitter of itself, and forgotten after HealthyReset of uptime.
type Backoff struct {
	Base         time.Duration
	Max          time.Duration
	Jitter       float64
	HealthyReset time.Duration
}

// DefaultBackoff: about 1 s doubling to a 5 min cap, reset after 10 min
// healthy, like Kubernetes' CrashLoopBackOff.
var DefaultBackoff = Backoff{Base: time.Second, Max: 5 * time.Minute, Jitter: 0.2, HealthyReset: 10 * time.Minute}

// Delay is the wait before automatic restart number n (n >= 1); r in [0,1).
func (b Backoff) Delay(n int, r float64) time.Duration {
	d := b.Base
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	return d - time.Duration(float64(d)*b.Jitter*r)
}
