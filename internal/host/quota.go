package host

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

// ErrQuota is returned when a request would take a user past one of the
// operator's quotas (Quotas). The API answers 403: the operator's policy
// refuses the request, whoever retries it and however soon, until the user
// frees something (deletes or stops a program, asks for less memory) or the
// operator raises the limit. It is neither a mistake in the request (400)
// nor a program's state (409), nor a rate that waiting cures (429).
var ErrQuota = errors.New("quota exceeded")

// Quotas are the operator's limits on what one user may hold. A zero field
// takes its default (see withDefaults).
type Quotas struct {
	// MaxPrograms caps the programs one user owns, in any state. A program
	// the admin creates for a user counts for that user. Default 20.
	MaxPrograms int
	// MaxProgramMemory caps one program's memory_bytes. Default 4 GiB, or
	// the machine's physical memory when it has less; never above it.
	MaxProgramMemory int64
	// MaxUserMemory caps the memory reserved by one user's programs that
	// may run (see reserves). Default 8 GiB, or the machine's physical
	// memory when it has less; never above it.
	MaxUserMemory int64
}

// Default quotas. With the default 256 MiB per program, 20 programs
// reserve 5 GiB: a user within the program quota and the default memory
// never meets the memory quota.
const (
	DefaultMaxPrograms      = 20
	DefaultMaxProgramMemory = 4 << 30
	DefaultMaxUserMemory    = 8 << 30
)

// physicalMemory is the machine's RAM in bytes (0 when unknown).
func physicalMemory() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}

// withDefaults fills zero fields and refuses limits the machine cannot
// honour: a memory limit above the physical memory would let one program
// (or one user) push the whole machine into swapping or the kernel's OOM
// killer, where the container's own limit should have stopped it.
// defaultMemory is the limit of a program that sets none; it must fit too.
func (q Quotas) withDefaults(defaultMemory int64) (Quotas, error) {
	phys := physicalMemory()
	def := func(v *int64, d int64, name string) error {
		if *v < 0 {
			return fmt.Errorf("host: %s must not be negative", name)
		}
		if *v == 0 {
			*v = d
			if phys > 0 && *v > phys {
				*v = phys
			}
		}
		if phys > 0 && *v > phys {
			return fmt.Errorf("host: %s %s is above this machine's physical memory (%s)", name, formatBytes(*v), formatBytes(phys))
		}
		return nil
	}
	if q.MaxPrograms < 0 {
		return q, errors.New("host: the program quota must not be negative")
	}
	if q.MaxPrograms == 0 {
		q.MaxPrograms = DefaultMaxPrograms
	}
	if err := def(&q.MaxProgramMemory, DefaultMaxProgramMemory, "the memory limit per program"); err != nil {
		return q, err
	}
	if err := def(&q.MaxUserMemory, DefaultMaxUserMemory, "the memory quota per user"); err != nil {
		return q, err
	}
	if defaultMemory > q.programMemory() {
		return q, fmt.Errorf("host: the default program memory %s is above the memory a program may have (%s)",
			formatBytes(defaultMemory), formatBytes(q.programMemory()))
	}
	return q, nil
}

// programMemory is the most memory one program may ask for: a program
// larger than the user's whole quota could be created but never started.
func (q Quotas) programMemory() int64 {
	return min(q.MaxProgramMemory, q.MaxUserMemory)
}

// reserves reports whether a program holds its memory reservation against
// its user's quota: exactly while it may run without the user asking again.
// That is when the user's last word was "run" (start or restart, Desired
// running) and the program is building, starting, running, restarting or
// waiting out a backoff before an automatic restart. It does not reserve
// when created or stopped, when stopping for good (its container is
// ending, at most the stop grace more), or in Error with no restart to
// come: nothing of it runs and nothing will until a start, which is
// checked again. This is what users of quota systems expect (a stopped
// program costs nothing); counting every program would make a user delete
// stopped programs to run another. An automatic restart needs no check:
// a program waiting for one still reserves.
func reserves(p lifecycle.Program) bool {
	switch p.State {
	case lifecycle.Created, lifecycle.Stopped, lifecycle.Deleting:
		return false
	case lifecycle.Error:
		if p.NextRestartAt.IsZero() && p.Waiting == 0 {
			return false
		}
	}
	return p.Desired == lifecycle.DesiredRunning
}

// memoryOf is the memory limit a program's container gets (see spec).
func (h *Host) memoryOf(r store.Program) int64 {
	if r.Options.MemoryBytes > 0 {
		return r.Options.MemoryBytes
	}
	return h.opts.Limits.MemoryBytes
}

// checkMemoryOption refuses (ErrQuota) a per-program memory limit above the
// operator's maximum.
func (h *Host) checkMemoryOption(mem int64) error {
	if max := h.quotas().programMemory(); mem > max {
		return fmt.Errorf("%w: memory_bytes %s is above this Host's limit of %s per program", ErrQuota, formatBytes(mem), formatBytes(max))
	}
	return nil
}

// checkProgramCount refuses (ErrQuota) a new program of user when the user
// already has the most programs allowed. The caller holds quotaMu through
// the check and until the new program is supervised, so two creates cannot
// both take the last place.
func (h *Host) checkProgramCount(user string) error {
	h.mu.Lock()
	n := 0
	for _, r := range h.rows {
		if r.UserID == user {
			n++
		}
	}
	h.mu.Unlock()
	if max := h.quotas().MaxPrograms; n >= max {
		return fmt.Errorf("%w: user %s has %d programs, the most this Host allows; delete one first", ErrQuota, user, n)
	}
	return nil
}

// checkUserMemory refuses (ErrQuota) to let program id run when its memory
// and that reserved by its user's other programs would pass the user's
// memory quota. A program that already reserves passes (a restart of a
// running program takes nothing more). The caller holds quotaMu until the
// command that makes the program reserve has been applied.
func (h *Host) checkUserMemory(id string) error {
	h.mu.Lock()
	row, ok := h.rows[id]
	s := h.sups[id]
	if !ok || s == nil {
		h.mu.Unlock()
		return nil // unknown: the command itself answers 404
	}
	if reserves(s.Program()) {
		h.mu.Unlock()
		return nil
	}
	var used int64
	for oid, other := range h.sups {
		r, ok := h.rows[oid]
		if oid == id || !ok || r.UserID != row.UserID {
			continue
		}
		if reserves(other.Program()) {
			used += h.memoryOf(r)
		}
	}
	h.mu.Unlock()
	need, max := h.memoryOf(row), h.quotas().MaxUserMemory
	if used+need > max {
		return fmt.Errorf("%w: program %s needs %s, and the running programs of user %s already reserve %s of %s; stop one first",
			ErrQuota, id, formatBytes(need), row.UserID, formatBytes(used), formatBytes(max))
	}
	return nil
}

// commandAdmitted sends cmd (start or restart) if the program's user has
// memory left for it. The reducer admits the command first (a state
// conflict is a 409 before any quota), then the quota is checked in the
// supervisor's loop as the command's guard. The whole exchange holds
// quotaMu: once the command is applied the program reserves (its
// supervisor's snapshot says so), so a concurrent start of another program
// of the same user counts it.
func (h *Host) commandAdmitted(ctx context.Context, id string, cmd lifecycle.Event) (store.Program, error) {
	h.quotaMu.Lock()
	defer h.quotaMu.Unlock()
	return h.command(ctx, id, cmd, func() error { return h.checkUserMemory(id) })
}

// formatBytes shows a byte count in the largest binary unit that keeps it
// readable ("4 GiB", "1.5 GiB", "256 MiB").
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	s := fmt.Sprintf("%.1f", v)
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		s = s[:len(s)-2]
	}
	return s + " " + []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[i]
}

// quotas are the limits in force: the options', or SetQuotas' last.
func (h *Host) quotas() Quotas {
	if q := h.liveQuotas.Load(); q != nil {
		return *q
	}
	return h.opts.Quotas
}

// Quotas returns the limits in force.
func (h *Host) Quotas() Quotas { return h.quotas() }

// SetQuotas changes the operator's limits while the Host runs (hershy
// serve on SIGHUP), with the defaults and checks of Options.Quotas. A
// program already past a lowered limit keeps what it has; the next
// request that would go past it is refused.
func (h *Host) SetQuotas(q Quotas) (Quotas, error) {
	q, err := q.withDefaults(h.opts.Limits.MemoryBytes)
	if err != nil {
		return Quotas{}, err
	}
	h.liveQuotas.Store(&q)
	h.log.Info("quotas set", "max_programs", q.MaxPrograms, "max_program_memory", q.MaxProgramMemory, "max_user_memory", q.MaxUserMemory)
	return q, nil
}
