package docker

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/hershyorg/hershy/internal/driver"
)

var _ driver.JobKeeper = (*Driver)(nil)

// StartJob creates and starts a job container that stays up (see
// driver.JobKeeper), under RunJob's contract. A container that cannot be
// started is removed.
func (d *Driver) StartJob(ctx context.Context, spec driver.JobSpec) (string, error) {
	cfg, hc, err := jobConfig(spec)
	if err != nil {
		return "", err
	}
	created, err := d.cli.ContainerCreate(ctx, cfg, hc, nil, nil, spec.Name)
	if err != nil {
		return "", fmt.Errorf("docker: create job %s: %w", spec.Name, ctxErr(ctx, err))
	}
	if err := d.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		d.RemoveContainer(rctx, created.ID)
		return "", fmt.Errorf("docker: start job %s: %w", spec.Name, ctxErr(ctx, err))
	}
	return created.ID, nil
}

// ExecJob runs one command in a kept job's container (see
// driver.JobKeeper). The engine's exec stream is how the command's end is
// learned; a look at the container every few seconds backs it up: under
// runsc a memory kill takes the whole sandbox down and the engine's exec
// then never ends (seen here with runsc 2022: `docker exec` hangs after
// "urpc method containerManager.WaitPID failed: EOF").
func (d *Driver) ExecJob(ctx context.Context, id string, spec driver.ExecSpec, out io.Writer) (res driver.JobResult, err error) {
	if err := spec.Check(); err != nil {
		return res, fmt.Errorf("docker: %w", err)
	}
	ex, err := d.cli.ContainerExecCreate(ctx, id, container.ExecOptions{
		User: spec.User, WorkingDir: spec.WorkDir, Env: append([]string(nil), spec.Env...),
		Cmd: append([]string(nil), spec.Cmd...), AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return res, notFound(ctxErr(ctx, err), "exec in job", id)
	}
	att, err := d.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return res, fmt.Errorf("docker: exec in job %s: %w", id, ctxErr(ctx, err))
	}
	defer att.Close()
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(out, out, att.Reader)
		copied <- err
	}()
	check := time.NewTicker(jobCheckEvery)
	defer check.Stop()
	gone := 0
	for {
		select {
		case <-copied:
			ins, err := d.cli.ContainerExecInspect(context.WithoutCancel(ctx), ex.ID)
			if err != nil {
				return res, fmt.Errorf("docker: exec in job %s: %w", id, err)
			}
			if ins.Running {
				// The stream ended but the command did not: the engine
				// lost it with the container.
				return d.execDied(ctx, id, true)
			}
			if ins.ExitCode >= 128 && d.stoppedSoon(ctx, id) {
				// Under runsc a command whose sandbox died (a memory
				// kill) ends with 128 or so, and the engine may mark the
				// container stopped a moment later.
				return d.execDied(ctx, id, false)
			}
			res.ExitCode = ins.ExitCode
			return res, nil
		case <-ctx.Done():
			att.Close()
			<-copied
			return res, fmt.Errorf("docker: exec in job %s: %w", id, ctx.Err())
		case <-check.C:
			stopped, _, vanished := d.jobEnded(ctx, id)
			if vanished {
				gone++
			} else {
				gone = 0
			}
			if stopped || gone >= 2 {
				att.Close()
				<-copied
				return d.execDied(ctx, id, !stopped)
			}
		}
	}
}

// execDied is ExecJob's result when the job's container stopped under the
// command, or its sandbox vanished while the engine still showed it
// running: 137, as for a kill, and whether the engine saw a memory kill.
func (d *Driver) execDied(ctx context.Context, id string, vanished bool) (driver.JobResult, error) {
	res := driver.JobResult{ExitCode: 137, Vanished: vanished}
	if ins, err := d.cli.ContainerInspect(context.WithoutCancel(ctx), id); err == nil && ins.State != nil {
		res.OOMKilled = ins.State.OOMKilled
	}
	return res, nil
}

// stoppedSoon tells whether the container is stopped now or within a
// couple of seconds.
func (d *Driver) stoppedSoon(ctx context.Context, id string) bool {
	ctx = context.WithoutCancel(ctx)
	for i := range 5 {
		if i > 0 {
			time.Sleep(500 * time.Millisecond)
		}
		c, err := d.cli.ContainerInspect(ctx, id)
		if err != nil || c.State == nil {
			return false
		}
		if !c.State.Running {
			return true
		}
	}
	return false
}
