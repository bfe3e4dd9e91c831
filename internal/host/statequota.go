package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/statefs"
	"github.com/hershyorg/hershy/internal/store"
)

// Each program's /state is a filesystem of its own with a fixed size
// (package statefs): writes past it fail inside the program with ENOSPC,
// and the Host's disk holds at most that much for it. The Host mounts it
// at create, before every launch (a /state that cannot be mounted fails
// the start) and for every program when it opens (after a reboot nothing
// is mounted), and removes it with the program's folder.

// Size caps of /state: the default of a program that sets none, and the
// most a program may ask for, unless the operator says otherwise.
const (
	DefaultStateBytes    = 256 << 20
	DefaultMaxStateBytes = 4 << 30
)

// StateUsage is how much of a program's /state is used, and its cap.
type StateUsage struct {
	Used  int64
	Limit int64
	// Avail is what the program can still write: less than Limit-Used,
	// as the filesystem keeps some of its size for itself.
	Avail int64
}

// openStates checks that this machine can cap /state and returns the
// manager, or nil (and a loud warning) when the operator opted out.
func openStates(o Options) (*statefs.Manager, error) {
	if o.UncappedState {
		o.Logger.Warn("UNCAPPED /state: programs' /state directories have NO size limit and can fill the Host's disk (--uncapped-state); use only for development")
		return nil, nil
	}
	if err := statefs.Check(); err != nil {
		return nil, fmt.Errorf("host: %w; a Host caps each program's /state with a loop-mounted filesystem, so it must run as root with loop devices and e2fsprogs (for development only: --uncapped-state, which leaves /state without a size cap)", err)
	}
	return statefs.New(builder.ProgramUID, builder.ProgramGID), nil
}

// checkStateBytes validates a requested cap (0: the Host's default).
func (h *Host) checkStateBytes(n int64) error {
	if n == 0 {
		return nil
	}
	if h.states == nil && h.volumes == nil {
		return fmt.Errorf("%w: state_bytes: this Host runs with uncapped /state (--uncapped-state)", ErrInvalid)
	}
	if n < statefs.MinBytes || n > h.opts.MaxStateBytes {
		return fmt.Errorf("%w: state_bytes must be between %d (8 MiB) and %d (this Host's maximum)", ErrInvalid, int64(statefs.MinBytes), h.opts.MaxStateBytes)
	}
	return nil
}

// stateLimit is the cap of a program's /state: its own, or the default
// (programs created before caps existed have none recorded).
func (h *Host) stateLimit(row store.Program) int64 {
	if row.Options.StateBytes > 0 {
		return row.Options.StateBytes
	}
	return h.opts.StateBytes
}

// ensureState mounts the program's /state filesystem (creating it, or
// moving an old plain directory into it, when missing).
func (h *Host) ensureState(ctx context.Context, row store.Program) error {
	if h.volumes != nil {
		return h.ensureVolumes(ctx, row)
	}
	if h.states == nil {
		return nil
	}
	dir := h.programDir(row.ID)
	if err := h.states.Ensure(ctx, dir, h.stateLimit(row)); err != nil {
		// The program's own error message: no Host paths in it.
		return fmt.Errorf("mounting /state: %s", strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), ""))
	}
	return nil
}

// ensureStateAtOpen mounts a program's /state when the Host opens, before
// any container of it is launched or re-adopted. A running container of a
// program made before caps existed uses its plain directory: that is moved
// into a filesystem at the program's next launch, not under its feet.
func (h *Host) ensureStateAtOpen(ctx context.Context, row store.Program, running bool, mounts *statefs.MountTable) {
	if h.states == nil || row.State == lifecycle.Deleting {
		return
	}
	dir := h.programDir(row.ID)
	if _, err := os.Stat(filepath.Join(dir, "src")); err != nil {
		return // reported by reconcile
	}
	if _, err := os.Stat(filepath.Join(dir, statefs.ImageName)); errors.Is(err, os.ErrNotExist) && running {
		h.log.Warn("a running program has an uncapped /state until its next start", "program", row.ID)
		return
	}
	if err := h.states.EnsureIn(ctx, dir, h.stateLimit(row), mounts); err != nil {
		h.log.Error("program /state", "program", row.ID, "err", strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), ""))
	}
}

// removeProgramDir removes a program's folder, unmounting its /state
// first (package statefs orders this against a concurrent mount).
func (h *Host) removeProgramDir(id string) error {
	if h.states == nil {
		return os.RemoveAll(h.programDir(id))
	}
	return h.states.Remove(h.programDir(id))
}

// releaseStates unmounts every program's /state from the data directory
// (Close), so a data directory without a Host holds no mounts.
func (h *Host) releaseStates() {
	if h.states == nil {
		return
	}
	entries, err := os.ReadDir(filepath.Join(h.opts.DataDir, "programs"))
	if err != nil {
		h.log.Error("releasing /state filesystems", "err", err)
		return
	}
	for _, e := range entries {
		if err := h.states.Release(filepath.Join(h.opts.DataDir, "programs", e.Name())); err != nil {
			h.log.Error("releasing /state", "program", e.Name(), "err", err)
		}
	}
}

// StateUsage reports how much of the program's /state is used and its
// cap; ok is false when the Host does not cap /state. Used is 0 while the
// filesystem is not mounted (a program being created or deleted).
func (h *Host) StateUsage(row store.Program) (u StateUsage, ok bool) {
	if h.states == nil {
		return StateUsage{}, false
	}
	su, err := h.states.Usage(h.programDir(row.ID))
	if err != nil {
		return StateUsage{Limit: h.stateLimit(row)}, true
	}
	return StateUsage{Used: su.Used, Limit: su.Limit, Avail: su.Avail}, true
}

// usageFresh is how old a /state usage figure a list may show. Reading one
// costs a handful of system calls (the mount's statfs and stats), which a
// list of a thousand programs would pay on every call; a program's usage
// moves slowly, and GET /programs/{id} always reads it fresh.
const usageFresh = 2 * time.Second

// StateUsageRecent is StateUsage, read again only when the last figure for
// the program is older than usageFresh.
func (h *Host) StateUsageRecent(row store.Program) (StateUsage, bool) {
	if h.states == nil {
		return StateUsage{}, false
	}
	now := time.Now()
	h.usageMu.Lock()
	c, ok := h.usage[row.ID]
	h.usageMu.Unlock()
	if ok && now.Sub(c.at) < usageFresh {
		return c.u, true
	}
	u, _ := h.StateUsage(row)
	h.usageMu.Lock()
	if h.usage == nil {
		h.usage = map[string]usageAt{}
	}
	h.usage[row.ID] = usageAt{u, now}
	h.usageMu.Unlock()
	return u, true
}

// usageAt is a program's /state usage as read at a time.
type usageAt struct {
	u  StateUsage
	at time.Time
}

// updateOptions changes a program's stored options. It holds saveMu, as
// save does, so neither writes back a row the other has changed.
func (h *Host) updateOptions(ctx context.Context, id string, change func(*store.Options)) (store.Program, error) {
	h.saveMu.Lock()
	defer h.saveMu.Unlock()
	h.mu.Lock()
	row, ok := h.rows[id]
	h.mu.Unlock()
	if !ok {
		return store.Program{}, fmt.Errorf("program %s: %w", id, ErrNotFound)
	}
	change(&row.Options)
	next, err := h.store.UpdateProgram(context.WithoutCancel(ctx), row)
	if err != nil {
		return store.Program{}, err
	}
	h.mu.Lock()
	if _, still := h.rows[id]; still {
		h.rows[id] = next
	}
	h.mu.Unlock()
	return next, nil
}
