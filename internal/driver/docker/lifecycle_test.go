package docker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// nextEvent waits for the next event of container id.
func nextEvent(t *testing.T, evs <-chan driver.Event, errs <-chan error, id string, timeout time.Duration) (driver.Event, bool) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatalf("event stream closed: %v", <-errs)
			}
			if ev.ContainerID == id {
				return ev, true
			}
		case <-timer.C:
			return driver.Event{}, false
		}
	}
}

// TestEvents: start and die (with the exit code) of a program that exits 3,
// an oom kill, and the stream's end with its context.
func TestEvents(t *testing.T) {
	d := newDriver(t)
	forEachRuntime(t, d, func(t *testing.T, h *harness) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		evs, errs := d.Events(ctx)

		id := h.create(h.spec("exit3", "-exit 3"))
		before := time.Now()
		h.start(id)
		ev, ok := nextEvent(t, evs, errs, id, 20*time.Second)
		if !ok || ev.Kind != driver.EventStart {
			t.Fatalf("first event %+v (got %v), want start", ev, ok)
		}
		ev, ok = nextEvent(t, evs, errs, id, 20*time.Second)
		if !ok || ev.Kind != driver.EventDie || ev.ExitCode != 3 {
			t.Fatalf("second event %+v (got %v), want die with exit code 3", ev, ok)
		}
		if ev.Labels[driver.LabelProgram] != "exit3" || ev.Labels[driver.LabelInstance] != testRun || ev.Labels[driver.LabelManaged] != "true" {
			t.Errorf("event labels %v", ev.Labels)
		}
		if _, engine := ev.Labels["exitCode"]; engine {
			t.Errorf("engine attributes among labels: %v", ev.Labels)
		}
		if ev.At.Before(before.Add(-time.Second)) || ev.At.After(time.Now().Add(time.Second)) {
			t.Errorf("event time %v not around now", ev.At)
		}
		info, err := d.InspectContainer(ctx, id)
		if err != nil || info.Running || info.ExitCode != 3 || info.Pid != 0 || info.FinishedAt.IsZero() {
			t.Errorf("after exit: %+v %v", info, err)
		}

		// OOM: the program touches 200 MiB under a 32 MiB limit. It dies
		// with 137 under both runtimes. Whether the engine flags the kill as
		// an oom races the exit: the shim reads the cgroup's oom count
		// asynchronously, and on a loaded machine (CI, with other packages'
		// containers) the exit was handled first, under runsc and once under
		// runc too. The driver's part, turning the engine's oom into an
		// EventOOM and InspectContainer's OOMKilled, is what is pinned: under
		// runc one of three attempts must show both.
		attempts := 1
		if h.rt == "runc" {
			attempts = 3
		}
		for i := range attempts {
			spec := h.spec(fmt.Sprintf("oom%d", i), "-eat 200 -serve=false")
			spec.Limits.MemoryBytes = 32 << 20
			oomID := h.create(spec)
			h.start(oomID)
			var sawOOM bool
			var die driver.Event
			for deadline := time.Now().Add(30 * time.Second); die.Kind == "" && time.Now().Before(deadline); {
				ev, ok := nextEvent(t, evs, errs, oomID, time.Until(deadline))
				if !ok {
					break
				}
				switch ev.Kind {
				case driver.EventOOM:
					sawOOM = ev.OOMKilled
				case driver.EventDie:
					die = ev
				}
			}
			oinfo, _ := d.InspectContainer(ctx, oomID)
			t.Logf("%s: oom event %v, die %+v, inspect OOMKilled %v exit %d", h.rt, sawOOM, die, oinfo.OOMKilled, oinfo.ExitCode)
			if die.Kind != driver.EventDie || die.ExitCode != 137 {
				t.Errorf("%s OOM: die %+v, want exit 137", h.rt, die)
			}
			if sawOOM && oinfo.OOMKilled || h.rt != "runc" {
				break
			}
			if i == attempts-1 {
				t.Errorf("%s OOM: in %d attempts, never an oom event with OOMKilled", h.rt, attempts)
			}
		}

		cancel()
		select {
		case _, ok := <-evs:
			for ok {
				_, ok = <-evs
			}
		case <-time.After(5 * time.Second):
			t.Fatal("event channel not closed after cancel")
		}
		if err := <-errs; err != nil {
			t.Errorf("error after cancel: %v", err)
		}
	})
}

// TestLogs: demultiplexed plain text, follow until exit, since, and Close
// ending a followed stream.
func TestLogs(t *testing.T) {
	d := newDriver(t)
	forEachRuntime(t, d, func(t *testing.T, h *harness) {
		ctx := context.Background()
		id := h.create(h.spec("logs", "-lines 10 -every 50ms -serve=false"))
		h.start(id)
		rc, err := d.Logs(ctx, id, time.Time{}, true)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAllWithin(rc, 20*time.Second)
		rc.Close()
		if err != nil {
			t.Fatalf("follow: %v (got %q)", err, got)
		}
		var want strings.Builder
		for i := 1; i <= 10; i++ {
			if i%2 == 1 {
				fmt.Fprintf(&want, "line %d out\n", i)
			} else {
				fmt.Fprintf(&want, "line %d err\n", i)
			}
		}
		if string(got) != want.String() {
			t.Errorf("followed logs:\n%q\nwant\n%q", got, want.String())
		}
		if bytes.ContainsAny(got, "\x00\x01\x02") {
			t.Errorf("frame header bytes in logs: %q", got)
		}
		// Not following: the same, at once.
		rc, err = d.Logs(ctx, id, time.Time{}, false)
		if err != nil {
			t.Fatal(err)
		}
		again, err := readAllWithin(rc, 10*time.Second)
		rc.Close()
		if err != nil || string(again) != want.String() {
			t.Errorf("logs again: %q, %v", again, err)
		}
		// Since the future: nothing.
		rc, err = d.Logs(ctx, id, time.Now().Add(time.Hour), false)
		if err != nil {
			t.Fatal(err)
		}
		none, err := readAllWithin(rc, 10*time.Second)
		rc.Close()
		if err != nil || len(none) != 0 {
			t.Errorf("logs since the future: %q, %v", none, err)
		}

		// Closing a followed stream ends it while the program keeps logging.
		id2 := h.create(h.spec("logs-close", "-lines 100000 -every 50ms"))
		h.start(id2)
		rc, err = d.Logs(ctx, id2, time.Time{}, true)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(rc)
		if line, err := br.ReadString('\n'); err != nil || line != "line 1 out\n" {
			t.Fatalf("first followed line %q, %v", line, err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, br)
			done <- err
		}()
		time.Sleep(100 * time.Millisecond)
		rc.Close()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Fatal("reading a closed log stream did not end")
		}

		if _, err := d.Logs(ctx, "hershy-no-such-container-"+testRun, time.Time{}, false); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("logs of a missing container: %v", err)
		}
	})
}

func readAllWithin(r io.Reader, d time.Duration) ([]byte, error) {
	type res struct {
		b   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		b, err := io.ReadAll(r)
		ch <- res{b, err}
	}()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-time.After(d):
		return nil, fmt.Errorf("not done within %v", d)
	}
}

// TestStopRemove: graceful stop, kill after grace, and idempotent stop and
// remove; a removed container is ErrNotFound everywhere.
func TestStopRemove(t *testing.T) {
	d := newDriver(t)
	forEachRuntime(t, d, func(t *testing.T, h *harness) {
		ctx := context.Background()
		id := h.create(h.spec("stop", ""))
		h.start(id)
		h.waitReady(h.client(id))

		start := time.Now()
		if err := d.StopContainer(ctx, id, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		graceful := time.Since(start)
		info, err := d.InspectContainer(ctx, id)
		if err != nil || info.Running || info.ExitCode != 0 || info.FinishedAt.IsZero() {
			t.Errorf("after stop: %+v %v", info, err)
		}
		if graceful > 5*time.Second {
			t.Errorf("graceful stop took %v: SIGTERM did not reach the program", graceful)
		}
		t.Logf("%s: graceful stop %v", h.rt, graceful.Round(time.Millisecond))
		if err := d.StopContainer(ctx, id, time.Second); err != nil {
			t.Errorf("second stop: %v", err)
		}
		// Started again after a stop, it works (a new process to dial).
		h.start(id)
		h.waitReady(h.client(id))
		if err := d.RemoveContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := d.RemoveContainer(ctx, id); err != nil {
			t.Errorf("second remove: %v", err)
		}
		if err := d.StopContainer(ctx, id, time.Second); err != nil {
			t.Errorf("stop after remove: %v", err)
		}
		if _, err := d.InspectContainer(ctx, id); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("inspect after remove: %v", err)
		}
		if err := d.StartContainer(ctx, id); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("start after remove: %v", err)
		}
		if _, err := d.DialContext(ctx, id, "127.0.0.1:8080"); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("dial after remove: %v", err)
		}

		// A program that ignores SIGTERM is killed after the grace period.
		id2 := h.create(h.spec("stubborn", "-ignore-term"))
		h.start(id2)
		h.waitReady(h.client(id2))
		start = time.Now()
		if err := d.StopContainer(ctx, id2, time.Second); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		info, err = d.InspectContainer(ctx, id2)
		if err != nil || info.Running || info.ExitCode != 137 {
			t.Errorf("after kill: %+v %v", info, err)
		}
		if took < 900*time.Millisecond || took > 8*time.Second {
			t.Errorf("stop with 1s grace of a program ignoring SIGTERM took %v", took)
		}
		if _, err := d.DialContext(ctx, id2, "127.0.0.1:8080"); err == nil || errors.Is(err, driver.ErrNotFound) {
			t.Errorf("dial into a stopped container: %v", err)
		}
	})
}
