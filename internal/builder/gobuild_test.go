package builder

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/gomod"
	"github.com/hershyorg/hershy/internal/gomod/gomodtest"
	"github.com/hershyorg/hershy/internal/source"
)

// compile runs the Go stage alone (no image build) for owner alice into a
// fresh work folder.
func compile(t *testing.T, b *Builder, files source.Files) (bin string, log string, err error) {
	t.Helper()
	return compileCtx(context.Background(), t, b, files)
}

func compileCtx(ctx context.Context, t *testing.T, b *Builder, files source.Files) (bin string, log string, err error) {
	t.Helper()
	return compileAs(ctx, t, b, "alice", files)
}

// compileAs is compile for the given owner.
func compileAs(ctx context.Context, t *testing.T, b *Builder, owner string, files source.Files) (bin string, log string, err error) {
	t.Helper()
	work, err := os.MkdirTemp(b.workDir, "test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	bin = filepath.Join(t.TempDir(), "app")
	var buf bytes.Buffer
	err = b.compileGo(ctx, owner, work, files, bin, newLogLimiter(&buf, DefaultMaxLog), nil)
	return bin, buf.String(), err
}

func TestCompileGoWithFramework(t *testing.T) {
	for _, rt := range []string{driver.RuntimeRunc, driver.RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) {
			b, d := newTestBuilder(t, Options{Runtime: rt})
			start := time.Now()
			bin, log, err := compile(t, b, helloFiles())
			if err != nil {
				t.Fatalf("%v\nlog:\n%s", err, log)
			}
			t.Logf("compiled in %s", time.Since(start))
			if !strings.Contains(log, "go build (") || !strings.Contains(log, "build sandbox under "+rt) {
				t.Errorf("log does not announce the sandboxed compile:\n%s", log)
			}
			// The compile ran in a sandbox of the requested runtime with
			// network none (the driver's contract) and the build limits.
			jobs := d.jobs
			if len(jobs) == 0 {
				t.Fatal("no build sandbox was run")
			}
			job := jobs[len(jobs)-1]
			if job.Runtime != rt || job.User != "65532:65532" || job.Limits.MemoryBytes != DefaultBuildMemory {
				t.Errorf("build sandbox spec %+v", job)
			}
			checkStaticBinary(t, bin, b)
			out, err := exec.Command(bin).CombinedOutput()
			if err != nil {
				t.Fatalf("running the program: %v\n%s", err, out)
			}
			if got, want := strings.TrimSpace(string(out)), "hello HERSH_STATE_DIR :8080 50000"; got != want {
				t.Fatalf("program printed %q, want %q", got, want)
			}
		})
	}
}

// checkStaticBinary: a static linux executable, stripped, with no trace of
// the Host's folders.
func checkStaticBinary(t *testing.T, bin string, b *Builder) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("binary is dynamically linked (%v)", p.Type)
		}
	}
	if f.Section(".symtab") != nil {
		t.Error("binary has a symbol table; -ldflags=-s was not applied")
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{b.dataDir, b.framework, b.goRoot} {
		if bytes.Contains(data, []byte(leak)) {
			t.Errorf("binary contains the Host path %s", leak)
		}
	}
}

func TestCompileGoFrameworkWithoutRequire(t *testing.T) {
	// A go.mod that forgot the require line still builds: the build's copy
	// requires the Host's framework.
	b, _ := newTestBuilder(t, Options{})
	files := helloFiles()
	files["go.mod"] = "module example.com/hello\n\ngo 1.25\n"
	if _, log, err := compile(t, b, files); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log)
	}
}

func TestCompileGoVersionedReplace(t *testing.T) {
	b, _ := newTestBuilder(t, Options{})
	files := helloFiles()
	files["go.mod"] = `module example.com/hello

go 1.25

require github.com/hershyorg/hershy/hersh v0.42.0

replace github.com/hershyorg/hershy/hersh v0.42.0 => /nonexistent/hersh
`
	if _, log, err := compile(t, b, files); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log)
	}
}

func TestCompileGoIgnoresWorkspaceAndEnvFiles(t *testing.T) {
	b, _ := newTestBuilder(t, Options{})
	files := helloFiles()
	files["go.work"] = "go 1.25\n\nuse ./missing\n"
	// If the go command read a go/env file from the source, this would
	// make every compile fail.
	files[".config/go/env"] = "GOFLAGS=-toolexec=/bin/false\n"
	files["home/.config/go/env"] = "GOFLAGS=-toolexec=/bin/false\n"
	if _, log, err := compile(t, b, files); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log)
	}
}

func TestCompileGoCompileError(t *testing.T) {
	b, _ := newTestBuilder(t, Options{})
	files := helloProgram(`package main

import "github.com/hershyorg/hershy/hersh"

func main() {
	_ = hersh.DefaultConfig()
	undefinedThing()
}
`)
	_, log, err := compile(t, b, files)
	var be *Error
	if !errors.As(err, &be) || be.Step != "go build" {
		t.Fatalf("err = %v, want a go build *Error", err)
	}
	for _, want := range []string{"main.go:7:2: undefined: undefinedThing", "build: go build failed: exit status 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%s", want, err)
		}
	}
	if !strings.Contains(log, "undefined: undefinedThing") {
		t.Errorf("log does not hold the compiler's message:\n%s", log)
	}
	if strings.Contains(err.Error(), b.dataDir) || strings.Contains(log, b.dataDir) {
		t.Errorf("the Host's data path shows in the build's output:\n%s\n%s", err, log)
	}
}

func TestCompileGoTimeout(t *testing.T) {
	// A cold shared cache: compiling the standard library takes far longer
	// than the timeout. The cleanup checks that no build sandbox is left.
	b, _ := newTestBuilder(t, Options{GoTimeout: 1500 * time.Millisecond, SharedCacheDir: filepath.Join(t.TempDir(), "cold")})
	_, log, err := compile(t, b, helloFiles())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 1.5s") {
		t.Fatalf("err = %v, want a timeout\nlog:\n%s", err, log)
	}
}

func TestCompileGoCancel(t *testing.T) {
	b, _ := newTestBuilder(t, Options{SharedCacheDir: filepath.Join(t.TempDir(), "cold")})
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, _, err := compileCtx(ctx, t, b, helloFiles())
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timed out after") {
		t.Fatalf("err = %v, want the caller's deadline, not the build timeout", err)
	}
}

func TestCheckGoModule(t *testing.T) {
	b, d := newTestBuilder(t, Options{})
	tests := []struct {
		name, gomod, gosum, want string
		is                       error
	}{
		{"syntax", "module example.com/hello\n\nthis is not go.mod\n", "", "unknown directive", ErrGoMod},
		{"absolute replace", "module example.com/hello\n\ngo 1.25\n\nreplace example.com/x => /etc\n", "", "points outside", ErrGoMod},
		{"escaping replace", "module example.com/hello\n\ngo 1.25\n\nreplace example.com/x => ../x\n", "", "points outside", ErrGoMod},
		{"escaping replace 2", "module example.com/hello\n\ngo 1.25\n\nreplace example.com/x => ./a/../../x\n", "", "points outside", ErrGoMod},
		{"missing go.sum", "module example.com/hello\n\ngo 1.25\n\nrequire example.com/dep v1.0.0\n", "", "go.sum has no entry for go.mod:5: example.com/dep v1.0.0", ErrGoMod},
		{"newer go", "module example.com/hello\n\ngo 1.99\n", "", "go 1.99", ErrToolchain},
	}
	for _, tt := range tests {
		files := helloFiles()
		files["go.mod"] = tt.gomod
		if tt.gosum != "" {
			files["go.sum"] = tt.gosum
		}
		err := b.CheckGoModule(files)
		if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %v mentioning %q", tt.name, err, tt.is, tt.want)
		}
		// The build refuses the same, before any sandbox runs.
		n := len(d.jobs)
		if _, _, err := compile(t, b, files); !errors.Is(err, tt.is) || len(d.jobs) != n {
			t.Errorf("%s: compile = %v after %d sandboxes", tt.name, err, len(d.jobs)-n)
		}
	}
	// A replace inside the source is fine.
	files := helloFiles()
	files["go.mod"] += "\nrequire example.com/lib v1.0.0\n\nreplace example.com/lib => ./lib\n"
	files["lib/go.mod"] = "module example.com/lib\n\ngo 1.25\n"
	files["lib/lib.go"] = "package lib\n"
	if _, log, err := compile(t, b, files); err != nil {
		t.Fatalf("replace inside the source: %v\n%s", err, log)
	}
}

func TestCompileGoOlderGoLine(t *testing.T) {
	// The framework's go.mod says a newer go than the program's: the
	// build's copy raises the program's go line instead of failing.
	b, _ := newTestBuilder(t, Options{})
	files := helloFiles()
	files["go.mod"] = strings.Replace(files["go.mod"], "go 1.25", "go 1.21", 1)
	if _, log, err := compile(t, b, files); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log)
	}
}

func TestNoGoToolchain(t *testing.T) {
	nogo, err := New(t.TempDir(), &fakeDriver{}, Options{GoBinary: "/nonexistent/go", SharedCacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nogo.GoVersion(); !errors.Is(err, ErrNoGo) {
		t.Fatalf("GoVersion = %v, want ErrNoGo", err)
	}
	req := storeSource(t, "", helloFiles())
	if _, err := nogo.Build(context.Background(), req, nil); !errors.Is(err, ErrNoGo) {
		t.Fatalf("Build without Go = %v, want ErrNoGo", err)
	}
}

// countObjects counts a cache layer's outputs.
func countObjects(dir string) int {
	n := 0
	filepath.WalkDir(filepath.Join(dir, "o"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// TestSharedCacheLayer: after the warm-up, a user's build compiles only its
// own packages into the user's cache; the standard library and the
// framework come from the shared layer, which the build cannot write.
func TestSharedCacheLayer(t *testing.T) {
	b, _ := newTestBuilder(t, Options{})
	var log bytes.Buffer
	if err := b.WarmUp(context.Background(), &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	shared := countObjects(b.opts.SharedCacheDir)
	if shared < 50 {
		t.Fatalf("the shared layer holds %d objects after the warm-up", shared)
	}
	if _, out, err := compile(t, b, helloFiles()); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	user := filepath.Join(b.cacheDir, "users", "alice", "go-build")
	if n := countObjects(user); n == 0 || n > 12 {
		t.Errorf("alice's cache holds %d objects; want only her program's few (the shared layer has %d)", n, shared)
	}
	if n := countObjects(b.opts.SharedCacheDir); n != shared {
		t.Errorf("a user's build changed the shared layer: %d objects, was %d", n, shared)
	}
	// The warm-up is done once per toolchain and framework: a second costs
	// no sandbox.
	b2, d2 := newTestBuilder(t, Options{})
	if err := b2.WarmUp(context.Background(), nil); err != nil || len(d2.jobs) != 0 {
		t.Fatalf("second warm-up: %v, %d sandboxes", err, len(d2.jobs))
	}
}

// TestDependencies: a program's dependencies come through the configured
// proxy, checked against its go.sum, and the build itself has no network.
func TestDependencies(t *testing.T) {
	greet := gomodtest.NewModule(t, "example.com/greet", "v1.2.0", map[string]string{
		"greet.go": "package greet\n\nfunc Hello() string { return \"hello from a module\" }\n",
	})
	px := gomodtest.NewProxy(t, greet)
	program := func(sum string) source.Files {
		return source.Files{
			"go.mod":  "module example.com/bot\n\ngo 1.25\n\nrequire example.com/greet v1.2.0\n",
			"go.sum":  sum,
			"main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/greet\"\n)\n\nfunc main() { fmt.Println(greet.Hello()) }\n",
		}
	}
	b, _ := newTestBuilder(t, Options{GoProxy: px.URL + ",direct"})
	bin, log, err := compile(t, b, program(greet.GoSum()))
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log)
	}
	if out, err := exec.Command(bin).Output(); err != nil || strings.TrimSpace(string(out)) != "hello from a module" {
		t.Fatalf("program printed %q, %v", out, err)
	}
	if !strings.Contains(log, `"direct" not used`) && !strings.Contains(log, "direct not used") {
		t.Errorf("the log does not say that direct was dropped:\n%s", log)
	}

	// A go.sum that does not match what the proxy serves: refused before
	// the build.
	bad := strings.Replace(greet.GoSum(), greet.ZipHash, "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 1)
	b2, d2 := newTestBuilder(t, Options{GoProxy: px.URL})
	_, _, err = compile(t, b2, program(bad))
	if !errors.Is(err, gomod.ErrFetch) || !strings.Contains(err.Error(), "checksum mismatch") || len(d2.jobs) != 0 {
		t.Fatalf("err = %v after %d sandboxes, want a checksum mismatch before any", err, len(d2.jobs))
	}

	// vendor/: no proxy at all.
	before := len(px.Requests())
	files := program("")
	files["vendor/modules.txt"] = "# example.com/greet v1.2.0\n## explicit\nexample.com/greet\n"
	files["vendor/example.com/greet/greet.go"] = "package greet\n\nfunc Hello() string { return \"hello from vendor\" }\n"
	b3, _ := newTestBuilder(t, Options{GoProxy: px.URL})
	bin, log, err = compile(t, b3, files)
	if err != nil {
		t.Fatalf("vendored: %v\n%s", err, log)
	}
	if out, _ := exec.Command(bin).Output(); strings.TrimSpace(string(out)) != "hello from vendor" {
		t.Fatalf("vendored program printed %q", out)
	}
	if len(px.Requests()) != before {
		t.Errorf("a vendored build asked the proxy: %v", px.Requests()[before:])
	}
}

// TestBuildSandboxLeaks is the attack of issue 9: an assembly file whose
// #include names a Host file made `go build` on the Host open it, and the
// assembler's error printed its first token (the admin token) into the
// build log ("unrecognized instruction \"<token>\""); the canaries are single
// tokens for that reason. In the sandbox the Host's files do not exist.
func TestBuildSandboxLeaks(t *testing.T) {
	for _, rt := range []string{driver.RuntimeRunc, driver.RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) {
			t.Setenv("HERSHY_TEST_CANARY", "canaryEnv4f1c")
			b, d := newTestBuilder(t, Options{Runtime: rt})
			// A secret beside the data directory's work folder, at the
			// relative path an #include climbs to from the build's source.
			if err := os.WriteFile(filepath.Join(b.dataDir, "admin.token"), []byte("canaryToken9a7e\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			// Another user's stored source.
			other := storeSource(t, "", source.Files{"go.mod": "module example.com/victim\n", "main.go": "canaryVictim77d2\n"})
			for name, include := range map[string]string{
				"relative":      "../../../admin.token",
				"absolute":      filepath.Join(b.dataDir, "admin.token"),
				"environ":       "/proc/self/environ",
				"other's files": filepath.Join(other.SourceDir, "main.go"),
			} {
				files := helloProgram("package main\n\nfunc leak()\n\nfunc main() { leak() }\n")
				files["leak_amd64.s"] = "#include \"" + include + "\"\n"
				_, log, err := compile(t, b, files)
				if err == nil {
					t.Errorf("%s: the build succeeded", name)
					continue
				}
				all := log + err.Error()
				canaries := []string{"canaryToken9a7e", "canaryEnv4f1c", "canaryVictim77d2"}
				if !strings.HasPrefix(include, "/") || name == "environ" {
					// Unless the attacker wrote it in the source, no Host
					// path may show either.
					canaries = append(canaries, b.dataDir)
				}
				for _, canary := range canaries {
					if strings.Contains(all, canary) {
						t.Errorf("%s: the build's output reveals %q:\n%s", name, canary, all)
					}
				}
				if name != "environ" && !strings.Contains(all, "no such file") && !strings.Contains(all, "not found") {
					t.Errorf("%s: want the include to find no file:\n%s", name, all)
				}
			}
			// /proc/self/environ is the sandbox's: only what the Builder set.
			for _, job := range d.jobs {
				for _, kv := range job.Env {
					if strings.Contains(kv, "canaryEnv4f1c") || strings.Contains(kv, b.dataDir) {
						t.Errorf("the build sandbox's environment holds %q", kv)
					}
				}
			}
		})
	}
}

// TestBuildMemoryLimit: a build that needs more memory than the build
// sandbox has ends with a clear error, not a Host out of memory.
func TestBuildMemoryLimit(t *testing.T) {
	b, _ := newTestBuilder(t, Options{Limits: driver.Limits{MemoryBytes: 200 << 20}, TmpBytes: 64 << 20})
	// A map literal of 250,000 entries takes the compiler over 250 MiB.
	var big strings.Builder
	big.WriteString("package main\n\nvar table = map[int]string{\n")
	for i := range 250000 {
		fmt.Fprintf(&big, "%d: \"x%d\",\n", i, i)
	}
	big.WriteString("}\n\nfunc main() { println(len(table)) }\n")
	files := helloProgram(big.String())
	_, log, err := compile(t, b, files)
	if err == nil || !strings.Contains(err.Error(), "memory limit (200 MiB)") {
		t.Fatalf("err = %v\nlog tail: %s", err, tail(log, 500))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestReadBinary: the output folder was writable by the build, so what is
// there is hostile. A symbolic link to a Host file would have copied that
// file into the program's image, where the program could read it.
func TestReadBinary(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("\x7fELF secret"), 0o600)
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("\x7fELF program"), 0o755)
	link := filepath.Join(dir, "link")
	os.Symlink(secret, link)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(dir, "text")
	os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755)
	for name, src := range map[string]string{"symlink": link, "fifo": fifo, "folder": dir, "not a binary": text, "missing": filepath.Join(dir, "none")} {
		dst := filepath.Join(t.TempDir(), "app")
		if err := readBinary(src, dst); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := os.Stat(dst); err == nil {
			b, _ := os.ReadFile(dst)
			t.Errorf("%s: wrote %q", name, b)
		}
	}
	dst := filepath.Join(t.TempDir(), "app")
	if err := readBinary(good, dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "\x7fELF program" {
		t.Fatalf("copied %q", b)
	}
}
