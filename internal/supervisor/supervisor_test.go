package supervisor

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/internal/lifecycle"
)

// world is a fake Executor: the supervisor is pure orchestration, so its
// tests replace the engine with a model of containers. (The Host's real
// executor is tested against the real engine.)
type world struct {
	mu         sync.Mutex
	containers map[string]bool // id -> running
	seq        int
	calls      []string

	buildGate chan struct{} // if set, Build waits for it (or cancellation)
	buildErr  error
	probeErr  error
	cancelled []string
}

func newWorld() *world { return &world{containers: map[string]bool{}} }

func (w *world) note(format string, a ...any) {
	w.mu.Lock()
	w.calls = append(w.calls, fmt.Sprintf(format, a...))
	w.mu.Unlock()
}

func (w *world) Build(ctx context.Context, id, buildID string) (string, error) {
	w.note("build %s", buildID)
	if w.buildGate != nil {
		select {
		case <-w.buildGate:
		case <-ctx.Done():
			w.mu.Lock()
			w.cancelled = append(w.cancelled, "build")
			w.mu.Unlock()
			return "img-late", nil // pretends it finished anyway: must be dropped
		}
	}
	time.Sleep(2 * time.Second)
	return "img-" + buildID, w.buildErr
}

func (w *world) Launch(ctx context.Context, id, image string) (string, error) {
	w.mu.Lock()
	for c := range w.containers { // remove leftovers, as the real one does
		delete(w.containers, c)
	}
	w.seq++
	cid := fmt.Sprintf("c%d", w.seq)
	w.containers[cid] = true
	w.calls = append(w.calls, "launch "+image)
	w.mu.Unlock()
	select {
	case <-time.After(500 * time.Millisecond):
		return cid, nil
	case <-ctx.Done():
		w.mu.Lock()
		delete(w.containers, cid)
		w.cancelled = append(w.cancelled, "launch")
		w.mu.Unlock()
		return "", ctx.Err()
	}
}

func (w *world) Probe(ctx context.Context, id, cid string) error {
	w.note("probe %s", cid)
	time.Sleep(300 * time.Millisecond)
	return w.probeErr
}

func (w *world) Halt(ctx context.Context, id string) error {
	w.note("halt")
	w.mu.Lock()
	clear(w.containers)
	w.mu.Unlock()
	return nil
}

func (w *world) Purge(ctx context.Context, id string) error {
	w.note("purge")
	return w.Halt(ctx, id)
}

func (w *world) running() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.containers)
}

// journal records what the supervisor persisted.
type journal struct {
	mu    sync.Mutex
	moves []string
	last  lifecycle.Program
}

func (j *journal) save(_ context.Context, p lifecycle.Program, from lifecycle.State, reason string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if from != p.State {
		j.moves = append(j.moves, fmt.Sprintf("%s->%s", from, p.State))
	}
	j.last = p
	return nil
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.moves...)
}

func startSup(t *testing.T, w *world, j *journal, p lifecycle.Program) (*Supervisor, context.CancelFunc) {
	t.Helper()
	s := New("p1", p, Config{
		Machine:  lifecycle.Machine{Backoff: lifecycle.Backoff{Base: time.Second, Max: time.Minute, HealthyReset: time.Hour}},
		Executor: w, Save: j.save,
	})
	ctx, cancel := context.WithCancel(context.Background())
	go s.Run(ctx)
	t.Cleanup(func() { cancel(); <-s.Done() })
	return s, cancel
}

func created() lifecycle.Program {
	return lifecycle.Program{State: lifecycle.Created, BuildID: "b1", Policy: lifecycle.RestartOnFailure, Desired: lifecycle.DesiredStopped}
}

func do(t *testing.T, s *Supervisor, cmd lifecycle.Event) lifecycle.Program {
	t.Helper()
	p, err := s.Do(context.Background(), cmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

func TestStartToReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, j := newWorld(), &journal{}
		s, _ := startSup(t, w, j, created())
		if p := do(t, s, lifecycle.Start{}); p.State != lifecycle.Building {
			t.Fatalf("after Start: %s", p.State)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if p := s.Program(); p.State != lifecycle.Ready || p.ContainerID != "c1" || p.ImageID != "img-b1" {
			t.Fatalf("program = %+v", p)
		}
		equal(t, j.get(), []string{"Created->Building", "Building->Starting", "Starting->Ready"})
		// Stop, then start again: the image is reused, no rebuild.
		do(t, s, lifecycle.Stop{})
		synctest.Wait()
		do(t, s, lifecycle.Start{})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		equal(t, w.calls, []string{"build b1", "launch img-b1", "probe c1", "halt", "launch img-b1", "probe c2"})
		if w.running() != 1 {
			t.Fatalf("%d containers", w.running())
		}
	})
}

func TestStopDuringBuildCancelsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, j := newWorld(), &journal{}
		w.buildGate = make(chan struct{})
		s, _ := startSup(t, w, j, created())
		do(t, s, lifecycle.Start{})
		synctest.Wait()
		t0 := time.Now()
		p := do(t, s, lifecycle.Stop{})
		if p.State != lifecycle.Stopping || time.Since(t0) != 0 {
			t.Fatalf("stop waited behind the build: %s after %s", p.State, time.Since(t0))
		}
		synctest.Wait()
		if p := s.Program(); p.State != lifecycle.Stopped || p.ImageID != "" {
			t.Fatalf("the cancelled build's late result was applied: %+v", p)
		}
		equal(t, w.cancelled, []string{"build"})
	})
}

func TestStopDuringLaunchLeavesNoContainer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, j := newWorld(), &journal{}
		p := created()
		p.ImageID = "img" // built before: Start goes straight to launching
		s, _ := startSup(t, w, j, p)
		do(t, s, lifecycle.Start{})
		time.Sleep(100 * time.Millisecond) // the container exists, Launch has not returned
		if w.running() != 1 {
			t.Fatal("launch did not start")
		}
		do(t, s, lifecycle.Stop{})
		synctest.Wait()
		if w.running() != 0 || s.Program().State != lifecycle.Stopped {
			t.Fatalf("orphan: %d containers, state %s", w.running(), s.Program().State)
		}
		equal(t, w.cancelled, []string{"launch"})
	})
}

func TestManyCommandsNeverDeadlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, j := newWorld(), &journal{}
		s, _ := startSup(t, w, j, created())
		cmds := []lifecycle.Event{lifecycle.Start{}, lifecycle.Stop{}, lifecycle.Restart{}}
		var wg sync.WaitGroup
		for g := range 10 {
			wg.Go(func() {
				for i := range 100 {
					// A start while running is refused (409): fine.
					if _, err := s.Do(context.Background(), cmds[(g+i)%3], nil); err != nil && !errors.Is(err, lifecycle.ErrConflict) {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if _, err := s.Do(context.Background(), lifecycle.Start{}, nil); err != nil && !errors.Is(err, lifecycle.ErrConflict) {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if p := s.Program(); p.State != lifecycle.Ready || w.running() != 1 {
			t.Fatalf("after 1000 commands and a start: %s, %d containers", p.State, w.running())
		}
	})
}

func TestCrashRestartsWithGrowingDelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, j := newWorld(), &journal{}
		p := created()
		p.ImageID = "img"
		s, _ := startSup(t, w, j, p)
		do(t, s, lifecycle.Start{})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		var gaps []time.Duration
		for range 4 {
			cid := s.Program().ContainerID
			crashed := time.Now()
			if err := s.Notify(context.Background(), lifecycle.Exited{ContainerID: cid, ExitCode: 1, At: crashed}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if p := s.Program(); p.State != lifecycle.Error || p.NextRestartAt.IsZero() {
				t.Fatalf("after crash: %+v", p)
			}
			for c := s.Program().ContainerID; c == cid || c == ""; c = s.Program().ContainerID {
				time.Sleep(10 * time.Millisecond)
			}
			gaps = append(gaps, time.Since(crashed).Truncate(100*time.Millisecond))
			time.Sleep(5 * time.Second)
			synctest.Wait()
		}
		// backoff (1s doubling, no jitter) plus the 500ms the fake launch takes
		equal(t, []string{fmt.Sprint(gaps)}, []string{"[1.5s 2.5s 4.5s 8.5s]"})
		if p := s.Program(); p.RestartCount != 4 || p.State != lifecycle.Ready {
			t.Fatalf("%+v", p)
		}
	})
}

func TestDeleteEndsTheSupervisor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, j := newWorld(), &journal{}
		s, _ := startSup(t, w, j, created())
		do(t, s, lifecycle.Start{})
		time.Sleep(10 * time.Second)
		do(t, s, lifecycle.Delete{})
		<-s.Done()
		if _, err := s.Do(context.Background(), lifecycle.Start{}, nil); !errors.Is(err, ErrGone) {
			t.Fatalf("Do after delete = %v", err)
		}
		if w.running() != 0 {
			t.Fatal("containers left after delete")
		}
	})
}

func TestRunCancelEndsEveryEffect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, j := newWorld(), &journal{}
		w.buildGate = make(chan struct{})
		s, cancel := startSup(t, w, j, created())
		do(t, s, lifecycle.Start{})
		synctest.Wait()
		cancel()
		<-s.Done() // the blocked build was cancelled and its goroutine ended
		equal(t, w.cancelled, []string{"build"})
		if _, err := s.Do(context.Background(), lifecycle.Stop{}, nil); !errors.Is(err, ErrGone) {
			t.Fatalf("Do after Run ended = %v", err)
		}
	})
}

// TestAdmissionInTheLoop: the reducer admits commands on the program's
// current state, in the loop: of many concurrent starts of a stopped
// program exactly one is admitted, the others get 409.
func TestAdmissionInTheLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, j := newWorld(), &journal{}
		s, _ := startSup(t, w, j, created())
		const n = 20
		var wg sync.WaitGroup
		var admitted, refused atomic.Int32
		for range n {
			wg.Go(func() {
				_, err := s.Do(context.Background(), lifecycle.Start{}, nil)
				switch {
				case err == nil:
					admitted.Add(1)
				case errors.Is(err, lifecycle.ErrConflict):
					refused.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if admitted.Load() != 1 || refused.Load() != n-1 {
			t.Fatalf("%d starts admitted, %d refused; want exactly one admitted", admitted.Load(), refused.Load())
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if w.running() != 1 {
			t.Fatalf("%d containers, want 1", w.running())
		}
	})
}

// TestGuardRefuses: a guard's error refuses an admitted command and
// nothing changes; the guard is not asked for a command the reducer
// refuses.
func TestGuardRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, j := newWorld(), &journal{}
		s, _ := startSup(t, w, j, created())
		quota := errors.New("over quota")
		asked := 0
		before := s.Program()
		if _, err := s.Do(context.Background(), lifecycle.Start{}, func() error { asked++; return quota }); !errors.Is(err, quota) {
			t.Fatalf("guarded start: %v", err)
		}
		if p := s.Program(); !reflect.DeepEqual(p, before) || asked != 1 {
			t.Fatalf("a refused command changed the program: %+v (guard asked %d times)", p, asked)
		}
		do(t, s, lifecycle.Start{})
		if _, err := s.Do(context.Background(), lifecycle.Start{}, func() error { asked++; return nil }); !errors.Is(err, lifecycle.ErrConflict) || asked != 1 {
			t.Fatalf("start while building: %v, guard asked %d times", err, asked)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
	})
}

// TestChangedSignals: Changed is closed at the next persisted change, so
// an outcome can be waited for without polling.
func TestChangedSignals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, j := newWorld(), &journal{}
		s, _ := startSup(t, w, j, created())
		ch := s.Changed()
		select {
		case <-ch:
			t.Fatal("closed before any change")
		default:
		}
		do(t, s, lifecycle.Start{})
		select {
		case <-ch:
		default:
			t.Fatal("not closed by a start")
		}
		var states []lifecycle.State
		for {
			ch := s.Changed() // before the look: no change falls between
			st := s.Program().State
			states = append(states, st)
			if st == lifecycle.Ready {
				break
			}
			<-ch
		}
		if len(states) < 3 {
			t.Fatalf("states seen: %v", states)
		}
		synctest.Wait()
	})
}

// TestObserversFindTheChangeShown: an observer hears of a change only once
// Program shows it. The Host's proxy asks Program whether a program is
// Ready; a client told "Ready" by the event stream (an observer) and
// proxying at once was refused as "Starting" when the order was the other
// way round.
func TestObserversFindTheChangeShown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, j := newWorld(), &journal{}
		var (
			s      *Supervisor
			mu     sync.Mutex
			behind []string
		)
		s = New("p1", created(), Config{
			Machine:  lifecycle.Machine{Backoff: lifecycle.Backoff{Base: time.Second, Max: time.Minute, HealthyReset: time.Hour}},
			Executor: w, Save: j.save,
			Observe: func(_ string, _, next lifecycle.Program, _ lifecycle.Event) {
				if shown := s.Program(); shown != next {
					mu.Lock()
					behind = append(behind, fmt.Sprintf("told %s, shown %s", next.State, shown.State))
					mu.Unlock()
				}
			},
		})
		ctx, cancel := context.WithCancel(context.Background())
		go s.Run(ctx)
		defer func() { cancel(); <-s.Done() }()
		do(t, s, lifecycle.Start{})
		for s.Program().State != lifecycle.Ready {
			<-s.Changed()
		}
		do(t, s, lifecycle.Stop{})
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(behind) > 0 {
			t.Fatalf("observers heard of changes Program did not show yet: %v", behind)
		}
	})
}
