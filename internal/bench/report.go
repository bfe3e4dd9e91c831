package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/driver/docker"
)

// Figure is one measured figure and its baseline from the same run.
type Figure struct {
	Name     string
	Runtime  string
	Value    string  // what the Host took
	Baseline string  // what the same took by hand ("" when the figure has none)
	Ratio    float64 // Value over Baseline, when both are durations or sizes
	Target   string
	Met      bool
	Note     string
}

// Report is the outcome of a run.
type Report struct {
	Started time.Time
	Took    time.Duration
	Options Options
	Machine []string // "key: value" lines

	mu      sync.Mutex
	Figures []Figure
}

func (r *Report) add(f Figure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Figures = append(r.Figures, f)
}

// WriteMarkdown writes the report as a Markdown section: the command, the
// machine and a table of figures.
func (r *Report) WriteMarkdown(w io.Writer, command string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s, %s, took %s.\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), strings.Join(r.Options.Runtimes, " and "), r.Took.Round(time.Second))
	fmt.Fprintf(&b, "```sh\n%s\n```\n\n", command)
	for _, m := range r.Machine {
		fmt.Fprintf(&b, "- %s\n", m)
	}
	b.WriteString("\n| figure | runtime | Hershy | by hand | ratio | target | |\n|---|---|---|---|---|---|---|\n")
	for _, f := range r.Figures {
		ratio := ""
		if f.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", f.Ratio)
		}
		mark := "✅"
		if !f.Met {
			mark = "❌"
		}
		name := f.Name
		if f.Note != "" {
			name += " (" + f.Note + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", name, f.Runtime, f.Value, f.Baseline, ratio, f.Target, mark)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// describeMachine names what the figures depend on.
func describeMachine(ctx context.Context, engine *docker.Driver) []string {
	var out []string
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				out = append(out, fmt.Sprintf("CPU: %d × %s", runtime.NumCPU(), strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))))
				break
			}
		}
	}
	if total, err := readKB("/proc/meminfo", "MemTotal:"); err == nil {
		out = append(out, "memory: "+mib(total))
	}
	if v, err := exec.CommandContext(ctx, "uname", "-r").Output(); err == nil {
		out = append(out, "kernel: "+strings.TrimSpace(string(v)))
	}
	if v, err := engine.Client().ServerVersion(ctx); err == nil {
		out = append(out, "engine: Docker "+v.Version)
	}
	if v, err := exec.CommandContext(ctx, "runsc", "--version").Output(); err == nil {
		out = append(out, "gVisor: "+strings.SplitN(strings.TrimSpace(string(v)), "\n", 2)[0])
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		out = append(out, "load average at the start: "+strings.Join(strings.Fields(string(la))[:3], " "))
	}
	out = append(out, "Go: "+runtime.Version())
	return out
}
