// Package builder turns a program's stored source into a container image.
//
// Two kinds of source are built:
//
//   - Go source (a go.mod at the root, no Dockerfile): compiled inside the
//     build sandbox (sandbox.go), a container under the Host's sandbox
//     runtime with no network, a read-only root, no capabilities and its own
//     memory, CPU, pids and time limits. Each user's sandbox stays up
//     between their builds for a while (kept.go), so a warm rebuild costs
//     what go build does. It sees the program's
//     source, the Host's Go toolchain and framework copy (read-only), the
//     modules its go.sum pins (fetched by the Host through the module proxy,
//     package gomod), and its owner's build caches; nothing else of the
//     Host. The hersh framework is provided by the Host itself: an embedded
//     copy of its source is extracted into the data directory, mounted into
//     every build, and the build's copy of go.mod points at it, so `require
//     github.com/hershyorg/hershy/hersh vX` resolves without any published
//     release. The result is a minimal image of one layer, written by the
//     Host and imported in one engine call (image.go): the static binary,
//     CA certificates, a non-root user (65532) and an empty /state.
//   - A Dockerfile and files: the engine builds them as the context, with a
//     context size cap and a timeout; the driver never pulls.
//
// Images are tagged by build id (a content hash of the owner and the
// source), so an identical source of the same owner reuses its image.
// Builds wait their turn in a queue (Options.MaxConcurrent at once).
//
// Data directory layout (all created by New):
//
//	framework/<version>/       the extracted hersh source (version: a hash of it)
//	cache/go-shared/           build cache of the standard library and the
//	                           framework, written only by the Host's warm-up
//	cache/users/<user>/        each user's own build cache and module cache
//	cache/modules/             modules fetched through the proxy (Host only)
//	cache/helper/              the build sandbox's cache helper binary
//	work/                      per-build scratch folders, removed after each build
//	work/kept/<user>/          the input and output of a user's kept-up build sandbox
//	logs/<build id>.log        build logs (see Logs)
package builder

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

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/gomod"
	"github.com/hershyorg/hershy/internal/source"
)

// Options tune a Builder. A zero field takes its default.
type Options struct {
	// Jobs is the engine the build sandbox runs on (its image, its jobs,
	// the kept sandboxes), when programs run on another (a cluster): the
	// Host's own. Default: the driver New is given.
	Jobs driver.Driver
	// GoTimeout bounds the compile of a Go build (the sandboxed go build).
	// Default 10 minutes.
	GoTimeout time.Duration
	// ImageTimeout bounds an image build by the engine, or the import of a
	// Go-source image. Default 10 minutes.
	ImageTimeout time.Duration
	// MaxOutput is how many bytes of a step's output (its last part, besides
	// its first 8 KiB) are kept in memory for the error. Default 64 KiB.
	MaxOutput int
	// MaxLog caps the bytes of output written to a build's log; the rest is
	// dropped with a note. Default 8 MiB.
	MaxLog int64
	// MaxContext caps a Dockerfile build's context size. Default 64 MiB.
	MaxContext int64
	// GoBinary is the Host's go command: it names the toolchain mounted into
	// build sandboxes and compiles the sandbox's cache helper (the Host's
	// own code, never a program's). Default: "go" found on PATH.
	GoBinary string
	// GOARCH is the architecture Go programs are compiled for. Default: the
	// Host's own (the engine runs on the same machine).
	GOARCH string
	// GoProxy is the module proxy list programs' dependencies are fetched
	// through (GOPROXY syntax). "direct" is never used. Default: the Host's
	// $GOPROXY, else "https://proxy.golang.org".
	GoProxy string
	// Runtime is the OCI runtime of the build sandbox: driver.RuntimeRunsc
	// (default) or RuntimeRunc.
	Runtime string
	// Limits of one build sandbox: memory (its /tmp included), CPUs and
	// pids. Defaults: 2 GiB, up to 2 cores, 1024 pids.
	Limits driver.Limits
	// TmpBytes sizes the build sandbox's /tmp (compiler scratch files).
	// It counts against the memory limit. Default 512 MiB, at most a
	// quarter of the memory.
	TmpBytes int64
	// MaxConcurrent is how many builds run at once; the others wait in a
	// queue. Default 1 (a build uses every core it may).
	MaxConcurrent int
	// MaxDownload caps the bytes of modules one build may download.
	// Default 1 GiB.
	MaxDownload int64
	// MaxUserCache caps a user's build and module caches; past it they are
	// emptied after the build. Default 4 GiB.
	MaxUserCache int64
	// MaxModuleStore caps the modules the Host keeps for all users; past it
	// the least recently used go. Default 8 GiB.
	MaxModuleStore int64
	// SharedCacheDir is the read-only layer of every build's cache: the
	// standard library and the framework, compiled by the Host's warm-up.
	// Several Hosts may share one. Default <data>/cache/go-shared.
	SharedCacheDir string
	// Instance labels the build sandboxes, so the Host that owns them can
	// find any a crash left behind.
	Instance string
	// KeepSandbox is how long a user's build sandbox stays up after their
	// last Go build, for the next one to run in (kept.go). Default
	// DefaultKeepSandbox; negative: a new sandbox for every build.
	KeepSandbox time.Duration
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
	DefaultBuildMemory  = 2 << 30
	DefaultBuildPids    = 1024
	DefaultTmpBytes     = 512 << 20
	DefaultMaxDownload  = 1 << 30
	DefaultMaxUserCache = 4 << 30
	DefaultModuleStore  = 8 << 30
	defaultGoProxy      = "https://proxy.golang.org"
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
	// Owner is the user the program belongs to: part of the build id, and
	// whose build caches a Go build uses.
	Owner string
	// SourceDir is the stored source tree (written by source.WriteTree).
	SourceDir string
	// Tag names the image, e.g. "hersh-program-<build id>". An existing image
	// with this tag is reused.
	Tag string
	// Labels are put on the image; Build adds driver.LabelManaged="true"
	// and driver.LabelBuild=BuildID.
	Labels map[string]string
	// Progress, if set, hears how a Go build is going: when go build
	// starts, every couple of seconds while it runs, and when it ends. It
	// must not block.
	Progress func(Progress)
}

// Builder builds images. It is safe for concurrent use; two builds of the
// same tag run one after the other (the second then reuses the image).
type Builder struct {
	driver    driver.Driver
	jobs      driver.Driver // the build sandbox's engine (Options.Jobs, else driver)
	opts      Options
	dataDir   string
	workDir   string
	cacheDir  string // cache/: users/, modules/, helper/
	framework string
	caCerts   []byte
	logs      *Logs
	locks     keyedMutex
	queue     *queue
	fetcher   *gomod.Fetcher
	proxyNote string // what the operator's GOPROXY lost ("direct"), for the log

	goBin     string
	goRoot    string // the toolchain mounted into build sandboxes
	goVersion string
	goErr     error // why Go-source builds cannot run, or nil

	sandboxMu    sync.Mutex
	sandboxImage string // the build sandbox's image, once made

	warmMu sync.Mutex
	warmed bool // the shared cache layer is warm

	kept keptSet // build sandboxes kept up between a user's builds
}

// New prepares a Builder over dataDir (created if missing): it extracts the
// embedded hersh framework, creates the caches, clears work folders left by
// an earlier run, and finds the Go toolchain. A Host without Go gets a
// Builder anyway: Go-source builds then fail with ErrNoGo. The build
// sandbox's image is made at the first Go build (or by WarmUp).
func New(dataDir string, driver driver.Driver, opts Options) (*Builder, error) {
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
	if err := opts.setDefaults(dataDir); err != nil {
		return nil, err
	}
	b := &Builder{
		driver: driver, jobs: driver, opts: opts, dataDir: dataDir,
		workDir:  filepath.Join(dataDir, "work"),
		cacheDir: filepath.Join(dataDir, "cache"),
		queue:    newQueue(opts.MaxConcurrent),
	}
	if opts.Jobs != nil {
		b.jobs = opts.Jobs
	}
	for _, d := range []string{dataDir, b.cacheDir, filepath.Join(b.cacheDir, "users"), filepath.Join(b.cacheDir, "helper")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
	}
	if err := os.MkdirAll(opts.SharedCacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	proxies, dropped, err := gomod.ParseProxies(opts.GoProxy)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	if len(dropped) > 0 {
		b.proxyNote = fmt.Sprintf("module proxy list %q: %s not used (dependencies come only through a proxy)", opts.GoProxy, strings.Join(dropped, ", "))
	}
	if b.fetcher, err = gomod.NewFetcher(filepath.Join(b.cacheDir, "modules"), proxies, nil); err != nil {
		return nil, err
	}
	// Work folders of builds a previous Host process did not finish.
	if err := os.RemoveAll(b.workDir); err != nil {
		return nil, fmt.Errorf("build: clear work folder: %w", err)
	}
	if err := os.Mkdir(b.workDir, 0o700); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	if b.framework, err = extractFramework(filepath.Join(dataDir, "framework")); err != nil {
		return nil, err
	}
	// The build sandbox reads the framework as its user.
	if err := openUp(b.framework); err != nil {
		return nil, fmt.Errorf("build: %w", err)
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

func (o *Options) setDefaults(dataDir string) error {
	if o.GoTimeout <= 0 {
		o.GoTimeout = DefaultGoTimeout
	}
	if o.ImageTimeout <= 0 {
		o.ImageTimeout = DefaultImageTimeout
	}
	if o.MaxOutput <= 0 {
		o.MaxOutput = DefaultMaxOutput
	}
	if o.MaxLog <= 0 {
		o.MaxLog = DefaultMaxLog
	}
	if o.MaxContext <= 0 {
		o.MaxContext = DefaultMaxContext
	}
	if o.GOARCH == "" {
		o.GOARCH = goruntime.GOARCH
	}
	if o.GoProxy == "" {
		o.GoProxy = os.Getenv("GOPROXY")
	}
	if o.GoProxy == "" {
		o.GoProxy = defaultGoProxy
	}
	switch o.Runtime {
	case "":
		o.Runtime = driver.RuntimeRunsc
	case driver.RuntimeRunsc, driver.RuntimeRunc:
	default:
		return fmt.Errorf("build: unknown sandbox runtime %q", o.Runtime)
	}
	if o.Limits.MemoryBytes <= 0 {
		o.Limits.MemoryBytes = DefaultBuildMemory
	}
	if o.Limits.CPUs <= 0 {
		o.Limits.CPUs = float64(min(2, goruntime.NumCPU()))
	}
	if o.Limits.Pids <= 0 {
		o.Limits.Pids = DefaultBuildPids
	}
	if o.TmpBytes <= 0 {
		o.TmpBytes = min(DefaultTmpBytes, o.Limits.MemoryBytes/4)
	}
	if o.TmpBytes >= o.Limits.MemoryBytes {
		return fmt.Errorf("build: the build sandbox's /tmp (%d bytes) must be smaller than its memory limit (%d bytes)", o.TmpBytes, o.Limits.MemoryBytes)
	}
	if o.KeepSandbox == 0 {
		o.KeepSandbox = DefaultKeepSandbox
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = 1
	}
	if o.MaxDownload <= 0 {
		o.MaxDownload = DefaultMaxDownload
	}
	if o.MaxUserCache <= 0 {
		o.MaxUserCache = DefaultMaxUserCache
	}
	if o.MaxModuleStore <= 0 {
		o.MaxModuleStore = DefaultModuleStore
	}
	if o.SharedCacheDir == "" {
		o.SharedCacheDir = filepath.Join(dataDir, "cache", "go-shared")
	}
	var err error
	if o.SharedCacheDir, err = filepath.Abs(o.SharedCacheDir); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	return nil
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

// findGo locates the Host's go command and asks it for its version and
// GOROOT, recording why Go builds cannot run if that fails. Only `go env`
// runs here, with a clean environment; programs are compiled in sandboxes.
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
	out, err := b.hostGo(ctx, b.workDir, "env", "GOVERSION", "GOROOT").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 {
		b.goErr = fmt.Errorf("build: %w: %s env: %v", ErrNoGo, bin, err)
		return
	}
	b.goVersion, b.goRoot = f[0], f[1]
	if v, _, _ := strings.Cut(b.goVersion, "-"); v != "" {
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
// ErrSourceMismatch, ErrContextTooLarge, ErrNoGo, ErrToolchain, ErrGoMod and
// gomod.ErrFetch
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
	if err := source.ValidateUserID(req.Owner); err != nil {
		return "", fmt.Errorf("build: owner: %w", err)
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
	if id := source.BuildID(req.Owner, dockerfile, files); id != req.BuildID {
		return "", fmt.Errorf("build: %w: it hashes to %s, not %s", ErrSourceMismatch, id, req.BuildID)
	}

	// Wait for a build slot; the log shows the place in the queue.
	release, err := b.queue.wait(ctx, req.BuildID, func(pos int) {
		lw.notef("waiting for a build slot: %d build(s) ahead", pos)
	})
	if err != nil {
		return "", fmt.Errorf("build: waiting in the build queue: %w", err)
	}
	defer release()
	labels := maps.Clone(req.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[driver.LabelManaged] = "true"
	labels[driver.LabelBuild] = req.BuildID

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
		return b.buildImage(ctx, driver.ImageSpec{
			ContextDir: req.SourceDir, Dockerfile: source.DockerfileName, MaxContext: b.opts.MaxContext,
			Tag: req.Tag, Labels: labels,
		}, lw)
	case source.IsGoModule(dockerfile, files):
		lw.notef("build %s from Go source", req.BuildID)
		work, err := os.MkdirTemp(b.workDir, req.BuildID+"-")
		if err != nil {
			return "", fmt.Errorf("build: %w", err)
		}
		defer os.RemoveAll(work)
		bin := filepath.Join(work, "app")
		if err := b.compileGo(ctx, req.Owner, work, files, bin, lw, req.Progress); err != nil {
			return "", err
		}
		return b.importGoImage(ctx, req.Tag, labels, bin, lw)
	default:
		return "", fmt.Errorf("build: %w", ErrNoBuildFile)
	}
}

// errImageTimeout is the cause of an image build's context ending at ImageTimeout.
var errImageTimeout = errors.New("image build timeout")

// buildImage asks the driver to build spec, within ImageTimeout.
func (b *Builder) buildImage(ctx context.Context, spec driver.ImageSpec, lw *logLimiter) (string, error) {
	return b.buildImageOn(ctx, b.driver, spec, lw)
}

// buildImageOn is buildImage on engine d.
func (b *Builder) buildImageOn(ctx context.Context, d driver.Driver, spec driver.ImageSpec, lw *logLimiter) (string, error) {
	lw.notef("image build %s (timeout %s)", spec.Tag, b.opts.ImageTimeout)
	start := time.Now()
	ictx, cancel := context.WithTimeoutCause(ctx, b.opts.ImageTimeout, errImageTimeout)
	defer cancel()
	out := newCapture(lw, b.opts.MaxOutput)
	id, err := d.BuildImage(ictx, spec, out)
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
