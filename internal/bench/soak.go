package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/hershyorg/hershy/internal/driver/docker"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/ui/chart"
)

// The soak: a Host runs the example programs (trading-long among them)
// for a chosen time while they get messages, some are restarted and their
// WatcherAPIs are proxied steadily; every SoakOptions.Every the run
// samples what could leak: the Host's memory, goroutines and open files,
// its database, the programs' memory and their crash restarts. At the end
// each series is judged: after a warm-up it must level off, not keep
// growing. It is how RELIABILITY.md's long run was made, and CI runs a
// short one.

// SoakOptions choose a soak run.
type SoakOptions struct {
	Hershy      string        // the hershy binary to run as `hershy serve` (default: this executable)
	Runtime     string        // "runsc" (default) or "runc"
	Duration    time.Duration // how long the programs run (default 10 minutes)
	Every       time.Duration // between samples (default Duration/60, 5 s to 1 min)
	Examples    string        // the folder of the example programs (default "examples")
	SharedCache string        // serve --go-shared-cache ("" the data directory's)
	WorkDir     string        // holds the Host's data directory (default: a temporary one, removed)
	Charts      string        // write each series' curve there as an SVG ("" none)
	Log         io.Writer     // progress lines (default: discarded)
}

// soakPrograms are the examples a soak runs, with their owners.
var soakPrograms = []struct{ name, owner string }{
	{"trading-long", "alice"},
	{"simple-counter", "alice"},
	{"watcher-server", "bob"},
	{"simple-counter", "bob"},
}

// SoakSample is what one look at the Host found.
type SoakSample struct {
	At            time.Time
	HostRSS       int64 // bytes
	Goroutines    int   // the Host's
	OpenFiles     int   // the Host's file descriptors
	DatabaseBytes int64 // hershy.db and its write-ahead log
	ProgramMemory int64 // the programs' working sets, summed (bytes)
	Restarts      int   // the programs' automatic restarts, summed
}

// SoakReport is the outcome of a soak run.
type SoakReport struct {
	Started time.Time
	Took    time.Duration
	Options SoakOptions
	Machine []string
	Samples []SoakSample
	Series  []SoakSeries
	// What the run did meanwhile.
	Messages, Proxied, ProxyRefused, ProxyFailed, RestartsAsked int64
}

// SoakSeries is one sampled quantity and its verdict.
type SoakSeries struct {
	Name   string
	Unit   chart.Unit
	Values []float64
	// Bounded is false when the series kept growing (see levelsOff);
	// Judged is false for a series reported only (the database grows
	// until its history's retention window fills, by design).
	Bounded, Judged bool
	From, To        float64 // the medians levelsOff compared
	Chart           string  // the SVG file, when written
}

// OK reports whether every judged series levelled off and no program
// restarted by itself.
func (r *SoakReport) OK() bool {
	for _, s := range r.Series {
		if s.Judged && !s.Bounded {
			return false
		}
	}
	return true
}

func (o *SoakOptions) defaults() error {
	if o.Hershy == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.Hershy = exe
	}
	switch o.Runtime {
	case "":
		o.Runtime = "runsc"
	case "runsc", "runc":
	default:
		return fmt.Errorf("soak: unknown runtime %q (want runsc or runc)", o.Runtime)
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Minute
	}
	if o.Every <= 0 {
		o.Every = min(max(o.Duration/60, 5*time.Second), time.Minute)
	}
	if o.Duration < 6*o.Every {
		return fmt.Errorf("soak: a %s run sampled every %s has too few samples to judge (6 at least)", o.Duration, o.Every)
	}
	if o.Examples == "" {
		o.Examples = "examples"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// Soak runs a soak and reports it. The report is returned with what was
// sampled even when the run fails part way.
func Soak(ctx context.Context, o SoakOptions) (*SoakReport, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	engine, err := docker.New()
	if err != nil {
		return nil, err
	}
	defer engine.Close()
	if o.WorkDir != "" {
		if err := os.MkdirAll(o.WorkDir, 0o700); err != nil {
			return nil, err
		}
	} else {
		dir, err := os.MkdirTemp("", "hershy-soak-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		o.WorkDir = dir
	}
	rep := &SoakReport{Started: time.Now(), Options: o, Machine: describeMachine(ctx, engine)}
	logf := func(format string, a ...any) {
		fmt.Fprintf(o.Log, "soak %s: "+format+"\n", append([]any{o.Runtime}, a...)...)
	}

	logf("starting the Host")
	h, err := startHost(ctx, Options{Hershy: o.Hershy, SharedCache: o.SharedCache, WorkDir: o.WorkDir}, o.Runtime, "soak")
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := h.close(); cerr != nil {
			logf("closing the Host: %v", cerr)
		}
	}()
	ids, clients, err := deploySoak(ctx, h, o, logf)
	if err != nil {
		return rep, err
	}
	logf("%d programs Ready; running for %s, a sample every %s", len(ids), o.Duration, o.Every)

	runCtx, stop := context.WithTimeout(ctx, o.Duration)
	defer stop()
	var wg sync.WaitGroup
	activity := func(every time.Duration, fn func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for i := 0; ; i++ {
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
					fn(i)
				}
			}
		}()
	}
	// Messages: one a second, to each program in turn.
	activity(time.Second, func(i int) {
		k := i % len(ids)
		if _, err := clients[k].SendMessage(runCtx, ids[k], "status"); err == nil {
			atomic.AddInt64(&rep.Messages, 1)
		}
	})
	// The WatcherAPI through the proxy, steadily: 20 requests a second.
	activity(50*time.Millisecond, func(i int) {
		k := i % len(ids)
		_, err := clients[k].WatcherStatus(runCtx, ids[k])
		switch {
		case err == nil:
			atomic.AddInt64(&rep.Proxied, 1)
		case client.IsStatus(err, http.StatusServiceUnavailable):
			atomic.AddInt64(&rep.ProxyRefused, 1) // restarting: not Ready
		case runCtx.Err() == nil:
			atomic.AddInt64(&rep.ProxyFailed, 1)
		}
	})
	// A restart of one program in turn, ten times over the run.
	activity(max(o.Duration/10, 10*time.Second), func(i int) {
		k := (i + 1) % len(ids)
		if _, err := clients[k].Restart(runCtx, ids[k]); err == nil {
			atomic.AddInt64(&rep.RestartsAsked, 1)
		}
	})
	sample := func() {
		s, err := h.sampleSoak(ctx, ids, clients)
		if err != nil {
			logf("sample: %v", err)
			return
		}
		rep.Samples = append(rep.Samples, s)
		logf("%s: Host RSS %s, %d goroutines, %d files; database %s; programs %s, %d restarts",
			s.At.Sub(rep.Started).Round(time.Second), mib(s.HostRSS), s.Goroutines, s.OpenFiles, mib(s.DatabaseBytes), mib(s.ProgramMemory), s.Restarts)
	}
	sample()
	tick := time.NewTicker(o.Every)
	defer tick.Stop()
sampling:
	for {
		select {
		case <-runCtx.Done():
			break sampling
		case <-tick.C:
			sample()
		}
	}
	wg.Wait()
	sample()
	rep.Took = time.Since(rep.Started)
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	rep.judge()
	if o.Charts != "" {
		if err := rep.writeCharts(o.Charts); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// deploySoak creates and starts the soak's programs and waits until all
// are Ready; it returns their ids and their owners' clients.
func deploySoak(ctx context.Context, h *hostProc, o SoakOptions, logf func(string, ...any)) ([]string, []*client.Client, error) {
	users := map[string]*client.Client{}
	var ids []string
	var clients []*client.Client
	for _, p := range soakPrograms {
		c := users[p.owner]
		if c == nil {
			tok, err := h.admin.CreateToken(ctx, p.owner)
			if err != nil {
				return nil, nil, err
			}
			c = client.New(h.url(), tok.Token)
			users[p.owner] = c
		}
		col, err := source.Collect(filepath.Join(o.Examples, p.name))
		if err != nil {
			return nil, nil, fmt.Errorf("soak: the example %s: %w (run from the repository, or give --examples)", p.name, err)
		}
		files := map[string]string(col.Files)
		req := client.SourceRequest{SrcFiles: files, Dockerfile: col.Dockerfile}
		logf("deploying %s", p.name)
		resp, err := c.CreateProgram(ctx, req)
		if err != nil {
			return nil, nil, fmt.Errorf("soak: create %s: %w", p.name, err)
		}
		if _, err := c.Start(ctx, resp.ProgramID); err != nil {
			return nil, nil, fmt.Errorf("soak: start %s: %w", p.name, err)
		}
		ids, clients = append(ids, resp.ProgramID), append(clients, c)
	}
	deadline := time.Now().Add(15 * time.Minute)
	for i, id := range ids {
		for {
			p, err := clients[i].GetProgram(ctx, id)
			if err != nil {
				return nil, nil, err
			}
			if p.State == "Ready" {
				break
			}
			if p.State == "Error" {
				return nil, nil, fmt.Errorf("soak: %s: %s", id, p.ErrorMsg)
			}
			if time.Now().After(deadline) {
				return nil, nil, fmt.Errorf("soak: %s is %s after 15 minutes", id, p.State)
			}
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return ids, clients, nil
}

// sampleSoak takes one sample of the Host and its programs.
func (h *hostProc) sampleSoak(ctx context.Context, ids []string, clients []*client.Client) (SoakSample, error) {
	s := SoakSample{At: time.Now()}
	var err error
	if s.HostRSS, err = h.rss(); err != nil {
		return s, err
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", h.cmd.Process.Pid))
	if err != nil {
		return s, err
	}
	s.OpenFiles = len(fds)
	if s.Goroutines, err = h.goroutines(ctx); err != nil {
		return s, err
	}
	for _, f := range []string{"hershy.db", "hershy.db-wal"} {
		if fi, err := os.Stat(filepath.Join(h.dataDir, f)); err == nil {
			s.DatabaseBytes += fi.Size()
		}
	}
	for i, id := range ids {
		p, err := clients[i].GetProgram(ctx, id)
		if err != nil {
			return s, err
		}
		s.Restarts += p.RestartCount
		st, err := clients[i].Stats(ctx, id, client.StatsOptions{Since: "1m", Resolution: "fine"})
		if err != nil {
			return s, err
		}
		if n := len(st.Samples); n > 0 {
			s.ProgramMemory += st.Samples[n-1].MemoryBytes
		}
	}
	return s, nil
}

// goroutines reads the Host's goroutine count from its admin-only
// /debug/pprof.
func (h *hostProc) goroutines(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url()+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+h.admin.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("/debug/pprof/goroutine: %s", resp.Status)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return 0, err
	}
	// "goroutine profile: total 42"
	n, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("/debug/pprof/goroutine: unexpected first line %q", line)
	}
	return strconv.Atoi(n)
}

// judge makes the report's series and their verdicts.
func (r *SoakReport) judge() {
	col := func(f func(SoakSample) float64) []float64 {
		v := make([]float64, len(r.Samples))
		for i, s := range r.Samples {
			v[i] = f(s)
		}
		return v
	}
	add := func(name string, unit chart.Unit, judged bool, slack float64, f func(SoakSample) float64) {
		s := SoakSeries{Name: name, Unit: unit, Values: col(f), Judged: judged}
		s.Bounded, s.From, s.To = levelsOff(s.Values, slack)
		r.Series = append(r.Series, s)
	}
	add("Host RSS", chart.Bytes, true, 8<<20, func(s SoakSample) float64 { return float64(s.HostRSS) })
	add("Host goroutines", chart.Number, true, 20, func(s SoakSample) float64 { return float64(s.Goroutines) })
	add("Host open files", chart.Number, true, 10, func(s SoakSample) float64 { return float64(s.OpenFiles) })
	add("programs' memory", chart.Bytes, true, 16<<20, func(s SoakSample) float64 { return float64(s.ProgramMemory) })
	add("database size", chart.Bytes, false, 0, func(s SoakSample) float64 { return float64(s.DatabaseBytes) })
	// Crash restarts: none may happen (the run's own restarts are asked,
	// and do not count).
	rs := SoakSeries{Name: "programs' automatic restarts", Unit: chart.Number, Values: col(func(s SoakSample) float64 { return float64(s.Restarts) }), Judged: true}
	rs.From, rs.To = rs.Values[0], rs.Values[len(rs.Values)-1]
	rs.Bounded = rs.To == 0
	r.Series = append(r.Series, rs)
}

// levelsOff judges a sampled series: after a warm-up (its first fifth),
// the median of the last third of what is left may exceed the median of
// the first third by at most a tenth plus slack. A leak shows as a series
// whose later samples sit above its earlier ones; noise and a one-off step
// during the warm-up do not.
func levelsOff(v []float64, slack float64) (ok bool, from, to float64) {
	if len(v) == 0 {
		return true, 0, 0
	}
	rest := v[len(v)/5:]
	third := max(len(rest)/3, 1)
	from, to = median(rest[:third]), median(rest[len(rest)-third:])
	return to <= from*1.1+slack, from, to
}

// writeCharts draws each series over the run as an SVG in dir.
func (r *SoakReport) writeCharts(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	for i := range r.Series {
		s := &r.Series[i]
		pts := make([]chart.Point, len(s.Values))
		for j, v := range s.Values {
			pts[j] = chart.Point{T: r.Samples[j].At, V: v}
		}
		svg := chart.Line{Title: s.Name, Unit: s.Unit, Points: pts, From: r.Samples[0].At, To: r.Samples[len(r.Samples)-1].At,
			Step: r.Options.Every, Width: 720, Height: 220, Location: time.UTC}.SVG()
		name := "soak-" + slug(s.Name) + ".svg"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(svg), 0o644); err != nil {
			errs = append(errs, err)
			continue
		}
		s.Chart = name
	}
	return errors.Join(errs...)
}

// WriteMarkdown writes the soak's report: the command, the machine, what
// the run did, and each series with its verdict (and curve, when drawn).
func (r *SoakReport) WriteMarkdown(w io.Writer, command string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Soak of %s, %s, %s, a sample every %s (%d samples).\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"),
		r.Options.Runtime, r.Took.Round(time.Second), r.Options.Every, len(r.Samples))
	fmt.Fprintf(&b, "```sh\n%s\n```\n\n", command)
	for _, m := range r.Machine {
		fmt.Fprintf(&b, "- %s\n", m)
	}
	var names []string
	for _, p := range soakPrograms {
		names = append(names, p.name+" ("+p.owner+")")
	}
	fmt.Fprintf(&b, "\nPrograms: %s. Meanwhile: %d messages, %d proxied WatcherAPI requests answered (%d refused while a program restarted, %d failed), %d restarts asked.\n\n",
		strings.Join(names, ", "), r.Messages, r.Proxied, r.ProxyRefused, r.ProxyFailed, r.RestartsAsked)
	b.WriteString("| series | after the warm-up | at the end | max | verdict |\n|---|---|---|---|---|\n")
	for _, s := range r.Series {
		verdict := "levels off ✅"
		switch {
		case !s.Judged:
			verdict = "reported (grows until its retention window fills)"
		case s.Name == "programs' automatic restarts" && s.Bounded:
			verdict = "none ✅"
		case s.Name == "programs' automatic restarts":
			verdict = "programs restarted by themselves ❌"
		case !s.Bounded:
			verdict = "keeps growing ❌"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", s.Name, unitString(s.Unit, s.From), unitString(s.Unit, s.To), unitString(s.Unit, slices.Max(s.Values)), verdict)
	}
	for _, s := range r.Series {
		if s.Chart != "" {
			fmt.Fprintf(&b, "\n![%s](%s)\n", s.Name, s.Chart)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func unitString(u chart.Unit, v float64) string {
	if u == chart.Bytes {
		return mib(int64(v))
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// slug makes a file name of a series' name: "Host RSS" is "host-rss".
func slug(name string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(name) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}
