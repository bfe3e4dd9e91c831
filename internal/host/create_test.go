package host_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
)

// TestCreateRejectsBadInputAndLeavesNothing: validation at the edge, with
// clear errors, and a failed create leaves no folder and no record.
func TestCreateRejectsBadInputAndLeavesNothing(t *testing.T) {
	f := hosttest.NewFake(t, fake.Options{})
	dir := t.TempDir()
	h := f.Open(t, dir)
	good := hosttest.CounterSource(0)
	tests := []struct {
		name string
		req  host.CreateRequest
		want string
	}{
		{"bad user id", host.CreateRequest{UserID: "../etc", Files: good}, "user_id"},
		{"upper-case user id", host.CreateRequest{UserID: "Alice", Files: good}, "user_id"},
		{"path traversal", host.CreateRequest{UserID: "bob", Files: source.Files{"../x.go": "package x", "go.mod": "module x"}}, ".."},
		{"absolute path", host.CreateRequest{UserID: "bob", Files: source.Files{"/etc/passwd": "x", "go.mod": "module x"}}, "absolute"},
		{"neither Go module nor Dockerfile", host.CreateRequest{UserID: "bob", Files: source.Files{"main.py": "print(1)"}}, "Go module"},
		{"bad restart policy", host.CreateRequest{UserID: "bob", Files: good, Options: host.ProgramOptions{RestartPolicy: "sometimes"}}, "restart policy"},
		{"tiny memory", host.CreateRequest{UserID: "bob", Files: good, Options: host.ProgramOptions{MemoryBytes: 1 << 20}}, "memory_bytes"},
		{"reserved env", host.CreateRequest{UserID: "bob", Files: good, Options: host.ProgramOptions{Env: map[string]string{"HERSH_STATE_DIR": "/"}}}, "reserved"},
		{"bad env name", host.CreateRequest{UserID: "bob", Files: good, Options: host.ProgramOptions{Env: map[string]string{"A=B": "x"}}}, "not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.Create(context.Background(), tt.req)
			if !errors.Is(err, host.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
	for _, sub := range []string{"programs", "tmp"} {
		if entries, _ := os.ReadDir(filepath.Join(dir, sub)); len(entries) != 0 {
			t.Errorf("%s/ holds %d entries after failed creates", sub, len(entries))
		}
	}
	if rows, total, _ := h.List(context.Background(), allPrograms()); total != 0 {
		t.Errorf("records after failed creates: %+v", rows)
	}
	// Identical source, identical build id; the program ids differ.
	a, err := h.Create(context.Background(), host.CreateRequest{UserID: "bob", Files: good})
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Create(context.Background(), host.CreateRequest{UserID: "bob", Files: good})
	if err != nil {
		t.Fatal(err)
	}
	if a.BuildID != b.BuildID || a.ID == b.ID {
		t.Fatalf("ids: %s/%s and %s/%s", a.ID, a.BuildID, b.ID, b.BuildID)
	}
	files, err := h.Source(context.Background(), a.ID)
	if err != nil || files["main.go"] != good["main.go"] {
		t.Fatalf("source read back: %v", err)
	}
	for _, id := range []string{a.ID, b.ID} {
		if err := h.Delete(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStopDuringStartLeavesNoContainer: a stop at any moment of a start
// (before the build, while it builds, while the container starts, once it
// is up) cancels what is in flight, and nothing is left running, then or
// after a minute of late results. The engine takes half a second to build
// and half a second to start a container, so the stops land in each step.
func TestStopDuringStartLeavesNoContainer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const step = 500 * time.Millisecond
		wait := func(ctx context.Context) error {
			select {
			case <-time.After(step):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		f := hosttest.NewFake(t, fake.Options{Hooks: fake.Hooks{
			Before: func(ctx context.Context, c fake.Call) error {
				// A Go program's image is imported; then its container starts.
				if (c.Method == "ImportImage" && strings.HasPrefix(c.Ref, "hersh-program-")) || c.Method == "StartContainer" {
					return wait(ctx)
				}
				return nil
			},
		}})
		h := f.Open(t, t.TempDir())
		ctx := context.Background()
		id := createProgram(t, h, host.CreateRequest{UserID: "carol", Files: hosttest.CounterSource(7)})
		for _, c := range []struct {
			pause time.Duration
			in    lifecycle.State // where the start is then
		}{
			{0, lifecycle.Building},
			{step / 2, lifecycle.Building},
			{step + step/2, lifecycle.Starting}, // the build is done: the image stays
			{3 * step, lifecycle.Ready},
		} {
			pause := c.pause
			startProgram(t, h, id)
			time.Sleep(pause)
			synctest.Wait()
			if p, _ := h.Supervised(id); p.State != c.in {
				t.Errorf("%s after the start: %s, want %s", pause, p.State, c.in)
			}
			if _, err := h.Stop(ctx, id); err != nil {
				t.Fatal(err)
			}
			settle(t, h, id, lifecycle.Stopped)
			time.Sleep(time.Minute) // a late result, if any, would arrive now
			if p := settle(t, h, id, lifecycle.Stopped); p.ContainerID != "" {
				t.Errorf("stop %s after start: the record keeps container %s", pause, p.ContainerID)
			}
			noContainers(t, f, id)
		}
		if err := h.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	})
}

// TestDockerfileProgram builds a program from a Dockerfile whose base is
// an image the Host built (no registry is reachable), and runs it; a base
// the engine lacks fails the build with the reason; a base image stays
// while a program built on it lives.
func TestDockerfileProgram(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := hosttest.NewFake(t, fake.Options{})
		h := f.Open(t, t.TempDir())
		ctx := context.Background()
		base := createProgram(t, h, host.CreateRequest{UserID: "dan", Files: hosttest.CounterSource(8)})
		startProgram(t, h, base)
		baseBuild := settle(t, h, base, lifecycle.Ready).BuildID

		df := "FROM " + host.ImageTag(baseBuild) + "\nCOPY motd.txt /etc/motd.txt\n"
		p, err := h.Create(ctx, host.CreateRequest{UserID: "dan", Dockerfile: df, Files: source.Files{"motd.txt": "hello\n"}})
		if err != nil {
			t.Fatal(err)
		}
		startProgram(t, h, p.ID)
		settle(t, h, p.ID, lifecycle.Ready) // it runs its base's program
		rc, err := h.BuildLog(ctx, p.BuildID, false)
		if err != nil {
			t.Fatal(err)
		}
		log, _ := io.ReadAll(rc)
		rc.Close()
		if !strings.Contains(string(log), "COPY motd.txt") {
			t.Fatalf("build log does not show the build:\n%s", log)
		}

		// A Dockerfile naming a base image the engine lacks fails with the reason.
		bad, err := h.Create(ctx, host.CreateRequest{UserID: "dan", Dockerfile: "FROM nowhere/missing:1\n", Files: source.Files{"x": "y"}})
		if err != nil {
			t.Fatal(err)
		}
		startProgram(t, h, bad.ID)
		if e := settle(t, h, bad.ID, lifecycle.Error); !strings.Contains(e.ErrorMsg, "build failed") || !strings.Contains(e.ErrorMsg, "nowhere/missing") {
			t.Fatalf("error = %q", e.ErrorMsg)
		}
		// Deleting the base first keeps its image while a container runs
		// on an image built on it (the engine refuses); deleting that
		// program then takes both.
		gone := func(id string) {
			t.Helper()
			if err := h.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if _, err := h.Get(ctx, id); !errors.Is(err, host.ErrNotFound) {
				t.Fatalf("%s still there after delete: %v", id, err)
			}
		}
		gone(bad.ID)
		gone(base)
		if !imageExists(t, f, host.ImageTag(baseBuild)) {
			t.Fatalf("the base image went while %s was built on it", p.ID)
		}
		gone(p.ID)
		for _, b := range []string{baseBuild, p.BuildID} {
			if imageExists(t, f, host.ImageTag(b)) {
				t.Errorf("image %s left after both programs were deleted", host.ImageTag(b))
			}
			if _, err := buildRecord(t, h, b); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("build record %s left: %v", b, err)
			}
		}
	})
}

// TestReplaceSourceKeepsState: a new source is a new build on the next
// restart, and the program's /state carries over.
func TestReplaceSourceKeepsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := hosttest.NewFake(t, fake.Options{})
		dir := t.TempDir()
		h := f.Open(t, dir)
		ctx := context.Background()
		id := createProgram(t, h, host.CreateRequest{UserID: "erin", Files: hosttest.CounterSource(9)})
		startProgram(t, h, id)
		p := settle(t, h, id, lifecycle.Ready)
		// The counter ticks every second and saves each count.
		time.Sleep(2500 * time.Millisecond)
		if b, err := os.ReadFile(filepath.Join(dir, "programs", id, "state", "hersh-context.json")); err != nil || !strings.Contains(string(b), `"count":3`) {
			t.Fatalf("the program's /state after its start and two ticks: %s %v", b, err)
		}
		q, err := h.ReplaceSource(ctx, id, "", hosttest.CounterSource(10))
		if err != nil {
			t.Fatal(err)
		}
		if q.BuildID == p.BuildID || q.State != lifecycle.Ready {
			t.Fatalf("after replacing the source: %+v", q)
		}
		if _, err := h.Restart(ctx, id); err != nil {
			t.Fatal(err)
		}
		if r := settle(t, h, id, lifecycle.Ready); r.BuildID != q.BuildID {
			t.Fatalf("running build %s, want %s", r.BuildID, q.BuildID)
		}
		starts := hosttest.LogLines(t, h, id, "counter starts at ")
		if len(starts) != 2 || starts[0] != "counter starts at 0" || starts[1] == "counter starts at 0" {
			t.Fatalf("the new build did not resume from /state: %q", starts)
		}
		if files, _ := h.Source(ctx, id); !strings.Contains(files["main.go"], "variant 10") {
			t.Fatal("source not replaced")
		}
		if err := h.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	})
}

// TestDockerfileBaseOwnership: Create and ReplaceSource refuse a Dockerfile
// built on another user's program image with ErrInvalid, before writing
// anything.
func TestDockerfileBaseOwnership(t *testing.T) {
	f := hosttest.NewFake(t, fake.Options{})
	dir := t.TempDir()
	h := f.Open(t, dir)
	ctx := context.Background()
	base := createProgram(t, h, host.CreateRequest{UserID: "gus", Files: hosttest.CounterSource(11)})
	baseBuild := stateOf(t, h, base).BuildID
	other := createProgram(t, h, host.CreateRequest{UserID: "hal", Files: hosttest.CounterSource(12)})
	onBase := "FROM " + host.ImageTag(baseBuild) + "\nENV COUNTER_STEP=10\n"
	files := source.Files{"greeting.txt": "hi\n"}

	_, err := h.Create(ctx, host.CreateRequest{UserID: "hal", Dockerfile: onBase, Files: files})
	if !errors.Is(err, host.ErrInvalid) || !strings.Contains(err.Error(), "no program of yours was built from it") {
		t.Fatalf("hal building on gus's program: err = %v", err)
	}
	_, err = h.Create(ctx, host.CreateRequest{UserID: "hal", Dockerfile: "FROM a b c d\n", Files: files})
	if !errors.Is(err, host.ErrInvalid) || !strings.Contains(err.Error(), "line 1: FROM requires either one or three arguments") {
		t.Fatalf("unparsable Dockerfile: err = %v", err)
	}
	_, err = h.ReplaceSource(ctx, other, onBase, files)
	if !errors.Is(err, host.ErrInvalid) || !strings.Contains(err.Error(), "no program of yours") {
		t.Fatalf("hal replacing his source to build on gus's program: err = %v", err)
	}
	if got, _ := h.Source(ctx, other); got["main.go"] != hosttest.CounterSource(12)["main.go"] || got[source.DockerfileName] != "" {
		t.Fatal("a refused ReplaceSource changed the stored source")
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "programs"))
	tmp, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	if len(entries) != 2 || len(tmp) != 0 {
		t.Fatalf("after refused requests: %d program folders, %d in tmp", len(entries), len(tmp))
	}

	// The owner may build on it, by Create and by ReplaceSource.
	mine, err := h.Create(ctx, host.CreateRequest{UserID: "gus", Dockerfile: onBase, Files: files})
	if err != nil {
		t.Fatalf("gus building on his own program: %v", err)
	}
	if _, err := h.ReplaceSource(ctx, mine.ID, onBase+"LABEL x=y\n", files); err != nil {
		t.Fatalf("gus replacing his source: %v", err)
	}
	for _, id := range []string{mine.ID, other, base} {
		if err := h.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}
