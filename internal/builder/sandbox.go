package builder

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/hershyorg/hershy/internal/driver"
)

// The build sandbox: a container per Go build (driver.Driver.RunJob), or
// one per user kept up between their builds (kept.go), under the Host's sandbox runtime, with network "none", a read-only
// root, no capabilities, the non-root build user and the build limits. Its
// image holds nothing but the cache helper (cacheprog) and an /etc/passwd;
// everything else is mounted:
//
//	/usr/local/go   the Host's Go toolchain              read-only
//	/hersh          the Host's copy of the framework      read-only
//	/in/src         this build's copy of the source       read-only
//	/in/goproxy     the modules its go.sum pins (GOPROXY) read-only
//	/cache/shared   the standard library and framework    read-only
//	/cache/user     the owner's build cache               writable
//	/gomod          the owner's module cache              writable
//	/out            where the binary goes                 writable
//	/tmp            tmpfs (compiler scratch)              writable
//
// So a build sees nothing of the Host but what it was given: no data
// directory, no other user's source, cache or output, no Host environment,
// no network. Sandbox paths are all a build's output can name.
const (
	sbGoRoot    = "/usr/local/go"
	sbFramework = "/hersh"
	sbIn        = "/in"
	sbSrc       = "/in/src"
	sbProxy     = "/in/goproxy"
	sbShared    = "/cache/shared"
	sbUser      = "/cache/user"
	sbModCache  = "/gomod"
	sbOut       = "/out"
	sbHelper    = "/cacheprog"
)

// The build sandbox's user: the programs' own uid, non-root.
const (
	buildUID = ProgramUID
	buildGID = ProgramGID
)

// maxBinary caps the program binary read back from a build.
const maxBinary = 512 << 20

//go:embed cacheprog/main.go
var cacheprogSource []byte

// helperVersion identifies the cache helper build: its source, the
// toolchain that compiles it and the architecture.
func (b *Builder) helperVersion() string {
	h := sha256.New()
	h.Write(cacheprogSource)
	fmt.Fprintf(h, "\x00%s\x00%s", b.goVersion, b.opts.GOARCH)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// sandbox returns the build sandbox's image, making it at the first call:
// the cache helper is compiled on the Host (the Host's own code, never a
// program's) and put in an image FROM scratch. Failures are not remembered:
// the next build tries again.
func (b *Builder) sandbox(ctx context.Context, lw *logLimiter) (string, error) {
	b.sandboxMu.Lock()
	defer b.sandboxMu.Unlock()
	if b.sandboxImage != "" {
		return b.sandboxImage, nil
	}
	ver := b.helperVersion()
	tag := "hershy-build-sandbox:" + ver
	ok, err := b.jobs.ImageExists(ctx, tag)
	if err != nil {
		return "", fmt.Errorf("build: looking for the build sandbox image: %w", err)
	}
	if !ok {
		lw.notef("making the build sandbox image %s", tag)
		dir, err := os.MkdirTemp(b.workDir, "sandbox-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(dir)
		if err := b.compileHelper(ctx, filepath.Join(dir, "cacheprog")); err != nil {
			return "", err
		}
		passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nbuild:x:%d:%d:build:/tmp:/sbin/nologin\n", buildUID, buildGID)
		df := fmt.Sprintf("FROM scratch\nCOPY cacheprog %s\nCOPY passwd /etc/passwd\nUSER %d:%d\n", sbHelper, buildUID, buildGID)
		for name, content := range map[string]string{"Dockerfile": df, "passwd": passwd} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				return "", err
			}
		}
		spec := driver.ImageSpec{ContextDir: dir, Dockerfile: "Dockerfile", Tag: tag,
			Labels: map[string]string{driver.LabelManaged: "true", driver.LabelJob: "build"}}
		if _, err := b.buildImageOn(ctx, b.jobs, spec, lw); err != nil {
			return "", err
		}
	}
	b.sandboxImage = tag
	return tag, nil
}

// compileHelper compiles the embedded cache helper to bin with the Host's
// go command: a static binary, with a clean environment and a cache of the
// Host's own.
func (b *Builder) compileHelper(ctx context.Context, bin string) error {
	src, err := os.MkdirTemp(b.workDir, "helper-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	for name, content := range map[string][]byte{
		"go.mod":  []byte("module hershy.local/cacheprog\n\ngo 1.22\n"),
		"main.go": cacheprogSource,
	} {
		if err := os.WriteFile(filepath.Join(src, name), content, 0o600); err != nil {
			return err
		}
	}
	cmd := b.hostGo(ctx, src, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Env = append(cmd.Env, "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+b.opts.GOARCH,
		"GOCACHE="+filepath.Join(b.cacheDir, "helper", "gocache"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("build: compiling the build sandbox's cache helper: %v\n%s", err, firstLines(string(out), 20, 4<<10))
	}
	return os.Chmod(bin, 0o755)
}

// hostGo is the Host's go command for its own needs (version, the cache
// helper), with a clean environment: no GOFLAGS, no config file, no
// workspace, no toolchain switch, no network.
func (b *Builder) hostGo(ctx context.Context, dir string, args ...string) *exec.Cmd {
	home := filepath.Join(b.cacheDir, "helper", "home")
	os.MkdirAll(home, 0o700)
	cmd := exec.CommandContext(ctx, b.goBin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + filepath.Dir(b.goBin) + ":/usr/bin:/bin", "HOME=" + home,
		"XDG_CONFIG_HOME=" + telemetryOff, "GOENV=off", "GOTOOLCHAIN=local", "GOFLAGS=", "GOWORK=off", "GOPROXY=off"}
	if root, ok := os.LookupEnv("GOROOT"); ok {
		cmd.Env = append(cmd.Env, "GOROOT="+root)
	}
	killGroup(cmd)
	return cmd
}

// telemetryOff as XDG_CONFIG_HOME gives the go command no configuration
// folder (a relative path is refused), which turns its telemetry off:
// otherwise each go command may write counters and start a sidecar process
// that outlives it. GOENV=off already keeps it from reading a config file.
const telemetryOff = "no-config"

// goJob is one go command run in the build sandbox.
type goJob struct {
	name    string       // container name suffix
	owner   string       // whose caches; "" for the warm-up (the shared layer, writable)
	in      string       // Host folder mounted at /in: src/, and goproxy/ if proxy
	out     string       // Host folder mounted at /out ("" none)
	proxy   bool         // in/goproxy holds the modules go.sum pins
	modFlag string       // -mod=...
	args    []string     // go command arguments
	kept    *keptSandbox // run in the owner's kept sandbox (nil: a one-shot one)
}

// runGo runs job in the build sandbox, its output going to log and kept
// for the error.
func (b *Builder) runGo(ctx context.Context, job goJob, log io.Writer) error {
	image, err := b.sandbox(ctx, asLimiter(log))
	if err != nil {
		return err
	}
	helper := sbHelper + " -w " + sbUser + " -r " + sbShared
	mounts := []driver.Mount{
		{Source: filepath.Clean(b.goRoot), Target: sbGoRoot, ReadOnly: true},
		{Source: b.framework, Target: sbFramework, ReadOnly: true},
		{Source: job.in, Target: sbIn, ReadOnly: true},
	}
	if job.owner == "" {
		// The warm-up: the Host's own program, writing the shared layer.
		helper = sbHelper + " -w " + sbShared
		mounts = append(mounts, driver.Mount{Source: b.opts.SharedCacheDir, Target: sbShared})
	} else {
		cache, mods, err := b.userCaches(job.owner)
		if err != nil {
			return err
		}
		mounts = append(mounts,
			driver.Mount{Source: b.opts.SharedCacheDir, Target: sbShared, ReadOnly: true},
			driver.Mount{Source: cache, Target: sbUser},
			driver.Mount{Source: mods, Target: sbModCache})
	}
	goproxy := "off"
	if job.proxy {
		goproxy = "file://" + sbProxy
	}
	if job.out != "" {
		mounts = append(mounts, driver.Mount{Source: job.out, Target: sbOut})
	}
	spec := driver.JobSpec{
		Name:    "hershy-build-" + job.name + "-" + randomSuffix(),
		Image:   image,
		Runtime: b.opts.Runtime,
		User:    strconv.Itoa(buildUID) + ":" + strconv.Itoa(buildGID),
		Cmd:     append([]string{sbGoRoot + "/bin/go"}, job.args...),
		WorkDir: sbSrc,
		Env: []string{
			"PATH=" + sbGoRoot + "/bin",
			"HOME=/tmp",
			"XDG_CONFIG_HOME=" + telemetryOff,
			"GOROOT=" + sbGoRoot,
			"GOCACHE=/tmp/gocache",
			"GOCACHEPROG=" + helper,
			"GOMODCACHE=" + sbModCache,
			"GOPATH=/tmp/gopath",
			"GOPROXY=" + goproxy,
			"GOSUMDB=off", // go.sum is checked; there is no network for a checksum database
			"GOVCS=*:off",
			"GOFLAGS=" + job.modFlag + " -trimpath -buildvcs=false",
			"GOTOOLCHAIN=local",
			"GOENV=off",
			"GOWORK=off",
			"CGO_ENABLED=0",
			"GOOS=linux",
			"GOARCH=" + b.opts.GOARCH,
		},
		Labels:   map[string]string{driver.LabelJob: "build", driver.LabelInstance: b.opts.Instance},
		Mounts:   mounts,
		TmpBytes: b.opts.TmpBytes,
		Limits:   b.opts.Limits,
	}
	if spec.Runtime == driver.RuntimeRunsc && spec.Limits.Pids < driver.MinPidsRunsc {
		spec.Limits.Pids = driver.MinPidsRunsc
	}
	ctx, cancel := context.WithTimeoutCause(ctx, b.opts.GoTimeout, errGoTimeout)
	defer cancel()
	out := newCapture(log, b.opts.MaxOutput)
	var res driver.JobResult
	if job.kept != nil {
		res, err = b.runKept(ctx, job.kept, spec, out)
	} else {
		res, err = b.jobs.RunJob(ctx, spec, out)
	}
	switch {
	case ctx.Err() != nil && context.Cause(ctx) == errGoTimeout:
		err = fmt.Errorf("timed out after %s: %w", b.opts.GoTimeout, context.DeadlineExceeded)
	case ctx.Err() != nil:
		err = ctx.Err()
	case err != nil:
	case res.OOMKilled:
		err = fmt.Errorf("the build ran out of memory: it exceeded its memory limit (%d MiB)", spec.Limits.MemoryBytes>>20)
	case res.Vanished:
		err = fmt.Errorf("the build sandbox died and the engine did not report its exit (memory limit %d MiB)", spec.Limits.MemoryBytes>>20)
	case res.ExitCode == 137:
		// Under runsc the engine does not always flag a memory kill.
		err = fmt.Errorf("the build was killed (exit status 137), most likely for exceeding its memory limit (%d MiB)", spec.Limits.MemoryBytes>>20)
	case res.ExitCode != 0:
		err = fmt.Errorf("exit status %d", res.ExitCode)
	default:
		return nil
	}
	return &Error{Step: "go build", Output: dropPackageLines(out.Output()), Err: err}
}

// errGoTimeout is the cause of a Go build's context ending at GoTimeout.
var errGoTimeout = errors.New("go build timeout")

// asLimiter returns log as a logLimiter when it is one (notes go through it).
func asLimiter(w io.Writer) *logLimiter {
	if l, ok := w.(*logLimiter); ok {
		return l
	}
	if c, ok := w.(*capture); ok {
		return asLimiter(c.next)
	}
	if c, ok := w.(*pkgCounter); ok {
		return asLimiter(c.next)
	}
	return newLogLimiter(w, DefaultMaxLog)
}

// userCaches returns (creating them) the owner's build cache and module
// cache folders, writable by the build sandbox's user alone. A user's
// caches are used by that user's builds only: nothing one user's build puts
// there can reach another user's program.
func (b *Builder) userCaches(owner string) (cache, mods string, err error) {
	root := filepath.Join(b.cacheDir, "users", owner)
	cache, mods = filepath.Join(root, "go-build"), filepath.Join(root, "gomod")
	for _, d := range []string{root, cache, mods} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", "", fmt.Errorf("build: user cache: %w", err)
		}
	}
	for _, d := range []string{cache, mods} {
		if err := os.Chown(d, buildUID, buildGID); err != nil {
			return "", "", fmt.Errorf("build: user cache: %w", err)
		}
	}
	return cache, mods, nil
}

// trimUserCaches empties the owner's caches when together they exceed
// MaxUserCache: a cache may be rebuilt, a full disk may not be undone.
func (b *Builder) trimUserCaches(owner string, lw *logLimiter) (emptied bool) {
	root := filepath.Join(b.cacheDir, "users", owner)
	var size int64
	filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				size += fi.Size()
			}
		}
		return nil
	})
	if size > b.opts.MaxUserCache {
		lw.notef("your build caches hold %d MiB, over the %d MiB allowed: emptied (the next build starts cold)", size>>20, b.opts.MaxUserCache>>20)
		os.RemoveAll(root)
		return true
	}
	return false
}

// openUp makes a folder the Host wrote (owner-only, as source trees are)
// readable by the build sandbox's user, which mounts it read-only.
func openUp(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		} else if !d.Type().IsRegular() {
			return fmt.Errorf("build: unexpected %s in a source tree", d.Type())
		}
		return os.Chmod(p, mode)
	})
}

// readBinary copies the binary a build wrote at src to dst. The build's
// output folder was writable by the sandbox, so what is there is hostile: it
// must be a regular file, opened without following a symbolic link (one
// pointing at a Host file would copy that file into the program's image)
// and without blocking on a FIFO, and of a sane size.
func readBinary(src, dst string) error {
	fd, err := syscall.Open(src, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("build: the build left no program binary: %v", err)
	}
	f := os.NewFile(uintptr(fd), "app")
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("build: the build's output is a %s, not a program binary", st.Mode().Type())
	}
	if st.Size() > maxBinary {
		return fmt.Errorf("build: the program binary has %d bytes, over the %d allowed", st.Size(), maxBinary)
	}
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, []byte("\x7fELF")) {
		return errors.New("build: the build's output is not a program binary")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, io.LimitReader(f, maxBinary))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Chmod(dst, 0o755)
}

// randomSuffix tells concurrent build containers apart.
func randomSuffix() string { return rand.Text()[:10] }
