package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/source"
)

func TestBuildGoSource(t *testing.T) {
	b, d := newTestBuilder(t, Options{})
	req := storeSource(t, "", helloFiles())
	var log bytes.Buffer
	id, err := b.Build(context.Background(), req, &log)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	if d.builds() != 1 || len(d.imports) != 1 {
		t.Fatalf("%d image builds, %d imports; want one import", d.builds(), len(d.imports))
	}
	if id != "sha256:fake-"+req.Tag {
		t.Fatalf("image id %q", id)
	}
	spec, files := d.imports[0].spec, d.imports[0].files
	if spec.Tag != req.Tag {
		t.Errorf("tag %q, want %s", spec.Tag, req.Tag)
	}
	wantLabels := map[string]string{
		driver.LabelManaged: "true",
		driver.LabelBuild:   req.BuildID,
		driver.LabelProgram: req.Labels[driver.LabelProgram],
	}
	if !maps.Equal(spec.Labels, wantLabels) {
		t.Errorf("labels = %v, want %v", spec.Labels, wantLabels)
	}
	if len(req.Labels) != 1 {
		t.Errorf("Build modified the caller's labels: %v", req.Labels)
	}
	if spec.User != "65532:65532" || strings.Join(spec.Entrypoint, " ") != "/app" ||
		strings.Join(spec.Env, " ") != "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HERSH_STATE_DIR=/state HERSH_API_ADDR=127.0.0.1:8080" {
		t.Errorf("spec %+v", spec)
	}

	// The layer: exactly these entries, with these modes and owners.
	want := []string{
		"/app -rwxr-xr-x 0:0",
		"/etc drwxr-xr-x 0:0",
		"/etc/group -rw-r--r-- 0:0",
		"/etc/passwd -rw-r--r-- 0:0",
		"/etc/ssl drwxr-xr-x 0:0",
		"/etc/ssl/certs drwxr-xr-x 0:0",
		"/etc/ssl/certs/ca-certificates.crt -rw-r--r-- 0:0",
		"/state drwx------ 65532:65532",
		"/tmp dtrwxrwxrwx 0:0",
	}
	var got []string
	for _, f := range files {
		got = append(got, fmt.Sprintf("%s %v %d:%d", f.Path, f.Mode, f.UID, f.GID))
	}
	if !slices.Equal(got, want) {
		t.Errorf("layer:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if files[0].Size < 1<<20 || files[6].Size != int64(len(b.caCerts)) {
		t.Errorf("/app has %d bytes, the CA bundle %d", files[0].Size, files[6].Size)
	}

	// The work folder is gone; the log tells the story.
	if left := workLeft(t, b); len(left) != 0 {
		t.Errorf("work folder not cleaned: %v", left)
	}
	for _, s := range []string{"from Go source", "go build (", "go build finished", "image " + req.Tag + ": one layer", "imported in"} {
		if !strings.Contains(log.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, log.String())
		}
	}

	// The same build again reuses the image.
	log.Reset()
	id, err = b.Build(context.Background(), req, &log)
	if err != nil || id != req.Tag || d.builds() != 1 {
		t.Fatalf("second Build = %q, %v after %d image builds; want the tag, reused", id, err, d.builds())
	}
	if !strings.Contains(log.String(), "reusing") {
		t.Errorf("log = %q", log.String())
	}
}

// TestGoImage: the files of a Go-source image hold the program's user and
// group, the Host's CA bundle and the binary, read from its reader.
func TestGoImage(t *testing.T) {
	_, files := goImage("hersh-program-x", nil, strings.NewReader("\x7fELF"), 4, []byte("-----BEGIN CERTIFICATE-----\n"))
	content := map[string]string{}
	for _, f := range files {
		if f.Content != nil {
			b, err := io.ReadAll(f.Content)
			if err != nil || int64(len(b)) != f.Size {
				t.Fatalf("%s: %d bytes for a size of %d, %v", f.Path, len(b), f.Size, err)
			}
			content[f.Path] = string(b)
		}
	}
	for path, want := range map[string]string{
		"/app":                               "\x7fELF",
		"/etc/passwd":                        "root:x:0:0:root:/root:/sbin/nologin\nhersh:x:65532:65532:hersh:/state:/sbin/nologin\n",
		"/etc/group":                         "root:x:0:\nhersh:x:65532:\n",
		"/etc/ssl/certs/ca-certificates.crt": "-----BEGIN CERTIFICATE-----\n",
	} {
		if content[path] != want {
			t.Errorf("%s = %q, want %q", path, content[path], want)
		}
	}
	if len(content) != 4 {
		t.Errorf("files with content: %v", content)
	}
}

// TestBuildGoSourceImportFails: a failed or timed-out import is an
// "image import" *Error with the driver's error, and leaves no work
// behind.
func TestBuildGoSourceImportFails(t *testing.T) {
	b, d := newTestBuilder(t, Options{ImageTimeout: 200 * time.Millisecond})
	req := storeSource(t, "", helloFiles())
	d.importer = func(ctx context.Context, _ driver.ImportSpec, r io.Reader) (string, error) {
		io.CopyN(io.Discard, r, 100)
		return "", errors.New("engine: Error processing tar file: unexpected EOF")
	}
	_, err := b.Build(context.Background(), req, nil)
	var be *Error
	if !errors.As(err, &be) || be.Step != "image import" || !strings.Contains(err.Error(), "Error processing tar file") {
		t.Fatalf("err = %v, want an image import *Error with the driver's", err)
	}
	d.importer = func(ctx context.Context, _ driver.ImportSpec, r io.Reader) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	}
	_, err = b.Build(context.Background(), req, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 200ms") {
		t.Fatalf("err = %v, want an image import timeout", err)
	}
	if left := workLeft(t, b); len(left) != 0 {
		t.Errorf("work folder not cleaned: %v", left)
	}
}

func TestBuildDockerfile(t *testing.T) {
	b, d := newTestBuilder(t, Options{MaxContext: 1 << 20})
	files := source.Files{"go.mod": "module x\n", "data/a.txt": "hello"}
	req := storeSource(t, "FROM scratch\nCOPY data /data\n", files)
	id, err := b.Build(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if id == "" || d.builds() != 1 {
		t.Fatalf("id %q, %d builds", id, d.builds())
	}
	spec := d.specs[0]
	if spec.ContextDir != req.SourceDir || spec.Dockerfile != "Dockerfile" || spec.MaxContext != 1<<20 || spec.Tag != req.Tag || spec.Labels[driver.LabelBuild] != req.BuildID {
		t.Errorf("spec = %+v", spec)
	}
	if got := d.contexts[0]["Dockerfile"].content; got != "FROM scratch\nCOPY data /data\n" {
		t.Errorf("Dockerfile in the context = %q", got)
	}
	if d.contexts[0]["data/a.txt"].content != "hello" {
		t.Error("context lacks the source files")
	}
}

func TestBuildDockerfileContextTooLarge(t *testing.T) {
	b, d := newTestBuilder(t, Options{MaxContext: 100})
	req := storeSource(t, "FROM scratch\n", source.Files{"big": strings.Repeat("x", 100)})
	_, err := b.Build(context.Background(), req, nil)
	if !errors.Is(err, ErrContextTooLarge) || d.builds() != 0 {
		t.Fatalf("err = %v after %d builds, want ErrContextTooLarge before any", err, d.builds())
	}
}

func TestBuildRefusals(t *testing.T) {
	b, d := newTestBuilder(t, Options{})
	ctx := context.Background()

	req := storeSource(t, "", source.Files{"main.go": "package main\n"})
	if _, err := b.Build(ctx, req, nil); !errors.Is(err, ErrNoBuildFile) {
		t.Errorf("no go.mod, no Dockerfile: %v", err)
	}

	req = storeSource(t, "", helloFiles())
	if err := os.WriteFile(filepath.Join(req.SourceDir, "main.go"), []byte("package main\nfunc main() {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Build(ctx, req, nil); !errors.Is(err, ErrSourceMismatch) {
		t.Errorf("tampered source: %v", err)
	}

	req = storeSource(t, "", helloFiles())
	if err := os.Symlink("/etc/passwd", filepath.Join(req.SourceDir, "passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Build(ctx, req, nil); !errors.Is(err, source.ErrSymlink) {
		t.Errorf("symlink in the source: %v", err)
	}

	for _, bad := range []Request{
		{BuildID: "../../etc", SourceDir: "/tmp", Tag: "x"},
		{BuildID: "build-0123456789ab", SourceDir: "", Tag: "x"},
		{BuildID: "build-0123456789ab", SourceDir: "/tmp", Tag: ""},
	} {
		if _, err := b.Build(ctx, bad, nil); err == nil {
			t.Errorf("Build(%+v) = nil error", bad)
		}
	}
	if d.builds() != 0 {
		t.Errorf("%d image builds for refused requests", d.builds())
	}
}

func TestBuildCompileErrorReachesCaller(t *testing.T) {
	b, d := newTestBuilder(t, Options{})
	req := storeSource(t, "", helloProgram("package main\n\nfunc main() { nope }\n"))
	var log bytes.Buffer
	_, err := b.Build(context.Background(), req, &log)
	if err == nil || !strings.Contains(err.Error(), "undefined: nope") {
		t.Fatalf("err = %v, want the compiler's message", err)
	}
	if d.builds() != 0 {
		t.Error("an image build followed a failed compile")
	}
	if !strings.Contains(log.String(), "failed after") {
		t.Errorf("log does not record the failure:\n%s", log.String())
	}
	if left := workLeft(t, b); len(left) != 0 {
		t.Errorf("work folder not cleaned: %v", left)
	}
}

func TestBuildImageFailure(t *testing.T) {
	b, d := newTestBuilder(t, Options{})
	d.build = func(ctx context.Context, spec driver.ImageSpec, out io.Writer) (string, error) {
		io.WriteString(out, "Step 1/2 : FROM golang\npull access denied for golang\n")
		return "", errors.New("driver: build failed")
	}
	req := storeSource(t, "FROM golang\n", source.Files{"main.go": "package main\n"})
	_, err := b.Build(context.Background(), req, nil)
	var be *Error
	if !errors.As(err, &be) || be.Step != "image build" || !strings.Contains(err.Error(), "pull access denied") || !strings.Contains(err.Error(), "driver: build failed") {
		t.Fatalf("err = %v, want an image build *Error with the engine's output", err)
	}
}

func TestBuildImageTimeout(t *testing.T) {
	b, d := newTestBuilder(t, Options{ImageTimeout: 100 * time.Millisecond})
	d.build = func(ctx context.Context, spec driver.ImageSpec, out io.Writer) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	}
	req := storeSource(t, "FROM scratch\n", source.Files{"a": "b"})
	_, err := b.Build(context.Background(), req, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 100ms") {
		t.Fatalf("err = %v, want an image build timeout", err)
	}
}

func TestBuildSameTagOnce(t *testing.T) {
	b, d := newTestBuilder(t, Options{})
	release := make(chan struct{})
	d.build = func(ctx context.Context, spec driver.ImageSpec, out io.Writer) (string, error) {
		<-release
		return "sha256:one", nil
	}
	req := storeSource(t, "FROM scratch\n", source.Files{"a": "b"})
	const n = 5
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ids[i], errs[i] = b.Build(context.Background(), req, nil) })
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	built := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		switch ids[i] {
		case "sha256:one":
			built++
		case req.Tag:
		default:
			t.Errorf("id %q", ids[i])
		}
	}
	if built != 1 || d.builds() != 1 {
		t.Fatalf("%d builds (%d by the driver), want 1", built, d.builds())
	}

	// A waiter gives up when its context ends.
	unlock, err := b.locks.lock(context.Background(), req.Tag)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Build(ctx, req, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting Build = %v, want DeadlineExceeded", err)
	}
}

func TestNewClearsLeftoverWork(t *testing.T) {
	data := t.TempDir()
	left := filepath.Join(data, "work", "build-0123456789ab-123")
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := New(data, &fakeDriver{}, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("leftover work folder still there: %v", err)
	}
}

func TestNewCACerts(t *testing.T) {
	if _, err := New(t.TempDir(), &fakeDriver{}, Options{CACertFile: "/nonexistent.crt"}); err == nil || !strings.Contains(err.Error(), "CA certificates") {
		t.Fatalf("New with a missing CA file = %v", err)
	}
	if _, err := New(t.TempDir(), nil, Options{}); err == nil {
		t.Fatal("New with a nil driver succeeded")
	}
}
