package builder

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hershyorg/hershy/internal/builder/internal/fwzip"
	"github.com/hershyorg/hershy/internal/source"
)

// warmPackages are compiled into the shared cache layer besides the
// framework (whose own imports, net/http among them, come with it): the
// standard packages programs commonly use. A program importing others
// compiles them into its owner's cache.
var warmPackages = []string{
	"bufio", "bytes", "compress/gzip", "container/heap", "context", "crypto/ecdsa", "crypto/ed25519",
	"crypto/hmac", "crypto/rand", "crypto/sha256", "crypto/sha512", "crypto/tls", "encoding/base64",
	"encoding/binary", "encoding/csv", "encoding/hex", "encoding/json", "errors", "flag", "fmt", "io",
	"log", "log/slog", "maps", "math", "math/big", "math/rand", "math/rand/v2", "net", "net/http",
	"net/http/httputil", "net/url", "os", "os/signal", "path", "path/filepath", "regexp", "slices",
	"sort", "strconv", "strings", "sync", "sync/atomic", "syscall", "text/template", "time",
	"unicode/utf8",
}

// warmKey names what a warm shared layer holds: the toolchain, the
// architecture, the framework's source and the package list.
func (b *Builder) warmKey() string {
	h := sha256.New()
	fv, _ := FrameworkVersion()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s", b.goVersion, b.opts.GOARCH, fv, strings.Join(warmPackages, ","))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// WarmUp fills the shared cache layer, so that programs' builds find the
// standard library and the framework compiled: without it the first
// Go-source build of each user compiles all of that itself (about a minute
// under gVisor on a 2-core machine, against seconds warm). The Host runs it
// in the background when it opens; builds that start meanwhile wait for it.
// It compiles only the Host's own code, in the build sandbox, and is done
// once per toolchain and framework version (a stamp file records it), by
// one Host at a time when several share the layer.
func (b *Builder) WarmUp(ctx context.Context, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	return b.warm(ctx, newLogLimiter(log, b.opts.MaxLog))
}

func (b *Builder) warm(ctx context.Context, lw *logLimiter) error {
	if b.goErr != nil {
		return b.goErr
	}
	b.warmMu.Lock()
	defer b.warmMu.Unlock()
	if b.warmed {
		return nil
	}
	stamp := filepath.Join(b.opts.SharedCacheDir, "warm-"+b.warmKey())
	if _, err := os.Stat(stamp); err == nil {
		b.warmed = true
		return nil
	}
	// One warm-up at a time per shared layer, across Hosts.
	lock, err := os.OpenFile(filepath.Join(b.opts.SharedCacheDir, ".warm.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("build: warm-up: %w", err)
	}
	defer lock.Close()
	if err := flockContext(ctx, lock); err != nil {
		return fmt.Errorf("build: warm-up: %w", err)
	}
	if _, err := os.Stat(stamp); err == nil {
		b.warmed = true
		return nil
	}
	lw.notef("warming the shared build cache (the standard library and the framework, once per toolchain)")
	work, err := os.MkdirTemp(b.workDir, "warmup-")
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	defer os.RemoveAll(work)
	gomod := "module hershy.local/warmup\n\n"
	if v := frameworkGoLine(); v != "" {
		gomod += "go " + v + "\n\n"
	}
	gomod += "require " + FrameworkModule + " v0.0.0\n\nreplace " + FrameworkModule + " => " + sbFramework + "\n"
	var main strings.Builder
	main.WriteString("package main\n\nimport (\n\t\"" + FrameworkModule + "\"\n")
	for _, p := range warmPackages {
		fmt.Fprintf(&main, "\t_ %q\n", p)
	}
	main.WriteString(")\n\nfunc main() { _ = hersh.DefaultConfig() }\n")
	in := filepath.Join(work, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	src := filepath.Join(in, "src")
	if err := source.WriteTree(src, "", source.Files{"go.mod": gomod, "main.go": main.String()}); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	if err := openUp(src); err != nil {
		return err
	}
	if err := os.Chown(b.opts.SharedCacheDir, buildUID, buildGID); err != nil {
		return fmt.Errorf("build: warm-up: %w", err)
	}
	// -o /dev/null: compile and link, keep nothing but the cache.
	if err := b.runGo(ctx, goJob{name: "warmup", in: in, modFlag: "-mod=readonly", args: []string{"build", "-o", "/dev/null", "."}}, lw); err != nil {
		return err
	}
	if err := os.WriteFile(stamp, nil, 0o644); err != nil {
		return fmt.Errorf("build: warm-up: %w", err)
	}
	lw.notef("shared build cache warm")
	b.warmed = true
	return nil
}

// flockContext takes an exclusive lock on f, giving up when ctx ends.
func flockContext(ctx context.Context, f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-afterPoll():
		}
	}
}

// frameworkGoLine returns the go version of the embedded framework's go.mod.
func frameworkGoLine() string {
	files, err := fwzip.Unzip(frameworkZip)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(strings.NewReader(files["go.mod"]))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "go" {
			return f[1]
		}
	}
	return ""
}

// afterPoll paces flockContext's retries.
func afterPoll() <-chan time.Time { return time.After(200 * time.Millisecond) }
