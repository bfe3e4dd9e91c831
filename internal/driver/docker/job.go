package docker

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/hershyorg/hershy/internal/driver"
)

// RunJob runs spec to completion under the sandbox contract with network
// "none" (see driver.Driver.RunJob), streaming its stdout and stderr to out
// as they come, and removes the container whatever happens.
func (d *Driver) RunJob(ctx context.Context, spec driver.JobSpec, out io.Writer) (res driver.JobResult, err error) {
	cfg, hc, err := jobConfig(spec)
	if err != nil {
		return res, err
	}
	created, err := d.cli.ContainerCreate(ctx, cfg, hc, nil, nil, spec.Name)
	if err != nil {
		return res, fmt.Errorf("docker: create job %s: %w", spec.Name, ctxErr(ctx, err))
	}
	id := created.ID
	defer func() {
		// A job, once created, is removed: finished, failed or cancelled.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if rerr := d.RemoveContainer(rctx, id); rerr != nil && err == nil {
			err = rerr
		}
	}()

	// Attach before the start, so no output is missed; the stream ends when
	// the container does.
	att, err := d.cli.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return res, fmt.Errorf("docker: attach to job %s: %w", spec.Name, ctxErr(ctx, err))
	}
	defer att.Close()
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(out, out, att.Reader)
		copied <- err
	}()
	waitC, waitErr := d.cli.ContainerWait(ctx, id, container.WaitConditionNextExit)
	if err := d.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		att.Close()
		<-copied
		return res, fmt.Errorf("docker: start job %s: %w", spec.Name, ctxErr(ctx, err))
	}
	// The engine's wait is the way a job's end is learned; a look at the
	// container every few seconds backs it up, since the runsc shim has
	// been seen to miss a sandbox's death (a job would then hang until its
	// timeout).
	check := time.NewTicker(jobCheckEvery)
	defer check.Stop()
	gone := 0 // consecutive looks that found the job's process gone
wait:
	for {
		select {
		case w := <-waitC:
			res.ExitCode = int(w.StatusCode)
			if w.Error != nil && w.Error.Message != "" {
				err = fmt.Errorf("docker: job %s: %s", spec.Name, w.Error.Message)
			}
			break wait
		case werr := <-waitErr:
			err = fmt.Errorf("docker: wait for job %s: %w", spec.Name, ctxErr(ctx, werr))
			break wait
		case <-check.C:
			stopped, code, vanished := d.jobEnded(ctx, id)
			switch {
			case stopped:
				res.ExitCode = code
				break wait
			case vanished:
				// Twice in a row, so a process between two states is
				// not taken for a dead one.
				if gone++; gone >= 2 {
					res.ExitCode, res.Vanished = 137, true
					break wait
				}
			default:
				gone = 0
			}
		}
	}
	if err != nil {
		att.Close()
		<-copied
		return res, err
	}
	// The container has exited: its output ends by itself. Close after a
	// while in case the engine keeps the stream open.
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
		att.Close()
		<-copied
	}
	if ins, ierr := d.cli.ContainerInspect(context.WithoutCancel(ctx), id); ierr == nil && ins.State != nil {
		res.OOMKilled = ins.State.OOMKilled
	}
	return res, nil
}

// jobCheckEvery paces RunJob's look at a running job.
const jobCheckEvery = 3 * time.Second

// jobEnded looks at a job its wait has not reported ended: stopped when
// the engine shows it stopped (with its exit code), vanished when its init
// process (the sandbox under runsc) is gone from the machine while the
// engine still shows it running.
func (d *Driver) jobEnded(ctx context.Context, id string) (stopped bool, exitCode int, vanished bool) {
	ins, err := d.cli.ContainerInspect(ctx, id)
	if err != nil || ins.State == nil {
		return false, 0, false
	}
	st := ins.State
	switch {
	case !st.Running && st.Status != "created":
		return true, st.ExitCode, false
	case st.Running && st.Pid > 0:
		_, err := os.Stat("/proc/" + strconv.Itoa(st.Pid))
		return false, 0, os.IsNotExist(err)
	}
	return false, 0, false
}

// jobConfig validates a job spec and translates it, with the contract of
// containerConfig and network "none". It is pure, so the refusals are
// unit-tested.
func jobConfig(spec driver.JobSpec) (*container.Config, *container.HostConfig, error) {
	if err := spec.Check(); err != nil {
		return nil, nil, fmt.Errorf("docker: %w", err)
	}
	if err := driver.BindOnly(spec.Mounts); err != nil {
		return nil, nil, fmt.Errorf("docker: %w", err)
	}
	rtName := driver.SpecRuntime(spec.Runtime)
	lim := spec.Limits
	mounts := bindMounts(spec.Mounts)
	tmpfs := TmpfsOptions
	if spec.TmpBytes > 0 {
		tmpfs = "rw,noexec,nosuid,nodev,size=" + strconv.FormatInt(spec.TmpBytes, 10)
	}
	labels := make(map[string]string, len(spec.Labels)+1)
	for k, v := range spec.Labels {
		labels[k] = v
	}
	labels[driver.LabelManaged] = "true"
	pids := lim.Pids
	useInit := true
	cfg := &container.Config{
		Image:       spec.Image,
		User:        spec.User,
		Cmd:         append([]string(nil), spec.Cmd...),
		Entrypoint:  []string{},
		WorkingDir:  spec.WorkDir,
		Env:         append([]string(nil), spec.Env...),
		Labels:      labels,
		Healthcheck: &container.HealthConfig{Test: []string{"NONE"}},
		StopSignal:  "SIGKILL",
	}
	hc := &container.HostConfig{
		Runtime:        rtName,
		ReadonlyRootfs: true,
		Mounts:         mounts,
		Tmpfs:          map[string]string{"/tmp": tmpfs},
		IpcMode:        container.IPCModeNone,
		NetworkMode:    "none",
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges:true"},
		Init:           &useInit,
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		// The output is streamed to the caller through the attach; the
		// engine keeps no copy of it.
		LogConfig: container.LogConfig{Type: "none"},
		Resources: container.Resources{
			Memory:     lim.MemoryBytes,
			MemorySwap: lim.MemoryBytes,
			NanoCPUs:   int64(math.Round(lim.CPUs * 1e9)),
			PidsLimit:  &pids,
		},
	}
	return cfg, hc, nil
}
