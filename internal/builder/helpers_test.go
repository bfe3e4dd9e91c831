package builder

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/docker"
	"github.com/hershyorg/hershy/internal/driver/imagetar"
	"github.com/hershyorg/hershy/internal/source"
)

// fakeDriver records program image builds and imports (only the image
// methods are implemented) and runs build sandboxes on the real engine when it has one:
// the Builder's plumbing is tested without making images, its sandbox for
// real. The Docker driver's own tests exercise the engine.
type fakeDriver struct {
	driver.Driver // nil: any other method panics

	engine *docker.Driver   // build sandboxes (RunJob, kept jobs, the sandbox image)
	jobs   []driver.JobSpec // every go command run: RunJob's, or a kept job's spec with the exec's command
	kept   map[string]driver.JobSpec

	mu       sync.Mutex
	images   map[string]bool
	specs    []driver.ImageSpec
	contexts []map[string]fileInfo // the context folder, as BuildImage saw it
	build    func(ctx context.Context, spec driver.ImageSpec, out io.Writer) (string, error)
	imports  []imported // what ImportImage got
	// importer, when set, replaces ImportImage's reading of the layer.
	importer func(ctx context.Context, spec driver.ImportSpec, rootfs io.Reader) (string, error)
}

// imported is one ImportImage call: the spec and the layer's entries.
type imported struct {
	spec  driver.ImportSpec
	files []imagetar.File
}

type fileInfo struct {
	mode    fs.FileMode
	content string
}

func (d *fakeDriver) BuildImage(ctx context.Context, spec driver.ImageSpec, out io.Writer) (string, error) {
	if strings.HasPrefix(spec.Tag, "hershy-build-sandbox:") && d.engine != nil {
		return d.engine.BuildImage(ctx, spec, out)
	}
	snap := map[string]fileInfo{}
	err := filepath.WalkDir(spec.ContextDir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(spec.ContextDir, p)
		fi, err := de.Info()
		if err != nil {
			return err
		}
		info := fileInfo{mode: fi.Mode()}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			info.content = string(b)
		}
		snap[filepath.ToSlash(rel)] = info
		return nil
	})
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	d.specs = append(d.specs, spec)
	d.contexts = append(d.contexts, snap)
	build := d.build
	d.mu.Unlock()
	id := "sha256:fake-" + spec.Tag
	if build != nil {
		if id, err = build(ctx, spec, out); err != nil {
			return "", err
		}
	}
	io.WriteString(out, "Successfully built "+id+"\n")
	d.mu.Lock()
	if d.images == nil {
		d.images = map[string]bool{}
	}
	d.images[spec.Tag] = true
	d.mu.Unlock()
	return id, nil
}

// ImportImage reads the layer as an engine would, records it and files
// the image under its tag.
func (d *fakeDriver) ImportImage(ctx context.Context, spec driver.ImportSpec, rootfs io.Reader) (string, error) {
	d.mu.Lock()
	importer := d.importer
	d.mu.Unlock()
	if importer != nil {
		return importer(ctx, spec, rootfs)
	}
	if err := spec.Check(); err != nil {
		return "", err
	}
	files, err := imagetar.ReadLayer(rootfs)
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.imports = append(d.imports, imported{spec: spec, files: files})
	if d.images == nil {
		d.images = map[string]bool{}
	}
	d.images[spec.Tag] = true
	return "sha256:fake-" + spec.Tag, nil
}

func (d *fakeDriver) ImageExists(ctx context.Context, ref string) (bool, error) {
	if strings.HasPrefix(ref, "hershy-build-sandbox:") && d.engine != nil {
		return d.engine.ImageExists(ctx, ref)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.images[ref], nil
}

// builds counts the images made: built or imported.
func (d *fakeDriver) builds() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.specs) + len(d.imports)
}

func (d *fakeDriver) RunJob(ctx context.Context, spec driver.JobSpec, out io.Writer) (driver.JobResult, error) {
	d.mu.Lock()
	d.jobs = append(d.jobs, spec)
	d.mu.Unlock()
	if d.engine == nil {
		return driver.JobResult{}, errors.New("fake driver: no engine for build sandboxes")
	}
	return d.engine.RunJob(ctx, spec, out)
}

// StartJob, ExecJob and the container methods a kept sandbox needs go to
// the engine.
func (d *fakeDriver) StartJob(ctx context.Context, spec driver.JobSpec) (string, error) {
	if d.engine == nil {
		return "", errors.New("fake driver: no engine for build sandboxes")
	}
	id, err := d.engine.StartJob(ctx, spec)
	if err == nil {
		d.mu.Lock()
		if d.kept == nil {
			d.kept = map[string]driver.JobSpec{}
		}
		d.kept[id] = spec
		d.mu.Unlock()
	}
	return id, err
}

func (d *fakeDriver) ExecJob(ctx context.Context, id string, spec driver.ExecSpec, out io.Writer) (driver.JobResult, error) {
	d.mu.Lock()
	job := d.kept[id]
	job.User, job.Cmd, job.WorkDir, job.Env = spec.User, spec.Cmd, spec.WorkDir, spec.Env
	d.jobs = append(d.jobs, job)
	d.mu.Unlock()
	return d.engine.ExecJob(ctx, id, spec, out)
}

func (d *fakeDriver) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	return d.engine.StopContainer(ctx, id, grace)
}

func (d *fakeDriver) InspectContainer(ctx context.Context, id string) (driver.ContainerInfo, error) {
	return d.engine.InspectContainer(ctx, id)
}

func (d *fakeDriver) RemoveContainer(ctx context.Context, id string) error {
	return d.engine.RemoveContainer(ctx, id)
}

var (
	_ driver.Driver    = (*fakeDriver)(nil)
	_ driver.JobKeeper = (*fakeDriver)(nil)
)

// Unused parts of the interface, spelled out so a call is a clear failure.
func (d *fakeDriver) DialContext(ctx context.Context, id, addr string) (net.Conn, error) {
	return nil, errors.New("fake driver: DialContext not implemented")
}

// testSharedCache is the shared cache layer of every test on this machine
// (testenv.SharedBuildCache; testenv imports this package, so it is spelled
// out here): warmed once, found warm by the other tests.
const testSharedCache = "/var/cache/hershy-test/go-shared"

// testEngine returns the real engine, or skips the test (fails it in CI).
func testEngine(t testing.TB) *docker.Driver {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the engine (-short)")
	}
	d, err := docker.New()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = d.Check(ctx, driver.RuntimeRunc, driver.RuntimeRunsc)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the engine is required in CI: %v", err)
		}
		t.Skipf("no engine: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// newTestBuilder makes a Builder over a temporary data folder whose build
// sandboxes run on the real engine (under runc unless opts says otherwise:
// faster, and the sandbox is the same) with no module proxy. Nothing it
// starts is left behind: the test checks for leftover build containers.
func newTestBuilder(t *testing.T, opts Options) (*Builder, *fakeDriver) {
	t.Helper()
	if opts.SharedCacheDir == "" {
		opts.SharedCacheDir = testSharedCache
	}
	if opts.GoProxy == "" {
		opts.GoProxy = "off"
	}
	if opts.Runtime == "" {
		opts.Runtime = driver.RuntimeRunc
	}
	if opts.Instance == "" {
		opts.Instance = "buildtest-" + rand.Text()[:10]
	}
	d := &fakeDriver{engine: testEngine(t)}
	b, err := New(t.TempDir(), d, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.GoVersion(); err != nil {
		t.Skipf("no Go toolchain: %v", err)
	}
	t.Cleanup(func() {
		b.Close()
		noJobsLeft(t, d.engine, opts.Instance)
	})
	return b, d
}

// noJobsLeft fails t if a build sandbox of instance still exists.
func noJobsLeft(t *testing.T, d *docker.Driver, instance string) {
	t.Helper()
	left, err := d.ListContainers(context.Background(), map[string]string{driver.LabelInstance: instance})
	if err != nil {
		t.Error(err)
	}
	for _, c := range left {
		t.Errorf("build sandbox left behind: %s", c.Name)
		d.RemoveContainer(context.Background(), c.ID)
	}
}

// storeSource writes a program's source as the Host stores it and returns
// the build request for it.
func storeSource(t *testing.T, dockerfile string, files source.Files) Request {
	t.Helper()
	if err := source.ValidateSource(dockerfile, files, source.Limits{}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "src")
	if err := source.WriteTree(dir, dockerfile, files); err != nil {
		t.Fatal(err)
	}
	id := source.BuildID("alice", dockerfile, files)
	return Request{BuildID: id, Owner: "alice", SourceDir: dir, Tag: "hersh-program-" + id, Labels: map[string]string{driver.LabelProgram: "alice-" + id + "-01234567"}}
}

// helloProgram imports the framework at a version that was never published,
// with the replace a program developed inside this repository would carry.
func helloProgram(main string) source.Files {
	return source.Files{
		"go.mod": `module example.com/hello

go 1.25

require github.com/hershyorg/hershy/hersh v0.42.0

replace github.com/hershyorg/hershy/hersh => ../../hersh
`,
		"main.go": main,
	}
}

const helloMain = `package main

import (
	"fmt"

	"example.com/hello/internal/greet"
	"github.com/hershyorg/hershy/hersh"
)

func main() {
	cfg := hersh.DefaultConfig()
	fmt.Println(greet.Hello(), hersh.EnvStateDir, cfg.APIAddr, cfg.SignalCapacity)
}
`

func helloFiles() source.Files {
	f := helloProgram(helloMain)
	f["internal/greet/greet.go"] = "package greet\n\nfunc Hello() string { return \"hello\" }\n"
	return f
}
