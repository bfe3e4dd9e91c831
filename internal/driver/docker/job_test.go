package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// syncBuffer is a bytes.Buffer safe for the driver's copy goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (h *harness) job(name string, cmd ...string) driver.JobSpec {
	pids := int64(64)
	if h.rt == driver.RuntimeRunsc {
		pids = MinPidsRunsc
	}
	return driver.JobSpec{
		Name:    fmt.Sprintf("hershy-test-%s-%s-%s", testRun, name, h.rt),
		Image:   probeImage(h.t, h.d),
		Runtime: h.rt,
		User:    "10001:10001",
		Cmd:     append([]string{"/probe", "-serve=false"}, cmd...),
		Labels:  map[string]string{driver.LabelInstance: testRun, driver.LabelJob: "test"},
		Limits:  driver.Limits{MemoryBytes: 64 << 20, CPUs: 0.5, Pids: pids},
	}
}

// jobsLeft lists the containers named like spec that still exist.
func jobsLeft(t *testing.T, d *Driver, name string) []string {
	t.Helper()
	cs, err := d.ListContainers(context.Background(), map[string]string{driver.LabelInstance: testRun, driver.LabelJob: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, c := range cs {
		if c.Name == name {
			left = append(left, c.ID)
		}
	}
	return left
}

func TestRunJob(t *testing.T) {
	d := newDriver(t)
	forEachRuntime(t, d, func(t *testing.T, h *harness) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()

		t.Run("output and exit code", func(t *testing.T) {
			spec := h.job("job-exit", "-lines", "4", "-exit", "7")
			// -exit runs before -lines in the probe: print first, then exit.
			spec.Cmd = []string{"/probe", "-serve=false", "-print-ifaces", "-exit", "7"}
			var out syncBuffer
			res, err := d.RunJob(ctx, spec, &out)
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != 7 || res.OOMKilled {
				t.Fatalf("result %+v, output %q", res, out.String())
			}
			// Network "none": only the loopback interface.
			if !strings.Contains(out.String(), "ifaces: lo ") || !strings.Contains(out.String(), "exiting with 7") {
				t.Fatalf("output %q", out.String())
			}
			if left := jobsLeft(t, d, spec.Name); len(left) != 0 {
				t.Fatalf("job container left behind: %v", left)
			}
		})

		t.Run("stdout and stderr", func(t *testing.T) {
			var out syncBuffer
			res, err := d.RunJob(ctx, h.job("job-lines", "-lines", "6"), &out)
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("%+v, %v", res, err)
			}
			for i := 1; i <= 6; i++ {
				if !strings.Contains(out.String(), fmt.Sprintf("line %d ", i)) {
					t.Fatalf("line %d missing from %q", i, out.String())
				}
			}
		})

		t.Run("mounts and read-only root", func(t *testing.T) {
			ro, rw := t.TempDir(), t.TempDir()
			os.Chmod(rw, 0o777)
			os.WriteFile(filepath.Join(ro, "in.txt"), []byte("given"), 0o644)
			spec := h.job("job-mounts")
			spec.Mounts = []driver.Mount{{Source: ro, Target: "/in", ReadOnly: true}, {Source: rw, Target: "/out"}}
			spec.Cmd = []string{"/probe", "-serve=false", "-copy", "/in/in.txt:/out/copy.txt", "-copy", "/in/in.txt:/in/nope.txt", "-copy", "/in/in.txt:/root.txt"}
			var out syncBuffer
			if _, err := d.RunJob(ctx, spec, &out); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(rw, "copy.txt")); err != nil || string(b) != "given" {
				t.Fatalf("writable mount: %q, %v (output %q)", b, err, out.String())
			}
			if _, err := os.Stat(filepath.Join(ro, "nope.txt")); err == nil {
				t.Fatal("the job wrote into a read-only mount")
			}
			if n := strings.Count(out.String(), "copy failed"); n != 2 {
				t.Fatalf("want 2 refused writes (read-only mount, read-only root), output %q", out.String())
			}
		})

		t.Run("memory limit", func(t *testing.T) {
			var out syncBuffer
			spec := h.job("job-oom", "-eat", "200")
			res, err := d.RunJob(ctx, spec, &out)
			if err != nil {
				t.Fatal(err)
			}
			// Under runsc the engine's oom flag is not reliable (see the
			// driver's OOM test); the kill itself is.
			if res.ExitCode != 137 || (h.rt == driver.RuntimeRunc && !res.OOMKilled) {
				t.Fatalf("result %+v, output %q", res, out.String())
			}
		})

		t.Run("cancel kills and removes", func(t *testing.T) {
			spec := h.job("job-cancel", "-sleep", "1h")
			cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
			defer ccancel()
			_, err := d.RunJob(cctx, spec, &syncBuffer{})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want the context's deadline", err)
			}
			if left := jobsLeft(t, d, spec.Name); len(left) != 0 {
				t.Fatalf("cancelled job left behind: %v", left)
			}
		})
	})
}

func TestJobConfigRefusals(t *testing.T) {
	good := driver.JobSpec{
		Image: "img", Runtime: driver.RuntimeRunsc, User: "65532:65532", Cmd: []string{"/x"}, WorkDir: "/src",
		Limits: driver.Limits{MemoryBytes: 1 << 30, CPUs: 1, Pids: 256},
	}
	cfg, hc, err := jobConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if hc.NetworkMode != "none" || !hc.ReadonlyRootfs || hc.CapDrop[0] != "ALL" || cfg.Labels[driver.LabelManaged] != "true" ||
		len(hc.PortBindings) != 0 || hc.LogConfig.Type != "none" || cfg.Healthcheck == nil || cfg.Healthcheck.Test[0] != "NONE" {
		t.Fatalf("contract not applied: %+v %+v", cfg, hc)
	}
	if hc.Memory != 1<<30 || hc.MemorySwap != 1<<30 || hc.NanoCPUs != 1e9 || hc.PidsLimit == nil || *hc.PidsLimit != 256 {
		t.Fatalf("limits not applied: memory %d/%d, cpus %d, pids %v", hc.Memory, hc.MemorySwap, hc.NanoCPUs, hc.PidsLimit)
	}
	for name, mutate := range map[string]func(*driver.JobSpec){
		"no image":         func(s *driver.JobSpec) { s.Image = "" },
		"no command":       func(s *driver.JobSpec) { s.Cmd = nil },
		"root":             func(s *driver.JobSpec) { s.User = "0:0" },
		"named user":       func(s *driver.JobSpec) { s.User = "builder" },
		"other runtime":    func(s *driver.JobSpec) { s.Runtime = "kata" },
		"no memory limit":  func(s *driver.JobSpec) { s.Limits.MemoryBytes = 0 },
		"few pids (runsc)": func(s *driver.JobSpec) { s.Limits.Pids = 64 },
		"relative workdir": func(s *driver.JobSpec) { s.WorkDir = "src" },
		"mount over /proc": func(s *driver.JobSpec) { s.Mounts = []driver.Mount{{Source: "/x", Target: "/proc/x"}} },
		"relative source":  func(s *driver.JobSpec) { s.Mounts = []driver.Mount{{Source: "x", Target: "/x"}} },
		"tmpfs over limit": func(s *driver.JobSpec) { s.TmpBytes = 2 << 30 },
	} {
		s := good
		mutate(&s)
		if _, _, err := jobConfig(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
