// Package statefs gives each program a filesystem of its own, of a fixed
// size, for its /state: the hard cap on what a program can store.
//
// # Design
//
// A program's folder holds state.img, a sparse file formatted ext4, and
// state/, where that image is loop-mounted; the Host bind-mounts state/ at
// /state in the program's container. Writes past the size fail inside the
// sandbox with ENOSPC, under runc and runsc alike, because the limit is the
// size of a real filesystem, not a count the Host keeps: nothing the
// program does can exceed it, and nothing needs watching.
//
// Why not something else: the data directory is on a plain ext4 root with
// no project quotas (and quotas cannot be turned on for a mounted root
// filesystem); XFS project quotas would tie the Host to one filesystem
// type; a tmpfs would be lost at every reboot and counted as memory; a
// Docker volume with size options needs a volume driver this engine lacks;
// and a Host that counts bytes (du in a loop) can only notice the excess
// after it landed on disk. A loop-mounted image works on any backing
// filesystem that has sparse files, survives reboots, and is released by
// unmounting it.
//
// Costs, measured here: creating, formatting and mounting a 256 MiB
// filesystem takes about 20 ms on an idle machine (100 ms on a busy one),
// mounting an existing one again 6 ms, an Ensure of a mounted one 0.1 ms.
// A new 8-256 MiB filesystem takes 160-400 KiB of the host's disk before
// the program writes anything (the image is sparse, and inode tables are
// left to read as zeros: lazy_itable_init plus noinit_itable); mounted
// with discard, it gives blocks back to the host's disk when the program
// deletes files. ext4's own journal and tables take 17 % of an 8 MiB
// filesystem, 7 % of 256 MiB or 1 GiB, so a program stores a little less
// than its cap; the host never stores more.
//
// Mounting uses the kernel's interfaces directly (golang.org/x/sys/unix:
// LOOP_CTL_GET_FREE, LOOP_CONFIGURE with autoclear, mount(2)) rather than
// running losetup and mount(8): the loop device then lives exactly as long
// as its mount (autoclear frees it when the last mount in any namespace
// goes, so a delete or a crash of the Host leaks no loop device), the
// errors are the kernel's own, and only e2fsprogs (mkfs.ext4, e2fsck,
// resize2fs; there is no other ext4 formatter) is needed. Growing is done
// online with LOOP_SET_CAPACITY and EXT4_IOC_RESIZE_FS where the kernel
// allows it (CAP_SYS_RESOURCE), else offline; shrinking is always offline
// (ext4 cannot shrink mounted). Offline work needs the filesystem in use
// nowhere, so it waits for the program's stop or next start.
//
// Every operation on one program's folder holds that folder's lock, so an
// Ensure racing a Remove (a start cancelled by a delete) either mounts
// before the Remove unmounts and deletes everything, or finds the folder
// gone and fails: never a mount in a deleted folder, nor a RemoveAll that
// walks into a mounted filesystem. Two Hosts never share a data directory
// (the Host's flock), so in-process locks are enough.
package statefs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/hershyorg/hershy/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// Names inside a program's folder.
const (
	ImageName = "state.img" // the filesystem image
	MountName = "state"     // where it is mounted (the bind source of /state)

	newImageName = "state.img.new" // an image being made (and filled, when migrating)
	newMountName = "state.new"     // where a new image is mounted while it is filled
)

// MinBytes is the smallest filesystem (ext4 needs room for its journal
// and tables; below this a program could store almost nothing).
const MinBytes = 8 << 20

// Errors (wrapped with detail).
var (
	// ErrTooSmall: a limit below MinBytes, or below what the program
	// already stores.
	ErrTooSmall = errors.New("state limit too small")
	// ErrBusy: the filesystem is in use (a container holds it), so it
	// cannot be unmounted to shrink it.
	ErrBusy = errors.New("state filesystem in use")
	// ErrNotMounted: the program's filesystem is not mounted (Usage).
	ErrNotMounted = errors.New("state filesystem not mounted")
)

// Usage is how much of a program's filesystem is used.
type Usage struct {
	Used  int64 // bytes in files, directories and their blocks
	Avail int64 // bytes the program can still write
	Limit int64 // the filesystem's size: what it costs the host's disk at most
}

// Manager makes, mounts, grows and releases the filesystems. Its zero
// value is not usable: use New.
type Manager struct {
	uid, gid int

	mu    sync.Mutex
	locks map[string]*folderLock
}

type folderLock struct {
	mu    sync.Mutex
	users int
}

// New returns a Manager whose filesystems' root directories belong to
// uid:gid (the programs' user) with mode 0700.
func New(uid, gid int) *Manager {
	return &Manager{uid: uid, gid: gid, locks: map[string]*folderLock{}}
}

// Check reports why this machine cannot give programs capped filesystems:
// the process must be root (loop devices and mount(2)), /dev/loop-control
// must be usable and e2fsprogs installed.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("statefs: capped /state filesystems need root (loop devices and mount)")
	}
	f, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("statefs: capped /state filesystems need loop devices: %w", err)
	}
	f.Close()
	for _, tool := range []string{"mkfs.ext4", "e2fsck", "resize2fs"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("statefs: %s not found: install e2fsprogs (scripts/setup-engine.sh does)", tool)
		}
	}
	return nil
}

// lock takes the lock of one program's folder.
func (m *Manager) lock(dir string) func() {
	m.mu.Lock()
	l := m.locks[dir]
	if l == nil {
		l = &folderLock{}
		m.locks[dir] = l
	}
	l.users++
	m.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.mu.Lock()
		if l.users--; l.users == 0 {
			delete(m.locks, dir)
		}
		m.mu.Unlock()
	}
}

// canonical resolves dir to the absolute path the kernel reports in
// mountinfo and sysfs (symbolic links resolved).
func canonical(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// Ensure makes the filesystem of the program whose folder is dir usable:
// it creates and formats state.img of limit bytes (rounded down to 4 KiB)
// if missing, and mounts it at state/ if it is not mounted. A plain state/
// directory of a program made before capped filesystems is moved into the
// new filesystem first, losing nothing; if it holds more than fits, Ensure
// fails with ErrTooSmall and leaves it as it was. A filesystem smaller than
// limit is grown; a larger one is kept (shrinking is Resize's, and needs
// the program stopped). dir itself must exist: Ensure never creates a
// program's folder, so it cannot resurrect one a Remove took away.
func (m *Manager) Ensure(ctx context.Context, dir string, limit int64) error {
	return m.EnsureIn(ctx, dir, limit, nil)
}

// EnsureIn is Ensure with the mount table read beforehand (nil: read it
// now). The table must be newer than the last change to dir's mounts: a
// Host reads it once at its start, before it touches any program's state.
func (m *Manager) EnsureIn(ctx context.Context, dir string, limit int64, t *MountTable) error {
	limit = roundLimit(limit)
	if limit < MinBytes {
		return fmt.Errorf("%w: %d bytes, the minimum is %d", ErrTooSmall, limit, MinBytes)
	}
	dir, err := canonical(dir)
	if err != nil {
		return fmt.Errorf("statefs: program folder: %w", err)
	}
	defer m.lock(dir)()
	return m.ensure(ctx, dir, limit, t)
}

func (m *Manager) ensure(ctx context.Context, dir string, limit int64, t *MountTable) error {
	img, mnt := filepath.Join(dir, ImageName), filepath.Join(dir, MountName)
	if err := os.Mkdir(mnt, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("statefs: %w", err)
	}
	mounted, err := mountedImage(mnt, t)
	if err != nil {
		return err
	}
	if mounted != "" {
		if mounted != img {
			return fmt.Errorf("statefs: %s is mounted from %s, not from its own image", mnt, mounted)
		}
		return m.growIfSmaller(ctx, dir, limit)
	}
	if _, err := os.Stat(img); errors.Is(err, os.ErrNotExist) {
		if limit < MinBytes {
			return fmt.Errorf("statefs: %s has no filesystem yet", dir)
		}
		if err := m.create(ctx, dir, limit); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("statefs: %w", err)
	}
	// The image is the program's state. Anything in the bare mount point
	// is what a migration already copied into it (the rename of the image
	// is its commit point); it would only sit hidden under the mount.
	if err := emptyDir(mnt); err != nil {
		return fmt.Errorf("statefs: clearing %s after its migration: %w", mnt, err)
	}
	if err := mountImage(img, mnt); err != nil {
		return err
	}
	return m.growIfSmaller(ctx, dir, limit)
}

// growIfSmaller grows the mounted filesystem of dir to limit if it is
// smaller: online, or else offline if no container holds it. One in use
// that cannot grow online now grows at the program's next start (its
// launch calls Ensure once the old container is gone).
func (m *Manager) growIfSmaller(ctx context.Context, dir string, limit int64) error {
	size, err := imageSize(dir)
	if err != nil || size >= limit {
		return err
	}
	if growOnline(dir, limit) == nil {
		return nil
	}
	err = m.offline(ctx, dir, func() error { return growOffline(ctx, dir, limit) })
	if errors.Is(err, ErrBusy) {
		return nil
	}
	return err
}

// create makes dir/state.img: a sparse file of limit bytes formatted ext4,
// its root owned by the program's user, holding what dir/state/ holds.
// It is built under another name and renamed into place once complete, so
// a crash leaves either no image (the old directory intact) or a whole one.
func (m *Manager) create(ctx context.Context, dir string, limit int64) error {
	tmp, tmpMnt := filepath.Join(dir, newImageName), filepath.Join(dir, newMountName)
	// Leftovers of an interrupted create: a mount first, then the files.
	if err := unmountAll(tmpMnt); err != nil {
		return err
	}
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("statefs: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unmountAll(tmpMnt)
			os.Remove(tmpMnt)
			os.Remove(tmp)
		}
	}()
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("statefs: %w", err)
	}
	err = f.Truncate(limit)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("statefs: sizing the image: %w", err)
	}
	// -m 0: no blocks reserved for root (the program is not root).
	// -i 16384: one inode per 16 KiB, mke2fs's ratio for ordinary sizes;
	// below 512 MiB it would take one per 4 KiB, whose tables cost 6 % of
	// the cap (a program's state is rarely that many tiny files).
	// lazy_itable_init, lazy_journal_init, nodiscard: the file is new and
	// sparse, so its unwritten tables already read as zeros; writing them
	// would cost time and disk for nothing.
	mkfs := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-m", "0", "-i", "16384",
		"-E", fmt.Sprintf("root_owner=%d:%d,lazy_itable_init=1,lazy_journal_init=1,nodiscard", m.uid, m.gid), tmp)
	if out, err := mkfs.CombinedOutput(); err != nil {
		return fmt.Errorf("statefs: mkfs.ext4: %v: %s", err, bytes.TrimSpace(out))
	}
	if err := os.Mkdir(tmpMnt, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("statefs: %w", err)
	}
	if err := mountImage(tmp, tmpMnt); err != nil {
		return err
	}
	// lost+found belongs to e2fsck, which makes it again when it needs it;
	// the program sees an empty /state.
	if err := os.Remove(filepath.Join(tmpMnt, "lost+found")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("statefs: %w", err)
	}
	if err := os.Chmod(tmpMnt, 0o700); err != nil {
		return fmt.Errorf("statefs: %w", err)
	}
	if err := migrate(ctx, filepath.Join(dir, MountName), tmpMnt, limit); err != nil {
		return err
	}
	if err := unmountAll(tmpMnt); err != nil {
		return err
	}
	if err := os.Remove(tmpMnt); err != nil {
		return fmt.Errorf("statefs: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ImageName)); err != nil {
		return fmt.Errorf("statefs: %w", err)
	}
	ok = true
	return syncDir(dir)
}

// migrate copies what the plain directory src holds (a program's /state
// before capped filesystems) into dst, the root of its new filesystem,
// keeping owners, modes, times, links and sparse files (cp -a: the copy
// never follows the program's symbolic links). Nothing to copy: nothing
// done.
func migrate(ctx context.Context, src, dst string, limit int64) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("statefs: reading the existing state: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	cp := exec.CommandContext(ctx, "cp", "-a", "--", src+"/.", dst+"/")
	if out, err := cp.CombinedOutput(); err != nil {
		if bytes.Contains(out, []byte("No space left")) {
			return fmt.Errorf("%w: the existing state does not fit in %d bytes; raise the limit (nothing was lost)", ErrTooSmall, limit)
		}
		return fmt.Errorf("statefs: copying the existing state: %v: %s", err, bytes.TrimSpace(out))
	}
	// The copy is the only one once the image is renamed into place: make
	// it durable first.
	f, err := os.Open(dst)
	if err != nil {
		return fmt.Errorf("statefs: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("statefs: syncfs: %w", err)
	}
	return nil
}

// Usage reports how full the program's filesystem is. It takes no lock
// (one statfs), so metrics scrapes never wait for a migration.
func (m *Manager) Usage(dir string) (Usage, error) {
	dir, err := canonical(dir)
	if err != nil {
		return Usage{}, fmt.Errorf("statefs: program folder: %w", err)
	}
	mnt := filepath.Join(dir, MountName)
	var parent, here unix.Stat_t
	if err := unix.Stat(dir, &parent); err != nil {
		return Usage{}, fmt.Errorf("statefs: %w", err)
	}
	if err := unix.Stat(mnt, &here); err != nil {
		return Usage{}, fmt.Errorf("statefs: %w", err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(mnt, &fs); err != nil {
		return Usage{}, fmt.Errorf("statefs: %w", err)
	}
	if here.Dev == parent.Dev || fs.Type != unix.EXT4_SUPER_MAGIC {
		return Usage{}, fmt.Errorf("%w: %s", ErrNotMounted, mnt)
	}
	st, err := os.Stat(filepath.Join(dir, ImageName))
	if err != nil {
		return Usage{}, fmt.Errorf("statefs: %w", err)
	}
	bs := int64(fs.Bsize)
	return Usage{
		Used:  (int64(fs.Blocks) - int64(fs.Bfree)) * bs,
		Avail: int64(fs.Bavail) * bs,
		Limit: st.Size(),
	}, nil
}

// Resize changes the program's filesystem to limit bytes (rounded down to
// 4 KiB), mounting it first if needed.
//
// Growing a mounted filesystem is done online when the kernel allows it
// (CAP_SYS_RESOURCE, which some sandboxed hosts drop); otherwise, and
// always for shrinking (ext4 cannot shrink mounted), the filesystem must
// be in use nowhere but here: if a container holds it, Resize changes
// nothing and returns ErrBusy (stop the program first). A limit below
// what the program stores is ErrTooSmall. A shrink copies the files into
// a new filesystem of the new size (resize2fs's own lower bound is far
// above what the files need); like a migration, the rename of the new
// image is its commit point.
func (m *Manager) Resize(ctx context.Context, dir string, limit int64) error {
	limit = roundLimit(limit)
	if limit < MinBytes {
		return fmt.Errorf("%w: %d bytes, the minimum is %d", ErrTooSmall, limit, MinBytes)
	}
	dir, err := canonical(dir)
	if err != nil {
		return fmt.Errorf("statefs: program folder: %w", err)
	}
	defer m.lock(dir)()
	if _, err := os.Stat(filepath.Join(dir, ImageName)); errors.Is(err, os.ErrNotExist) {
		return m.ensure(ctx, dir, limit, nil) // a new filesystem of that size
	}
	if err := m.ensure(ctx, dir, 0, nil); err != nil {
		return err
	}
	size, err := imageSize(dir)
	if err != nil {
		return err
	}
	switch {
	case size == limit:
		return nil
	case size < limit:
		if err := growOnline(dir, limit); err == nil {
			return nil
		}
		return m.offline(ctx, dir, func() error { return growOffline(ctx, dir, limit) })
	}
	u, err := m.Usage(dir)
	if err != nil {
		return err
	}
	if u.Used > limit {
		return fmt.Errorf("%w: the program stores %d bytes, more than %d", ErrTooSmall, u.Used, limit)
	}
	return m.offline(ctx, dir, func() error {
		// The old filesystem, mounted again here (where nothing else can
		// use it while the folder is locked), is the copy's source.
		mnt := filepath.Join(dir, MountName)
		if err := mountImage(filepath.Join(dir, ImageName), mnt); err != nil {
			return err
		}
		err := m.create(ctx, dir, limit)
		return errors.Join(err, unmountAll(mnt))
	})
}

// offline runs fn with the program's filesystem unmounted and in use
// nowhere, then mounts it again. If it is still held elsewhere (a running
// container's mount namespace keeps its loop device bound), fn does not
// run and the result is ErrBusy.
func (m *Manager) offline(ctx context.Context, dir string, fn func() error) error {
	img, mnt := filepath.Join(dir, ImageName), filepath.Join(dir, MountName)
	if err := unmount(mnt, false); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("%w: %s has files open on the host", ErrBusy, mnt)
		}
		return err
	}
	err := waitDetached(img, time.Second)
	if err == nil {
		err = fn()
	}
	return errors.Join(err, m.ensure(ctx, dir, 0, nil))
}

func imageSize(dir string) (int64, error) {
	st, err := os.Stat(filepath.Join(dir, ImageName))
	if err != nil {
		return 0, fmt.Errorf("statefs: %w", err)
	}
	return st.Size(), nil
}

// growOnline grows the mounted filesystem of dir to limit bytes: the
// image file first, then the loop device's idea of its size, then ext4.
// Without CAP_SYS_RESOURCE (which some sandboxed hosts drop) the last step
// fails with EPERM; the file and device are then put back to their size,
// so the image's size stays the filesystem's.
func growOnline(dir string, limit int64) (err error) {
	img, mnt := filepath.Join(dir, ImageName), filepath.Join(dir, MountName)
	dev, err := mountedDevice(mnt)
	if err != nil {
		return err
	}
	old, err := imageSize(dir)
	if err != nil {
		return err
	}
	loop, err := os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("statefs: %w", err)
	}
	defer loop.Close()
	setSize := func(n int64) error {
		if err := os.Truncate(img, n); err != nil {
			return fmt.Errorf("statefs: sizing the image: %w", err)
		}
		if err := unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_SET_CAPACITY, 0); err != nil {
			return fmt.Errorf("statefs: LOOP_SET_CAPACITY on %s: %w", dev, err)
		}
		return nil
	}
	if err := setSize(limit); err != nil {
		return errors.Join(err, setSize(old))
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, setSize(old))
		}
	}()
	var fs unix.Statfs_t
	if err := unix.Statfs(mnt, &fs); err != nil {
		return fmt.Errorf("statefs: %w", err)
	}
	d, err := os.Open(mnt)
	if err != nil {
		return fmt.Errorf("statefs: %w", err)
	}
	defer d.Close()
	blocks := uint64(limit) / uint64(fs.Bsize)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, d.Fd(), ext4IocResizeFS, uintptr(unsafe.Pointer(&blocks))); errno != 0 {
		return fmt.Errorf("statefs: growing ext4 on %s to %d bytes: %w", mnt, limit, errno)
	}
	return nil
}

// growOffline grows the unmounted image of dir to limit bytes with
// resize2fs (which wants a fresh e2fsck first).
func growOffline(ctx context.Context, dir string, limit int64) (err error) {
	img := filepath.Join(dir, ImageName)
	old, err := imageSize(dir)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil { // the filesystem kept its size: so does the file
			if terr := os.Truncate(img, old); terr != nil {
				err = errors.Join(err, terr)
			}
		}
	}()
	if err := os.Truncate(img, limit); err != nil {
		return fmt.Errorf("statefs: growing the image: %w", err)
	}
	// e2fsck exits 1 when it corrected something: still fine to go on.
	if out, err := exec.CommandContext(ctx, "e2fsck", "-f", "-p", img).CombinedOutput(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() > 1 {
			return fmt.Errorf("statefs: e2fsck: %v: %s", err, bytes.TrimSpace(out))
		}
	}
	if out, err := exec.CommandContext(ctx, "resize2fs", img).CombinedOutput(); err != nil {
		return fmt.Errorf("statefs: resize2fs: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// ext4IocResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64): grow a
// mounted ext4 to the given number of blocks (what resize2fs does online).
const ext4IocResizeFS = 0x40086610

// Release unmounts the program's filesystem here (lazily if something on
// the host still has a file open in it); its loop device goes with the
// last mount, which may be a running container's: that container keeps
// its /state, and Ensure later mounts the same device here again. The
// image stays.
func (m *Manager) Release(dir string) error {
	dir, err := canonical(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("statefs: program folder: %w", err)
	}
	defer m.lock(dir)()
	return m.release(dir)
}

func (m *Manager) release(dir string) error {
	return errors.Join(unmountAll(filepath.Join(dir, MountName)), unmountAll(filepath.Join(dir, newMountName)))
}

// Remove releases the program's filesystem and removes the program's whole
// folder (the image with it). A folder already gone is not an error.
func (m *Manager) Remove(dir string) error {
	dir, err := canonical(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("statefs: program folder: %w", err)
	}
	defer m.lock(dir)()
	if err := m.release(dir); err != nil {
		return err
	}
	// Nothing is mounted below dir now (unmountAll checked), so RemoveAll
	// deletes the image file, not the files inside the filesystem.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("statefs: %w", err)
	}
	return nil
}

func roundLimit(n int64) int64 { return n &^ 4095 }

// emptyDir removes everything inside dir, but not dir.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("statefs: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("statefs: %w", err)
	}
	return nil
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	point string
	dev   string // major:minor
}

// mountsAt lists the mounts at point (the top one last).
func mountsAt(point string) ([]mount, error) {
	var out []mount
	err := scanMounts(func(m mount) {
		if m.point == point {
			out = append(out, m)
		}
	})
	return out, err
}

// scanMounts calls fn for each line of /proc/self/mountinfo, in order.
func scanMounts(fn func(mount)) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("statefs: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mount-point options ... - type source ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		fn(mount{point: mountinfo.Unescape(fields[4]), dev: fields[2]})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("statefs: reading mountinfo: %w", err)
	}
	return nil
}

// MountTable is one reading of the mount table, kept for the programs'
// state mount points. With a thousand containers the table has thousands
// of lines (about 10 ms of the kernel's time per reading here), so a Host
// that checked every program's /state with a reading of its own took half
// a minute to start; it reads the table once instead (EnsureIn).
type MountTable struct{ points map[string][]mount }

// ReadMountTable reads the mount table.
func ReadMountTable() (*MountTable, error) {
	t := &MountTable{points: map[string][]mount{}}
	err := scanMounts(func(m mount) {
		if filepath.Base(m.point) == MountName {
			t.points[m.point] = append(t.points[m.point], m)
		}
	})
	return t, err
}

// mountedImage returns the backing file of the loop device mounted at
// point ("" when nothing is mounted there). Something mounted there that
// is not a loop device is an error.
func mountedImage(point string, t *MountTable) (string, error) {
	var ms []mount
	var err error
	if t != nil {
		ms = t.points[point]
	} else {
		ms, err = mountsAt(point)
	}
	if err != nil || len(ms) == 0 {
		return "", err
	}
	top := ms[len(ms)-1]
	b, err := os.ReadFile("/sys/dev/block/" + top.dev + "/loop/backing_file")
	if err != nil {
		return "", fmt.Errorf("statefs: %s is mounted from device %s, which is not a loop device", point, top.dev)
	}
	return strings.TrimSpace(string(b)), nil
}

// mountedDevice returns the /dev path of the loop device mounted at point.
func mountedDevice(point string) (string, error) {
	ms, err := mountsAt(point)
	if err != nil {
		return "", err
	}
	if len(ms) == 0 {
		return "", fmt.Errorf("%w: %s", ErrNotMounted, point)
	}
	link, err := os.Readlink("/sys/dev/block/" + ms[len(ms)-1].dev)
	if err != nil {
		return "", fmt.Errorf("statefs: %w", err)
	}
	return "/dev/" + filepath.Base(link), nil
}

// boundLoops lists the loop devices whose backing file is img as it is
// now. A device bound to a file since removed or replaced (the kernel
// shows "<path> (deleted)") is another filesystem: an image a shrink
// replaced, or a deleted program's still held by its dying sandbox.
func boundLoops(img string) ([]string, error) {
	paths, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // detached meanwhile
		}
		if strings.TrimSuffix(string(b), "\n") == img {
			out = append(out, filepath.Base(filepath.Dir(filepath.Dir(p))))
		}
	}
	return out, nil
}

// waitDetached waits until no loop device is bound to img (autoclear acts
// when the last mount goes), or reports ErrBusy.
func waitDetached(img string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		loops, err := boundLoops(img)
		if err != nil {
			return err
		}
		if len(loops) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s is still mounted elsewhere (%s): stop the program first", ErrBusy, img, strings.Join(loops, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unmount unmounts point once; lazy detaches it even if busy.
func unmount(point string, lazy bool) error {
	flags := unix.UMOUNT_NOFOLLOW
	if lazy {
		flags |= unix.MNT_DETACH
	}
	if err := unix.Unmount(point, flags); err != nil {
		return fmt.Errorf("statefs: unmounting %s: %w", point, err)
	}
	return nil
}

// unmountAll unmounts everything mounted at point: normally, or lazily
// when something on the host keeps it busy (the mount then leaves the
// tree at once and the kernel lets go of it when the last user does).
func unmountAll(point string) error {
	for range 16 {
		ms, err := mountsAt(point)
		if err != nil || len(ms) == 0 {
			return err
		}
		if err := unmount(point, false); err != nil {
			if !errors.Is(err, unix.EBUSY) {
				return err
			}
			if err := unmount(point, true); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("statefs: %s: mounts keep coming back", point)
}

// mountImage attaches img to a free loop device (autoclear: the device is
// freed when its last mount goes) and mounts it at point: ext4, no device
// files, no setuid, discard (blocks the program frees go back to the
// host's disk), noinit_itable (see create).
//
// If a loop device is still bound to img (a running container's mount
// namespace holds the filesystem after the Host unmounted its own copy),
// that device is mounted again: the kernel then shares the one mounted
// filesystem. A second loop device on the same file would be a second,
// independent ext4 over the same blocks, and corrupt both.
func mountImage(img, point string) error {
	loops, err := boundLoops(img)
	if err != nil {
		return fmt.Errorf("statefs: %w", err)
	}
	for _, l := range loops {
		if err := unix.Mount("/dev/"+l, point, "ext4", mountFlags, mountData); err == nil {
			return nil
		}
		// Detached meanwhile (its last user went): attach anew below.
	}
	if loops, _ := boundLoops(img); len(loops) > 0 {
		return fmt.Errorf("%w: %s is bound to %s, which cannot be mounted", ErrBusy, img, strings.Join(loops, ", "))
	}
	f, err := os.OpenFile(img, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("statefs: %w", err)
	}
	defer f.Close()
	loop, dev, err := attach(f, img)
	if err != nil {
		return err
	}
	// Closing our descriptor leaves the mount as the device's only user;
	// without a mount, the close frees the device.
	defer loop.Close()
	err = unix.Mount(dev, point, "ext4", mountFlags, mountData)
	if err != nil {
		return fmt.Errorf("statefs: mounting %s at %s: %w", img, point, err)
	}
	return nil
}

const (
	mountFlags = unix.MS_NODEV | unix.MS_NOSUID | unix.MS_NOATIME
	mountData  = "discard,noinit_itable"
)

// attach binds the open image f to a free loop device and returns the
// device, open. Another process may take the same free device between
// LOOP_CTL_GET_FREE and the binding: then the binding fails with EBUSY and
// the next free device is tried.
func attach(f *os.File, name string) (*os.File, string, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("statefs: %w", err)
	}
	defer ctl.Close()
	var last error
	for range 32 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, "", fmt.Errorf("statefs: no free loop device: %w", err)
		}
		dev := "/dev/loop" + strconv.Itoa(n)
		loop, err := os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, "", fmt.Errorf("statefs: %w", err)
		}
		cfg := unix.LoopConfig{Fd: uint32(f.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], name)
		err = unix.IoctlLoopConfigure(int(loop.Fd()), &cfg)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
			// A kernel before 5.8 has no LOOP_CONFIGURE: bind, then set
			// the flags.
			if err = unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_SET_FD, int(f.Fd())); err == nil {
				if err = unix.IoctlLoopSetStatus64(int(loop.Fd()), &cfg.Info); err != nil {
					unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_CLR_FD, 0)
				}
			}
		}
		if err == nil {
			return loop, dev, nil
		}
		loop.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, "", fmt.Errorf("statefs: binding %s to %s: %w", name, dev, err)
		}
		last = err
	}
	return nil, "", fmt.Errorf("statefs: no loop device could be bound: %w", last)
}
