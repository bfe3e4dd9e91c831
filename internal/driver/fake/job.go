package fake

import (
	"context"
	"fmt"
	"io"

	"github.com/hershyorg/hershy/internal/driver"
)

// exitZero is a job that does nothing.
func exitZero(context.Context, *Process) int { return 0 }

// RunJob runs a one-shot container under the contract (spec.Check) to
// completion: its Program (the image's, else Options.Job) gets the job's
// command as Args and writes its output to out as it comes. The container
// exists, labelled, while the job runs, and is removed whatever happens;
// when ctx ends first the job is killed and removed and the error wraps
// ctx's. If the engine dies under the job, RunJob fails and the job's
// container stays, as a real engine's would.
func (d *Driver) RunJob(ctx context.Context, spec driver.JobSpec, out io.Writer) (driver.JobResult, error) {
	call := Call{Method: "RunJob", Ref: spec.Name, Spec: spec}
	h, err := d.begin(ctx, call)
	if err != nil {
		return driver.JobResult{}, err
	}
	res, err := d.runJob(ctx, spec, out)
	return res, end(ctx, h, call, err)
}

func (d *Driver) runJob(ctx context.Context, spec driver.JobSpec, out io.Writer) (driver.JobResult, error) {
	var res driver.JobResult
	if err := spec.Check(); err != nil {
		return res, fmt.Errorf("fake: %w", err)
	}
	if err := driver.BindOnly(spec.Mounts); err != nil {
		return res, fmt.Errorf("fake: %w", err)
	}
	if err := checkSources(spec.Mounts); err != nil {
		return res, fmt.Errorf("fake: create job %s: %w", spec.Name, err)
	}
	if out == nil {
		out = io.Discard
	}
	d.mu.Lock()
	if err := d.usableLocked("RunJob"); err != nil {
		d.mu.Unlock()
		return res, err
	}
	img := d.image(spec.Image)
	if img == nil {
		d.mu.Unlock()
		return res, fmt.Errorf("fake: create job %s: image %s: %w", spec.Name, spec.Image, driver.ErrNotFound)
	}
	// A job takes its image's labels as they are (the Docker driver
	// overrides them only for program containers).
	c, err := d.newContainerLocked(spec.Name, img, spec.Labels, false)
	if err != nil {
		d.mu.Unlock()
		return res, err
	}
	c.job, c.out = true, out
	c.runtime, c.user = driver.SpecRuntime(spec.Runtime), spec.User
	c.args, c.env = append([]string(nil), spec.Cmd...), mergeEnv(img, spec.Env)
	c.mounts, c.limits = append([]driver.Mount(nil), spec.Mounts...), spec.Limits
	def := d.opts.Job
	if def == nil {
		def = exitZero
	}
	p := d.runLocked(c, d.programOf(img, def))
	crashed := d.crashed
	d.mu.Unlock()

	var waitErr error
	select {
	case <-p.done:
	case <-ctx.Done():
		d.mu.Lock()
		p.exitLocked(137, false)
		d.mu.Unlock()
		waitErr = fmt.Errorf("fake: job %s: %w", spec.Name, ctx.Err())
	case <-crashed:
		waitErr = fmt.Errorf("fake: wait for job %s: %w", spec.Name, ErrEngineDown)
	}
	// From here on the job's output no longer reaches out.
	c.outMu.Lock()
	c.out = nil
	c.outMu.Unlock()
	if p.ctx.Err() == nil {
		return res, waitErr // the engine died under the job: it goes on
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usableLocked("RunJob"); err != nil {
		return res, err // the engine is gone: the job's container stays
	}
	res.ExitCode, res.OOMKilled = c.exitCode, c.oom
	c.removed = true
	delete(d.containers, c.id)
	delete(d.names, c.name)
	c.broadcast()
	return res, waitErr
}
