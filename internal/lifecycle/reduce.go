package lifecycle

import (
	"errors"
	"fmt"
	"time"
)

// Machine holds the reducer's settings.
type Machine struct {
	Backoff Backoff
}

// Reduce applies ev to p at time now and returns the new program and the
// effects to run. r in [0,1) is the jitter draw. It is pure: the same inputs
// give the same outputs.
//
// Admission is the reducer's too: a user command the state does not allow
// (start while building, starting or running; any command but a delete
// while deleting) returns p unchanged, no effects and an error wrapping
// ErrConflict. The supervisor reduces each command on the program's current
// state in its loop, so of two concurrent starts exactly one is admitted.
func (m Machine) Reduce(p Program, ev Event, now time.Time, r float64) (Program, []Effect, error) {
	if err := admit(p.State, ev); err != nil {
		return p, nil, err
	}
	next, fx := m.reduce(p, ev, now, r)
	return next, fx, nil
}

func (m Machine) reduce(p Program, ev Event, now time.Time, r float64) (Program, []Effect) {
	switch e := ev.(type) {
	case Start:
		return m.onStart(p, now)
	case Stop:
		return m.onStop(p)
	case Restart:
		return m.onRestart(p, now)
	case Delete:
		if p.State == Deleting {
			return p, nil
		}
		fx := cancelWaiting(&p)
		p.State, p.StartAfterStop, p.NextRestartAt = Deleting, false, time.Time{}
		return p, append(fx, DoPurge{ID: issue(&p)})
	case SetSource:
		return m.onSetSource(p, e)
	case SetPolicy:
		if p.State != Deleting {
			p.Policy = e.Policy
		}
		return p, nil
	case Built:
		if !current(p, e.Effect) || p.State != Building {
			return p, nil
		}
		p.Waiting = 0
		if e.Err != "" {
			p.State, p.ErrorMsg = Error, "build failed: "+e.Err
			return p, nil
		}
		p.ImageID = e.ImageID
		return p, launch(&p)
	case Launched:
		if !current(p, e.Effect) || p.State != Starting {
			return p, nil
		}
		p.Waiting = 0
		if e.Err != "" {
			p.State, p.ErrorMsg = Error, "start failed: "+e.Err
			return p, m.failed(&p, now, r)
		}
		p.ContainerID = e.ContainerID
		p.LastExitCode, p.LastOOM, p.LastExitAt = nil, false, time.Time{}
		return p, []Effect{DoProbe{ID: issue(&p), ContainerID: e.ContainerID}}
	case Probed:
		if !current(p, e.Effect) || p.State != Starting {
			return p, nil
		}
		p.Waiting = 0
		if e.Err != "" {
			// The container may be running without answering: stop it, then
			// retry per policy once it is gone (see Halted in Error).
			p.State, p.ErrorMsg = Error, "not ready: "+e.Err
			return p, []Effect{DoHalt{ID: issue(&p)}}
		}
		p.State, p.ErrorMsg, p.HealthySince = Ready, "", now
		return p, nil
	case Exited:
		return m.onExited(p, e, now, r)
	case Halted:
		return m.onHalted(p, e, now, r)
	case RestartDue:
		if !current(p, e.Effect) || p.State != Error {
			return p, nil
		}
		p.Waiting, p.NextRestartAt = 0, time.Time{}
		return p, begin(&p)
	case Purged:
		if !current(p, e.Effect) || p.State != Deleting {
			return p, nil
		}
		p.Waiting = 0
		if e.Err != "" {
			p.State, p.ErrorMsg = Error, "delete failed: "+e.Err
		}
		return p, nil
	case Recover:
		return m.onRecover(p, e, now, r)
	}
	return p, nil
}

func (m Machine) onStart(p Program, now time.Time) (Program, []Effect) {
	switch p.State {
	case Created, Stopped, Error:
		// From Error a leftover container may exist: DoLaunch removes it.
		fx := cancelWaiting(&p)
		resetBackoff(&p)
		return p, append(fx, begin(&p)...)
	case Stopping:
		p.StartAfterStop, p.Desired = true, DesiredRunning
		resetBackoff(&p)
	}
	return p, nil
}

func (m Machine) onStop(p Program) (Program, []Effect) {
	switch p.State {
	case Building, Starting, Ready:
		return halt(p, false)
	case Stopping:
		p.StartAfterStop, p.Desired = false, DesiredStopped
	case Error:
		p.Desired = DesiredStopped
		if p.ContainerID != "" || p.Waiting != 0 {
			return halt(p, false) // a restart may be pending or a container left
		}
	case Created, Stopped:
		p.Desired = DesiredStopped
	}
	return p, nil
}

func (m Machine) onRestart(p Program, now time.Time) (Program, []Effect) {
	switch p.State {
	case Building, Starting, Ready:
		resetBackoff(&p)
		return halt(p, true)
	case Stopping:
		resetBackoff(&p)
		p.StartAfterStop, p.Desired = true, DesiredRunning
		return p, nil
	case Created, Stopped, Error:
		return m.onStart(p, now)
	}
	return p, nil
}

func (m Machine) onSetSource(p Program, e SetSource) (Program, []Effect) {
	if p.State == Deleting || e.BuildID == p.BuildID {
		return p, nil
	}
	p.BuildID, p.ImageID = e.BuildID, ""
	if p.State == Building { // building the old source: build the new one instead
		fx := cancelWaiting(&p)
		return p, append(fx, DoBuild{ID: issue(&p), BuildID: p.BuildID})
	}
	return p, nil
}

func (m Machine) onExited(p Program, e Exited, now time.Time, r float64) (Program, []Effect) {
	if e.ContainerID == "" || e.ContainerID != p.ContainerID {
		return p, nil // an old container, or one we never adopted
	}
	code := e.ExitCode
	p.LastExitCode, p.LastOOM, p.LastExitAt = &code, e.OOMKilled, e.At
	if p.State != Ready && p.State != Starting {
		return p, nil // stopping, stopped or already failed: expected
	}
	fx := cancelWaiting(&p)
	failure := code != 0 || e.OOMKilled
	msg := fmt.Sprintf("exited with code %d", code)
	if e.OOMKilled {
		msg = fmt.Sprintf("killed for exceeding its memory limit (exit code %d)", code)
	}
	if !failure && p.Policy != RestartAlways {
		// A clean exit is a stop the program chose: remove the container.
		p.ErrorMsg, p.Desired = "", DesiredStopped
		p.State = Stopping
		return p, append(fx, DoHalt{ID: issue(&p)})
	}
	p.State, p.ErrorMsg = Error, msg
	return p, append(fx, m.failed(&p, now, r)...)
}

func (m Machine) onHalted(p Program, e Halted, now time.Time, r float64) (Program, []Effect) {
	if !current(p, e.Effect) || (p.State != Stopping && p.State != Error) {
		return p, nil
	}
	p.Waiting = 0
	if e.Err != "" {
		cleanup := p.State == Error
		p.State, p.ErrorMsg = Error, "stop failed: "+e.Err
		if cleanup {
			// A failed start's halt (the engine may be down): the restart
			// is scheduled anyway, and its launch halts first again.
			return p, m.failed(&p, now, r)
		}
		return p, nil
	}
	p.ContainerID = ""
	switch p.State {
	case Stopping:
		if p.StartAfterStop {
			p.StartAfterStop = false
			return p, begin(&p)
		}
		p.State = Stopped
	case Error:
		return p, m.failed(&p, now, r) // after a failed start probe
	}
	return p, nil
}

func (m Machine) onRecover(p Program, e Recover, now time.Time, r float64) (Program, []Effect) {
	p.Waiting = 0 // whatever was in flight died with the previous Host
	switch p.State {
	case Created, Stopped:
		if e.ContainerID != "" { // a leftover container: remove it
			p.State, p.ContainerID = Stopping, e.ContainerID
			return p, []Effect{DoHalt{ID: issue(&p)}}
		}
	case Building:
		return p, []Effect{DoBuild{ID: issue(&p), BuildID: p.BuildID}}
	case Starting:
		if e.Running && e.ContainerID != "" {
			p.ContainerID = e.ContainerID // launched just before the Host died
			return p, []Effect{DoProbe{ID: issue(&p), ContainerID: p.ContainerID}}
		}
		return p, begin(&p)
	case Ready:
		if e.Running && e.ContainerID == p.ContainerID {
			return p, nil // re-adopted without a restart
		}
		p.State, p.ErrorMsg = Error, "container gone while the Host was down"
		return p, m.failed(&p, now, r)
	case Stopping:
		return p, []Effect{DoHalt{ID: issue(&p)}}
	case Error:
		if e.Running {
			p.ContainerID = e.ContainerID
			return p, []Effect{DoHalt{ID: issue(&p)}} // a failed start's container, still up
		}
		if !p.NextRestartAt.IsZero() && p.Desired == DesiredRunning {
			// The stored time is the wall clock's; one set back while the
			// Host was down would push the restart out by the jump. No
			// back-off waits more than Max.
			if latest := now.Add(m.Backoff.Max); p.NextRestartAt.After(latest) {
				p.NextRestartAt = latest
			}
			return p, []Effect{DoTimer{ID: issue(&p), At: p.NextRestartAt}}
		}
	case Deleting:
		return p, []Effect{DoPurge{ID: issue(&p)}}
	}
	return p, nil
}

// failed schedules an automatic restart when the policy allows one. The
// program is in Error and its container is gone or exited.
func (m Machine) failed(p *Program, now time.Time, r float64) []Effect {
	if p.Desired != DesiredRunning || p.Policy == RestartNever {
		p.NextRestartAt = time.Time{}
		return nil
	}
	b := m.Backoff
	if !p.HealthySince.IsZero() && now.Sub(p.HealthySince) >= b.HealthyReset {
		p.RestartCount = 0 // it ran long enough: this is a fresh failure
	}
	p.HealthySince = time.Time{}
	p.RestartCount++
	p.NextRestartAt = now.Add(b.Delay(p.RestartCount, r))
	return []Effect{DoTimer{ID: issue(p), At: p.NextRestartAt}}
}

// begin moves towards running: build if there is no image for the build,
// else launch.
func begin(p *Program) []Effect {
	p.Desired, p.ErrorMsg, p.StartAfterStop = DesiredRunning, "", false
	if p.ImageID == "" {
		p.State = Building
		return []Effect{DoBuild{ID: issue(p), BuildID: p.BuildID}}
	}
	return launch(p)
}

// launch replaces the program's container: the launch removes any old one
// first, so from here an exit of the old container is no longer this
// program's (it would end the new start).
func launch(p *Program) []Effect {
	p.State, p.ContainerID = Starting, ""
	return []Effect{DoLaunch{ID: issue(p), ImageID: p.ImageID}}
}

func halt(p Program, thenStart bool) (Program, []Effect) {
	fx := cancelWaiting(&p)
	p.State, p.StartAfterStop, p.NextRestartAt = Stopping, thenStart, time.Time{}
	if thenStart {
		p.Desired = DesiredRunning
	} else {
		p.Desired = DesiredStopped
	}
	return p, append(fx, DoHalt{ID: issue(&p)})
}

func resetBackoff(p *Program) {
	p.RestartCount, p.NextRestartAt = 0, time.Time{}
}

func issue(p *Program) uint64 {
	p.Seq++
	p.Waiting = p.Seq
	return p.Seq
}

func current(p Program, id uint64) bool { return id != 0 && id == p.Waiting }

func cancelWaiting(p *Program) []Effect {
	if p.Waiting == 0 {
		return nil
	}
	id := p.Waiting
	p.Waiting = 0
	return []Effect{Cancel{ID: id}}
}

// ErrConflict is returned by Reduce when the state forbids a command (409).
var ErrConflict = errors.New("the program's state does not allow this")

// admit reports whether a user command makes sense in state s. Commands the
// reducer would otherwise ignore as redundant (start while running) are
// conflicts, so the API can answer 409; idempotent ones (stop while
// stopped, delete while deleting) are not. Engine events and effect
// results are always admitted (the reducer drops the stale ones).
func admit(s State, ev Event) error {
	switch ev.(type) {
	case Start, Stop, Restart, SetSource, SetPolicy:
		if s == Deleting {
			return fmt.Errorf("%w: the program is being deleted", ErrConflict)
		}
	}
	if _, ok := ev.(Start); ok {
		switch s {
		case Building, Starting, Ready:
			return fmt.Errorf("%w: the program is already %s", ErrConflict, s)
		}
	}
	return nil
}
