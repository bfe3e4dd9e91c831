package lifecycle

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// FuzzReduce drives the reducer with random sequences of commands, engine
// events and effect results (mostly for the effect it awaits, sometimes
// stale), as a supervisor would feed it, and checks after every step the
// invariants the Host relies on:
//
//   - an effect result or exit that is not the awaited one changes nothing;
//   - at most one effect is started per step, and it is the one awaited;
//   - ids only grow, and the awaited one is the last issued (or none);
//   - Ready has a container and awaits nothing; Building, Starting and
//     Stopping await something; Created and Stopped await nothing and
//     have no container;
//   - a refused command changes nothing.
func FuzzReduce(f *testing.F) {
	f.Add([]byte{0, 9, 9, 9, 1, 9})                // start; built, launched, probed; stop; halted
	f.Add([]byte{0, 9, 9, 9, 6, 9, 9, 9})          // a clean exit (code 6%3 = 0), the halt
	f.Add([]byte{0, 9, 9, 9, 22, 9, 9, 9, 9})      // a crash with code 1, the restart timer, the relaunch
	f.Add([]byte{0, 9, 9, 5, 3, 9})                // new source, delete, purged
	f.Add([]byte{0, 9, 8, 9, 2, 9, 9, 128, 131})   // recover mid-start, restart, stale results
	f.Add([]byte{0, 1, 0, 2, 5, 4, 9, 13, 10, 14}) // commands in a tangle
	m := Machine{Backoff: DefaultBackoff}
	f.Fuzz(func(t *testing.T, steps []byte) {
		p := Program{State: Created, Desired: DesiredStopped, BuildID: "b0", Policy: RestartOnFailure}
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		containers := 0
		var awaited Effect // the effect whose result the program waits for
		var trail []string
		for i, b := range steps {
			now = now.Add(time.Duration(b) * 100 * time.Millisecond)
			ev := pick(b, p, awaited, &containers)
			next, fx, err := m.Reduce(p, ev, now, float64(b%10)/10)
			trail = append(trail, fmt.Sprintf("%T%+v: %s→%s", ev, ev, p.State, next.State))
			fail := func(format string, a ...any) {
				t.Helper()
				t.Fatalf("step %d: "+format+"\nfrom %+v\nto   %+v\neffects %+v\ntrail %v", append(append([]any{i}, a...), p, next, fx, trail)...)
			}
			if err != nil {
				if !errors.Is(err, ErrConflict) || next != p || len(fx) != 0 {
					fail("a refusal (%v) changed something", err)
				}
				continue
			}
			if stale(p, ev) && (next != p || len(fx) != 0) {
				fail("a stale result or an exit of another container changed the program")
			}
			if next.Seq < p.Seq || (next.Waiting != 0 && next.Waiting != next.Seq) {
				fail("ids went back, or the awaited one is not the last issued")
			}
			started := 0
			for _, e := range fx {
				switch e := e.(type) {
				case Cancel:
					if e.ID == 0 || e.ID != p.Waiting {
						fail("cancelled %d, which was not awaited", e.ID)
					}
				default:
					started++
					if id := effectID(e); id != next.Waiting || id <= p.Seq {
						fail("started effect %d, awaiting %d", id, next.Waiting)
					}
					awaited = e
				}
			}
			if started > 1 {
				fail("%d effects started in one step", started)
			}
			switch next.State {
			case Ready:
				if next.ContainerID == "" || next.Waiting != 0 {
					fail("Ready without a container, or awaiting an effect")
				}
			case Building, Starting, Stopping:
				if next.Waiting == 0 {
					fail("%s with nothing in flight: stuck", next.State)
				}
			case Created, Stopped:
				if next.Waiting != 0 || next.ContainerID != "" {
					fail("%s with an effect in flight or a container", next.State)
				}
			}
			p = next
		}
	})
}

// pick decodes one step: a command, an engine event, or the result of the
// awaited effect (of its kind, as the supervisor only ever returns), or,
// for some bytes, a result of any kind for an effect no longer awaited.
func pick(b byte, p Program, awaited Effect, containers *int) Event {
	fail := ""
	if b%7 == 6 {
		fail = "failed"
	}
	if b >= 128 { // a stale result
		id := p.Seq + 1
		if p.Seq > 0 && b%2 == 0 {
			id = p.Seq - 1
		}
		switch b % 6 {
		case 0:
			return Built{Effect: id, ImageID: "img-" + p.BuildID, Err: fail}
		case 1:
			*containers++
			return Launched{Effect: id, ContainerID: fmt.Sprintf("c%d", *containers)}
		case 2:
			return Probed{Effect: id, Err: fail}
		case 3:
			return Halted{Effect: id, Err: fail}
		case 4:
			return RestartDue{Effect: id}
		}
		return Purged{Effect: id, Err: fail}
	}
	switch b % 16 {
	case 0:
		return Start{}
	case 1:
		return Stop{}
	case 2:
		return Restart{}
	case 3:
		return Delete{}
	case 4:
		return SetPolicy{Policy: []RestartPolicy{RestartAlways, RestartOnFailure, RestartNever}[b%3]}
	case 5:
		return SetSource{BuildID: fmt.Sprintf("b%d", b%3)}
	case 6, 7:
		cid := p.ContainerID
		if b%5 == 0 {
			cid = "c0" // a container that is not the program's
		}
		return Exited{ContainerID: cid, ExitCode: int(b % 3), OOMKilled: b%11 == 0}
	case 8:
		return Recover{ContainerID: p.ContainerID, Running: b%3 != 0}
	}
	id := p.Waiting
	switch awaited.(type) {
	case DoBuild:
		return Built{Effect: id, ImageID: "img-" + p.BuildID, Err: fail}
	case DoLaunch:
		if fail != "" {
			return Launched{Effect: id, Err: fail}
		}
		*containers++
		return Launched{Effect: id, ContainerID: fmt.Sprintf("c%d", *containers)}
	case DoProbe:
		return Probed{Effect: id, Err: fail}
	case DoHalt:
		return Halted{Effect: id, Err: fail}
	case DoTimer:
		return RestartDue{Effect: id}
	case DoPurge:
		return Purged{Effect: id, Err: fail}
	}
	return Start{}
}

// stale reports whether ev is an effect result the program does not await
// or an exit of a container that is not its own: the reducer must drop it.
func stale(p Program, ev Event) bool {
	switch e := ev.(type) {
	case Built:
		return e.Effect != p.Waiting || p.Waiting == 0
	case Launched:
		return e.Effect != p.Waiting || p.Waiting == 0
	case Probed:
		return e.Effect != p.Waiting || p.Waiting == 0
	case Halted:
		return e.Effect != p.Waiting || p.Waiting == 0
	case RestartDue:
		return e.Effect != p.Waiting || p.Waiting == 0
	case Purged:
		return e.Effect != p.Waiting || p.Waiting == 0
	case Exited:
		return e.ContainerID == "" || e.ContainerID != p.ContainerID
	}
	return false
}

func effectID(e Effect) uint64 {
	switch e := e.(type) {
	case DoBuild:
		return e.ID
	case DoLaunch:
		return e.ID
	case DoProbe:
		return e.ID
	case DoHalt:
		return e.ID
	case DoPurge:
		return e.ID
	case DoTimer:
		return e.ID
	}
	panic(fmt.Sprintf("effect %T has no id", e))
}
