package enginetest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/testenv"
)

// imageTag names the image of a build (as the Host does).
func imageTag(buildID string) string { return "hersh-program-" + buildID }

// TestLifecycleAgainstTheEngine: a Go-source program compiled in the build
// sandbox and run under the sandbox contract, through every verb: its
// WatcherAPI answers through the container's network namespace, a crash
// comes on the engine's event stream and is restarted with backoff, its
// output is captured demultiplexed, its secrets are a read-only mount, and
// delete leaves nothing on the engine.
func TestLifecycleAgainstTheEngine(t *testing.T) {
	for _, rt := range []string{driver.RuntimeRunc, driver.RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) {
			d := testenv.Engine(t, rt)
			dir := t.TempDir()
			h := hosttest.Open(t, dir, rt, d)
			ctx := context.Background()

			p, err := h.Create(ctx, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(0)})
			if err != nil {
				t.Fatal(err)
			}
			id := p.ID
			// A failure below leaves the program's container running (a
			// Host that closes keeps its programs): delete it, so that
			// the next runtime's subtest, which builds the same image,
			// can remove that image.
			t.Cleanup(func() { h.Delete(context.Background(), id) })
			if _, err := h.SetSecret(ctx, id, "API_KEY", []byte("k")); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			p = hosttest.WaitState(t, h, id, lifecycle.Ready, 3*time.Minute)
			if p.Runtime != rt || p.ContainerID == "" {
				t.Fatalf("ready program %+v", p)
			}
			if st := hosttest.WatcherGet(t, h, id, "/watcher/status"); st["isRunning"] != true {
				t.Fatalf("status %v", st)
			}
			testenv.CheckContract(t, d, p.ContainerID, testenv.Contract{Runtime: rt, StateDir: filepath.Join(dir, "programs", id, "state"), Limits: host.DefaultLimits})
			// Secrets: a read-only mount at /run/secrets, never the environment.
			ins, err := d.Client().ContainerInspect(ctx, p.ContainerID)
			if err != nil {
				t.Fatal(err)
			}
			mounted := false
			for _, m := range ins.Mounts {
				if m.Destination == "/run/secrets" {
					mounted = !m.RW && m.Source == filepath.Join(dir, "programs", id, "secrets")
				}
			}
			if !mounted {
				t.Errorf("no read-only /run/secrets mount: %+v", ins.Mounts)
			}
			for _, kv := range ins.Config.Env {
				if strings.Contains(kv, "API_KEY") {
					t.Errorf("secret in the environment: %s", kv)
				}
			}

			// Stop and start: no container left between them.
			if _, err := h.Stop(ctx, id); err != nil {
				t.Fatal(err)
			}
			hosttest.WaitState(t, h, id, lifecycle.Stopped, time.Minute)
			if cs := hosttest.ContainersOf(t, d, id); len(cs) != 0 {
				t.Fatalf("containers after stop: %+v", cs)
			}
			if _, err := h.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			p2 := hosttest.WaitState(t, h, id, lifecycle.Ready, time.Minute)

			// A crash is seen on the event stream and restarted with backoff.
			hosttest.WatcherSend(t, h, id, "crash")
			p3 := hosttest.WaitState(t, h, id, lifecycle.Error, 30*time.Second)
			if p3.LastExitCode == nil || *p3.LastExitCode != 3 || p3.NextRestartAt.IsZero() || p3.RestartCount != 1 {
				t.Fatalf("after a crash: %+v", p3)
			}
			p4 := hosttest.WaitState(t, h, id, lifecycle.Ready, time.Minute)
			if p4.RestartCount != 1 || p4.ContainerID == p2.ContainerID {
				t.Fatalf("after the automatic restart: %+v", p4)
			}
			// State survived every restart.
			if v := hosttest.WatcherGet(t, h, id, "/watcher/varState"); v["variables"] == nil {
				t.Fatalf("varState %v", v)
			}
			// Logs were captured, demultiplexed. The capture follows the
			// engine's stream: the last start's line may come after Ready.
			var starts []string
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				starts = hosttest.LogLines(t, h, id, "counter starts at ")
				if len(starts) >= 3 || time.Now().After(deadline) {
					break
				}
			}
			if len(starts) != 3 || starts[0] != "counter starts at 0" || starts[2] == "counter starts at 0" {
				t.Fatalf("captured starts %q", starts)
			}

			// Delete leaves nothing behind.
			if err := h.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			if cs := hosttest.ContainersOf(t, d, id); len(cs) != 0 {
				t.Fatalf("containers after delete: %+v", cs)
			}
			if ok, _ := d.ImageExists(ctx, imageTag(p.BuildID)); ok {
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
}
