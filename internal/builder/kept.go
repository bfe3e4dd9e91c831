package builder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// Kept-up build sandboxes: a user who deploys again and again would pay,
// with a fresh sandbox per build, its start and removal and a cold /tmp
// every time (about 265 ms of a 680 ms warm rebuild under runc, 1 s of 4.2
// under runsc; BENCHMARKS.md). So while a user deploys, their sandbox
// stays up (Options.KeepSandbox after their last build) and each of their
// builds runs in it as one more command (driver.JobKeeper).
//
// A kept sandbox belongs to one user. A build only reads hostile input (go
// build runs no program code), but a compiler bug could leave a process
// behind that meddles with the next build; with one sandbox per user that
// next build is the same user's, whose program it could have altered
// anyway. It sees what a one-shot sandbox sees, with its input and output
// as folders of that user's (kept/<user>/ under the work folder):
//
//	in/    its /in, read-only: src/ (this build's source) and goproxy/
//	out/   its /out, where the binary goes
//
// The Host rewrites in/ before each build (the sandbox cannot write it)
// and empties out/; the binary is read back as from any build (readBinary:
// the folder was writable by the sandbox). A failed, cancelled or timed
// out build ends the sandbox (a memory kill is read from the stopped
// container, as the command's own exit status does not say it), as does
// emptying the user's caches, which it has mounted. The Host removes every
// kept sandbox when it closes; one left by a killed Host carries the
// Host's labels and no program's, so the next start removes it.
type keptSandbox struct {
	owner string
	dir   string // kept/<owner>
	id    string // its container; "" until started, and once ended
	busy  bool   // a build runs in it
	idle  *time.Timer
}

// keptSet is the Builder's kept sandboxes, by owner.
type keptSet struct {
	mu     sync.Mutex
	m      map[string]*keptSandbox
	closed bool
	wg     sync.WaitGroup // idle sandboxes being removed
	// left are sandboxes whose removal failed (the engine was away): they
	// are tried again at the next build and at Close.
	left []string
}

// DefaultKeepSandbox is how long a user's build sandbox stays up after
// their last build.
const DefaultKeepSandbox = 10 * time.Minute

func (sb *keptSandbox) in() string  { return filepath.Join(sb.dir, "in") }
func (sb *keptSandbox) out() string { return filepath.Join(sb.dir, "out") }

// takeKept returns owner's kept sandbox, marked busy, with its folders
// ready for a build; nil when builds are one-shot (keeping is off, or the
// driver cannot keep jobs) or when owner's sandbox is busy with another
// build (that build then runs in a one-shot sandbox, rather than wait or
// share the sandbox's limits).
func (b *Builder) takeKept(owner string) *keptSandbox {
	if _, ok := b.jobs.(driver.JobKeeper); !ok || b.opts.KeepSandbox < 0 {
		return nil
	}
	b.kept.mu.Lock()
	defer b.kept.mu.Unlock()
	if b.kept.closed {
		return nil
	}
	sb := b.kept.m[owner]
	if sb == nil {
		sb = &keptSandbox{owner: owner, dir: filepath.Join(b.workDir, "kept", owner)}
		if b.kept.m == nil {
			b.kept.m = map[string]*keptSandbox{}
		}
		b.kept.m[owner] = sb
	}
	if sb.busy {
		return nil
	}
	if sb.idle != nil {
		sb.idle.Stop()
	}
	sb.busy = true
	return sb
}

// prepare makes sb's folders ready for a build: in/ empty, readable by the
// sandbox's user and not writable by it; out/ empty and the sandbox user's.
func (sb *keptSandbox) prepare() error {
	for _, d := range []string{filepath.Dir(sb.dir), sb.dir, sb.in(), sb.out()} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("build: %w", err)
		}
	}
	if err := sb.empty(); err != nil {
		return err
	}
	if err := os.Chmod(sb.in(), 0o755); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	if err := os.Chown(sb.out(), buildUID, buildGID); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	return nil
}

// empty removes what in/ and out/ hold. The folders themselves stay: the
// running sandbox has them mounted.
func (sb *keptSandbox) empty() error {
	for _, d := range []string{sb.in(), sb.out()} {
		entries, err := os.ReadDir(d)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("build: %w", err)
		}
		for _, e := range entries {
			// RemoveAll does not follow links the sandbox may have left.
			if err := os.RemoveAll(filepath.Join(d, e.Name())); err != nil {
				return fmt.Errorf("build: %w", err)
			}
		}
	}
	return nil
}

// giveBack ends a build in sb: its folders are emptied (the binary has
// been read back) and it stays up for KeepSandbox, unless it was ended.
func (b *Builder) giveBack(sb *keptSandbox) {
	sb.empty()
	b.kept.mu.Lock()
	defer b.kept.mu.Unlock()
	sb.busy = false
	if sb.id == "" || b.kept.closed {
		return
	}
	sb.idle = time.AfterFunc(b.opts.KeepSandbox, func() { b.retireIdle(sb) })
}

// retireIdle removes sb after KeepSandbox without a build.
func (b *Builder) retireIdle(sb *keptSandbox) {
	b.kept.mu.Lock()
	if sb.busy || b.kept.closed || b.kept.m[sb.owner] != sb {
		b.kept.mu.Unlock()
		return
	}
	delete(b.kept.m, sb.owner)
	id := sb.id
	sb.id = ""
	b.kept.wg.Add(1)
	b.kept.mu.Unlock()
	defer b.kept.wg.Done()
	b.removeKept(id)
	os.RemoveAll(sb.dir)
}

// removeKept removes a kept sandbox's container. A failure is not the
// build's: the container is tried again later (retryLeft), and the next
// Host start removes whatever is still left.
func (b *Builder) removeKept(id string) {
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.jobs.RemoveContainer(ctx, id); err != nil && !errors.Is(err, driver.ErrNotFound) {
		b.kept.mu.Lock()
		b.kept.left = append(b.kept.left, id)
		b.kept.mu.Unlock()
	}
}

// retryLeft tries again to remove the sandboxes whose removal failed.
func (b *Builder) retryLeft() {
	b.kept.mu.Lock()
	left := b.kept.left
	b.kept.left = nil
	b.kept.mu.Unlock()
	for _, id := range left {
		b.removeKept(id)
	}
}

// endKept ends sb after a build that did not succeed (see keptSandbox),
// and tells whether anything in it was killed for memory.
func (b *Builder) endKept(ctx context.Context, sb *keptSandbox) (oomKilled bool) {
	b.kept.mu.Lock()
	id := sb.id
	sb.id = ""
	b.kept.mu.Unlock()
	if id == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := b.jobs.StopContainer(ctx, id, 0); err == nil {
		if info, err := b.jobs.InspectContainer(ctx, id); err == nil {
			oomKilled = info.OOMKilled
		}
	}
	if err := b.jobs.RemoveContainer(ctx, id); err != nil && !errors.Is(err, driver.ErrNotFound) {
		b.kept.mu.Lock()
		b.kept.left = append(b.kept.left, id)
		b.kept.mu.Unlock()
	}
	return oomKilled
}

// startKept starts sb's container if it is not up: spec is the one-shot
// sandbox's, its command the cache helper's idle mode.
func (b *Builder) startKept(ctx context.Context, sb *keptSandbox, spec driver.JobSpec) (string, error) {
	b.kept.mu.Lock()
	id := sb.id
	b.kept.mu.Unlock()
	if id != "" {
		return id, nil
	}
	spec.Name = "hershy-build-kept-" + sb.owner + "-" + randomSuffix()
	spec.Cmd = []string{sbHelper, "-idle"}
	spec.Env = nil
	spec.WorkDir = ""
	id, err := b.jobs.(driver.JobKeeper).StartJob(ctx, spec)
	if err != nil {
		return "", err
	}
	b.kept.mu.Lock()
	defer b.kept.mu.Unlock()
	if b.kept.closed {
		b.removeKept(id)
		return "", errors.New("build: the builder is closed")
	}
	sb.id = id
	return id, nil
}

// runKept runs spec's go command in owner's kept sandbox, starting it if
// needed; a build that does not succeed ends the sandbox.
func (b *Builder) runKept(ctx context.Context, sb *keptSandbox, spec driver.JobSpec, out *capture) (driver.JobResult, error) {
	b.retryLeft()
	id, err := b.startKept(ctx, sb, spec)
	if err != nil {
		return driver.JobResult{}, err
	}
	res, err := b.jobs.(driver.JobKeeper).ExecJob(ctx, id, driver.ExecSpec{
		User: spec.User, Cmd: spec.Cmd, WorkDir: spec.WorkDir, Env: spec.Env,
	}, out)
	if err != nil || res.ExitCode != 0 {
		if b.endKept(ctx, sb) {
			res.OOMKilled = true
		}
	}
	return res, err
}

// closeKept removes every kept sandbox, busy or not, and keeps no more.
func (b *Builder) closeKept() {
	b.kept.mu.Lock()
	b.kept.closed = true
	var ids []string
	for _, sb := range b.kept.m {
		if sb.idle != nil {
			sb.idle.Stop()
		}
		if sb.id != "" {
			ids = append(ids, sb.id)
			sb.id = ""
		}
	}
	b.kept.m = nil
	b.kept.mu.Unlock()
	for _, id := range ids {
		b.removeKept(id)
	}
	b.kept.wg.Wait()
	b.retryLeft()
}

// Close removes the build sandboxes kept up between builds. Builds still
// running fail; call it once the Host's work is done.
func (b *Builder) Close() error {
	b.closeKept()
	return nil
}

// keptSandboxes reports the kept sandboxes' containers by owner (tests).
func (b *Builder) keptSandboxes() map[string]string {
	b.kept.mu.Lock()
	defer b.kept.mu.Unlock()
	m := map[string]string{}
	for o, sb := range b.kept.m {
		if sb.id != "" {
			m[o] = sb.id
		}
	}
	return m
}
