package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/client"
	"github.com/hershyorg/hershy/internal/driver/imagetar"
)

// byHand builds the bench program the way a careful user would without
// the Host: go build on this machine (warm caches), the image imported by
// the engine from a tar of the same files the Host puts in its layer, and
// a container run from it with the Host's flags.
type byHand struct {
	r         *runner
	framework string // the framework source, for go.mod's replace
	gocache   string
	caCerts   []byte
}

func (r *runner) newByHand(ctx context.Context) (*byHand, error) {
	fw, err := builder.ExtractFramework(filepath.Join(r.o.WorkDir, "framework"))
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	// A cache of its own per runtime: the same source versions are built
	// under each, and a binary the cache already holds costs no link.
	b := &byHand{r: r, framework: fw, gocache: filepath.Join(r.o.WorkDir, "gocache-"+r.rt), caCerts: ca}
	// Warm the caches: the standard library and the framework, once.
	if _, err := b.build(ctx, 0); err != nil {
		return nil, err
	}
	return b, nil
}

// build compiles source version v and returns the binary's path.
func (b *byHand) build(ctx context.Context, v int) (string, error) {
	dir := filepath.Join(b.r.o.WorkDir, "byhand", strconv.Itoa(v))
	files := programSource(v)
	files["go.mod"] += "\nreplace " + builder.FrameworkModule + " => " + b.framework + "\n"
	if err := writeFiles(dir, files); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "app")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOCACHE="+b.gocache, "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off",
		"CGO_ENABLED=0", "GOOS=linux", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build by hand: %w\n%s", err, out)
	}
	return bin, nil
}

// image imports the image of the binary bin as tag, in one engine call.
func (b *byHand) image(ctx context.Context, tag, bin string) error {
	f, err := os.Open(bin)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	spec, files := builder.ProgramImage(tag, f, st.Size(), b.caCerts)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(imagetar.WriteLayer(pw, files)) }()
	_, err = b.r.engine.ImportImage(ctx, spec, pr)
	pr.Close()
	return err
}

// warmDeployFigure: a new version of a running program's source → Ready
// through the Host (update the source, restart: a build in the build
// sandbox with warm caches, the image, the start), against go build on
// this machine + the image import + a run, by hand. Rounds alternate.
// Then the image step alone: the Host's build log times its import; the
// baseline is the same import by hand of the same binary.
func (r *runner) warmDeployFigure(ctx context.Context, h *hostProc) error {
	t := newTracker(ctx, h.admin)
	defer t.close()
	p, err := deployProgram(ctx, h, t, benchUser, 100, 0)
	if err != nil {
		return err
	}
	hand, err := r.newByHand(ctx)
	if err != nil {
		return err
	}
	stateDir, err := r.rawStateDir("warm")
	if err != nil {
		return err
	}
	var viaHost, byHandAll, hostImage, handImage, hostCompile, handCompile []time.Duration
	hostOnce := func(v int) error {
		t0 := time.Now()
		if _, err := h.admin.UpdateSource(ctx, p.ProgramID, client.SourceRequest{SrcFiles: programSource(v)}); err != nil {
			return err
		}
		res, err := h.admin.Restart(ctx, p.ProgramID)
		if err != nil {
			return err
		}
		got, err := awaitState(ctx, t, map[string]uint64{p.ProgramID: res.Seq}, "Ready", 10*time.Minute)
		if err != nil {
			return err
		}
		viaHost = append(viaHost, got[p.ProgramID].Sub(t0))
		compile, image, err := buildTimes(ctx, h.admin, p.ProgramID)
		if err != nil {
			return err
		}
		hostCompile, hostImage = append(hostCompile, compile), append(hostImage, image)
		return nil
	}
	handOnce := func(v int) error {
		tag := fmt.Sprintf("hershy-bench-byhand:%s-%d", r.rt, v)
		t0 := time.Now()
		bin, err := hand.build(ctx, v)
		if err != nil {
			return err
		}
		i0 := time.Now()
		handCompile = append(handCompile, i0.Sub(t0))
		if err := hand.image(ctx, tag, bin); err != nil {
			return err
		}
		handImage = append(handImage, time.Since(i0))
		cid, _, err := r.rawRun(ctx, r.rawSpec("warm", tag, stateDir, 0), time.Millisecond, nil)
		took := time.Since(t0)
		if cid != "" {
			err = errors.Join(err, r.removeRaw(cid))
		}
		err = errors.Join(err, r.engine.RemoveImage(context.WithoutCancel(ctx), tag))
		if err == nil {
			byHandAll = append(byHandAll, took)
		}
		return err
	}
	for i := range r.o.Rounds {
		first, second := hostOnce, handOnce
		if i%2 == 1 {
			first, second = handOnce, hostOnce
		}
		if err := first(1000 + 2*i); err != nil {
			return err
		}
		if err := second(1001 + 2*i); err != nil {
			return err
		}
	}
	note := fmt.Sprintf("medians of %d rounds each, alternating", r.o.Rounds)
	r.rep.add(Figure{
		Name: "image step of a Go-source deploy, vs the same import by hand", Runtime: r.rt,
		Value: ms(median(hostImage)), Baseline: ms(median(handImage)),
		Ratio: ratio(median(hostImage), median(handImage)), Target: "≤ 1.2×", Met: ratio(median(hostImage), median(handImage)) <= 1.2,
		Note: note + "; the Host's from its build log",
	})
	r.rep.add(Figure{
		Name: "warm deploy of changed source → Ready, vs go build + import + run by hand", Runtime: r.rt,
		Value: ms(median(viaHost)), Baseline: ms(median(byHandAll)),
		Ratio: ratio(median(viaHost), median(byHandAll)), Target: "≤ 1.5×", Met: ratio(median(viaHost), median(byHandAll)) <= 1.5,
		Note: fmt.Sprintf("%s; the Host also stops the running version; go build took %s in the Host's build sandbox, %s by hand",
			note, ms(median(hostCompile)), ms(median(handCompile))),
	})
	return nil
}

// buildTimes reads, from the program's build log, how long the Host's go
// build took in its sandbox ("==> go build finished in 1.2s (...") and its
// image import ("==> image ... imported in 123ms").
func buildTimes(ctx context.Context, c *client.Client, id string) (compile, image time.Duration, err error) {
	rc, err := c.BuildLog(ctx, id, false)
	if err != nil {
		return 0, 0, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		if after, ok := strings.CutPrefix(line, "==> go build finished in "); ok {
			d, _, _ := strings.Cut(after, " ")
			compile, err = time.ParseDuration(d)
		}
		if _, after, ok := strings.Cut(line, ") imported in "); ok && strings.HasPrefix(line, "==> image ") {
			image, err = time.ParseDuration(strings.TrimSpace(after))
		}
		if err != nil {
			return 0, 0, fmt.Errorf("build log of %s: %q: %w", id, line, err)
		}
	}
	if compile == 0 || image == 0 {
		return 0, 0, fmt.Errorf("no go build or image import time in the build log of %s:\n%s", id, b)
	}
	return compile, image, nil
}
