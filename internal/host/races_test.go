package host_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

// The Host's own races, made deterministic: the Host runs on the in-memory
// engine (package fake) inside testing/synctest bubbles, so time is the
// bubble's (timeouts and backoffs pass at once, exactly), a call the test
// holds in a hook is durably blocked (synctest.Wait returns when everything
// else has settled around it), and the bubble's end fails the test if any
// goroutine of the Host or the fake is still alive.

// newFakeEngine is an in-memory engine whose containers run prog (a hersh
// program's WatcherAPI when nil), closed when the test ends.
func newFakeEngine(t *testing.T, prog fake.Program, hooks fake.Hooks) *hosttest.Fake {
	if prog == nil {
		prog = fake.Script{API: watcherAPI(nil)}.Program()
	}
	return hosttest.NewFake(t, fake.Options{Program: prog, Hooks: hooks})
}

// TestRaceFreeLifecycle: the Host on the fake engine builds, starts,
// stops, restarts and deletes a program, as against a real engine.
func TestRaceFreeLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFakeEngine(t, nil, fake.Hooks{})
		h := d.Open(t, t.TempDir())
		ctx := context.Background()
		id := createProgram(t, h, dockerfileProgram("alice", "1"))
		if _, err := h.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		p := settle(t, h, id, lifecycle.Ready)
		if cs := hosttest.ContainersOf(t, d, id); len(cs) != 1 || cs[0].ID != p.ContainerID || !cs[0].Running {
			t.Fatalf("containers of a Ready program: %+v (record %s)", cs, p.ContainerID)
		}
		if _, err := h.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
		settle(t, h, id, lifecycle.Stopped)
		if cs := hosttest.ContainersOf(t, d, id); len(cs) != 0 {
			t.Fatalf("containers after stop: %+v", cs)
		}
		if _, err := h.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		settle(t, h, id, lifecycle.Ready)
		if err := h.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Get(ctx, id); !errors.Is(err, host.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
		if cs := hosttest.ContainersOf(t, d, id); len(cs) != 0 {
			t.Fatalf("containers after delete: %+v", cs)
		}
		if ok, _ := d.ImageExists(ctx, host.ImageTag(p.BuildID)); ok {
			t.Fatal("the image is left after delete")
		}
	})
}

// TestRaceStopDuringStart: a stop while the start is at any step cancels it,
// and the container the cancelled launch made, if any, is removed: the
// program ends Stopped with nothing on the engine, and stays so (no late
// result starts it again). Each case holds one engine call of the start in
// a hook until the stop has been handled, then lets it end as the engine
// would.
func TestRaceStopDuringStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		// hooks hold the call; held is closed when it arrives, and the test
		// closes stopped once the stop is settled.
		hooks func(held, stopped chan struct{}) fake.Hooks
		// ready answers the readiness probe.
		ready bool
		// skip, when set, says why today's Host fails the case.
		skip string
	}{
		{name: "build in flight", ready: true, hooks: func(held, stopped chan struct{}) fake.Hooks {
			return fake.Hooks{Build: func(ctx context.Context, spec driver.ImageSpec, _ io.Writer) error {
				if !strings.HasPrefix(spec.Tag, "hersh-program-") {
					return nil // the build sandbox's image, at the Host's warm-up
				}
				close(held)
				<-ctx.Done()
				return ctx.Err()
			}}
		}},
		{name: "create in flight, done after the stop", ready: true, hooks: func(held, stopped chan struct{}) fake.Hooks {
			return fake.Hooks{Before: func(ctx context.Context, c fake.Call) error {
				if c.Method == "CreateContainer" {
					close(held)
					<-stopped // the engine finishes the create the Host gave up on
				}
				return nil
			}}
		}},
		{name: "create in flight, done after the stop, reply lost", ready: true, hooks: func(held, stopped chan struct{}) fake.Hooks {
			return fake.Hooks{
				Before: func(ctx context.Context, c fake.Call) error {
					if c.Method == "CreateContainer" {
						close(held)
						<-stopped // the stop cancelled the request; the engine goes on
					}
					return nil
				},
				After: func(ctx context.Context, c fake.Call, err error) error {
					if c.Method == "CreateContainer" && ctx.Err() != nil {
						return ctx.Err() // as the engine client returns on a cancelled request
					}
					return err
				},
			}
		}},
		{name: "start in flight", ready: true, hooks: func(held, stopped chan struct{}) fake.Hooks {
			return fake.Hooks{Before: func(ctx context.Context, c fake.Call) error {
				if c.Method == "StartContainer" {
					close(held)
					<-ctx.Done()
					return ctx.Err()
				}
				return nil
			}}
		}},
		{name: "start in flight, done after the stop", ready: true, hooks: func(held, stopped chan struct{}) fake.Hooks {
			return fake.Hooks{Before: func(ctx context.Context, c fake.Call) error {
				if c.Method == "StartContainer" {
					close(held)
					<-stopped
				}
				return nil
			}}
		}},
		{name: "readiness probe in flight", ready: false, hooks: func(held, stopped chan struct{}) fake.Hooks {
			return fake.Hooks{After: func(ctx context.Context, c fake.Call, err error) error {
				if c.Method == "DialContext" && err == nil {
					select {
					case <-held:
					default:
						close(held)
					}
				}
				return err
			}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skip != "" {
				t.Skip(tc.skip)
			}
			synctest.Test(t, func(t *testing.T) {
				held, stopped := make(chan struct{}), make(chan struct{})
				ready := tc.ready
				d := newFakeEngine(t, fake.Script{API: watcherAPI(func() bool { return ready })}.Program(), tc.hooks(held, stopped))
				h := d.Open(t, t.TempDir())
				ctx := context.Background()
				id := createProgram(t, h, dockerfileProgram("carol", "1"))
				if _, err := h.Start(ctx, id); err != nil {
					t.Fatal(err)
				}
				<-held
				synctest.Wait()
				if _, err := h.Stop(ctx, id); err != nil {
					t.Fatal(err)
				}
				settle(t, h, id, lifecycle.Stopped)
				close(stopped)
				// Whatever the held call does now, and a minute of late
				// results and timers, leaves the program stopped and alone.
				time.Sleep(time.Minute)
				p := settle(t, h, id, lifecycle.Stopped)
				if p.ContainerID != "" || p.Desired != lifecycle.DesiredStopped {
					t.Errorf("after the stop: %+v", p)
				}
				noContainers(t, d, id)
			})
		})
	}
}

// TestRaceExitDuringReadinessProbe: a program that exits while the Host
// still waits for its WatcherAPI is seen exiting (the probe is cancelled,
// not left to time out); with a failure it is restarted after the backoff
// and comes up; a clean exit is a stop it chose.
func TestRaceExitDuringReadinessProbe(t *testing.T) {
	for _, tc := range []struct {
		name  string
		exit  func(d *hosttest.Fake, cid string) error
		want  lifecycle.State // after the exit
		check func(t *testing.T, p store.Program)
	}{
		{name: "crash", want: lifecycle.Ready,
			exit: func(d *hosttest.Fake, cid string) error { return d.Exit(cid, 3) },
			check: func(t *testing.T, p store.Program) {
				if p.RestartCount != 1 || p.LastExitCode != nil {
					t.Errorf("after the restart: %+v", p)
				}
			}},
		{name: "out of memory", want: lifecycle.Ready,
			exit: func(d *hosttest.Fake, cid string) error { return d.OOMKill(cid) },
			check: func(t *testing.T, p store.Program) {
				if p.RestartCount != 1 {
					t.Errorf("after the restart: %+v", p)
				}
			}},
		{name: "clean exit", want: lifecycle.Stopped,
			exit: func(d *hosttest.Fake, cid string) error { return d.Exit(cid, 0) },
			check: func(t *testing.T, p store.Program) {
				if p.LastExitCode == nil || *p.LastExitCode != 0 || p.Desired != lifecycle.DesiredStopped {
					t.Errorf("after a clean exit: %+v", p)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// The first container never becomes ready; later ones do.
				var probes, starts atomic.Int32
				prog := func(ctx context.Context, p *fake.Process) int {
					first := starts.Add(1) == 1
					api := watcherAPI(func() bool { probes.Add(1); return !first })
					return fake.Script{API: api}.Program()(ctx, p)
				}
				d := newFakeEngine(t, prog, fake.Hooks{})
				h := d.Open(t, t.TempDir(), func(o *host.Options) { o.StartTimeout = time.Hour })
				ctx := context.Background()
				id := createProgram(t, h, dockerfileProgram("dave", "1"))
				if _, err := h.Start(ctx, id); err != nil {
					t.Fatal(err)
				}
				for probes.Load() < 3 { // the probe has been answered "not yet" a few times
					time.Sleep(10 * time.Millisecond)
				}
				synctest.Wait()
				p := stateOf(t, h, id)
				if p.State != lifecycle.Starting || p.ContainerID == "" {
					t.Fatalf("while probing: %+v", p)
				}
				first := p.ContainerID
				exitAt := time.Now()
				if err := tc.exit(d, first); err != nil {
					t.Fatal(err)
				}
				p = settle(t, h, id, tc.want)
				tc.check(t, p)
				// It was the exit that ended the start, not the start
				// timeout (an hour): the history says so.
				tr, err := h.Transitions(ctx, id, 0)
				if err != nil {
					t.Fatal(err)
				}
				var sawExit bool
				for _, x := range tr {
					if x.From == lifecycle.Starting && (strings.Contains(x.Reason, "exited with code") || strings.Contains(x.Reason, "OOM")) {
						sawExit = true
					}
				}
				if !sawExit || time.Since(exitAt) > time.Minute {
					t.Errorf("the exit ended the start after %v; history %+v", time.Since(exitAt), tr)
				}
				cs := hosttest.ContainersOf(t, d, id)
				switch {
				case tc.want == lifecycle.Ready && (len(cs) != 1 || cs[0].ID == first || cs[0].ID != p.ContainerID):
					t.Errorf("containers after the restart: %+v (record %s, first %s)", cs, p.ContainerID, first)
				case tc.want == lifecycle.Stopped && len(cs) != 0:
					t.Errorf("containers after a clean exit: %+v", cs)
				}
			})
		})
	}
}

// TestRaceTwoStartsAtOnce: of several starts of one program sent at once,
// exactly one is accepted and the others are conflicts (409), and one
// container runs.
func TestRaceTwoStartsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFakeEngine(t, nil, fake.Hooks{})
		h := d.Open(t, t.TempDir())
		id := createProgram(t, h, dockerfileProgram("erin", "1"))
		const n = 8
		results := make(chan error, n)
		for range n {
			go func() {
				_, err := h.Start(context.Background(), id)
				results <- err
			}()
		}
		won := 0
		for range n {
			switch err := <-results; {
			case err == nil:
				won++
			case !errors.Is(err, host.ErrConflict):
				t.Errorf("a losing start: %v, want ErrConflict", err)
			}
		}
		if won != 1 {
			t.Errorf("%d of %d concurrent starts were accepted, want exactly 1", won, n)
		}
		p := settle(t, h, id, lifecycle.Ready)
		if cs := hosttest.ContainersOf(t, d, id); len(cs) != 1 || cs[0].ID != p.ContainerID {
			t.Errorf("containers: %+v", cs)
		}
	})
}

// gateHandler holds the goroutine that logs the record "program state"
// with to=state until release is closed. The supervisor logs a state
// change (through the Host's observer) after saving it and before it
// publishes the new state and answers the command: a test holds the
// supervisor there, in the middle of one step, to let another command be
// checked against the state the step is leaving.
type gateHandler struct {
	state   string
	arrived chan struct{} // closed when the record is first held
	release chan struct{}
	once    *sync.Once
}

func newGate(state lifecycle.State) gateHandler {
	return gateHandler{state: string(state), arrived: make(chan struct{}), release: make(chan struct{}), once: &sync.Once{}}
}

func (g gateHandler) Enabled(context.Context, slog.Level) bool { return true }
func (g gateHandler) WithAttrs([]slog.Attr) slog.Handler       { return g }
func (g gateHandler) WithGroup(string) slog.Handler            { return g }

func (g gateHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "program state" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "to" && a.Value.String() == g.state {
			g.once.Do(func() { close(g.arrived) })
			<-g.release
		}
		return true
	})
	return nil
}

// TestRaceStartWhileDeleting: a start that arrives while a delete is being
// decided is refused (409, or 404 once the program is gone), never
// accepted for a program that is about to disappear.
func TestRaceStartWhileDeleting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFakeEngine(t, nil, fake.Hooks{})
		gate := newGate(lifecycle.Deleting)
		h := d.Open(t, t.TempDir(), func(o *host.Options) { o.Logger = slog.New(gate) })
		ctx := context.Background()
		id := createProgram(t, h, dockerfileProgram("frank", "1"))
		deleted := make(chan error, 1)
		go func() { deleted <- h.Delete(ctx, id) }()
		<-gate.arrived // the delete is reduced and saved, not yet published
		started := make(chan error, 1)
		go func() {
			_, err := h.Start(ctx, id)
			started <- err
		}()
		synctest.Wait() // the start has been checked and sent
		close(gate.release)
		if err := <-started; !errors.Is(err, host.ErrConflict) && !errors.Is(err, host.ErrNotFound) {
			t.Errorf("a start during the delete: %v, want ErrConflict or ErrNotFound", err)
		}
		if err := <-deleted; err != nil {
			t.Fatal(err)
		}
		if _, err := h.Get(ctx, id); !errors.Is(err, host.ErrNotFound) {
			t.Errorf("after the delete: %v", err)
		}
	})
}

// TestRaceEngineDies: the engine dies in the middle of a start, or under a
// Ready program. While it is down every call fails and the event stream
// is gone; the Host keeps retrying, and when the engine comes back it
// recovers by itself: the program is Ready with one container (anything
// the broken start left is removed), and exits are seen again, including
// one that happened while the engine was down.
func TestRaceEngineDies(t *testing.T) {
	const outage = 30 * time.Second
	for _, tc := range []struct {
		name string
		skip string
		// die kills the engine at its moment: hooks holds a call of the
		// start until the test has killed the engine. ready is the
		// program's readiness answer.
		hooks func(crashHere, goOn chan struct{}) fake.Hooks
		// whileDown runs during the outage (on a Ready program: its
		// container id).
		whileDown func(t *testing.T, d *hosttest.Fake, cid string)
		longer    bool // the outage outlasts the start timeout
		after     func(t *testing.T, h *host.Host, p store.Program)
	}{
		{name: "while the container starts", hooks: func(crashHere, goOn chan struct{}) fake.Hooks {
			var once sync.Once
			return fake.Hooks{Before: func(ctx context.Context, c fake.Call) error {
				if c.Method == "StartContainer" {
					first := false
					once.Do(func() { first = true })
					if first {
						close(crashHere)
						<-goOn
					}
				}
				return nil
			}}
		}},
		{name: "during the build", hooks: func(crashHere, goOn chan struct{}) fake.Hooks {
			var once sync.Once
			return fake.Hooks{Before: func(ctx context.Context, c fake.Call) error {
				if c.Method == "BuildImage" && strings.HasPrefix(c.Ref, "hersh-program-") {
					once.Do(func() { close(crashHere); <-goOn })
				}
				return nil
			}}
		}, after: func(t *testing.T, h *host.Host, p store.Program) {
			// Built again once the engine answered, and the log says why.
			rc, err := h.BuildLog(context.Background(), p.BuildID, false)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			b, _ := io.ReadAll(rc)
			if !strings.Contains(string(b), "the build was interrupted: the container engine went away") {
				t.Errorf("the build log does not say the build was interrupted:\n%s", b)
			}
		}},
		{name: "during the readiness probe, past the start timeout", longer: true, hooks: func(crashHere, goOn chan struct{}) fake.Hooks {
			var once sync.Once
			return fake.Hooks{After: func(ctx context.Context, c fake.Call, err error) error {
				if c.Method == "DialContext" {
					once.Do(func() { close(crashHere); <-goOn })
				}
				return err
			}}
		}},
		{name: "under a Ready program that exits meanwhile", whileDown: func(t *testing.T, d *hosttest.Fake, cid string) {
			if err := d.Exit(cid, 2); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skip != "" {
				t.Skip(tc.skip)
			}
			synctest.Test(t, func(t *testing.T) {
				crashHere, goOn := make(chan struct{}), make(chan struct{})
				var hooks fake.Hooks
				if tc.hooks != nil {
					hooks = tc.hooks(crashHere, goOn)
				}
				ready := !tc.longer
				d := newFakeEngine(t, fake.Script{API: watcherAPI(func() bool { return ready })}.Program(), hooks)
				h := d.Open(t, t.TempDir(), func(o *host.Options) { o.StartTimeout = 10 * time.Second })
				ctx := context.Background()
				id := createProgram(t, h, dockerfileProgram("gina", "1"))
				if _, err := h.Start(ctx, id); err != nil {
					t.Fatal(err)
				}
				var before store.Program
				if tc.hooks == nil {
					before = settle(t, h, id, lifecycle.Ready)
				} else {
					<-crashHere
				}
				d.Crash(errors.New("dockerd was killed"))
				close(goOn)
				if tc.whileDown != nil {
					tc.whileDown(t, d, before.ContainerID)
				}
				down := outage
				if tc.longer {
					down = 5 * time.Minute
				}
				time.Sleep(down)
				synctest.Wait()
				if p := stateOf(t, h, id); p.Desired != lifecycle.DesiredRunning {
					t.Errorf("during the outage the Host gave up: %+v", p)
				}
				ready = true
				d.Restore()
				// The Host's event loop subscribes again within a second,
				// and then looks at the containers it knows.
				time.Sleep(2 * time.Second)
				p := settle(t, h, id, lifecycle.Ready)
				cs := hosttest.ContainersOf(t, d, id)
				if len(cs) != 1 || cs[0].ID != p.ContainerID || !cs[0].Running {
					t.Fatalf("after the engine came back: containers %+v, record %+v", cs, p)
				}
				if tc.after != nil {
					tc.after(t, h, p)
				}
				if tc.whileDown != nil && (p.ContainerID == before.ContainerID || p.RestartCount != 1) {
					t.Errorf("the exit during the outage was not seen: %+v", p)
				}
				// The event stream is back: an exit now is seen too.
				if err := d.Exit(p.ContainerID, 3); err != nil {
					t.Fatal(err)
				}
				time.Sleep(2 * time.Second)
				q := settle(t, h, id, lifecycle.Ready)
				if q.ContainerID == p.ContainerID {
					t.Errorf("an exit after the outage was not seen: %+v", q)
				}
			})
		})
	}
}

// TestRaceEventStreamBreaks: the event stream drops (the engine lives on)
// and the program exits before the Host has subscribed again: the exit is
// lost to the stream, and the Host finds it by looking at its containers
// when it subscribes again.
func TestRaceEventStreamBreaks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFakeEngine(t, nil, fake.Hooks{})
		h := d.Open(t, t.TempDir())
		id := createProgram(t, h, dockerfileProgram("hana", "1"))
		if _, err := h.Start(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		p := settle(t, h, id, lifecycle.Ready)
		d.BreakEvents(errors.New("connection reset by peer"))
		if err := d.Exit(p.ContainerID, 3); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // the Host subscribes again within a second
		q := settle(t, h, id, lifecycle.Ready)
		if q.ContainerID == p.ContainerID || q.RestartCount != 1 {
			t.Errorf("the exit in the gap was not seen: %+v", q)
		}
		tr, _ := h.Transitions(context.Background(), id, 0)
		found := false
		for _, x := range tr {
			found = found || x.Reason == "container exited with code 3"
		}
		if !found {
			t.Errorf("history %+v lacks the exit", tr)
		}
	})
}

// TestCaptureAfterEngineRestart: the engine goes away under a Ready
// program and comes back (a dockerd restart under live-restore): its
// output stream ended with the engine, and the Host follows it again, so
// what the program prints after is captured, once (found by the e2e
// engine restart test: the program's logs stopped at the restart).
func TestCaptureAfterEngineRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFakeEngine(t, ticker(time.Second), fake.Hooks{})
		h := d.Open(t, t.TempDir())
		id := createProgram(t, h, dockerfileProgram("iris", "1"))
		if _, err := h.Start(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		before := settle(t, h, id, lifecycle.Ready)
		time.Sleep(3500 * time.Millisecond)
		d.Crash(errors.New("dockerd stopped"))
		time.Sleep(5 * time.Second)
		d.Restore()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		after := settle(t, h, id, lifecycle.Ready)
		if after.ContainerID != before.ContainerID {
			t.Fatalf("the program was restarted: %+v", after)
		}
		ticks := hosttest.LogLines(t, h, id, "tick ")
		if len(ticks) < 12 {
			t.Fatalf("captured %q: the output after the engine came back is missing", ticks)
		}
		for i, l := range ticks {
			if want := fmt.Sprintf("tick %d", i+1); l != want {
				t.Fatalf("line %d is %q, want %q (all: %q)", i, l, want, ticks)
			}
		}
		if err := h.Delete(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	})
}
