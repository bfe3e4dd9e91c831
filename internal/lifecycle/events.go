package lifecycle

import "time"

// Event is an input to Reduce: a user command, or the result of an effect.
type Event interface{ event() }

// User commands.
type (
	// Start builds if needed and runs the program. A manual start resets
	// the restart backoff.
	Start struct{}
	// Stop stops the program gracefully and cancels whatever is in flight.
	Stop struct{}
	// Restart is a stop followed by a start.
	Restart struct{}
	// Delete stops everything and removes the program.
	Delete struct{}
	// SetSource points the program at a new build (replaced source). It
	// takes effect at the next start; a running program keeps running.
	SetSource struct{ BuildID string }
	// SetPolicy changes the restart policy; it applies to the next exit.
	SetPolicy struct{ Policy RestartPolicy }
)

// Effect results. Effect is the id of the effect that produced them.
type (
	// Built: the image for the build exists (Err == "") or the build failed.
	Built struct {
		Effect  uint64
		ImageID string
		Err     string
	}
	// Launched: the container was created and started, or that failed.
	Launched struct {
		Effect      uint64
		ContainerID string
		Err         string
	}
	// Probed: the WatcherAPI answered through the proxy path, or the start
	// timeout passed without an answer.
	Probed struct {
		Effect uint64
		Err    string
	}
	// Halted: every container of the program is stopped and removed.
	Halted struct {
		Effect uint64
		Err    string
	}
	// RestartDue: the restart timer fired.
	RestartDue struct{ Effect uint64 }
	// Purged: everything the program owned is gone.
	Purged struct {
		Effect uint64
		Err    string
	}
)

// Exited reports that a program container exited (from the engine's event
// stream, or found exited during reconciliation).
type Exited struct {
	ContainerID string
	ExitCode    int
	OOMKilled   bool
	At          time.Time
}

// Recover is sent once per program when the Host starts, after reading the
// engine: Running tells whether the program's container (ContainerID) is
// still running. It resumes interrupted work and re-adopts live containers.
type Recover struct {
	ContainerID string
	Running     bool
}

func (Start) event()      {}
func (Stop) event()       {}
func (Restart) event()    {}
func (Delete) event()     {}
func (SetSource) event()  {}
func (SetPolicy) event()  {}
func (Built) event()      {}
func (Launched) event()   {}
func (Probed) event()     {}
func (Halted) event()     {}
func (RestartDue) event() {}
func (Purged) event()     {}
func (Exited) event()     {}
func (Recover) event()    {}

// Effect is work for the supervisor. Effects with an ID report back with an
// event carrying it.
type Effect interface{ effect() }

type (
	// DoBuild builds (or reuses) the image for BuildID; reports Built.
	DoBuild struct {
		ID      uint64
		BuildID string
	}
	// DoLaunch removes any old container of the program, then creates and
	// starts a new one from ImageID; reports Launched. If cancelled it
	// removes what it created.
	DoLaunch struct {
		ID      uint64
		ImageID string
	}
	// DoProbe waits until the WatcherAPI of ContainerID answers or the start
	// timeout passes; reports Probed.
	DoProbe struct {
		ID          uint64
		ContainerID string
	}
	// DoHalt stops and removes every container of the program; reports Halted.
	DoHalt struct{ ID uint64 }
	// DoTimer reports RestartDue at At.
	DoTimer struct {
		ID uint64
		At time.Time
	}
	// DoPurge removes containers, the image if no other program uses it,
	// storage and the record; reports Purged.
	DoPurge struct{ ID uint64 }
	// Cancel cancels the in-flight effect ID (its result will be stale).
	Cancel struct{ ID uint64 }
)

func (DoBuild) effect()  {}
func (DoLaunch) effect() {}
func (DoProbe) effect()  {}
func (DoHalt) effect()   {}
func (DoTimer) effect()  {}
func (DoPurge) effect()  {}
func (Cancel) effect()   {}
