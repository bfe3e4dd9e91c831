package ui

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// What the API answers, as the dashboard reads it. The fields mirror
// internal/api's JSON (the dashboard decodes answers like any client).

// program is GET /programs/{id} (and a list or event entry).
type program struct {
	ProgramID     string     `json:"program_id"`
	BuildID       string     `json:"build_id"`
	UserID        string     `json:"user_id"`
	State         string     `json:"state"`
	ImageID       string     `json:"image_id"`
	ContainerID   string     `json:"container_id"`
	ProxyURL      string     `json:"proxy_url"`
	ProxyPort     int        `json:"proxy_port"`
	ErrorMsg      string     `json:"error_msg"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	Runtime       string     `json:"runtime"`
	RestartPolicy string     `json:"restart_policy"`
	RestartCount  int        `json:"restart_count"`
	NextRestartAt *time.Time `json:"next_restart_at"`
	LastExitCode  *int       `json:"last_exit_code"`
	LastOOM       bool       `json:"last_oom"`
	Options       struct {
		Network     bool              `json:"network"`
		MemoryBytes int64             `json:"memory_bytes"`
		CPUs        float64           `json:"cpus"`
		Env         map[string]string `json:"env"`
		StateBytes  int64             `json:"state_bytes"`
	} `json:"options"`
	QueuePosition   int    `json:"queue_position"`
	StateBytesUsed  *int64 `json:"state_bytes_used"`
	StateBytesLimit *int64 `json:"state_bytes_limit"`
	Seq             uint64 `json:"seq"`
	// WatcherAPI, while Ready: whether its WatcherAPI answered the Host's
	// last check.
	WatcherAPI *struct {
		Answering bool      `json:"answering"`
		Since     time.Time `json:"since"`
		Problem   string    `json:"problem"`
	} `json:"watcher_api"`
}

type programList struct {
	Programs []program `json:"programs"`
	Count    int       `json:"count"`
	Total    int       `json:"total"`
}

type transition struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

type release struct {
	Number    int       `json:"number"`
	BuildID   string    `json:"build_id"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	Digest    string    `json:"digest"`
	Note      string    `json:"note"`
	Current   bool      `json:"current"`
}

type secret struct {
	Name      string    `json:"name"`
	UpdatedAt time.Time `json:"updated_at"`
}

type tokenInfo struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id"`
	Admin     bool       `json:"admin"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// statsSample is one resource sample of GET /programs/{id}/stats.
type statsSample struct {
	At               time.Time `json:"at"`
	CPUPercent       float64   `json:"cpu_percent"`
	MemoryBytes      int64     `json:"memory_bytes"`
	MemoryLimitBytes int64     `json:"memory_limit_bytes"`
	Pids             int64     `json:"pids"`
	NetRxBytes       int64     `json:"net_rx_bytes"`
	NetTxBytes       int64     `json:"net_tx_bytes"`
	StateBytesUsed   int64     `json:"state_bytes_used"`
	StateBytesLimit  int64     `json:"state_bytes_limit"`
	Restarts         int64     `json:"restarts"`
}

type stats struct {
	ProgramID   string        `json:"program_id"`
	Resolution  string        `json:"resolution"`
	StepSeconds float64       `json:"step_seconds"`
	Samples     []statsSample `json:"samples"`
}

// ---- how things are shown ----

// badge is a program's state as a badge: its own class and words for each
// state, and for the restart back-off, so that colour is never the only
// signal.
type badge struct {
	Class, Label, Detail string
	// Deadline is when the next automatic restart is due, Until the time
	// left in words (the script counts it down).
	Deadline *time.Time
	Until    string
}

func programBadge(p program, now time.Time) badge {
	b := badge{Class: "st-" + strings.ToLower(p.State), Label: p.State}
	switch {
	case p.State == "Error" && p.NextRestartAt != nil:
		b.Class, b.Label = "st-backoff", "Restarting"
		b.Detail = fmt.Sprintf("restart #%d", p.RestartCount+1)
		b.Deadline, b.Until = p.NextRestartAt, "in "+untilText(*p.NextRestartAt, now)
	case p.State == "Building" && p.QueuePosition > 1:
		b.Detail = fmt.Sprintf("queued, %d build(s) ahead", p.QueuePosition-1)
	case p.State == "Building" && p.QueuePosition == 1:
		b.Detail = "next to build"
	case p.State == "Ready" && p.WatcherAPI != nil && !p.WatcherAPI.Answering:
		b.Class, b.Label = "st-error", "Not answering"
		b.Detail = "its WatcherAPI, for " + humanDuration(now.Sub(p.WatcherAPI.Since))
	case p.RestartCount > 0 && (p.State == "Starting" || p.State == "Ready"):
		b.Detail = fmt.Sprintf("%d restart(s)", p.RestartCount)
	}
	return b
}

// untilText is "N s" until t (0 s when past).
func untilText(t, now time.Time) string {
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%d s", int(math.Ceil(d.Seconds())))
}

// problem explains a program's failure in words a user can act on: the
// builder's or the engine's message, the exit code, an OOM kill and its
// limit, and when the next restart comes.
func problem(p program, now time.Time) string {
	var parts []string
	if p.State == "Error" || p.ErrorMsg != "" {
		if msg := strings.TrimSpace(p.ErrorMsg); msg != "" {
			if !strings.HasSuffix(msg, ".") {
				msg += "."
			}
			parts = append(parts, msg)
		}
	}
	if p.LastOOM {
		lim := "its memory limit"
		if p.Options.MemoryBytes > 0 {
			lim = "its memory limit of " + humanBytes(p.Options.MemoryBytes)
		}
		parts = append(parts, "The program was killed for running out of memory ("+lim+"); raise memory_bytes or find the leak.")
	} else if p.LastExitCode != nil && *p.LastExitCode != 0 && (p.State == "Error" || p.RestartCount > 0) &&
		!strings.Contains(p.ErrorMsg, fmt.Sprintf("code %d", *p.LastExitCode)) {
		parts = append(parts, fmt.Sprintf("The program exited with code %d%s.", *p.LastExitCode, exitMeaning(*p.LastExitCode)))
	}
	if a := p.WatcherAPI; p.State == "Ready" && a != nil && !a.Answering {
		msg := "Its WatcherAPI has not answered the Host's checks for " + humanDuration(now.Sub(a.Since))
		if a.Problem != "" {
			msg += " (" + strings.TrimSuffix(a.Problem, ".") + ")"
		}
		parts = append(parts, msg+": the process runs, but its watcher may be stuck. Restart it if it does not come back.")
	}
	if p.State == "Error" {
		switch {
		case p.NextRestartAt != nil:
			parts = append(parts, fmt.Sprintf("Next automatic restart in %s (restart #%d).", untilText(*p.NextRestartAt, now), p.RestartCount+1))
		case p.RestartPolicy == "never" || p.ErrorMsg != "":
			parts = append(parts, "It will not restart on its own: fix the cause, then Start it (or upload a new version).")
		}
	}
	return strings.Join(parts, " ")
}

// exitMeaning names the hersh exit codes and the usual signals.
func exitMeaning(code int) string {
	switch code {
	case 1:
		return " (a hersh program: the watcher crashed)"
	case 2:
		return " (a hersh program: the watcher was killed)"
	case 3:
		return " (a hersh program: it ended with an error)"
	case 137:
		return " (killed: SIGKILL)"
	case 143:
		return " (terminated: SIGTERM)"
	}
	return ""
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// humanDuration is a short, rounded duration: 45s, 12m, 3h 20m, 2d 4h.
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}

// uptime is how long a Ready program has been up: since its last change
// of record, which for a Ready program is when it became Ready.
func uptime(p program, now time.Time) string {
	if p.State != "Ready" || p.UpdatedAt.IsZero() {
		return ""
	}
	return humanDuration(now.Sub(p.UpdatedAt))
}

// prettyJSON indents a JSON value for display (the template escapes it).
func prettyJSON(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	// Not HTML-escaped here: the template escapes for the page, and a
	// user reads "<" better than "\u003c".
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if enc.Encode(v) != nil {
		return string(raw)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
