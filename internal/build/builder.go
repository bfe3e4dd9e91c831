// Package build turns a program's stored source into a container image.
//
// Two kinds of source are built:
//
//   - Go source (a go.mod at the root, no Dockerfile): the Host compiles it
//     with its own Go toolchain (no cgo, -trimpath, GOTOOLCHAIN=local, shared
//     module and build caches in the data directory, a timeout and an output
//     cap) and assembles a minimal image FROM scratch: the static binary, CA
//     certificates, a non-root user (65532) and an empty /state. The hersh
//     framework is provided by the Host itself: an embedded copy of its
//     source is extracted into the data directory and every program's go.mod
//     is pointed at it with a replace directive, so `require
//     github.com/hershyorg/hershy/hersh vX` resolves without any published
//     release and without network access.
//   - A Dockerfile and files: the engine builds them as the context, with a
//     context size cap and a timeout; the driver never pulls.
//
// Images are tagged by build id (a content hash), so an identical source
// reuses its image instead of building again.
//
// Data directory layout (all created by New):
//
//	framework/<version>/   the extracted hersh source (version: a hash of it)
//	cache/go-build/        GOCACHE, shared by every build
//	cache/gomod/           GOMODCACHE, shared by every build
//	cache/goconfig/        the go command's config folder (telemetry off)
//	work/                  per-build scratch folders, removed after each build
//	logs/<build id>.log    build logs (see Logs)
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/runtime"
	"github.com/hershyorg/hershy/internal/source"
)

// Options tune a Builder. A zero field takes its default.
type Options struct {
	// GoTimeout bounds a Go build (reading go.mod, module downloads and
	// compiling). Default 10 minutes.
	GoTimeout time.Duration
	// ImageTimeout bounds an image build by the engine. Default 10 minutes.
	ImageTimeout time.Duration
	// MaxOutput is how many bytes of a step's output (its last part, besides
	// its first 8 KiB) are kept in memory for the error. Default 64 KiB.
	MaxOutput int
	// MaxLog caps the bytes of output written to a build's log; the rest is
	// dropped with a note. Default 8 MiB.
	MaxLog int64
	// MaxContext caps a Dockerfile build's context size. Default 64 MiB.
	MaxContext int64
	// GoBinary is the go command. Default: "go" found on PATH.
	GoBinary string
	// GOARCH is the architecture Go programs are compiled for. Default: the
	// Host's own (the engine runs on the same machine).
	GOARCH string
	// GoProxy is GOPROXY for builds. Default: the Host's $GOPROXY, else
	// "https://proxy.golang.org,direct".
	GoProxy string
	// GoCacheDir and GoModCacheDir are GOCACHE and GOMODCACHE. Defaults:
	// <data>/cache/go-build and <data>/cache/gomod.
	GoCacheDir    string
	GoModCacheDir string
	// CACertFile is copied into Go-source images as
	// /etc/ssl/certs/ca-certificates.crt. Default: the first of the usual
	// system bundle locations that exists.
	CACertFile string
}

// Default option values.
const (
	DefaultGoTimeout    = 10 * time.Minute
	DefaultImageTimeout = 10 * time.Minute
	DefaultMaxOutput    = 64 << 10
	DefaultMaxLog       = 8 << 20
	DefaultMaxContext   = 64 << 20
	defaultGoProxy      = "https://proxy.golang.org,direct"
)

// caCertFiles are the usual CA bundle locations (as crypto/x509 knows them).
var caCertFiles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Alpine, Arch
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL
	"/etc/ssl/ca-bundle.pem",                            // openSUSE
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
	"/etc/ssl/cert.pem",                                 // Alpine, macOS
}

// Request asks for one image.
type Request struct {
	// BuildID is the source's source.BuildID. Build checks that the stored
	// source still hashes to it (ErrSourceMismatch otherwise).
	BuildID string
	// SourceDir is the stored source tree (written by source.WriteTree).
	SourceDir string
	// Tag names the image, e.g. "hersh-program-<build id>". An existing image
	// with this tag is reused.
	Tag string
	// Labels are put on the image; Build adds runtime.LabelManaged="true"
	// and runtime.LabelBuild=BuildID.
	Labels map[string]string
}

// Builder builds images. It is safe for concurrent use; two builds of the
// same tag run one after the other (the second then reuses the image).
type Builder struct {
	driver    runtime.Driver
	opts      Options
	dataDir   string
	workDir   string
	framework string
	goBin     string
	goConfig  string // XDG_CONFIG_HOME of go commands: telemetry off
	goVersion string
	goErr     error // why Go-source builds cannot run, or nil
	caCerts   []byte
	logs      *Logs
	locks     keyedMutex
}

// New prepares a Builder over dataDir (created if missing): it extracts the
// embedded hersh framework, creates the caches, clears work folders left by
// an earlier run, and finds the Go toolchain. A Host without Go gets a
// Builder anyway: Go-source builds then fail with ErrNoGo.
func New(dataDir string, driver runtime.Driver, opts Options) (*Builder, error) {
	if driver == nil {
		return nil, errors.New("build: New: nil driver")
	}
	if dataDir == "" {
		return nil, errors.New("build: New: empty data directory")
	}
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	if opts.GoTimeout <= 0 {
		opts.GoTimeout = DefaultGoTimeout
	}
	if opts.ImageTimeout <= 0 {
		opts.ImageTimeout = DefaultImageTimeout
	}
	if opts.MaxOutput <= 0 {
		opts.MaxOutput = DefaultMaxOutput
	}
	if opts.MaxLog <= 0 {
		opts.MaxLog = DefaultMaxLog
	}
	if opts.MaxContext <= 0 {
		opts.MaxContext = DefaultMaxContext
	}
	if opts.GOARCH == "" {
		opts.GOARCH = goruntime.GOARCH
	}
	if opts.GoProxy == "" {
		opts.GoProxy = os.Getenv("GOPROXY")
	}
	if opts.GoProxy == "" {
		opts.GoProxy = defaultGoProxy
	}
	if opts.GoCacheDir == "" {
		opts.GoCacheDir = filepath.Join(dataDir, "cache", "go-build")
	}
	if opts.GoModCacheDir == "" {
		opts.GoModCacheDir = filepath.Join(dataDir, "cache", "gomod")
	}
	for _, p := range []*string{&opts.GoCacheDir, &opts.GoModCacheDir} {
		if *p, err = filepath.Abs(*p); err != nil { // the go command wants absolute paths
			return nil, fmt.Errorf("build: %w", err)
		}
	}

	b := &Builder{driver: driver, opts: opts, dataDir: dataDir, workDir: filepath.Join(dataDir, "work"), goConfig: filepath.Join(dataDir, "cache", "goconfig")}
	for _, d := range []string{dataDir, opts.GoCacheDir, opts.GoModCacheDir, b.goConfig} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
	}
	// Work folders of builds a previous Host process did not finish.
	if err := os.RemoveAll(b.workDir); err != nil {
		return nil, fmt.Errorf("build: clear %s: %w", b.workDir, err)
	}
	if err := os.Mkdir(b.workDir, 0o700); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	if b.framework, err = extractFramework(filepath.Join(dataDir, "framework")); err != nil {
		return nil, err
	}
	if b.logs, err = NewLogs(filepath.Join(dataDir, "logs")); err != nil {
		return nil, err
	}
	b.caCerts, err = readCACerts(opts.CACertFile)
	if err != nil {
		return nil, err
	}
	b.findGo()
	return b, nil
}

func readCACerts(file string) ([]byte, error) {
	candidates := caCertFiles
	if file != "" {
		candidates = []string{file}
	}
	for _, f := range candidates {
		b, err := os.ReadFile(f)
		if err == nil {
			return b, nil
		}
		if file != "" || !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("build: CA certificates: %w", err)
		}
	}
	return nil, fmt.Errorf("build: no CA certificate bundle found (looked in %s); set Options.CACertFile", strings.Join(caCertFiles, ", "))
}

// findGo locates the go command and asks its version, recording why Go
// builds cannot run if that fails.
func (b *Builder) findGo() {
	name := b.opts.GoBinary
	if name == "" {
		name = "go"
	}
	bin, err := exec.LookPath(name)
	if err == nil {
		bin, err = filepath.Abs(bin)
	}
	if err != nil {
		b.goErr = fmt.Errorf("build: %w: %v", ErrNoGo, err)
		return
	}
	b.goBin = bin
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	home, err := os.MkdirTemp(b.workDir, "go-env-")
	if err != nil {
		b.goErr = fmt.Errorf("build: %w", err)
		return
	}
	defer os.RemoveAll(home)
	goCmd := func(args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = []string{"PATH=" + filepath.Dir(bin) + ":/usr/bin:/bin", "HOME=" + home, "XDG_CONFIG_HOME=" + b.goConfig, "GOENV=off", "GOTOOLCHAIN=local", "GOFLAGS="}
		if root, ok := os.LookupEnv("GOROOT"); ok {
			cmd.Env = append(cmd.Env, "GOROOT="+root)
		}
		return cmd
	}
	// Telemetry off in the builds' config folder: otherwise every go
	// command may leave a detached sidecar process writing counters.
	// (Toolchains before Go 1.23 have no telemetry and fail here: fine.)
	_ = goCmd("telemetry", "off").Run()
	out, err := goCmd("env", "GOVERSION").Output()
	if err != nil {
		b.goErr = fmt.Errorf("build: %w: %s env GOVERSION: %v", ErrNoGo, bin, err)
		return
	}
	b.goVersion = strings.TrimSpace(string(out))
	if v, _, _ := strings.Cut(b.goVersion, " "); v != "" {
		b.goVersion = v // drop experiment suffixes
	}
}

// GoVersion reports the Go toolchain builds use ("go1.26.8"), or an error
// saying why Go-source builds cannot run.
func (b *Builder) GoVersion() (string, error) { return b.goVersion, b.goErr }

// FrameworkDir is the folder holding the Host's copy of the hersh framework.
func (b *Builder) FrameworkDir() string { return b.framework }

// Logs returns the build logs kept under <data>/logs.
func (b *Builder) Logs() *Logs { return b.logs }

// Build makes the image for req and returns its id. If an image tagged
// req.Tag already exists it is reused and Build returns req.Tag (the driver
// can say whether an image exists, not its id; both work as a reference).
//
// Progress, the compiler's output and the engine's output are written to log
// as they come (capped at Options.MaxLog). Errors: ErrNoBuildFile,
// ErrSourceMismatch, ErrContextTooLarge, ErrNoGo, ErrToolchain and ErrGoMod
// (wrapped), or an *Error for a failed step (compile errors: its message
// holds the compiler's first lines); a timeout wraps
// context.DeadlineExceeded, a cancelled ctx context.Canceled.
func (b *Builder) Build(ctx context.Context, req Request, log io.Writer) (imageID string, err error) {
	if err := source.ValidateBuildID(req.BuildID); err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	if req.Tag == "" || req.SourceDir == "" {
		return "", errors.New("build: request needs a Tag and a SourceDir")
	}
	if log == nil {
		log = io.Discard
	}
	lw := newLogLimiter(log, b.opts.MaxLog)
	start := time.Now()
	defer func() {
		if err != nil {
			lw.notef("build %s failed after %s: %s", req.BuildID, time.Since(start).Round(time.Millisecond), firstLines(err.Error(), 1, 500))
		}
	}()

	unlock, err := b.locks.lock(ctx, req.Tag)
	if err != nil {
		return "", fmt.Errorf("build: waiting for another build of %s: %w", req.Tag, err)
	}
	defer unlock()

	exists, err := b.driver.ImageExists(ctx, req.Tag)
	if err != nil {
		return "", fmt.Errorf("build: looking for image %s: %w", req.Tag, err)
	}
	if exists {
		lw.notef("image %s exists; reusing it", req.Tag)
		return req.Tag, nil
	}

	files, dockerfile, err := source.ReadTree(req.SourceDir)
	if err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	if id := source.BuildID(dockerfile, files); id != req.BuildID {
		return "", fmt.Errorf("build: %w: %s hashes to %s, not %s", ErrSourceMismatch, req.SourceDir, id, req.BuildID)
	}
	labels := maps.Clone(req.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[runtime.LabelManaged] = "true"
	labels[runtime.LabelBuild] = req.BuildID

	var spec runtime.ImageSpec
	switch {
	case dockerfile != "":
		lw.notef("build %s from its Dockerfile", req.BuildID)
		var size int64 = int64(len(dockerfile))
		for _, c := range files {
			size += int64(len(c))
		}
		if size > b.opts.MaxContext {
			return "", fmt.Errorf("build: %w: %d bytes, at most %d", ErrContextTooLarge, size, b.opts.MaxContext)
		}
		spec = runtime.ImageSpec{ContextDir: req.SourceDir, Dockerfile: source.DockerfileName, MaxContext: b.opts.MaxContext}
	case source.IsGoModule(dockerfile, files):
		lw.notef("build %s from Go source", req.BuildID)
		work, err := os.MkdirTemp(b.workDir, req.BuildID+"-")
		if err != nil {
			return "", fmt.Errorf("build: %w", err)
		}
		defer os.RemoveAll(work)
		imageDir := filepath.Join(work, "image")
		if err := newImageContext(imageDir, b.caCerts); err != nil {
			return "", fmt.Errorf("build: image context: %w", err)
		}
		if err := b.compileGo(ctx, work, files, filepath.Join(imageDir, filepath.FromSlash(imageBinary)), lw); err != nil {
			return "", err
		}
		spec = runtime.ImageSpec{ContextDir: imageDir, Dockerfile: "Dockerfile"}
	default:
		return "", fmt.Errorf("build: %w", ErrNoBuildFile)
	}
	spec.Tag = req.Tag
	spec.Labels = labels
	return b.buildImage(ctx, spec, lw)
}

// errImageTimeout is the cause of an image build's context ending at ImageTimeout.
var errImageTimeout = errors.New("image build timeout")

// buildImage asks the driver to build spec, within ImageTimeout.
func (b *Builder) buildImage(ctx context.Context, spec runtime.ImageSpec, lw *logLimiter) (string, error) {
	lw.notef("image build %s (timeout %s)", spec.Tag, b.opts.ImageTimeout)
	start := time.Now()
	ictx, cancel := context.WithTimeoutCause(ctx, b.opts.ImageTimeout, errImageTimeout)
	defer cancel()
	out := newCapture(lw, b.opts.MaxOutput)
	id, err := b.driver.BuildImage(ictx, spec, out)
	if err != nil {
		if ictx.Err() != nil && context.Cause(ictx) == errImageTimeout && ctx.Err() == nil {
			err = fmt.Errorf("timed out after %s: %w (%v)", b.opts.ImageTimeout, context.DeadlineExceeded, err)
		}
		return "", &Error{Step: "image build", Output: out.Output(), Err: err}
	}
	lw.notef("image %s (%s) built in %s", spec.Tag, id, time.Since(start).Round(time.Millisecond))
	return id, nil
}

// keyedMutex serialises work per key; waiting honours a context.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds a token while locked
	refs int
}

func (k *keyedMutex) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()

	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		var once sync.Once
		return func() {
			once.Do(func() {
				<-l.ch
				release()
			})
		}, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
