package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/testenv"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/logstore"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
)

// TestCreateRejectsBadInputAndLeavesNothing: validation at the edge, with
// clear errors, and a failed create leaves no folder and no record.
func TestCreateRejectsBadInputAndLeavesNothing(t *testing.T) {
	d := testenv.Engine(t, driver.RuntimeRunc)
	dir := t.TempDir()
	h := openHost(t, dir, driver.RuntimeRunc, d)
	defer h.Close()
	good := counterProgram(t)
	tests := []struct {
		name string
		req  CreateRequest
		want string
	}{
		{"bad user id", CreateRequest{UserID: "../etc", Files: good}, "user_id"},
		{"upper-case user id", CreateRequest{UserID: "Alice", Files: good}, "user_id"},
		{"path traversal", CreateRequest{UserID: "bob", Files: source.Files{"../x.go": "package x", "go.mod": "module x"}}, ".."},
		{"absolute path", CreateRequest{UserID: "bob", Files: source.Files{"/etc/passwd": "x", "go.mod": "module x"}}, "absolute"},
		{"neither Go module nor Dockerfile", CreateRequest{UserID: "bob", Files: source.Files{"main.py": "print(1)"}}, "Go module"},
		{"bad restart policy", CreateRequest{UserID: "bob", Files: good, Options: ProgramOptions{RestartPolicy: "sometimes"}}, "restart policy"},
		{"tiny memory", CreateRequest{UserID: "bob", Files: good, Options: ProgramOptions{MemoryBytes: 1 << 20}}, "memory_bytes"},
		{"reserved env", CreateRequest{UserID: "bob", Files: good, Options: ProgramOptions{Env: map[string]string{"HERSH_STATE_DIR": "/"}}}, "reserved"},
		{"bad env name", CreateRequest{UserID: "bob", Files: good, Options: ProgramOptions{Env: map[string]string{"A=B": "x"}}}, "not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.Create(context.Background(), tt.req)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
	for _, sub := range []string{"programs", "tmp"} {
		if entries, _ := os.ReadDir(filepath.Join(dir, sub)); len(entries) != 0 {
			t.Errorf("%s/ holds %d entries after failed creates", sub, len(entries))
		}
	}
	if rows, total, _ := h.List(context.Background(), storeFilterAll()); total != 0 {
		t.Errorf("records after failed creates: %+v", rows)
	}
	// Identical source, identical build id; the program ids differ.
	a, err := h.Create(context.Background(), CreateRequest{UserID: "bob", Files: good})
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Create(context.Background(), CreateRequest{UserID: "bob", Files: good})
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

// TestStopDuringStartLeavesNoContainer: a stop right after a start cancels
// the build or launch in flight, and nothing is left running.
func TestStopDuringStartLeavesNoContainer(t *testing.T) {
	for _, rt := range []string{driver.RuntimeRunc, driver.RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) {
			d := testenv.Engine(t, rt)
			h := openHost(t, t.TempDir(), rt, d)
			defer h.Close()
			ctx := context.Background()
			p, err := h.Create(ctx, CreateRequest{UserID: "carol", Files: variant(7)})
			if err != nil {
				t.Fatal(err)
			}
			for _, pause := range []time.Duration{0, 300 * time.Millisecond, 1200 * time.Millisecond} {
				if _, err := h.Start(ctx, p.ID); err != nil {
					t.Fatal(err)
				}
				time.Sleep(pause)
				if _, err := h.Stop(ctx, p.ID); err != nil {
					t.Fatal(err)
				}
				waitState(t, h, p.ID, lifecycle.Stopped, time.Minute)
				time.Sleep(200 * time.Millisecond) // a late result, if any, would arrive now
				if cs := containersOf(t, d, p.ID); len(cs) != 0 {
					t.Fatalf("stop %s after start left %d containers", pause, len(cs))
				}
			}
			if err := h.Delete(ctx, p.ID); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDockerfileProgram builds a program from a Dockerfile whose base is an
// image the Host built (no registry is reachable here), and runs it.
func TestDockerfileProgram(t *testing.T) {
	d := testenv.Engine(t, driver.RuntimeRunc)
	h := openHost(t, t.TempDir(), driver.RuntimeRunc, d)
	defer h.Close()
	ctx := context.Background()
	base, err := h.Create(ctx, CreateRequest{UserID: "dan", Files: variant(8)})
	if err != nil {
		t.Fatal(err)
	}
	h.Start(ctx, base.ID)
	waitState(t, h, base.ID, lifecycle.Ready, 3*time.Minute)

	df := "FROM " + imageTag(base.BuildID) + "\nCOPY motd.txt /etc/motd.txt\n"
	p, err := h.Create(ctx, CreateRequest{UserID: "dan", Dockerfile: df, Files: source.Files{"motd.txt": "hello\n"}})
	if err != nil {
		t.Fatal(err)
	}
	h.Start(ctx, p.ID)
	waitState(t, h, p.ID, lifecycle.Ready, 2*time.Minute)
	rc, err := h.BuildLog(ctx, p.BuildID, false)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := rc.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	rc.Close()
	if !strings.Contains(sb.String(), "COPY motd.txt") {
		t.Fatalf("build log does not show the build:\n%s", sb.String())
	}

	// A Dockerfile naming a base image the engine lacks fails with the reason.
	bad, err := h.Create(ctx, CreateRequest{UserID: "dan", Dockerfile: "FROM nowhere/missing:1\n", Files: source.Files{"x": "y"}})
	if err != nil {
		t.Fatal(err)
	}
	h.Start(ctx, bad.ID)
	e := waitState(t, h, bad.ID, lifecycle.Error, time.Minute)
	if !strings.Contains(e.ErrorMsg, "build failed") || !strings.Contains(e.ErrorMsg, "nowhere/missing") {
		t.Fatalf("error = %q", e.ErrorMsg)
	}
	// Deleting the base first keeps its image while a container runs on an
	// image built on it (the engine refuses); deleting that program then
	// takes both.
	gone := func(id string) {
		t.Helper()
		if err := h.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			if _, err := h.Get(ctx, id); errors.Is(err, ErrNotFound) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still there a minute after delete", id)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	exists := func(tag string) bool {
		ok, err := d.ImageExists(ctx, tag)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	gone(bad.ID)
	gone(base.ID)
	if !exists(imageTag(base.BuildID)) {
		t.Fatalf("the base image went while %s was built on it", p.ID)
	}
	gone(p.ID)
	for _, b := range []string{base.BuildID, p.BuildID} {
		if exists(imageTag(b)) {
			t.Errorf("image %s left after both programs were deleted", imageTag(b))
		}
		if _, err := buildRecord(t, h, b); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("build record %s left: %v", b, err)
		}
	}
}

// TestReplaceSourceKeepsState: a new source is a new build on the next
// restart, and the program's /state carries over.
func TestReplaceSourceKeepsState(t *testing.T) {
	d := testenv.Engine(t, driver.RuntimeRunc)
	dir := t.TempDir()
	h := openHost(t, dir, driver.RuntimeRunc, d)
	defer h.Close()
	ctx := context.Background()
	p, err := h.Create(ctx, CreateRequest{UserID: "erin", Files: variant(9)})
	if err != nil {
		t.Fatal(err)
	}
	h.Start(ctx, p.ID)
	waitState(t, h, p.ID, lifecycle.Ready, 3*time.Minute)
	stateFile := filepath.Join(dir, "programs", p.ID, "state", "hersh-context.json")
	deadline := time.Now().Add(30 * time.Second)
	for { // the counter ticks every second and is saved as it changes
		if b, err := os.ReadFile(stateFile); err == nil && strings.Contains(string(b), `"count":3`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the program never saved its counter to /state")
		}
		time.Sleep(200 * time.Millisecond)
	}
	q, err := h.ReplaceSource(ctx, p.ID, "", variant(10))
	if err != nil {
		t.Fatal(err)
	}
	if q.BuildID == p.BuildID || q.State != "Ready" {
		t.Fatalf("after replacing the source: %+v", q)
	}
	h.Restart(ctx, p.ID)
	r := waitState(t, h, p.ID, lifecycle.Ready, 3*time.Minute)
	if r.BuildID != q.BuildID {
		t.Fatalf("running build %s, want %s", r.BuildID, q.BuildID)
	}
	var starts []string // "counter starts at N" lines: one per container
	h.Logs(ctx, p.ID, logstore.Query{}, func(l logstore.Line) error {
		if i := strings.Index(l.Text, "counter starts at "); i >= 0 {
			starts = append(starts, l.Text[i:])
		}
		return nil
	})
	if len(starts) != 2 || starts[0] != "counter starts at 0" || starts[1] == "counter starts at 0" {
		t.Fatalf("the new build did not resume from /state: %q", starts)
	}
	files, _ := h.Source(ctx, p.ID)
	if !strings.Contains(files["main.go"], "variant 10") {
		t.Fatal("source not replaced")
	}
	if err := h.Delete(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
}
