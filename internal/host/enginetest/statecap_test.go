package enginetest

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/statefs"
	"github.com/hershyorg/hershy/internal/testenv"
)

// fillerProgram writes into /state until it is full (testdata/filler).
func fillerProgram(t *testing.T) source.Files {
	t.Helper()
	main, err := os.ReadFile("testdata/filler/main.go")
	if err != nil {
		t.Fatal(err)
	}
	return source.Files{
		"main.go": string(main),
		"go.mod":  "module example.com/filler\n\ngo 1.25\n\nrequire github.com/hershyorg/hershy/hersh v0.0.0\n",
	}
}

const testStateCap = 8 << 20

// openCappedHost opens a Host on the engine whose programs' /state is
// capped at 16 MiB by default, 32 MiB at most.
func openCappedHost(t *testing.T, dir, rt string, d driver.Driver) *host.Host {
	t.Helper()
	return hosttest.Open(t, dir, rt, d, func(o *host.Options) { o.StateBytes, o.MaxStateBytes = 16<<20, 32<<20 })
}

// dataDirBytes is what the data directory takes on the host's root
// filesystem: every file's allocated blocks, not crossing into mounted
// filesystems (the program's image file is what they cost).
func dataDirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var root syscall.Stat_t
	if err := syscall.Stat(dir, &root); err != nil {
		t.Fatal(err)
	}
	var total int64
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return nil
		}
		if st.Dev != root.Dev {
			return fs.SkipDir
		}
		total += st.Blocks * 512
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

var fillLine = regexp.MustCompile(`fill: wrote=(\d+) enospc=(true|false) err=(.*)`)

// sendFill asks the filler to fill /state and returns what it logged.
func sendFill(t *testing.T, h *host.Host, id string) (wrote int64, enospc bool, msg string) {
	t.Helper()
	seen := len(hosttest.LogLines(t, h, id, "fill: "))
	hosttest.WatcherSend(t, h, id, "fill")
	line := waitLine(t, h, id, "fill: ", seen+1)
	m := fillLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("unexpected fill line %q", line)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n, m[2] == "true", m[3]
}

// waitLine waits for the n-th log line containing prefix and returns it
// (from prefix on).
func waitLine(t *testing.T, h *host.Host, id, prefix string, n int) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ls := hosttest.LogLines(t, h, id, prefix); len(ls) >= n {
			return ls[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line %d with %q; have %q", n, prefix, hosttest.LogLines(t, h, id, ""))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], dir) {
			out = append(out, fields[4])
		}
	}
	return out
}

// loopsUnder lists the loop devices backed by a file below dir.
func loopsUnder(t *testing.T, dir string) []string {
	t.Helper()
	paths, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var out []string
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil && strings.HasPrefix(string(b), dir) {
			out = append(out, p+": "+strings.TrimSpace(string(b)))
		}
	}
	return out
}

// The attack of issue 9: a program writes far past any reasonable size
// into /state. With the cap it gets ENOSPC inside its sandbox and the
// Host's disk grows by at most the cap; the cap and the data survive
// stop/start, a Host restart and a reboot (nothing mounted); delete leaves
// no mount, loop device or file.
func TestStateCapAgainstTheEngine(t *testing.T) {
	for _, rt := range []string{driver.RuntimeRunc, driver.RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) {
			d := testenv.Engine(t, rt)
			dir, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			h := openCappedHost(t, dir, rt, d)

			ctx := context.Background()

			// The cap is bounded by the operator's maximum.
			if _, err := h.Create(ctx, host.CreateRequest{UserID: "alice", Files: fillerProgram(t), Options: host.ProgramOptions{StateBytes: 64 << 20}}); !errors.Is(err, host.ErrInvalid) || !strings.Contains(err.Error(), "state_bytes") {
				t.Fatalf("state_bytes over the maximum: %v, want ErrInvalid naming state_bytes", err)
			}
			p, err := h.Create(ctx, host.CreateRequest{UserID: "alice", Files: fillerProgram(t), Options: host.ProgramOptions{StateBytes: testStateCap}})
			if err != nil {
				t.Fatal(err)
			}
			id := p.ID
			pdir := hosttest.ProgramDir(dir, id)
			deleted := false
			defer func() { // a failed run leaves no container behind
				if !deleted {
					h.Delete(context.Background(), id)
				}
			}()
			if u, ok := h.StateUsage(p); !ok || u.Limit != testStateCap {
				t.Fatalf("usage of a new program: %+v %v, want limit %d", u, ok, testStateCap)
			}
			if _, err := h.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			row := hosttest.WaitState(t, h, id, lifecycle.Ready, 3*time.Minute)
			testenv.CheckContract(t, d, row.ContainerID, testenv.Contract{Runtime: rt, StateDir: filepath.Join(pdir, "state"), Limits: host.DefaultLimits})

			before := dataDirBytes(t, dir)
			wrote, enospc, msg := sendFill(t, h, id)
			t.Logf("inside the sandbox: wrote %d bytes, then %s", wrote, msg)
			if !enospc {
				t.Fatalf("the program wrote %d bytes into a /state capped at %d and got %q, want ENOSPC", wrote, testStateCap, msg)
			}
			if wrote > testStateCap || wrote < testStateCap/2 {
				t.Errorf("wrote %d bytes before ENOSPC, want between %d and %d", wrote, testStateCap/2, testStateCap)
			}
			grew := dataDirBytes(t, dir) - before
			t.Logf("the data directory grew by %d bytes", grew)
			if grew > testStateCap {
				t.Errorf("the data directory grew by %d bytes, more than the cap %d", grew, testStateCap)
			}
			row, _ = h.Get(ctx, id)
			if u, ok := h.StateUsage(row); !ok || u.Used < wrote || u.Limit != testStateCap {
				t.Errorf("usage after the fill: %+v %v, want used >= %d, limit %d", u, ok, wrote, testStateCap)
			}

			// Stop and start: the data is there, the cap holds.
			if _, err := h.Stop(ctx, id); err != nil {
				t.Fatal(err)
			}
			hosttest.WaitState(t, h, id, lifecycle.Stopped, time.Minute)
			if _, err := h.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			hosttest.WaitState(t, h, id, lifecycle.Ready, time.Minute)
			wantStart := `start: marker="kept" err=<nil> fill=` + strconv.FormatInt(wrote, 10)
			if got := waitLine(t, h, id, "start: ", 2); got != wantStart {
				t.Fatalf("after stop/start the program sees %q, want %q", got, wantStart)
			}
			if more, enospc, msg := sendFill(t, h, id); !enospc || more > 1<<20 {
				t.Fatalf("after stop/start: wrote %d more, %q; want ENOSPC at once", more, msg)
			}

			// A Host restart re-adopts the running program; its /state
			// stays mounted and capped.
			hosttest.Close(t, h)
			h = openCappedHost(t, dir, rt, d)
			hosttest.WaitState(t, h, id, lifecycle.Ready, time.Minute)
			if more, enospc, msg := sendFill(t, h, id); !enospc || more > 1<<20 {
				t.Fatalf("after a Host restart: wrote %d more, %q; want ENOSPC at once", more, msg)
			}

			// A reboot: the program is stopped and nothing is mounted. The
			// next Host mounts /state when it opens, before any start.
			if _, err := h.Stop(ctx, id); err != nil {
				t.Fatal(err)
			}
			hosttest.WaitState(t, h, id, lifecycle.Stopped, time.Minute)
			hosttest.Close(t, h)
			if err := statefs.New(0, 0).Release(pdir); err != nil {
				t.Fatal(err)
			}
			if m := mountsUnder(t, dir); len(m) != 0 {
				t.Fatalf("still mounted after the release: %v", m)
			}
			h = openCappedHost(t, dir, rt, d)
			if m := mountsUnder(t, pdir); len(m) != 1 {
				t.Fatalf("after the Host opened: mounts %v, want /state's", m)
			}
			row, _ = h.Get(ctx, id)
			if u, ok := h.StateUsage(row); !ok || u.Used < wrote || u.Limit != testStateCap {
				t.Errorf("usage after a reboot: %+v %v", u, ok)
			}
			if _, err := h.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			hosttest.WaitState(t, h, id, lifecycle.Ready, time.Minute)
			if got := waitLine(t, h, id, "start: ", 3); !strings.HasPrefix(got, `start: marker="kept" err=<nil>`) {
				t.Fatalf("after a reboot the program sees %q", got)
			}
			if more, enospc, msg := sendFill(t, h, id); !enospc || more > 1<<20 {
				t.Fatalf("after a reboot: wrote %d more, %q; want ENOSPC at once", more, msg)
			}

			// Delete: no container, mount, loop device or file is left.
			if err := h.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			deleted = true
			if cs := hosttest.ContainersOf(t, d, id); len(cs) != 0 {
				t.Errorf("containers left: %v", cs)
			}
			if m := mountsUnder(t, dir); len(m) != 0 {
				t.Errorf("mounts left: %v", m)
			}
			if _, err := os.Lstat(pdir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("program folder left: %v", err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(loopsUnder(t, dir)) > 0 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond) // the sandbox's last hold goes with its processes
			}
			if l := loopsUnder(t, dir); len(l) != 0 {
				t.Errorf("loop devices left: %v", l)
			}
		})
	}
}

// TestSetStateBytesWhileRunning: while a program runs, its container's
// mount holds the /state filesystem, so a change the kernel cannot make
// online (a shrink) is refused with a conflict and changes nothing; a
// raise is made online where the kernel allows it, else refused alike.
// (Changes while stopped are package host's TestSetStateBytes.)
func TestSetStateBytesWhileRunning(t *testing.T) {
	rt := driver.RuntimeRunc
	d := testenv.Engine(t, rt)
	h := openCappedHost(t, t.TempDir(), rt, d)
	ctx := context.Background()
	p, err := h.Create(ctx, host.CreateRequest{UserID: "alice", Files: fillerProgram(t), Options: host.ProgramOptions{StateBytes: 12 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	id := p.ID
	defer func() {
		if err := h.Delete(ctx, id); err != nil {
			t.Error(err)
		}
	}()
	limit := func() int64 {
		t.Helper()
		row, err := h.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		u, ok := h.StateUsage(row)
		if !ok || u.Limit != row.Options.StateBytes {
			t.Fatalf("usage %+v %v disagrees with the record (%d)", u, ok, row.Options.StateBytes)
		}
		return u.Limit
	}
	if _, err := h.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	hosttest.WaitState(t, h, id, lifecycle.Ready, 3*time.Minute)
	if _, err := h.SetStateBytes(ctx, id, 8<<20); !errors.Is(err, host.ErrConflict) {
		t.Fatalf("lowering while running: %v, want ErrConflict", err)
	}
	if got := limit(); got != 12<<20 {
		t.Fatalf("a refused change changed the cap to %d", got)
	}
	_, err = h.SetStateBytes(ctx, id, 16<<20)
	if err != nil && !errors.Is(err, host.ErrConflict) {
		t.Fatal(err)
	}
	t.Logf("raising while running: %v; cap now %d", err, limit())
	if row, err := h.Get(ctx, id); err != nil || row.State != lifecycle.Ready {
		t.Fatalf("the program after the changes: %v %v", row.State, err)
	}
}
