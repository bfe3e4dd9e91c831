// Package supervisor runs one program's lifecycle: one goroutine per
// program owns its lifecycle.Program, feeds every event through the pure
// reducer, persists each change, and runs the resulting effects
// asynchronously with cancellable contexts (after the kubelet's pod
// workers). Results come back as events carrying the effect's id, and the
// reducer drops the stale ones.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/lifecycle"
)

// Executor performs effects against the real world. Each method must honour
// ctx: when it is cancelled the effect is no longer wanted, and Launch in
// particular must remove any container it created.
type Executor interface {
	Build(ctx context.Context, programID, buildID string) (imageID string, err error)
	Launch(ctx context.Context, programID, imageID string) (containerID string, err error)
	Probe(ctx context.Context, programID, containerID string) error
	Halt(ctx context.Context, programID string) error
	Purge(ctx context.Context, programID string) error
}

// Saver persists a program after a change, with the reason of the change.
// from == to when only fields other than the state changed.
type Saver func(ctx context.Context, p lifecycle.Program, from lifecycle.State, reason string) error

// Observer, if set, hears about each change (for logs, metrics and live
// streams) once it is saved and Program shows it. It must not block.
type Observer func(programID string, prev, next lifecycle.Program, ev lifecycle.Event)

// ErrGone is returned for commands sent to a supervisor that has ended
// (its program was deleted).
var ErrGone = errors.New("supervisor: program is gone")

// Supervisor owns one program.
type Supervisor struct {
	id      string
	machine lifecycle.Machine
	exec    Executor
	save    Saver
	observe Observer
	log     *slog.Logger

	inbox chan envelope
	quit  chan struct{} // closed when Run starts to return
	done  chan struct{} // closed when Run has returned

	mu      sync.Mutex // guards snap and changed
	snap    lifecycle.Program
	changed chan struct{}                 // closed (and replaced) when snap changes
	effects map[uint64]context.CancelFunc // loop goroutine only
	wg      sync.WaitGroup
}

type envelope struct {
	ev       lifecycle.Event // nil when an effect ended with nothing to say
	reply    chan reply      // for user commands
	guard    func() error    // for user commands: asked once the reducer admits
	finished uint64          // id of the effect that produced ev
}

type reply struct {
	p   lifecycle.Program
	err error
}

// Config bundles a supervisor's collaborators.
type Config struct {
	Machine  lifecycle.Machine
	Executor Executor
	Save     Saver
	Observe  Observer
	Logger   *slog.Logger
}

// New returns a supervisor for program id starting from p (as loaded from
// the store). Call Run to start it.
func New(id string, p lifecycle.Program, cfg Config) *Supervisor {
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{
		id: id, machine: cfg.Machine, exec: cfg.Executor, save: cfg.Save, observe: cfg.Observe,
		log:     lg.With("program", id),
		inbox:   make(chan envelope, 64),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		snap:    p,
		changed: make(chan struct{}),
		effects: map[uint64]context.CancelFunc{},
	}
}

// Run processes events until ctx is done or the program is deleted. On
// return every effect it started has been cancelled and has finished.
func (s *Supervisor) Run(ctx context.Context) {
	defer func() {
		close(s.quit)
		for _, cancel := range s.effects {
			cancel()
		}
		s.wg.Wait()
		close(s.done)
	}()
	p := s.Program()
	for {
		select {
		case <-ctx.Done():
			return
		case env := <-s.inbox:
			if env.finished != 0 {
				delete(s.effects, env.finished)
			}
			if env.ev == nil {
				continue
			}
			next, fx, err := s.machine.Reduce(p, env.ev, time.Now(), rand.Float64())
			if err == nil && env.guard != nil {
				err = env.guard()
			}
			if err != nil { // refused: nothing changes
				if env.reply != nil {
					env.reply <- reply{p, err}
				}
				continue
			}
			// Any field the reducer set (a new time, a new exit code) is a
			// change to persist; an ignored event returns p itself. The
			// order is save, show, tell: whoever hears of a change (an
			// observer's subscriber) finds Program already showing it, so
			// a client told "Ready" is served as Ready.
			if next != p {
				if err := s.save(ctx, next, p.State, describe(env.ev)); err != nil {
					// The store is the source of truth after a restart; keep
					// going in memory and say so loudly.
					s.log.Error("persisting program", "err", err, "state", next.State)
				}
				s.mu.Lock()
				s.snap = next
				close(s.changed)
				s.changed = make(chan struct{})
				s.mu.Unlock()
				if s.observe != nil {
					s.observe(s.id, p, next, env.ev)
				}
			}
			p = next
			for _, e := range fx {
				s.run(ctx, e)
			}
			if env.reply != nil {
				env.reply <- reply{p, nil}
			}
			if _, purged := env.ev.(lifecycle.Purged); purged && p.State == lifecycle.Deleting && p.Waiting == 0 {
				return // deleted: the record is gone
			}
		}
	}
}

// Do sends a user command and returns the program as the command left it
// (e.g. Building after Start). It never waits for effects.
//
// The command is reduced in the supervisor's loop on the program's current
// state, so the reducer decides whether it is admitted: a refusal is its
// error (wrapping lifecycle.ErrConflict) and changes nothing. When it is
// admitted and guard is not nil, guard is asked next, still in the loop and
// before anything is saved or run: its error refuses the command too (the
// Host's quota check). guard must not wait on this supervisor.
func (s *Supervisor) Do(ctx context.Context, cmd lifecycle.Event, guard func() error) (lifecycle.Program, error) {
	rc := make(chan reply, 1)
	select {
	case s.inbox <- envelope{ev: cmd, reply: rc, guard: guard}:
	case <-s.quit:
		return lifecycle.Program{}, ErrGone
	case <-ctx.Done():
		return lifecycle.Program{}, ctx.Err()
	}
	select {
	case r := <-rc:
		return r.p, r.err
	case <-s.done:
		return lifecycle.Program{}, ErrGone
	case <-ctx.Done():
		return lifecycle.Program{}, ctx.Err()
	}
}

// Changed returns a channel that is closed at the next persisted change of
// the program (its state or any other recorded field), for waiting on an
// outcome without polling. Take Program after it is closed, then Changed
// again.
func (s *Supervisor) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Notify delivers an event that needs no answer (an engine event, Recover).
func (s *Supervisor) Notify(ctx context.Context, ev lifecycle.Event) error {
	select {
	case s.inbox <- envelope{ev: ev}:
		return nil
	case <-s.quit:
		return ErrGone
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Program returns a snapshot of the program's lifecycle state.
func (s *Supervisor) Program() lifecycle.Program {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// Done is closed when Run has returned.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// run starts one effect. Results are posted back unless the supervisor has
// ended; the reducer decides whether they are still wanted.
func (s *Supervisor) run(ctx context.Context, e lifecycle.Effect) {
	switch e := e.(type) {
	case lifecycle.Cancel:
		if cancel, ok := s.effects[e.ID]; ok {
			cancel()
			delete(s.effects, e.ID)
		}
	case lifecycle.DoBuild:
		s.spawn(ctx, e.ID, func(ctx context.Context) lifecycle.Event {
			img, err := s.exec.Build(ctx, s.id, e.BuildID)
			return lifecycle.Built{Effect: e.ID, ImageID: img, Err: errText(err)}
		})
	case lifecycle.DoLaunch:
		s.spawn(ctx, e.ID, func(ctx context.Context) lifecycle.Event {
			cid, err := s.exec.Launch(ctx, s.id, e.ImageID)
			return lifecycle.Launched{Effect: e.ID, ContainerID: cid, Err: errText(err)}
		})
	case lifecycle.DoProbe:
		s.spawn(ctx, e.ID, func(ctx context.Context) lifecycle.Event {
			return lifecycle.Probed{Effect: e.ID, Err: errText(s.exec.Probe(ctx, s.id, e.ContainerID))}
		})
	case lifecycle.DoHalt:
		s.spawn(ctx, e.ID, func(ctx context.Context) lifecycle.Event {
			return lifecycle.Halted{Effect: e.ID, Err: errText(s.exec.Halt(ctx, s.id))}
		})
	case lifecycle.DoPurge:
		s.spawn(ctx, e.ID, func(ctx context.Context) lifecycle.Event {
			return lifecycle.Purged{Effect: e.ID, Err: errText(s.exec.Purge(ctx, s.id))}
		})
	case lifecycle.DoTimer:
		s.spawn(ctx, e.ID, func(ctx context.Context) lifecycle.Event {
			t := time.NewTimer(time.Until(e.At))
			defer t.Stop()
			select {
			case <-t.C:
				return lifecycle.RestartDue{Effect: e.ID}
			case <-ctx.Done():
				return nil
			}
		})
	default:
		s.log.Error("unknown effect", "effect", fmt.Sprintf("%T", e))
	}
}

func (s *Supervisor) spawn(parent context.Context, id uint64, fn func(ctx context.Context) lifecycle.Event) {
	ctx, cancel := context.WithCancel(parent)
	s.effects[id] = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer cancel()
		ev := fn(ctx)
		select {
		case s.inbox <- envelope{ev: ev, finished: id}:
		case <-s.quit:
		}
	}()
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	if msg := err.Error(); msg != "" {
		return msg
	}
	return "unknown error"
}

// describe names an event for the transition history.
func describe(ev lifecycle.Event) string {
	switch e := ev.(type) {
	case lifecycle.Start:
		return "start requested"
	case lifecycle.Stop:
		return "stop requested"
	case lifecycle.Restart:
		return "restart requested"
	case lifecycle.Delete:
		return "delete requested"
	case lifecycle.SetSource:
		return "source replaced: " + e.BuildID
	case lifecycle.Built:
		return orErr("image built", e.Err)
	case lifecycle.Launched:
		return orErr("container started", e.Err)
	case lifecycle.Probed:
		return orErr("WatcherAPI answered", e.Err)
	case lifecycle.Halted:
		return orErr("containers stopped and removed", e.Err)
	case lifecycle.RestartDue:
		return "automatic restart"
	case lifecycle.Purged:
		return orErr("purged", e.Err)
	case lifecycle.Exited:
		if e.OOMKilled {
			return fmt.Sprintf("container exited with code %d (OOM killed)", e.ExitCode)
		}
		return fmt.Sprintf("container exited with code %d", e.ExitCode)
	case lifecycle.Recover:
		return "Host restarted: reconciled"
	}
	return fmt.Sprintf("%T", ev)
}

func orErr(ok, err string) string {
	if err != "" {
		return err
	}
	return ok
}
