package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/spf13/cobra"
)

type deployOpts struct {
	programID, userID, restartPolicy string
	network, noStart, force          bool
	memory, stateBytes               int64
	cpus                             float64
	env                              []string
	timeout                          time.Duration
}

func (a *app) deployCmd() *cobra.Command {
	var o deployOpts
	cmd := &cobra.Command{
		Use:   "deploy DIR",
		Short: "Deploy a directory: create (or update with --program), build, start and wait for Ready",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.deploy(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.programID, "program", "", "update this program's source instead of creating a new one")
	f.StringVar(&o.userID, "user", "", "owner (admin only; default: the token's user)")
	f.BoolVar(&o.network, "network", false, "allow outbound network")
	f.Int64Var(&o.memory, "memory", 0, "memory limit in bytes (0: Host default)")
	f.Float64Var(&o.cpus, "cpus", 0, "CPU limit (0: Host default)")
	f.Int64Var(&o.stateBytes, "state-bytes", 0, "size cap of /state in bytes (0: Host default; raising or lowering it on --program may need the program stopped)")
	f.StringVar(&o.restartPolicy, "restart", "", "restart policy (e.g. no, on-failure, always)")
	f.StringArrayVarP(&o.env, "env", "e", nil, "environment variable NAME=VALUE (repeatable)")
	f.BoolVar(&o.noStart, "no-start", false, "only store the source")
	f.BoolVar(&o.force, "force", false, "with --program: restart even when the source is the one the program runs")
	f.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up waiting for Ready after this long")
	return cmd
}

func (a *app) deploy(cmd *cobra.Command, dir string, o deployOpts) error {
	ctx := cmd.Context()
	c, err := a.client()
	if err != nil {
		return err
	}
	files, err := source.Collect(dir)
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	for _, s := range files.Skipped {
		fmt.Fprintf(a.errOut, "warning: skipped %s (not a regular UTF-8 text file)\n", s)
	}
	req := client.SourceRequest{
		UserID: o.userID, Dockerfile: files.Dockerfile, SrcFiles: files.Files,
		MemoryBytes: o.memory, CPUs: o.cpus, RestartPolicy: o.restartPolicy, StateBytes: o.stateBytes,
	}
	if cmd.Flags().Changed("network") {
		req.Network = &o.network
	}
	if len(o.env) > 0 {
		req.Env = map[string]string{}
		for _, kv := range o.env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return usageError{fmt.Errorf("--env %q: want NAME=VALUE", kv)}
			}
			req.Env[k] = v
		}
	}
	kind := "Go source"
	if req.Dockerfile != "" {
		kind = "Dockerfile"
	}
	fmt.Fprintf(a.errOut, "Collected %d files from %s (%s)\n", len(req.SrcFiles), dir, kind)

	id, wasRunning := o.programID, false
	if id != "" {
		p, err := c.GetProgram(ctx, id)
		if err != nil {
			return fmt.Errorf("deploy: program %s: %w", id, err)
		}
		wasRunning = p.State == "Ready" || p.State == "Starting" || p.State == "Building"
		up, err := c.UpdateSource(ctx, id, req)
		if err != nil {
			return fmt.Errorf("deploy: updating source of %s: %w", id, err)
		}
		// The source the program already runs: nothing to do.
		if up.BuildID == p.BuildID && p.State == "Ready" && !o.force && !o.noStart {
			fmt.Fprintf(a.errOut, "Unchanged: %s already runs this source (build %s); nothing was restarted (--force restarts it)\n", id, p.BuildID)
			return a.deployResult(ctx, c, id)
		}
		fmt.Fprintf(a.errOut, "Updated source of %s\n", id)
	} else {
		res, err := c.CreateProgram(ctx, req)
		if err != nil {
			return fmt.Errorf("deploy: create: %w", err)
		}
		id = res.ProgramID
		fmt.Fprintf(a.errOut, "Created program %s\n", id)
	}
	if o.noStart {
		return a.deployResult(ctx, c, id)
	}
	var res *client.ActionResponse
	if wasRunning {
		res, err = c.Restart(ctx, id)
	} else {
		res, err = c.Start(ctx, id)
	}
	if err != nil {
		return fmt.Errorf("deploy: starting %s: %w", id, err)
	}
	fmt.Fprintf(a.errOut, "Building and starting %s...\n", id)

	wctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	p, err := a.followUntilSettled(wctx, c, id, res.Seq)
	if err != nil {
		if ctx.Err() == nil && wctx.Err() != nil {
			return fmt.Errorf("deploy: %s not Ready after %s (check `hershy inspect %s`)", id, o.timeout, id)
		}
		return fmt.Errorf("deploy: %w", err)
	}
	if p.State == "Error" {
		msg := p.ErrorMsg
		if msg == "" {
			msg = "no detail"
		}
		return fmt.Errorf("deploy: %s failed: %s", id, msg)
	}
	return a.deployResult(ctx, c, id)
}

// followUntilSettled copies the build log to stderr while it follows the
// program's events, until a view at least as new as the start (seq minSeq)
// is Ready, or in Error.
func (a *app) followUntilSettled(ctx context.Context, c *client.Client, id string, minSeq uint64) (*client.Program, error) {
	logCtx, stopLog := context.WithCancel(ctx)
	var (
		wg       sync.WaitGroup
		logged   atomic.Bool // the build log stream has begun
		building bool        // the program went through Building
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.streamBuildLog(logCtx, c, id, &logged)
	}()
	defer func() {
		if logged.Load() || building {
			// Let the log stream drain briefly: the build often ends just
			// before the program turns Ready. Without a build (the image
			// was there) nothing is waited for.
			t := time.AfterFunc(2*time.Second, stopLog)
			defer t.Stop()
		} else {
			stopLog()
		}
		wg.Wait()
		stopLog()
	}()
	var last string
	return awaitProgram(ctx, c, id, minSeq, func(p *client.Program) bool {
		if p.State != last {
			fmt.Fprintf(a.errOut, "[state] %s\n", p.State)
			last = p.State
		}
		building = building || p.State == "Building"
		switch p.State {
		case "Ready", "Error":
			return true
		case "Stopped", "Created":
			// After a start: the start did not take.
			if p.ErrorMsg == "" {
				p.ErrorMsg = "program is " + p.State + " instead of Ready"
			}
			p.State = "Error"
			return true
		}
		return false
	})
}

// streamBuildLog follows the build log; until the build exists it retries.
func (a *app) streamBuildLog(ctx context.Context, c *client.Client, id string, logged *atomic.Bool) {
	for ctx.Err() == nil {
		rc, err := c.BuildLog(ctx, id, true)
		if err == nil {
			logged.Store(true)
			_, _ = io.Copy(a.errOut, rc)
			rc.Close()
			return
		}
		if !client.IsStatus(err, http.StatusNotFound) && !client.IsStatus(err, http.StatusConflict) {
			var e *client.Error
			if errors.As(err, &e) {
				fmt.Fprintf(a.errOut, "(build log unavailable: %v)\n", err)
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (a *app) deployResult(ctx context.Context, c *client.Client, id string) error {
	p, err := c.GetProgram(ctx, id)
	if err != nil {
		return err
	}
	if a.jsonOut() {
		return a.printJSON(p)
	}
	proxy := p.ProxyURL
	if proxy == "" {
		proxy = strings.TrimRight(c.BaseURL, "/") + "/programs/" + id + "/proxy"
	}
	proxy = strings.TrimRight(proxy, "/")
	fmt.Fprintf(a.out, "Program:   %s\n", p.ProgramID)
	fmt.Fprintf(a.out, "State:     %s\n", p.State)
	fmt.Fprintf(a.out, "API:       %s/programs/%s\n", strings.TrimRight(c.BaseURL, "/"), id)
	fmt.Fprintf(a.out, "Proxy:     %s\n", proxy)
	fmt.Fprintf(a.out, "Status:    %s/watcher/status\n", proxy)
	_, err = fmt.Fprintf(a.out, "Message:   hershy send %s 'hello'\n", id)
	return err
}
