package fake_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/fake"
)

// The scripting the conformance kit does not see: Script, the test's
// controls (Exit, OOMKill, Crash, Restore), hooks, programs per image, and
// that Close leaves nothing running.

const img = "app:1"

func spec(name string) driver.ContainerSpec {
	return driver.ContainerSpec{
		Name: name, Image: img, Runtime: driver.RuntimeRunc, User: "10001:10001",
		Labels: map[string]string{driver.LabelProgram: name},
		Limits: driver.Limits{MemoryBytes: 64 << 20, CPUs: 1, Pids: 64, LogBytes: 1 << 20},
	}
}

// newDriver is a fake holding img, closed when the test ends.
func newDriver(t *testing.T, opts fake.Options) *fake.Driver {
	d := fake.New(opts)
	d.AddImage(img, nil)
	t.Cleanup(func() { d.Close() })
	return d
}

func run(t *testing.T, d *fake.Driver, name string) string {
	t.Helper()
	ctx := context.Background()
	id, err := d.CreateContainer(ctx, spec(name))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

func logs(t *testing.T, d *fake.Driver, id string) string {
	t.Helper()
	rc, err := d.Logs(context.Background(), id, time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// watcherClient reaches a container's WatcherAddr through the driver.
func watcherClient(t *testing.T, d *fake.Driver, id string) *http.Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, id, fake.WatcherAddr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestScript(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ready := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ready") })
		d := newDriver(t, fake.Options{Program: fake.Script{
			Output: []string{"hello", "world"}, API: ready, Exit: true, ExitAfter: 3 * time.Second, ExitCode: 4,
		}.Program()})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		evs, _ := d.Events(ctx)
		start := time.Now()
		id := run(t, d, "scripted")
		synctest.Wait() // the program has printed and listens
		if got := logs(t, d, id); got != "hello\nworld\n" {
			t.Errorf("logs %q", got)
		}
		resp, err := watcherClient(t, d, id).Get("http://watcher/watcher/ready")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ready" {
			t.Errorf("the API answered %q", b)
		}
		for ev := range evs {
			if ev.Kind == driver.EventDie {
				// In the bubble, time is exact: it exits when told to.
				if ev.ExitCode != 4 || time.Since(start) != 3*time.Second {
					t.Errorf("die %+v after %v, want code 4 after 3s", ev, time.Since(start))
				}
				break
			}
		}
	})
}

func TestScriptIgnoringTermIsKilledAfterGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDriver(t, fake.Options{Program: fake.Script{IgnoreTerm: true}.Program()})
		id := run(t, d, "stubborn")
		start := time.Now()
		if err := d.StopContainer(context.Background(), id, 7*time.Second); err != nil {
			t.Fatal(err)
		}
		info, _ := d.InspectContainer(context.Background(), id)
		if info.Running || info.ExitCode != 137 || time.Since(start) != 7*time.Second {
			t.Errorf("after the stop: %+v, %v", info, time.Since(start))
		}
	})
}

func TestExitAndOOMKill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDriver(t, fake.Options{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		evs, _ := d.Events(ctx)
		a, b := run(t, d, "a"), run(t, d, "b")
		if err := d.Exit(a, 3); err != nil {
			t.Fatal(err)
		}
		if err := d.OOMKill(b); err != nil {
			t.Fatal(err)
		}
		var got []string
		for len(got) < 5 {
			ev := <-evs
			who := map[string]string{a: "a", b: "b"}[ev.ContainerID]
			got = append(got, who+" "+string(ev.Kind))
			if ev.Kind == driver.EventDie && (who == "a" && ev.ExitCode != 3 || who == "b" && ev.ExitCode != 137) {
				t.Errorf("die of %s: %+v", who, ev)
			}
		}
		if want := "a start,b start,a die,b oom,b die"; strings.Join(got, ",") != want {
			t.Errorf("events %v, want %s", got, want)
		}
		if info, _ := d.InspectContainer(ctx, b); !info.OOMKilled || info.ExitCode != 137 {
			t.Errorf("after the oom kill: %+v", info)
		}
		if err := d.Exit(a, 1); err == nil {
			t.Error("Exit of a container that is not running succeeded")
		}
		if err := d.Exit("nope", 1); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Exit of a missing container: %v", err)
		}
	})
}

// TestHooksHoldAndLoseReplies: a held call is durably blocked (the test
// sees it waiting, then lets it go); a failing Before has no effect; an
// After error turns a done create into a lost reply.
func TestHooksHoldAndLoseReplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var held atomic.Int32
		d := newDriver(t, fake.Options{Hooks: fake.Hooks{
			Before: func(ctx context.Context, c fake.Call) error {
				switch {
				case c.Method == "StartContainer":
					held.Add(1)
					select {
					case <-release:
					case <-ctx.Done():
						return ctx.Err()
					}
				case c.Method == "CreateContainer" && c.Ref == "refused":
					return errors.New("no room")
				}
				return nil
			},
			After: func(ctx context.Context, c fake.Call, err error) error {
				if c.Method == "CreateContainer" && c.Ref == "lost" {
					return errors.New("connection reset")
				}
				return err
			},
		}})
		ctx := context.Background()
		id, err := d.CreateContainer(ctx, spec("held"))
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan error)
		go func() { started <- d.StartContainer(ctx, id) }()
		synctest.Wait()
		if info, _ := d.InspectContainer(ctx, id); held.Load() != 1 || info.Running {
			t.Fatalf("while held: %d held, %+v", held.Load(), info)
		}
		close(release)
		if err := <-started; err != nil {
			t.Fatal(err)
		}
		if info, _ := d.InspectContainer(ctx, id); !info.Running {
			t.Fatalf("after the release: %+v", info)
		}

		if _, err := d.CreateContainer(ctx, spec("refused")); err == nil || !strings.Contains(err.Error(), "no room") {
			t.Errorf("a refused create: %v", err)
		}
		if _, err := d.CreateContainer(ctx, spec("lost")); err == nil {
			t.Error("a lost reply reached the caller")
		}
		cs, _ := d.ListContainers(ctx, nil)
		var names []string
		for _, c := range cs {
			names = append(names, c.Name)
		}
		if strings.Join(names, ",") != "held,lost" {
			t.Errorf("containers %v, want held and lost (created, its reply lost), not refused", names)
		}
	})
}

// TestCrashAndRestore: a dead engine ends event streams and follows with
// ErrEngineDown and the cause, fails every call and the waits in flight,
// and keeps containers running; exits meanwhile are not reported; after
// Restore the calls work and show what happened.
func TestCrashAndRestore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDriver(t, fake.Options{Program: fake.Script{IgnoreTerm: true}.Program(), Job: func(ctx context.Context, p *fake.Process) int {
			<-ctx.Done()
			return 0
		}})
		ctx := context.Background()
		a, b := run(t, d, "a"), run(t, d, "b")
		evs, errs := d.Events(ctx)
		follow, err := d.Logs(ctx, a, time.Time{}, true)
		if err != nil {
			t.Fatal(err)
		}
		stopped := make(chan error, 1)
		go func() { stopped <- d.StopContainer(ctx, a, time.Hour) }()
		jobDone := make(chan error, 1)
		go func() {
			_, err := d.RunJob(ctx, driver.JobSpec{Name: "job", Image: img, Runtime: driver.RuntimeRunc, User: "1:1", Cmd: []string{"x"},
				Limits: driver.Limits{MemoryBytes: 64 << 20, CPUs: 1, Pids: 64}}, io.Discard)
			jobDone <- err
		}()
		synctest.Wait()

		cause := errors.New("dockerd was killed")
		d.Crash(cause)
		for range evs {
		}
		if err := <-errs; !errors.Is(err, fake.ErrEngineDown) || !errors.Is(err, cause) {
			t.Errorf("the event stream ended with %v", err)
		}
		if _, err := io.ReadAll(follow); !errors.Is(err, fake.ErrEngineDown) {
			t.Errorf("the follow ended with %v", err)
		}
		if err := <-stopped; !errors.Is(err, fake.ErrEngineDown) {
			t.Errorf("a stop in flight: %v", err)
		}
		if err := <-jobDone; !errors.Is(err, fake.ErrEngineDown) {
			t.Errorf("a job in flight: %v", err)
		}
		if _, err := d.InspectContainer(ctx, a); !errors.Is(err, fake.ErrEngineDown) || !errors.Is(err, cause) {
			t.Errorf("a call while down: %v", err)
		}
		_, errs = d.Events(ctx)
		if err := <-errs; !errors.Is(err, fake.ErrEngineDown) {
			t.Errorf("subscribing while down: %v", err)
		}
		if err := d.Exit(b, 2); err != nil { // the program dies while nobody watches
			t.Fatal(err)
		}

		d.Restore()
		evs, _ = d.Events(ctx)
		ia, err := d.InspectContainer(ctx, a)
		if err != nil || !ia.Running {
			t.Errorf("a kept running through the outage: %+v, %v", ia, err)
		}
		if ib, _ := d.InspectContainer(ctx, b); ib.Running || ib.ExitCode != 2 {
			t.Errorf("b exited during the outage: %+v", ib)
		}
		if cs, _ := d.ListContainers(ctx, map[string]string{}); len(cs) != 3 {
			t.Errorf("the job's container should remain after the engine died under it: %d containers", len(cs))
		}
		synctest.Wait()
		select {
		case ev := <-evs:
			t.Errorf("an event of the outage was delivered after it: %+v", ev)
		default:
		}
	})
}

// TestProgramsPerImage: an image runs the program set for its tag (even
// when set before the image existed), images built on it inherit it, and
// other images run Options.Program.
func TestProgramsPerImage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		say := func(s string) fake.Program { return fake.Script{Output: []string{s}}.Program() }
		d := newDriver(t, fake.Options{Program: say("default")})
		d.SetProgram("base:1", say("base"))
		d.AddImage("base:1", map[string]string{"vendor": "x"})
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM base:1\nLABEL extra=y\n"), 0o644)
		var out strings.Builder
		child, err := d.BuildImage(context.Background(), driver.ImageSpec{ContextDir: dir, Tag: "child"}, &out)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "Step 2/2 : LABEL extra=y") || !strings.Contains(out.String(), "Successfully tagged child:latest") {
			t.Errorf("build output:\n%s", out.String())
		}
		for i, c := range []struct{ image, want string }{{img, "default"}, {"base:1", "base"}, {child, "base"}} {
			image, want := c.image, c.want
			s := spec(fmt.Sprintf("c%d", i))
			s.Image = image
			id, err := d.CreateContainer(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			d.StartContainer(context.Background(), id)
			synctest.Wait()
			if got := logs(t, d, id); got != want+"\n" {
				t.Errorf("a container of %s printed %q, want %q", image, got, want)
			}
			if image == child {
				info, _ := d.InspectContainer(context.Background(), id)
				if info.Labels["vendor"] != "x" || info.Labels["extra"] != "y" {
					t.Errorf("labels of the built image's container: %v", info.Labels)
				}
			}
		}
	})
}

func TestBuildHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDriver(t, fake.Options{Hooks: fake.Hooks{Build: func(ctx context.Context, s driver.ImageSpec, out io.Writer) error {
			io.WriteString(out, "compiling...\n")
			time.Sleep(time.Minute)
			if s.Tag == "bad" {
				return errors.New("the compiler says no")
			}
			return nil
		}}})
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
		var out strings.Builder
		start := time.Now()
		if _, err := d.BuildImage(context.Background(), driver.ImageSpec{ContextDir: dir, Tag: "bad"}, &out); err == nil || !strings.Contains(err.Error(), "the compiler says no") {
			t.Errorf("a failing build hook: %v", err)
		}
		if ok, _ := d.ImageExists(context.Background(), "bad"); ok || !strings.Contains(out.String(), "compiling...") || time.Since(start) != time.Minute {
			t.Errorf("image made %v, output %q, took %v", ok, out.String(), time.Since(start))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := d.BuildImage(ctx, driver.ImageSpec{ContextDir: dir, Tag: "late"}, io.Discard); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a build past its deadline: %v", err)
		}
	})
}

// TestWatcherAPIHangsOrRefuses: nothing listening is a refusal; a listener
// nobody accepts from is a hang that ends with the caller's context.
func TestWatcherAPIHangsOrRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDriver(t, fake.Options{Program: func(ctx context.Context, p *fake.Process) int {
			if p.Name() == "hung" {
				if _, err := p.Listen(fake.WatcherAddr); err != nil {
					return 1
				}
			}
			<-ctx.Done()
			return 137
		}})
		refusing, hung := run(t, d, "refusing"), run(t, d, "hung")
		synctest.Wait() // both programs have started
		if _, err := d.DialContext(context.Background(), refusing, fake.WatcherAddr); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial where nothing listens: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://watcher/watcher/ready", nil)
		start := time.Now()
		if _, err := watcherClient(t, d, hung).Do(req); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 5*time.Second {
			t.Errorf("a request to a hung program: %v after %v", err, time.Since(start))
		}
	})
}

// TestJobWritesIntoMounts: a job program gets its command and mounts, and
// what it writes to a writable mount is on the machine's disk (as the
// Host's Go build leaves its binary in /out).
func TestJobWritesIntoMounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDriver(t, fake.Options{Job: func(ctx context.Context, p *fake.Process) int {
			if err := p.WriteFile("/out/app", []byte("\x7fELF "+strings.Join(p.Args(), " ")), 0o755); err != nil {
				return 1
			}
			io.WriteString(p.Stdout(), "built\n")
			return 0
		}})
		out := t.TempDir()
		var output strings.Builder
		res, err := d.RunJob(context.Background(), driver.JobSpec{
			Name: "build", Image: img, Runtime: driver.RuntimeRunc, User: "65532:65532", Cmd: []string{"go", "build"},
			Mounts: []driver.Mount{{Source: out, Target: "/out"}}, Limits: driver.Limits{MemoryBytes: 64 << 20, CPUs: 1, Pids: 64},
		}, &output)
		if err != nil || res.ExitCode != 0 || output.String() != "built\n" {
			t.Fatalf("%+v, %v, %q", res, err, output.String())
		}
		if b, err := os.ReadFile(filepath.Join(out, "app")); err != nil || string(b) != "\x7fELF go build" {
			t.Errorf("the binary: %q, %v", b, err)
		}
	})
}

// TestCloseEndsEverything: outside a bubble too, Close leaves no goroutine
// of the driver behind: programs, servers, connections, event streams.
func TestCloseEndsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	d := fake.New(fake.Options{Program: fake.Script{API: ok, IgnoreTerm: true}.Program()})
	d.AddImage(img, nil)
	ctx := context.Background()
	ids := []string{run(t, d, "a"), run(t, d, "b")}
	evs, errs := d.Events(ctx)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, ids[0], fake.WatcherAddr)
	}}
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if resp, err = (&http.Client{Transport: tr}).Get("http://watcher/"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if runtime.NumGoroutine() <= before {
		t.Fatal("the busy driver runs no goroutine: the check below would prove nothing")
	}
	d.Close()
	for range evs {
	}
	if err := <-errs; !errors.Is(err, fake.ErrClosed) {
		t.Errorf("the event stream ended with %v", err)
	}
	tr.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := d.InspectContainer(ctx, ids[0]); !errors.Is(err, fake.ErrClosed) {
		t.Errorf("a call after Close: %v", err)
	}
}

func TestBreakEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDriver(t, fake.Options{})
		ctx := context.Background()
		id := run(t, d, "a")
		evs, errs := d.Events(ctx)
		cause := errors.New("connection reset by peer")
		d.BreakEvents(cause)
		for range evs {
		}
		if err := <-errs; !errors.Is(err, cause) || errors.Is(err, fake.ErrEngineDown) {
			t.Errorf("the broken stream ended with %v", err)
		}
		if err := d.Exit(id, 1); err != nil { // lost to the broken stream
			t.Fatal(err)
		}
		if info, err := d.InspectContainer(ctx, id); err != nil || info.Running || info.ExitCode != 1 {
			t.Errorf("the engine after a broken stream: %+v, %v", info, err)
		}
	})
}
