package build

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/source"
)

// compile runs the Go stage alone (no image build) into a fresh work folder.
func compile(t *testing.T, b *Builder, files source.Files) (bin string, log string, err error) {
	t.Helper()
	work, err := os.MkdirTemp(b.workDir, "test-")
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(t.TempDir(), "app")
	var buf bytes.Buffer
	err = b.compileGo(context.Background(), work, files, bin, newLogLimiter(&buf, DefaultMaxLog))
	return bin, buf.String(), err
}

func TestCompileGoWithFramework(t *testing.T) {
	b, _ := newTestBuilder(t, Options{})
	start := time.Now()
	bin, log, err := compile(t, b, helloFiles())
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log)
	}
	t.Logf("compiled in %s", time.Since(start))
	if !strings.Contains(log, "go build (") {
		t.Errorf("log does not announce the compile:\n%s", log)
	}

	// A static linux executable: no interpreter, no dynamic section.
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
	// -trimpath: no trace of the Host's folders in the binary.
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{b.dataDir, b.framework} {
		if bytes.Contains(data, []byte(leak)) {
			t.Errorf("binary contains the Host path %s", leak)
		}
	}

	out, err := exec.Command(bin).CombinedOutput()
	if err != nil {
		t.Fatalf("running the program: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "hello HERSH_STATE_DIR :8080 50000"; got != want {
		t.Fatalf("program printed %q, want %q", got, want)
	}
}

func TestCompileGoFrameworkWithoutRequire(t *testing.T) {
	// A go.mod that forgot the require line still builds (-mod=mod adds it,
	// resolving to the Host's copy).
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
}

func TestCompileGoTimeout(t *testing.T) {
	// A cold build cache: compiling the standard library takes seconds.
	b, _ := newTestBuilder(t, Options{GoTimeout: 700 * time.Millisecond, GoCacheDir: filepath.Join(t.TempDir(), "cold")})
	start := time.Now()
	_, log, err := compile(t, b, helloFiles())
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 700ms") {
		t.Fatalf("err = %v, want a timeout\nlog:\n%s", err, log)
	}
	if took > 10*time.Second {
		t.Errorf("the build took %s to give up", took)
	}
	// The compiler and linker ran in the build's process group: none is left.
	waitGone(t, b.workDir)
}

func TestCompileGoCancel(t *testing.T) {
	b, _ := newTestBuilder(t, Options{GoCacheDir: filepath.Join(t.TempDir(), "cold")})
	work, err := os.MkdirTemp(b.workDir, "test-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err = b.compileGo(ctx, work, helloFiles(), filepath.Join(work, "app"), newLogLimiter(&bytes.Buffer{}, DefaultMaxLog))
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timed out after") {
		t.Fatalf("err = %v, want the caller's deadline, not the build timeout", err)
	}
	waitGone(t, b.workDir)
}

func TestCompileGoToolchainTooNew(t *testing.T) {
	b, _ := newTestBuilder(t, Options{})
	files := helloFiles()
	files["go.mod"] = "module example.com/hello\n\ngo 1.99\n"
	_, _, err := compile(t, b, files)
	if !errors.Is(err, ErrToolchain) || !strings.Contains(err.Error(), "go 1.99") || !strings.Contains(err.Error(), b.goVersion) {
		t.Fatalf("err = %v, want ErrToolchain naming both versions", err)
	}
}

func TestCompileGoBadGoMod(t *testing.T) {
	b, _ := newTestBuilder(t, Options{})
	tests := []struct {
		name, gomod, want string
	}{
		{"syntax", "module example.com/hello\n\nthis is not go.mod\n", "unknown directive"},
		{"absolute replace", "module example.com/hello\n\ngo 1.25\n\nreplace example.com/x => /etc\n", "points outside"},
		{"escaping replace", "module example.com/hello\n\ngo 1.25\n\nreplace example.com/x => ../x\n", "points outside"},
		{"escaping replace 2", "module example.com/hello\n\ngo 1.25\n\nreplace example.com/x => ./a/../../x\n", "points outside"},
	}
	for _, tt := range tests {
		files := helloFiles()
		files["go.mod"] = tt.gomod
		_, _, err := compile(t, b, files)
		if !errors.Is(err, ErrGoMod) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want ErrGoMod mentioning %q", tt.name, err, tt.want)
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

func TestCheckGoVersion(t *testing.T) {
	b := &Builder{goVersion: "go1.26.8"}
	for need, ok := range map[string]bool{"": true, "1.21": true, "1.26": true, "1.26.8": true, "1.26.9": false, "1.27": false, "2.0": false} {
		if err := b.checkGoVersion(need); (err == nil) != ok {
			t.Errorf("checkGoVersion(%q) = %v", need, err)
		}
	}
	if err := b.checkGoVersion("banana"); !errors.Is(err, ErrGoMod) {
		t.Errorf("checkGoVersion(banana) = %v, want ErrGoMod", err)
	}
}

func TestNoGoToolchain(t *testing.T) {
	b, _ := newTestBuilder(t, Options{})
	nogo, err := New(t.TempDir(), &fakeDriver{}, Options{GoBinary: "/nonexistent/go"})
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
	_ = b
}

func TestGoEnvIsMinimal(t *testing.T) {
	t.Setenv("GOFLAGS", "-toolexec=/bin/false")
	t.Setenv("GOPROXY", "https://proxy.example")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("GONOSUMDB", "example.com")
	b, _ := newTestBuilder(t, Options{GoProxy: "https://proxy.example"})
	env := strings.Join(b.goEnv("/w"), "\n")
	for _, want := range []string{"GOFLAGS=-mod=mod -modcacherw -buildvcs=false", "GOPROXY=https://proxy.example", "HOME=/w/home", "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOENV=off", "GOWORK=off", "GOOS=linux", "GONOSUMDB=example.com"} {
		if !strings.Contains("\n"+env+"\n", "\n"+want+"\n") {
			t.Errorf("env lacks %s:\n%s", want, env)
		}
	}
	if strings.Contains(env, "toolexec") || strings.Contains(env, "AWS_") {
		t.Errorf("the Host's environment leaked into the build:\n%s", env)
	}
	// The default proxy comes from the Host's environment.
	d := &fakeDriver{}
	b2, err := New(t.TempDir(), d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b2.opts.GoProxy != "https://proxy.example" {
		t.Errorf("GoProxy = %q, want the Host's $GOPROXY", b2.opts.GoProxy)
	}
}

func TestWarmUp(t *testing.T) {
	b, _ := newTestBuilder(t, Options{})
	var log bytes.Buffer
	if err := b.WarmUp(context.Background(), &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "go build finished") {
		t.Errorf("log = %q", log.String())
	}
	if v := frameworkGoLine(); v == "" {
		t.Error("the framework's go.mod has no go line?")
	}
	if ents, _ := os.ReadDir(b.workDir); len(ents) != 0 {
		t.Errorf("work folder not cleaned: %v", ents)
	}
}

func TestCompileGoOlderGoLine(t *testing.T) {
	// The framework's go.mod says a newer go than the program's: -mod=mod
	// raises the program's go line instead of failing.
	b, _ := newTestBuilder(t, Options{})
	files := helloFiles()
	files["go.mod"] = strings.Replace(files["go.mod"], "go 1.25", "go 1.21", 1)
	if _, log, err := compile(t, b, files); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log)
	}
}
