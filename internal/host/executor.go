package host

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
)

// executor performs the lifecycle's effects for the supervisors.
type executor struct{ h *Host }

// The errors of build, launch and probe become the program's error_msg and
// history: relErr takes the Host's data directory out of them.
func (e executor) Build(ctx context.Context, id, buildID string) (string, error) {
	img, err := e.h.build(ctx, id, buildID)
	return img, e.h.relErr(err)
}
func (e executor) Launch(ctx context.Context, id, image string) (string, error) {
	cid, err := e.h.launch(ctx, id, image)
	return cid, e.h.relErr(err)
}
func (e executor) Probe(ctx context.Context, id, cid string) error {
	ctx, cancel := context.WithTimeout(ctx, e.h.opts.StartTimeout)
	defer cancel()
	e.h.probing.Add(1)
	defer e.h.probing.Add(-1)
	return e.h.relErr(probeReady(ctx, e.h.watcher, cid, e.h.probing.Load))
}
func (e executor) Halt(ctx context.Context, id string) error  { return e.h.relErr(e.h.halt(ctx, id)) }
func (e executor) Purge(ctx context.Context, id string) error { return e.h.relErr(e.h.purge(ctx, id)) }

// imageTag names the image of a build: hersh-program-<build id>, the name
// users' Dockerfiles build on.
func imageTag(buildID string) string { return "hersh-program-" + buildID }

// containerName names a program's container: hersh-program-<program id>.
func containerName(programID string) string { return "hersh-program-" + programID }

// build is the DoBuild effect: it builds (or reuses) the image for the
// program's source, recording the build and its log.
func (h *Host) build(ctx context.Context, id, buildID string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, h.opts.BuildTimeout)
	defer cancel()
	h.buildsMu.RLock()
	defer h.buildsMu.RUnlock()
	logs := h.builder.Logs()
	lw, err := logs.Create(buildID)
	if err != nil {
		return "", err
	}
	defer lw.Close()
	logPath, _ := logs.Path(buildID)
	started := time.Now()
	rec := store.Build{ID: buildID, Status: store.BuildBuilding, LogPath: logPath, StartedAt: started}
	if _, err := h.store.UpsertBuild(context.WithoutCancel(ctx), rec); err != nil {
		return "", err
	}
	row, err := h.store.GetProgram(ctx, id)
	if err != nil {
		return "", err
	}
	// The Dockerfile policy and its ownership rule again before an image is
	// built (an existing one is reused as it is): a source stored by an
	// older Host is judged by today's rules.
	if exists, err := h.driver.ImageExists(ctx, imageTag(buildID)); err != nil {
		return "", err
	} else if !exists {
		files, dockerfile, err := source.ReadTree(filepath.Join(h.programDir(id), "src"))
		if err != nil {
			return "", err
		}
		if err := h.checkDockerfile(ctx, row.UserID, dockerfile, files); err != nil {
			return "", err
		}
	}
	req := builder.Request{
		BuildID:   buildID,
		Owner:     row.UserID,
		SourceDir: filepath.Join(h.programDir(id), "src"),
		Tag:       imageTag(buildID),
		Labels:    map[string]string{driver.LabelInstance: h.instance},
		Progress: func(p builder.Progress) {
			h.publishProgress(id, BuildProgress{BuildID: buildID, Packages: p.Packages, Elapsed: p.Elapsed, Done: p.Done})
		},
	}
	breaks := h.breaks.Load()
	img, err := h.builder.Build(ctx, req, lw)
	if err != nil && ctx.Err() == nil && h.engineWentAway(ctx, breaks) {
		// Not the source's fault: build again once the engine is back
		// (within the build's own time limit), rather than fail.
		fmt.Fprintf(lw, "==> the build was interrupted: the container engine went away during it (%s); building again once it answers\n", firstLine(err.Error()))
		if werr := h.waitForEngine(ctx); werr != nil {
			err = fmt.Errorf("the build was interrupted: the container engine went away during it and did not answer again within the build's time limit: %w", err)
		} else {
			fmt.Fprintf(lw, "==> the engine answers again\n")
			img, err = h.builder.Build(ctx, req, lw)
		}
	}
	finished := time.Now()
	rec.FinishedAt, rec.Duration = &finished, finished.Sub(started)
	if err != nil {
		rec.Status, rec.Error = store.BuildFailed, err.Error()
	} else {
		rec.Status, rec.ImageID = store.BuildOK, img
	}
	if _, serr := h.store.UpsertBuild(context.WithoutCancel(ctx), rec); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return "", err
	}
	return imageTag(buildID), nil // the tag: stable across rebuilds and Host restarts
}

// spec is the container contract for a program (see driver.ContainerSpec).
func (h *Host) spec(row store.Program, image string) driver.ContainerSpec {
	lim := h.opts.Limits
	if row.Options.MemoryBytes > 0 {
		lim.MemoryBytes = row.Options.MemoryBytes
	}
	if row.Options.CPUs > 0 {
		lim.CPUs = row.Options.CPUs
	}
	if h.opts.Runtime == driver.RuntimeRunsc && lim.Pids < driver.MinPidsRunsc {
		lim.Pids = driver.MinPidsRunsc
	}
	env := []string{"HERSH_API_ADDR=" + watcherAddr, "HERSH_STATE_DIR=/state", "HERSHY_PROGRAM_ID=" + row.ID}
	keys := make([]string, 0, len(row.Options.Env))
	for k := range row.Options.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+row.Options.Env[k])
	}
	return driver.ContainerSpec{
		Name:    containerName(row.ID),
		Image:   image,
		Runtime: h.opts.Runtime,
		User:    strconv.Itoa(builder.ProgramUID) + ":" + strconv.Itoa(builder.ProgramGID),
		Env:     env,
		Labels: map[string]string{
			driver.LabelManaged:  "true",
			driver.LabelProgram:  row.ID,
			driver.LabelBuild:    row.BuildID,
			driver.LabelInstance: h.instance,
		},
		Mounts:  h.mounts(row.ID),
		Network: row.Options.Network,
		Limits:  lim,
	}
}

// mounts are the program's /state and secrets: folders of the data
// directory, or the engine's volumes.
func (h *Host) mounts(id string) []driver.Mount {
	if h.volumes != nil {
		return volumeMounts(id)
	}
	return append([]driver.Mount{{Source: filepath.Join(h.programDir(id), "state"), Target: "/state"}}, h.secretMounts(id)...)
}

// launch is the DoLaunch effect: remove any old container of the program,
// create and start a new one. If ctx is cancelled (a stop) or anything
// fails after the container exists, the container is removed: no orphans.
func (h *Host) launch(ctx context.Context, id, image string) (cid string, err error) {
	if err := h.halt(ctx, id); err != nil {
		return "", fmt.Errorf("removing the previous container: %w", err)
	}
	row, err := h.store.GetProgram(ctx, id)
	if err != nil {
		return "", err
	}
	// Never a container on an unmounted /state: it would write, uncapped,
	// into the bare mount point.
	if err := h.ensureState(ctx, row); err != nil {
		return "", err
	}
	spec := h.spec(row, image)
	gen := newGeneration()
	spec.Labels[driver.LabelGeneration] = gen
	// The engine calls take a launch slot and run under the launch's
	// deadline; the removal of a failed start below runs after the slot is
	// given back.
	select {
	case h.launches <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	lctx, cancel := context.WithTimeout(ctx, h.opts.LaunchTimeout)
	release := func() { cancel(); <-h.launches }
	cid, err = h.driver.CreateContainer(lctx, spec)
	if err != nil {
		err = h.launchErr(ctx, lctx, "create", err)
		release()
		// A create can fail on our side and still happen on the engine's
		// (the request cancelled by a stop or the deadline, the reply
		// lost): nothing knows that container's id, so it is looked for by
		// its labels.
		h.sweepLaunch(id, gen)
		return "", err
	}
	defer func() {
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
		if err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.opts.StopGrace+30*time.Second)
			defer cancel()
			h.stopCapture(cid)
			if rerr := h.driver.RemoveContainer(rctx, cid); rerr != nil {
				h.log.Error("removing a container after a failed start", "container", cid, "err", rerr)
			}
		}
	}()
	err = h.driver.StartContainer(lctx, cid)
	if err != nil {
		err = h.launchErr(ctx, lctx, "start", err)
	}
	release()
	if err != nil {
		return cid, err
	}
	h.startCapture(id, cid, time.Time{})
	// The previous container is gone: a replaced source's old build can go.
	h.collectBuildsLogged(ctx)
	return cid, nil
}

// launchErr says when an engine call of a launch failed because the
// launch's deadline passed, not because the launch was cancelled.
func (h *Host) launchErr(ctx, lctx context.Context, verb string, err error) error {
	if ctx.Err() == nil && errors.Is(lctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("the engine did not %s the container within %s: %w", verb, h.opts.LaunchTimeout, err)
	}
	return err
}

// sweepAfter are the delays after which sweepLaunch looks for the
// container of a failed create: at once, and later for an engine that
// finishes a cancelled request late.
var sweepAfter = []time.Duration{0, time.Second, 5 * time.Second, 30 * time.Second}

// sweepLaunch removes, in the background, the container a failed create
// may have left: the one labelled with the program and the launch's
// generation, which no later launch shares.
func (h *Host) sweepLaunch(id, gen string) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		labels := map[string]string{driver.LabelProgram: id, driver.LabelGeneration: gen, driver.LabelManaged: "true"}
		sweep := func(ctx context.Context) bool {
			cs, err := h.driver.ListContainers(ctx, labels)
			if err != nil {
				return false
			}
			for _, c := range cs {
				h.stopCapture(c.ID)
				if err := h.driver.RemoveContainer(ctx, c.ID); err != nil && !errors.Is(err, driver.ErrNotFound) {
					h.log.Error("removing the container of a failed create", "program", id, "container", c.ID, "err", err)
				}
			}
			if len(cs) > 0 {
				// A delete meanwhile had to keep the image this container
				// stood on: collect it now.
				h.collectBuildsLogged(ctx)
			}
			return len(cs) > 0
		}
		for _, wait := range sweepAfter {
			select {
			case <-h.ctx.Done():
				// The Host is closing: one last look, or a create the
				// engine finished late would outlive the Host unseen (a
				// next Host reconciles it, but there may be none).
				ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), 10*time.Second)
				defer cancel()
				sweep(ctx)
				return
			case <-time.After(wait):
			}
			if sweep(h.ctx) {
				return
			}
		}
	}()
}

// newGeneration names one launch (driver.LabelGeneration).
func newGeneration() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// halt is the DoHalt effect: stop (SIGTERM, then SIGKILL after the grace)
// and remove every container of the program, whatever the record says.
func (h *Host) halt(ctx context.Context, id string) error {
	ctx = context.WithoutCancel(ctx) // a halt, once begun, finishes
	cs, err := h.driver.ListContainers(ctx, map[string]string{driver.LabelProgram: id, driver.LabelManaged: "true"})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		if err := h.stopAndRemove(ctx, c.ID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stopAndRemove stops and removes one container, holding one of the halt
// slots: a thousand programs stopped at once are a thousand stops in the
// engine otherwise, which on two cores left it answering nothing else for
// minutes. A slot is held through the stop's grace period, so there are
// more of them than launch slots.
func (h *Host) stopAndRemove(ctx context.Context, cid string) error {
	select {
	case h.halts <- struct{}{}:
	case <-h.ctx.Done():
		return fmt.Errorf("stopping container %.12s: the Host is closing", cid)
	}
	defer func() { <-h.halts }()
	// Past the grace period the engine kills, so a stop that lasts much
	// longer waits on an engine that lost the container's exit (Docker
	// 20.10 did, for 16 of 1,000 stops, and its stop call then never
	// returned). Without a deadline such calls would hold every slot: the
	// halt fails instead, and the program says so.
	limit := h.opts.StopGrace + haltMargin
	hctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := h.driver.StopContainer(hctx, cid, h.opts.StopGrace); err != nil && !errors.Is(err, driver.ErrNotFound) {
		return haltErr(hctx, "stop", limit, err)
	}
	h.stopCapture(cid)
	if err := h.driver.RemoveContainer(hctx, cid); err != nil && !errors.Is(err, driver.ErrNotFound) {
		return haltErr(hctx, "remove", limit, err)
	}
	return nil
}

// haltMargin is how long past the grace period a stop and removal may take.
const haltMargin = 30 * time.Second

// haltErr says when a halt's engine call failed on its deadline.
func haltErr(hctx context.Context, verb string, limit time.Duration, err error) error {
	if errors.Is(hctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("the engine did not %s the container within %s: %w", verb, limit, err)
	}
	return err
}

// engineWentAway tells whether a failed build may be the engine's doing:
// its event stream ended since breaks was read (a restart ends it), or it
// does not answer now.
func (h *Host) engineWentAway(ctx context.Context, breaks int64) bool {
	if h.breaks.Load() != breaks {
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	return h.driver.Check(cctx) != nil
}

// waitForEngine waits until the engine answers, or ctx ends.
func (h *Host) waitForEngine(ctx context.Context) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, healthTimeout)
		err := h.driver.Check(cctx, h.opts.Runtime)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// firstLine is s up to its first line break.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
