package host_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

// TestLaunchesBounded: many programs started at once reach the engine a few
// at a time. A thousand simultaneous create+start calls wedged Docker on two
// cores; without the bound, every start below is in the engine at once.
func TestLaunchesBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const programs, bound = 16, 3
		var calls concurrency
		d := newFakeEngine(t, nil, fake.Hooks{Before: func(ctx context.Context, c fake.Call) error {
			if c.Method != "CreateContainer" && c.Method != "StartContainer" {
				return nil
			}
			defer calls.enter()()
			time.Sleep(200 * time.Millisecond) // a slow engine: the calls overlap unless bounded
			return nil
		}})
		h := d.Open(t, t.TempDir(), func(o *host.Options) { o.Launches = bound })
		var ids []string
		for i := range programs {
			ids = append(ids, createProgram(t, h, dockerfileProgram(fmt.Sprintf("user%d", i), fmt.Sprint(i))))
		}
		for _, id := range ids {
			startProgram(t, h, id)
		}
		for _, id := range ids {
			if p := settle(t, h, id, lifecycle.Ready); p.RestartCount != 0 {
				t.Errorf("%s: %d restarts, want 0", id, p.RestartCount)
			}
		}
		_, most := calls.read()
		if most > bound {
			t.Fatalf("%d create/start calls in the engine at once, want at most %d", most, bound)
		}
		if most < bound {
			t.Fatalf("at most %d create/start calls at once: the %d slots were not used", most, bound)
		}
	})
}

// TestLaunchDeadline: an engine that never answers a start call does not
// leave the program Starting for ever. The launch fails at its deadline, the
// restart policy starts it again, and the wedged attempt's container is gone.
func TestLaunchDeadline(t *testing.T) {
	for _, method := range []string{"CreateContainer", "StartContainer"} {
		t.Run(method, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				wedged := 0
				d := newFakeEngine(t, nil, fake.Hooks{Before: func(ctx context.Context, c fake.Call) error {
					if c.Method != method {
						return nil
					}
					mu.Lock()
					first := wedged == 0
					if first {
						wedged++
					}
					mu.Unlock()
					if first {
						<-ctx.Done() // the engine never answers this one
						return ctx.Err()
					}
					return nil
				}})
				h := d.Open(t, t.TempDir(), func(o *host.Options) { o.LaunchTimeout = 30 * time.Second })
				id := createProgram(t, h, dockerfileProgram("alice", "1"))
				startProgram(t, h, id)
				p := settle(t, h, id, lifecycle.Ready)
				if p.RestartCount != 1 {
					t.Errorf("restarts %d, want 1 (the wedged launch)", p.RestartCount)
				}
				trs, err := h.Transitions(context.Background(), id, 20)
				if err != nil {
					t.Fatal(err)
				}
				var reasons []string
				found := false
				for _, tr := range trs {
					reasons = append(reasons, tr.Reason)
					found = found || strings.Contains(tr.Reason, "did not "+strings.ToLower(strings.TrimSuffix(method, "Container"))+" the container within 30s")
				}
				if !found {
					t.Errorf("no transition says the engine missed the deadline: %q", reasons)
				}
				// Give the create sweep its later passes, then only the running
				// container is left.
				time.Sleep(time.Minute)
				synctest.Wait()
				cs := hosttest.ContainersOf(t, d, id)
				if len(cs) != 1 || cs[0].ID != p.ContainerID {
					t.Fatalf("containers %+v, want only %s", cs, p.ContainerID)
				}
			})
		})
	}
}

// TestStopWhileWaitingForLaunch: a program waiting for a launch slot stops
// at once when told to, and never reaches the engine afterwards.
func TestStopWhileWaitingForLaunch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		held, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		d := newFakeEngine(t, nil, fake.Hooks{Before: func(ctx context.Context, c fake.Call) error {
			if c.Method == "StartContainer" {
				once.Do(func() { close(held); <-release })
			}
			return nil
		}})
		h := d.Open(t, t.TempDir(), func(o *host.Options) { o.Launches = 1 })
		first := createProgram(t, h, dockerfileProgram("alice", "1"))
		second := createProgram(t, h, dockerfileProgram("bob", "2"))
		startProgram(t, h, first)
		<-held // the only slot is taken
		startProgram(t, h, second)
		synctest.Wait()
		if _, err := h.Stop(context.Background(), second); err != nil {
			t.Fatal(err)
		}
		settle(t, h, second, lifecycle.Stopped)
		close(release)
		settle(t, h, first, lifecycle.Ready)
		synctest.Wait()
		noContainers(t, d, second)
	})
}

// TestHaltsBounded: many programs stopped at once reach the engine a few at
// a time too. A thousand stops at once kept Docker busy for minutes; without
// the bound, every stop below is in the engine at once.
func TestHaltsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const programs, bound = 12, 4
		var (
			counting atomic.Bool
			calls    concurrency
		)
		d := newFakeEngine(t, nil, fake.Hooks{Before: func(ctx context.Context, c fake.Call) error {
			if !counting.Load() || (c.Method != "StopContainer" && c.Method != "RemoveContainer") {
				return nil
			}
			defer calls.enter()()
			time.Sleep(200 * time.Millisecond)
			return nil
		}})
		h := d.Open(t, t.TempDir(), func(o *host.Options) { o.Halts = bound })
		var ids []string
		for i := range programs {
			id := createProgram(t, h, dockerfileProgram(fmt.Sprintf("user%d", i), fmt.Sprint(i)))
			startProgram(t, h, id)
			ids = append(ids, id)
		}
		for _, id := range ids {
			settle(t, h, id, lifecycle.Ready)
		}
		counting.Store(true)
		for _, id := range ids {
			if _, err := h.Stop(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range ids {
			settle(t, h, id, lifecycle.Stopped)
			noContainers(t, d, id)
		}
		if _, most := calls.read(); most != bound {
			t.Fatalf("%d stop/remove calls in the engine at once, want %d (the bound, used)", most, bound)
		}
	})
}

// TestHaltDeadline: a stop the engine never answers (Docker 20.10 lost
// exits under load, and its stop call then hung for good) fails at its
// deadline instead of holding a halt slot for ever: the other programs
// still stop, and the wedged one says why it did not.
func TestHaltDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		wedge := ""
		d := newFakeEngine(t, nil, fake.Hooks{Before: func(ctx context.Context, c fake.Call) error {
			mu.Lock()
			w := wedge != "" && c.Method == "StopContainer" && c.Ref == wedge
			if w {
				wedge = "" // once
			}
			mu.Unlock()
			if w {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}})
		h := d.Open(t, t.TempDir(), func(o *host.Options) { o.Halts = 1 })
		stuck := createProgram(t, h, dockerfileProgram("alice", "1"))
		other := createProgram(t, h, dockerfileProgram("bob", "2"))
		startProgram(t, h, stuck)
		startProgram(t, h, other)
		p := settle(t, h, stuck, lifecycle.Ready)
		settle(t, h, other, lifecycle.Ready)
		mu.Lock()
		wedge = p.ContainerID
		mu.Unlock()
		if _, err := h.Stop(context.Background(), stuck); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the wedged stop holds the only slot
		if _, err := h.Stop(context.Background(), other); err != nil {
			t.Fatal(err)
		}
		settle(t, h, other, lifecycle.Stopped)
		got := settle(t, h, stuck, lifecycle.Error)
		if !strings.Contains(got.ErrorMsg, "did not stop the container within") {
			t.Fatalf("error %q, want one saying the engine did not stop it in time", got.ErrorMsg)
		}
		// Stopping again works once the engine answers.
		if _, err := h.Stop(context.Background(), stuck); err != nil {
			t.Fatal(err)
		}
		settle(t, h, stuck, lifecycle.Stopped)
		noContainers(t, d, stuck)
	})
}

// TestCloseSweepsLateCreate: a Host that closes while the engine still
// works on a create (the request cancelled, the reply lost, the container
// made anyway) removes that container before it is done closing, though
// no later sweep of its will run: a test's Host, or a Host that is not
// started again, would otherwise leave it on the engine for good.
func TestCloseSweepsLateCreate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		entered := make(chan struct{})
		var once sync.Once
		d := newFakeEngine(t, nil, fake.Hooks{
			Before: func(ctx context.Context, c fake.Call) error {
				if c.Method == "CreateContainer" {
					once.Do(func() { close(entered) })
					<-ctx.Done() // the engine is slow: the Host gives up first
				}
				return nil // ... and the engine makes the container anyway
			},
			After: func(ctx context.Context, c fake.Call, err error) error {
				if c.Method == "CreateContainer" && err == nil {
					return ctx.Err() // the reply never reached the Host
				}
				return err
			},
		})
		h := d.Open(t, t.TempDir())
		id := createProgram(t, h, dockerfileProgram("alice", "1"))
		startProgram(t, h, id)
		<-entered
		hosttest.Close(t, h)
		if cs := hosttest.ContainersOf(t, d, id); len(cs) != 0 {
			t.Fatalf("containers left after the Host closed: %+v", cs)
		}
	})
}

// TestDeleteDuringLateCreate: a program deleted while the engine still
// works on its container's create leaves nothing. The engine makes the
// container after the delete's halt has looked (so the halt misses it)
// and before the delete collects the image (which it must keep, in use):
// the launch's sweep removes the container, and then collects the image.
func TestDeleteDuringLateCreate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		entered, listed, created, collected := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
		var once, listOnce, createOnce, collectOnce sync.Once
		inDelete := func() bool {
			select {
			case <-entered:
				return true
			default:
				return false
			}
		}
		d := newFakeEngine(t, nil, fake.Hooks{
			Before: func(ctx context.Context, c fake.Call) error {
				switch c.Method {
				case "CreateContainer":
					once.Do(func() { close(entered) })
					<-ctx.Done() // the delete cancels the launch
					<-listed     // the engine finishes after the halt looked
				case "RemoveImage":
					if inDelete() {
						<-created
					}
				case "ListContainers":
					select {
					case <-created: // the launch's sweep looks after the delete's collection
						<-collected
					default:
					}
				}
				return nil
			},
			After: func(ctx context.Context, c fake.Call, err error) error {
				switch {
				case c.Method == "ListContainers" && inDelete():
					listOnce.Do(func() { close(listed) })
				case c.Method == "RemoveImage" && inDelete():
					collectOnce.Do(func() { close(collected) })
				case c.Method == "CreateContainer" && err == nil:
					createOnce.Do(func() { close(created) })
					return ctx.Err() // the reply never reached the Host
				}
				return err
			},
		})
		h := d.Open(t, t.TempDir())
		id := createProgram(t, h, dockerfileProgram("alice", "1"))
		startProgram(t, h, id)
		<-entered
		build := stateOf(t, h, id).BuildID
		if err := h.Delete(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // the sweep's passes
		synctest.Wait()
		if cs := hosttest.ContainersOf(t, d, id); len(cs) != 0 {
			t.Fatalf("containers left: %+v", cs)
		}
		if imageExists(t, d, host.ImageTag(build)) {
			t.Fatal("the deleted program's image is left")
		}
	})
}
