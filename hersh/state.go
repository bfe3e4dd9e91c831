package hersh

// State is where a watcher is in its life. It is reported as a string by
// the WatcherAPI and in the reduce log.
type State int32

const (
	StateNotRun      State = iota // created or stopped before its first start
	StateInitRun                  // the first run of a session is executing
	StateReady                    // idle, waiting for a signal
	StateRunning                  // a run is executing
	StateWaitRecover              // a run failed; waiting out the backoff before re-running
	StateStopped                  // ended normally; may be started again
	StateKilled                   // ended by a kill; final
	StateCrashed                  // ended by a crash or too many failures; final
)

var stateNames = [...]string{"NotRun", "InitRun", "Ready", "Running", "WaitRecover", "Stopped", "Killed", "Crashed"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "Unknown"
}

// MarshalText makes states appear as strings in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Terminal reports whether the state ends a session.
func (s State) Terminal() bool { return s == StateStopped || s == StateKilled || s == StateCrashed }

// Final reports whether the watcher can never be started again.
func (s State) Final() bool { return s == StateKilled || s == StateCrashed }
