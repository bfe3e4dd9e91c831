package builder

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/hershyorg/hershy/internal/gomod"
	"github.com/hershyorg/hershy/internal/source"
)

// CheckGoModule checks a Go-source program's go.mod and go.sum before it is
// stored (see gomod.Read): errors wrap ErrGoMod or ErrToolchain and say
// what to fix. Nothing is fetched or built.
func (b *Builder) CheckGoModule(files source.Files) error {
	_, err := b.goPlan(files)
	return err
}

func (b *Builder) goPlan(files source.Files) (*gomod.Plan, error) {
	_, vendored := files[vendorModules]
	plan, err := gomod.Read([]byte(files[source.GoModName]), []byte(files[goSumName]), vendored,
		gomod.Options{Toolchain: b.goVersion, Framework: FrameworkModule})
	if err != nil {
		return nil, fmt.Errorf("build: %w", err) // ErrGoMod or ErrToolchain
	}
	return plan, nil
}

const (
	goSumName     = "go.sum"
	vendorModules = "vendor/modules.txt"
)

// compileGo builds a Go-source program of owner in the build sandbox: it
// writes the build's copy of the source into work (go.mod pointing at the
// Host's framework), fetches the modules go.sum pins, runs go build with no
// network and copies the binary to binPath. Output goes to log; progress,
// if set, hears how far go build is (see Request.Progress).
func (b *Builder) compileGo(ctx context.Context, owner, work string, files source.Files, binPath string, log *logLimiter, progress func(Progress)) error {
	if b.goErr != nil {
		return b.goErr
	}
	if _, ok := files[source.GoModName]; !ok {
		return fmt.Errorf("build: %w", ErrNoBuildFile)
	}
	plan, err := b.goPlan(files)
	if err != nil {
		return err
	}
	build := maps.Clone(files)
	modFlag := "-mod=vendor" // vendor/ has everything, the framework included
	if !plan.Vendor {
		gm, err := gomod.BuildGoMod([]byte(files[source.GoModName]), FrameworkModule, sbFramework, frameworkGoLine())
		if err != nil {
			return fmt.Errorf("build: %w", err)
		}
		build[source.GoModName] = string(gm)
		modFlag = "-mod=readonly"
	}
	// The build's input and output folders: the owner's kept sandbox's, or
	// this build's own for a one-shot sandbox.
	sb := b.takeKept(owner)
	in, out := filepath.Join(work, "in"), filepath.Join(work, "out")
	if sb != nil {
		defer b.giveBack(sb)
		if err := sb.prepare(); err != nil {
			return err
		}
		in, out = sb.in(), sb.out()
	} else {
		if err := os.Mkdir(in, 0o755); err != nil {
			return fmt.Errorf("build: %w", err)
		}
		if err := os.Mkdir(out, 0o700); err != nil {
			return fmt.Errorf("build: %w", err)
		}
		if err := os.Chown(out, buildUID, buildGID); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	src := filepath.Join(in, "src")
	if err := source.WriteTree(src, "", build); err != nil {
		return fmt.Errorf("build: copy source: %w", err)
	}
	if err := openUp(src); err != nil {
		return err
	}
	if len(plan.Sums) > 0 {
		log.notef("dependencies: %d go.sum entries, through the module proxy", len(plan.Sums))
		if b.proxyNote != "" {
			log.notef("%s", b.proxyNote)
		}
		err := b.fetcher.Prepare(ctx, plan, filepath.Join(in, "goproxy"), gomod.Limits{MaxBytes: b.opts.MaxDownload}, log)
		// The view holds its own links: trimming now frees what no build uses.
		if terr := b.fetcher.Trim(b.opts.MaxModuleStore); terr != nil {
			log.notef("trimming the module store: %v", terr)
		}
		if err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	if err := b.warm(ctx, log); err != nil {
		// A cold cache is slower, not wrong.
		log.notef("the shared build cache could not be warmed (%v); building without it", firstLines(err.Error(), 1, 300))
	}
	where := "a new build sandbox"
	if sb != nil {
		where = "your build sandbox"
	}
	log.notef("go build (%s, linux/%s, in %s under %s, timeout %s)", b.goVersion, b.opts.GOARCH, where, b.opts.Runtime, b.opts.GoTimeout)
	start := time.Now()
	pkgs := &pkgCounter{next: log}
	pctx, stopProgress := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		reportProgress(pctx, log, pkgs, progress)
	}()
	err = b.runGo(ctx, goJob{
		name: owner, owner: owner, in: in, out: out, proxy: len(plan.Sums) > 0, modFlag: modFlag, kept: sb,
		args: []string{"build", "-v", "-ldflags=-s -w", "-o", sbOut + "/app", "."},
	}, pkgs)
	stopProgress()
	<-done
	if b.trimUserCaches(owner, log) && sb != nil {
		b.endKept(ctx, sb) // it has the emptied caches mounted
	}
	if err != nil {
		return err
	}
	took := time.Since(start)
	if progress != nil {
		progress(Progress{Packages: pkgs.Packages(), Elapsed: took, Done: true})
	}
	log.notef("go build finished in %s (%d packages compiled, the rest cached)", took.Round(time.Millisecond), pkgs.Packages())
	return readBinary(filepath.Join(out, "app"), binPath)
}
