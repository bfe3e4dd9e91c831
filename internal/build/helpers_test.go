package build

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/runtime"
	"github.com/hershyorg/hershy/internal/source"
)

// fakeDriver records image builds; only the image methods are implemented.
// It exists for unit tests of the Builder's argument plumbing: the real
// engine is exercised by the Docker driver's own integration tests.
type fakeDriver struct {
	runtime.Driver // nil: any other method panics

	mu       sync.Mutex
	images   map[string]bool
	specs    []runtime.ImageSpec
	contexts []map[string]fileInfo // the context folder, as BuildImage saw it
	build    func(ctx context.Context, spec runtime.ImageSpec, out io.Writer) (string, error)
}

type fileInfo struct {
	mode    fs.FileMode
	content string
}

func (d *fakeDriver) BuildImage(ctx context.Context, spec runtime.ImageSpec, out io.Writer) (string, error) {
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

func (d *fakeDriver) ImageExists(ctx context.Context, ref string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.images[ref], nil
}

func (d *fakeDriver) builds() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.specs)
}

var _ runtime.Driver = (*fakeDriver)(nil)

// Unused parts of the interface, spelled out so a call is a clear failure.
func (d *fakeDriver) DialContext(ctx context.Context, id, addr string) (net.Conn, error) {
	return nil, errors.New("fake driver: DialContext not implemented")
}

// sharedGoCache is the developer's (or CI's) own GOCACHE, so tests do not
// compile the standard library from scratch each run; the go command keeps
// its cache safe for concurrent and shared use.
func sharedGoCache(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" || dir == "off" {
		return filepath.Join(t.TempDir(), "gocache")
	}
	return dir
}

// newTestBuilder makes a Builder over a temporary data folder that can
// reach no module proxy: the framework must come from the Host's copy.
func newTestBuilder(t *testing.T, opts Options) (*Builder, *fakeDriver) {
	t.Helper()
	if opts.GoCacheDir == "" {
		opts.GoCacheDir = sharedGoCache(t)
	}
	if opts.GoProxy == "" {
		opts.GoProxy = "off"
	}
	d := &fakeDriver{}
	b, err := New(t.TempDir(), d, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.GoVersion(); err != nil {
		t.Skipf("no Go toolchain: %v", err)
	}
	return b, d
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
	id := source.BuildID(dockerfile, files)
	return Request{BuildID: id, SourceDir: dir, Tag: "hersh-program-" + id, Labels: map[string]string{runtime.LabelProgram: "alice-" + id + "-01234567"}}
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

// waitGone fails t unless no process mentioning marker in its command line
// is left within a few seconds.
func waitGone(t *testing.T, marker string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err == nil && strings.Contains(string(b), marker) {
				left = append(left, strings.ReplaceAll(string(b), "\x00", " "))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left behind: %q", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
