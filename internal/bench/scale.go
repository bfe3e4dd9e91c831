package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/host"
)

// programsPerUser is how many scale programs one user owns: one user's
// quota of programs and of reserved memory must hold them.
const programsPerUser = 100

// scaleUser is the owner of the i-th scale program.
func scaleUser(i int) string { return fmt.Sprintf("bench-%d", i/programsPerUser) }

// scaleFigures: n programs started at once through the Host, against n
// containers of the same image started at once by hand; the Host's memory
// with them running; GET /programs over them; and a SIGKILL of the Host
// with them running, until all are re-adopted.
func (r *runner) scaleFigures(ctx context.Context, h *hostProc) error {
	n := r.o.Programs
	ids := make([]string, n)
	r.logf("creating %d programs", n)
	err := parallel(ctx, n, 16, func(ctx context.Context, i int) error {
		c, err := h.admin.CreateProgram(ctx, client.SourceRequest{UserID: scaleUser(i), SrcFiles: programSource(1), MemoryBytes: r.o.ProgramMemory})
		if err != nil {
			return err
		}
		ids[i] = c.ProgramID
		return nil
	})
	if err != nil {
		return err
	}
	t := newTracker(ctx, h.admin)
	defer t.close()

	// Each user's program is built once (the build is per owner): build
	// them now, so the timed start is a start.
	var image string
	for i := 0; i < n; i += programsPerUser {
		if err := startAll(ctx, h, t, ids[i:i+1], 20*time.Minute); err != nil {
			return err
		}
		image = "hersh-program-" + t.state(ids[i]).BuildID
		if err := stopAll(ctx, h, t, ids[i:i+1]); err != nil {
			return err
		}
	}

	rt := r.rt
	r.logf("starting %d programs at once through the Host", n)
	memBefore, err := memAvailable()
	if err != nil {
		return err
	}
	cpu0, err := readCPU(h.cmd.Process.Pid)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := startAll(ctx, h, t, ids, 30*time.Minute); err != nil {
		return err
	}
	hostAll := time.Since(t0)
	cpu1, err := readCPU(h.cmd.Process.Pid)
	if err != nil {
		return err
	}
	hostCPU := cpu1.sub(cpu0)
	memAfter, _ := memAvailable()
	hostRetries := 0
	if all, err := listAll(ctx, h.admin); err == nil {
		for _, id := range ids {
			hostRetries += all[id].RestartCount
		}
	}
	hostPer := (memBefore - memAfter) / int64(n)
	rss, err := h.rss()
	if err != nil {
		return err
	}
	r.logf("all %d Ready through the Host in %s (%d starts the engine failed were tried again); Host RSS %s", n, ms(hostAll), hostRetries, mib(rss))

	r.logf("GET /programs over %d programs", n)
	list, health, err := r.listLatency(ctx, h)
	if err != nil {
		return err
	}

	r.logf("SIGKILL the Host with %d programs running", n)
	readopt, restarts, err := r.readopt(ctx, h)
	if err != nil {
		return err
	}

	r.rep.add(Figure{
		Name: fmt.Sprintf("Host RSS with %d programs running", n), Runtime: rt,
		Value: mib(rss), Target: "≤ 150 MiB at 1,000", Met: rss <= 150<<20,
	})
	r.rep.add(Figure{
		Name: fmt.Sprintf("GET /programs (all %d) p99, vs GET /healthz p99", n), Runtime: rt,
		Value: ms(quantile(list, 0.99)), Baseline: ms(quantile(health, 0.99)), Ratio: ratio(quantile(list, 0.99), quantile(health, 0.99)),
		Target: "≤ 20 ms at 1,000", Met: quantile(list, 0.99) <= 20*time.Millisecond,
		Note: fmt.Sprintf("p50 %s; %d requests each, interleaved", ms(median(list)), len(list)),
	})
	r.rep.add(Figure{
		Name: fmt.Sprintf("SIGKILL the Host with %d programs running → all re-adopted", n), Runtime: rt,
		Value: fmt.Sprintf("%s, %d restarts", ms(readopt), restarts), Target: "≤ 2 s at 1,000, 0 restarts",
		Met:  readopt <= 2*time.Second && restarts == 0,
		Note: "from the new process's start to every program Ready with its old container",
	})

	t.close()
	t = newTracker(ctx, h.admin) // the old stream died with the Host
	if err := stopAll(ctx, h, t, ids); err != nil {
		return err
	}

	r.logf("starting %d containers at once by hand", n)
	rawAll, rawPer, rawRetries, rawCPU, err := r.rawScale(ctx, image, n)
	if err != nil {
		return err
	}

	r.rep.add(Figure{
		Name: fmt.Sprintf("%d programs started at once → all Ready, vs %d parallel runs by hand → all answer", n, n), Runtime: rt,
		Value: ms(hostAll), Baseline: ms(rawAll), Ratio: ratio(hostAll, rawAll), Target: "≤ 1.0×", Met: ratio(hostAll, rawAll) <= 1.0,
		Note: fmt.Sprintf("memory limit %s each; %d create+start calls in the engine at once on both sides; the Host's run first; starts the engine failed and were tried again: %d by the Host, %d by hand; CPU used meanwhile: %s, against %s",
			mib(r.o.ProgramMemory), host.DefaultLaunches, hostRetries, rawRetries, hostCPU.describe("Host"), rawCPU.describe("bench")),
	})
	mem := Figure{
		Name: fmt.Sprintf("memory per running program (machine's MemAvailable drop / %d), vs by hand", n), Runtime: rt,
		Value: "below the noise", Baseline: "below the noise", Target: "report", Met: true,
	}
	if hostPer > 0 && rawPer > 0 {
		mem.Value, mem.Baseline, mem.Ratio = mib(hostPer), mib(rawPer), float64(hostPer)/float64(rawPer)
	}
	r.rep.add(mem)
	return nil
}

// startAll starts the programs (32 requests at a time) and waits until all
// are Ready.
func startAll(ctx context.Context, h *hostProc, t *tracker, ids []string, limit time.Duration) error {
	return actAll(ctx, h, t, ids, "start", "Ready", limit)
}

// stopAll stops the programs and waits until all are Stopped.
func stopAll(ctx context.Context, h *hostProc, t *tracker, ids []string) error {
	return actAll(ctx, h, t, ids, "stop", "Stopped", 10*time.Minute)
}

func actAll(ctx context.Context, h *hostProc, t *tracker, ids []string, verb, state string, limit time.Duration) error {
	var mu sync.Mutex
	want := make(map[string]uint64, len(ids))
	err := parallel(ctx, len(ids), 32, func(ctx context.Context, i int) error {
		act := h.admin.Start
		if verb == "stop" {
			act = h.admin.Stop
		}
		res, err := act(ctx, ids[i])
		if err != nil {
			return fmt.Errorf("%s %s: %w", verb, ids[i], err)
		}
		mu.Lock()
		want[ids[i]] = res.Seq
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	_, err = awaitState(ctx, t, want, state, limit)
	return err
}

// listLatency times GET /programs (every program, one page) and GET
// /healthz, alternately, over the same keep-alive connection.
func (r *runner) listLatency(ctx context.Context, h *hostProc) (list, health []time.Duration, err error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
	defer hc.CloseIdleConnections()
	get := func(path string, auth bool) (time.Duration, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url()+path, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+h.admin.Token)
		}
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return d, err
	}
	requests := max(20, 30*r.o.Rounds)
	for i := range requests + 1 {
		l, err := get("/programs?limit=1000", true)
		if err != nil {
			return nil, nil, err
		}
		hz, err := get("/healthz", false)
		if err != nil {
			return nil, nil, err
		}
		if i > 0 { // the first pair opens the connection
			list, health = append(list, l), append(health, hz)
		}
	}
	return list, health, nil
}

// readopt kills the Host with SIGKILL and starts it again on the same
// data directory; it returns the time from the new process's start until
// every program that was Ready is Ready again, and how many of them were
// restarted (a new container or a higher restart count) on the way.
func (r *runner) readopt(ctx context.Context, h *hostProc) (time.Duration, int, error) {
	all, err := listAll(ctx, h.admin)
	if err != nil {
		return 0, 0, err
	}
	before := map[string]client.Program{}
	for id, p := range all {
		if p.State == "Ready" {
			before[id] = p
		}
	}
	if err := h.kill(); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if err := h.start(ctx); err != nil {
		return 0, 0, err
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		now, err := listAll(ctx, h.admin)
		if err != nil {
			return 0, 0, err
		}
		ready := 0
		for id := range before {
			if now[id].State == "Ready" {
				ready++
			}
		}
		if ready == len(before) {
			took := time.Since(t0)
			restarts := 0
			for id, b := range before {
				if p := now[id]; b.ContainerID != p.ContainerID || b.RestartCount != p.RestartCount {
					restarts++
				}
			}
			return took, restarts, nil
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%d of %d programs Ready again 10 minutes after the restart", ready, len(before))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// listAll lists every program, by id.
func listAll(ctx context.Context, c *client.Client) (map[string]client.Program, error) {
	out := map[string]client.Program{}
	for off := 0; ; off += 1000 {
		l, err := c.ListPrograms(ctx, client.ListOptions{Limit: 1000, Offset: off})
		if err != nil {
			return nil, err
		}
		for _, p := range l.Programs {
			out[p.ProgramID] = p
		}
		if len(l.Programs) < 1000 {
			return out, nil
		}
	}
}

// rawScale starts n containers of image at once by hand and waits until
// each answers; it returns the time until the last did and the memory
// each took (MemAvailable's drop / n) and how many starts were tried
// again, and removes them.
func (r *runner) rawScale(ctx context.Context, image string, n int) (time.Duration, int64, int, cpuUse, error) {
	specs := make([]driver.ContainerSpec, n)
	for i := range n {
		dir, err := r.rawStateDir("scale-" + strconv.Itoa(i))
		if err != nil {
			return 0, 0, 0, cpuUse{}, err
		}
		specs[i] = r.rawSpec(r.rt+"-scale-"+strconv.Itoa(i), image, dir, r.o.ProgramMemory)
	}
	memBefore, err := memAvailable()
	if err != nil {
		return 0, 0, 0, cpuUse{}, err
	}
	cids := make([]string, n)
	// The engine gets as many create and start calls at once as the Host
	// gives it (its default --max-launches): a thousand at once wedged
	// Docker 20.10 on two cores by hand as through the Host. The probes are
	// not bounded.
	slots := make(chan struct{}, host.DefaultLaunches)
	var retries atomic.Int64
	cpu0, err := readCPU(os.Getpid())
	if err != nil {
		return 0, 0, 0, cpuUse{}, err
	}
	t0 := time.Now()
	err = parallel(ctx, n, n, func(ctx context.Context, i int) error {
		// Probes share a budget of a thousand a second, as the Host's do.
		// A start the engine fails under the load is tried again, as the
		// Host's restart policy does with its programs (at most twice).
		for attempt := 0; ; attempt++ {
			cid, _, err := r.rawRun(ctx, specs[i], max(time.Millisecond, time.Duration(n)*time.Millisecond), slots)
			if err == nil || attempt == 2 || ctx.Err() != nil {
				cids[i] = cid
				return err
			}
			retries.Add(1)
			r.logf("a start by hand failed, trying again: %v", err)
			if cid == "" {
				// A create that timed out may still have happened: its
				// name would refuse the next one.
				if err := r.removeRaw(specs[i].Name); err != nil && !errors.Is(err, driver.ErrNotFound) {
					return err
				}
			} else if err := r.removeRaw(cid); err != nil {
				return err
			}
		}
	})
	took := time.Since(t0)
	cpu1, cerr := readCPU(os.Getpid())
	err = errors.Join(err, cerr)

	memAfter, _ := memAvailable()
	var made []string
	for _, c := range cids {
		if c != "" {
			made = append(made, c)
		}
	}
	if rerr := r.removeRaw(made...); err == nil {
		err = rerr
	}
	return took, (memBefore - memAfter) / int64(n), int(retries.Load()), cpu1.sub(cpu0), err
}

// memAvailable is the machine's MemAvailable, in bytes.
func memAvailable() (int64, error) { return readKB("/proc/meminfo", "MemAvailable:") }
