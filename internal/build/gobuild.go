package build

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/version"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/source"
)

// Environment variables passed from the Host to `go` when set: module
// download settings and network proxies. Nothing else of the Host's
// environment reaches a build (GOFLAGS, for one, is set by the Builder).
var goPassEnv = []string{
	"GOROOT", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOINSECURE", "GOVCS",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
	"SSL_CERT_FILE", "SSL_CERT_DIR",
}

// goEnv is the complete environment of a `go` command run for a build in
// work (HOME and temporary files stay inside it). GOENV=off keeps a
// go/env file in the program's source (HOME is user-controlled ground) from
// setting flags such as -toolexec; GOTOOLCHAIN=local forbids toolchain
// downloads; GOWORK=off ignores a go.work in the source.
func (b *Builder) goEnv(work string) []string {
	env := []string{
		"PATH=" + filepath.Dir(b.goBin) + string(os.PathListSeparator) + "/usr/local/bin:/usr/bin:/bin",
		"HOME=" + filepath.Join(work, "home"),
		"XDG_CONFIG_HOME=" + b.goConfig,
		"GOPATH=" + filepath.Join(work, "home", "go"),
		"GOTMPDIR=" + filepath.Join(work, "tmp"),
		"TMPDIR=" + filepath.Join(work, "tmp"),
		"GOENV=off",
		"GOWORK=off",
		"GOTOOLCHAIN=local",
		"GOFLAGS=-mod=mod -modcacherw -buildvcs=false",
		"CGO_ENABLED=0",
		"GOOS=linux",
		"GOARCH=" + b.opts.GOARCH,
		"GOCACHE=" + b.opts.GoCacheDir,
		"GOMODCACHE=" + b.opts.GoModCacheDir,
		"GOPROXY=" + b.opts.GoProxy,
	}
	for _, k := range goPassEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// errGoTimeout is the cause of a Go build's context ending at GoTimeout.
var errGoTimeout = errors.New("go build timeout")

// goModFile is the part of `go mod edit -json` the Builder reads.
type goModFile struct {
	Module  struct{ Path string }
	Go      string
	Replace []struct {
		Old struct{ Path, Version string }
		New struct{ Path, Version string }
	}
}

// compileGo builds a Go-source program: it copies files into work/src,
// points the framework's module at the Host's copy, compiles a static
// linux binary to binPath and streams the compiler's output to log.
func (b *Builder) compileGo(ctx context.Context, work string, files source.Files, binPath string, log *logLimiter) error {
	if b.goErr != nil {
		return b.goErr
	}
	if _, ok := files[source.GoModName]; !ok {
		return fmt.Errorf("build: %w", ErrNoBuildFile)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, b.opts.GoTimeout, errGoTimeout)
	defer cancel()

	src := filepath.Join(work, "src")
	if err := source.WriteTree(src, "", files); err != nil {
		return fmt.Errorf("build: copy source: %w", err)
	}
	for _, d := range []string{"home", "tmp"} {
		if err := os.Mkdir(filepath.Join(work, d), 0o700); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	env := b.goEnv(work)

	// Read go.mod through the go command itself (the authoritative parser).
	var modJSON bytes.Buffer
	if err := b.runGo(ctx, "reading go.mod", src, env, &modJSON, nil, "mod", "edit", "-json"); err != nil {
		var be *Error
		if errors.As(err, &be) && ctx.Err() == nil {
			be.Err = fmt.Errorf("%w: %w", ErrGoMod, be.Err)
		}
		return err
	}
	var mod goModFile
	if err := json.Unmarshal(modJSON.Bytes(), &mod); err != nil {
		return fmt.Errorf("build: %w: go mod edit -json: %v", ErrGoMod, err)
	}
	if err := b.checkGoVersion(mod.Go); err != nil {
		return err
	}

	// The framework resolves to the Host's copy, whatever version the
	// program requires and whatever replace it brought along (say, the
	// ../../hersh of a program developed inside this repository).
	edit := []string{"mod", "edit"}
	for _, r := range mod.Replace {
		if r.Old.Path == FrameworkModule {
			old := r.Old.Path
			if r.Old.Version != "" {
				old += "@" + r.Old.Version
			}
			edit = append(edit, "-dropreplace="+old)
			continue
		}
		if err := checkLocalReplace(r.Old.Path, r.New.Path, r.New.Version); err != nil {
			return err
		}
	}
	// A relative path: the replacement's path ends up in the binary's build
	// info, and the Host's folders are none of the program's business.
	fw, err := filepath.Rel(src, b.framework)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	edit = append(edit, "-replace="+FrameworkModule+"="+filepath.ToSlash(fw))
	if err := b.runGo(ctx, "go mod edit", src, env, nil, log, edit...); err != nil {
		return err
	}

	log.notef("go build (%s, linux/%s, timeout %s)", b.goVersion, b.opts.GOARCH, b.opts.GoTimeout)
	start := time.Now()
	if err := b.runGo(ctx, "go build", src, env, nil, log, "build", "-trimpath", "-ldflags=-s -w", "-o", binPath, "."); err != nil {
		return err
	}
	log.notef("go build finished in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// checkGoVersion refuses a go.mod that needs a newer Go than the Host's.
func (b *Builder) checkGoVersion(need string) error {
	have := b.goVersion
	if need == "" || !version.IsValid(have) {
		return nil // let the go command decide
	}
	if !version.IsValid("go" + need) {
		return fmt.Errorf("build: %w: go.mod has an invalid go version %q", ErrGoMod, need)
	}
	if version.Compare("go"+need, have) > 0 {
		return fmt.Errorf("build: %w: go.mod says go %s, but the Host's toolchain is %s and toolchain downloads are disabled; lower the go line to at most %s",
			ErrToolchain, need, have, strings.TrimPrefix(version.Lang(have), "go"))
	}
	return nil
}

// checkLocalReplace refuses a replace directive whose target is a folder
// outside the program's source: the build must not read the Host's files.
func checkLocalReplace(old, newPath, newVersion string) error {
	local := newVersion == "" && (strings.HasPrefix(newPath, "./") || strings.HasPrefix(newPath, "../") || filepath.IsAbs(newPath) || newPath == "." || newPath == "..")
	if !local {
		return nil // a module version: fetched through GOPROXY
	}
	clean := filepath.Clean(newPath)
	if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return fmt.Errorf("build: %w: replace %s => %s points outside the program's source; only folders inside it are allowed", ErrGoMod, old, newPath)
	}
	return nil
}

// runGo runs the go command in dir. Its combined output goes to log (when
// not nil) and is kept for the error; stdout alone goes to stdout when set.
func (b *Builder) runGo(ctx context.Context, step, dir string, env []string, stdout io.Writer, log *logLimiter, args ...string) error {
	var next io.Writer = io.Discard
	if log != nil {
		next = log
	}
	out := newCapture(next, b.opts.MaxOutput)
	cmd := exec.CommandContext(ctx, b.goBin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stderr = out
	cmd.Stdout = out
	if stdout != nil {
		cmd.Stdout = stdout
	}
	killGroup(cmd)
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) && context.Cause(ctx) == errGoTimeout {
			err = fmt.Errorf("timed out after %s: %w", b.opts.GoTimeout, ctxErr)
		} else {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
	}
	return &Error{Step: step, Output: out.Output(), Err: err}
}
