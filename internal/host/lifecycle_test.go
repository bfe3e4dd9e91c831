package host_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

// TestLifecycle: a Go-source program through every verb. It is built
// (the fake go build) and started under the sandbox contract the Host
// asks for; a start while Ready is refused; stop leaves no container, and
// a start from Stopped reuses the image; restart makes a new container; a
// crash is seen on the event stream and restarted after the backoff, and
// /state carries the count over every restart; the output is captured;
// delete leaves no container, image, folder or record.
func TestLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := hosttest.NewFake(t, fake.Options{})
		dir := t.TempDir()
		h := f.Open(t, dir)
		ctx := context.Background()

		p, err := h.Create(ctx, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(0)})
		if err != nil {
			t.Fatal(err)
		}
		id := p.ID
		if p.State != lifecycle.Created || !strings.HasPrefix(id, "alice-"+p.BuildID+"-") {
			t.Fatalf("created %+v", p)
		}
		startProgram(t, h, id)
		p = settle(t, h, id, lifecycle.Ready)
		if p.Runtime != driver.RuntimeRunc || p.ContainerID == "" {
			t.Fatalf("ready program %+v", p)
		}
		if st := hosttest.WatcherGet(t, h, id, "/watcher/status"); st["isRunning"] != true {
			t.Fatalf("status %v", st)
		}
		// The contract as the Host asks for it (the engine's side of it is
		// the Docker driver's, checked in enginetest and drivertest).
		spec, _ := f.Spec(id)
		var writable []driver.Mount
		for _, m := range spec.Mounts {
			if !m.ReadOnly {
				writable = append(writable, m)
			}
		}
		want := driver.Mount{Source: filepath.Join(dir, "programs", id, "state"), Target: "/state"}
		if err := spec.Check(); err != nil || len(writable) != 1 || writable[0] != want || spec.Network ||
			spec.Limits != host.DefaultLimits || spec.User != fmt.Sprintf("%d:%d", builder.ProgramUID, builder.ProgramGID) ||
			spec.Labels[driver.LabelProgram] != id || spec.Labels[driver.LabelInstance] != h.Instance() || spec.Labels[driver.LabelBuild] != p.BuildID {
			t.Errorf("the container spec: %+v (check: %v)", spec, err)
		}
		if _, err := h.Start(ctx, id); !errors.Is(err, host.ErrConflict) {
			t.Fatalf("start while Ready: %v, want ErrConflict", err)
		}

		// Stop, then start without a rebuild.
		if _, err := h.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
		settle(t, h, id, lifecycle.Stopped)
		noContainers(t, f, id)
		b1, err := buildRecord(t, h, p.BuildID)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // a rebuild would be stamped later
		startProgram(t, h, id)
		p2 := settle(t, h, id, lifecycle.Ready)
		if b2, _ := buildRecord(t, h, p.BuildID); !b2.StartedAt.Equal(b1.StartedAt) {
			t.Fatal("start from Stopped rebuilt the image")
		}

		// Restart really restarts: a new container.
		if _, err := h.Restart(ctx, id); err != nil {
			t.Fatal(err)
		}
		p3 := settle(t, h, id, lifecycle.Ready)
		if p3.ContainerID == p2.ContainerID {
			t.Fatal("restart kept the same container")
		}

		// The restart policy can be changed by the operator.
		if q, err := h.SetRestartPolicy(ctx, id, "always"); err != nil || q.Policy != lifecycle.RestartAlways {
			t.Fatalf("set policy: %+v %v", q, err)
		}
		if _, err := h.SetRestartPolicy(ctx, id, "sometimes"); !errors.Is(err, host.ErrInvalid) {
			t.Fatalf("bad policy accepted: %v", err)
		}

		// A crash is seen on the event stream and restarted with backoff.
		hosttest.WatcherSend(t, h, id, "crash")
		p4 := hosttest.WaitState(t, h, id, lifecycle.Error, 30*time.Second)
		if p4.LastExitCode == nil || *p4.LastExitCode != 3 || p4.NextRestartAt.IsZero() || p4.RestartCount != 1 {
			t.Fatalf("after a crash: %+v", p4)
		}
		p5 := settle(t, h, id, lifecycle.Ready)
		if p5.RestartCount != 1 || p5.ContainerID == p3.ContainerID {
			t.Fatalf("after the automatic restart: %+v", p5)
		}
		// State survived every restart: each container started from the
		// count the one before it left in /state.
		if v := hosttest.WatcherGet(t, h, id, "/watcher/varState"); v["variables"] == nil {
			t.Fatalf("varState %v", v)
		}
		starts := hosttest.LogLines(t, h, id, "counter starts at ")
		if len(starts) != 4 || starts[0] != "counter starts at 0" {
			t.Fatalf("captured logs: %q, want 4 starts, the first at 0", starts)
		}
		for i := 1; i < len(starts); i++ {
			var prev, n int
			fmt.Sscanf(starts[i-1], "counter starts at %d", &prev)
			fmt.Sscanf(starts[i], "counter starts at %d", &n)
			if n <= prev {
				t.Errorf("start %d at %d after %d: /state was not carried over", i+1, n, prev)
			}
		}

		// History was kept.
		if tr, _ := h.Transitions(ctx, id, 0); len(tr) < 10 {
			t.Fatalf("transitions: %+v", tr)
		}

		// Delete leaves nothing behind.
		if err := h.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		noContainers(t, f, id)
		if imageExists(t, f, host.ImageTag(p.BuildID)) {
			t.Fatal("image left after delete")
		}
		if _, err := os.Stat(filepath.Join(dir, "programs", id)); !os.IsNotExist(err) {
			t.Fatalf("storage left after delete: %v", err)
		}
		if _, err := h.Get(ctx, id); !errors.Is(err, host.ErrNotFound) {
			t.Fatalf("record left after delete: %v", err)
		}
	})
}
