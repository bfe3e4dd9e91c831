package hosttest

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/statefs"
)

// Fake is a test's in-memory engine (package fake) with what a Host on it
// needs besides: Go-source builds (gobuild.go) and a record of the
// container specs the Host asked for. Its methods script the engine as
// fake.Driver's do (Exit, Crash, SetProgram...), except SetHooks, which
// keeps the Fake's own build step.
type Fake struct {
	*fake.Driver
	goBinary string // the Host's go command (fakeGo)
	shared   string // the builds' shared cache layer, one per Fake

	mu    sync.Mutex
	specs map[string]driver.ContainerSpec // program id -> the last CreateContainer spec
}

// NewFake returns an engine with no images and no containers, closed when
// the test ends (after the Hosts opened on it later). opts are the
// engine's, except Job: the build sandbox's jobs are always goBuild. A
// container whose image no Program was set for (Dockerfile programs, and
// Go programs without a marker) runs opts.Program, fake.Idle when nil.
// It works inside a testing/synctest bubble and outside one.
func NewFake(t testing.TB, opts fake.Options) *Fake {
	t.Helper()
	dir := t.TempDir()
	goBin, err := fakeGo(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := &Fake{goBinary: goBin, shared: filepath.Join(dir, "go-shared"), specs: map[string]driver.ContainerSpec{}}
	opts.Job = goBuild
	opts.Hooks = f.wrap(opts.Hooks)
	f.Driver = fake.New(opts)
	t.Cleanup(func() { f.Driver.Close() })
	return f
}

// SetHooks replaces the test's hooks for the calls that start from now on.
func (f *Fake) SetHooks(h fake.Hooks) { f.Driver.SetHooks(f.wrap(h)) }

// wrap adds the Fake's steps to a test's hooks: the spec of every create
// is recorded before the test's Before runs, and an image's Program is
// chosen before the test's Build runs (a Dockerfile image) or After sees
// the import (a Go program's image).
func (f *Fake) wrap(h fake.Hooks) fake.Hooks {
	return fake.Hooks{
		Before: func(ctx context.Context, c fake.Call) error {
			if spec, ok := c.Spec.(driver.ContainerSpec); ok && c.Method == "CreateContainer" {
				f.mu.Lock()
				f.specs[spec.Labels[driver.LabelProgram]] = spec
				f.mu.Unlock()
			}
			if h.Before != nil {
				return h.Before(ctx, c)
			}
			return nil
		},
		After: func(ctx context.Context, c fake.Call, err error) error {
			if c.Method == "ImportImage" && err == nil {
				// A Go program's image: its /app names its Program.
				if app, ok := f.Driver.ImageFile(c.Ref, "/app"); ok {
					f.dispatchBinary(c.Ref, app)
				}
			}
			if h.After != nil {
				return h.After(ctx, c, err)
			}
			return err
		},
		Build: func(ctx context.Context, spec driver.ImageSpec, out io.Writer) error {
			if err := f.dispatch(spec); err != nil {
				return err
			}
			if h.Build != nil {
				return h.Build(ctx, spec, out)
			}
			return nil
		},
	}
}

// Spec returns the spec of the last container the Host asked the engine
// to create for a program (whether or not the create succeeded).
func (f *Fake) Spec(programID string) (driver.ContainerSpec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.specs[programID]
	return s, ok
}

// Open opens a Host on f in dir with the test settings, changed by more,
// and closes it when the test ends unless Close closed it first. The
// settings are Options', with the Fake's go command and shared build
// cache, no module proxy (a test program has no dependencies to fetch),
// and uncapped /state (no root or loop device needed; CappedState turns
// the cap on). It returns once the Host's warm-up of the build cache is
// done, so that the warm-up's calls to the engine do not mix with the
// test's.
func (f *Fake) Open(t testing.TB, dir string, more ...func(*host.Options)) *host.Host {
	t.Helper()
	o := Options(t, dir, driver.RuntimeRunc)
	o.UncappedState = true
	o.Build = builder.Options{GoBinary: f.goBinary, SharedCacheDir: f.shared, GoProxy: "off"}
	for _, m := range more {
		m(&o)
	}
	h := open(t, o, f.Driver)
	if o.Build.SharedCacheDir == f.shared {
		f.waitWarm(t)
	}
	return h
}

// waitWarm waits until the shared cache layer is stamped warm.
func (f *Fake) waitWarm(t testing.TB) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if m, _ := filepath.Glob(filepath.Join(f.shared, "warm-*")); len(m) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the Host's warm-up of the build cache did not finish in a minute")
		}
	}
}

// OpenFake opens a Host on a new fake engine in a temporary directory
// (Fake.Open) and returns both.
func OpenFake(t testing.TB, more ...func(*host.Options)) (*host.Host, *Fake) {
	t.Helper()
	f := NewFake(t, fake.Options{})
	return f.Open(t, t.TempDir(), more...), f
}

// CappedState returns a Host option for tests of /state's size cap: it
// turns the cap on. The cap needs root, loop devices and e2fsprogs
// (package statefs), not an engine: without them the test is skipped,
// except in CI (the CI variable set), where it fails, as statefs's own
// tests do.
func CappedState(t testing.TB) func(*host.Options) {
	t.Helper()
	if err := statefs.Check(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("capped /state is required in CI: %v", err)
		}
		t.Skip(err)
	}
	return func(o *host.Options) { o.UncappedState = false }
}

// ProgramDir is a program's folder in a Host's data directory.
func ProgramDir(dataDir, id string) string { return filepath.Join(dataDir, "programs", id) }

// OpenVolumes opens a Host, as Open does, on f made an engine that keeps
// programs' volumes and secrets itself (fake.WithVolumes: the Kubernetes
// driver's way), and returns that engine too.
func (f *Fake) OpenVolumes(t testing.TB, dir string, more ...func(*host.Options)) (*host.Host, *fake.Volumes) {
	t.Helper()
	v := fake.WithVolumes(f.Driver, t.TempDir())
	o := Options(t, dir, driver.RuntimeRunc)
	o.Build = builder.Options{GoBinary: f.goBinary, SharedCacheDir: f.shared, GoProxy: "off"}
	o.StateBytes, o.MaxStateBytes = 16<<20, 64<<20
	for _, m := range more {
		m(&o)
	}
	h := open(t, o, v)
	f.waitWarm(t)
	return h, v
}
