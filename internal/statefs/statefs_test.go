package statefs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests use real loop devices and mounts: they need root, loop
// devices and e2fsprogs. Outside CI they skip without them; in CI (the CI
// variable set) they fail.

const uid, gid = 65532, 65532

func manager(t testing.TB) *Manager {
	t.Helper()
	if err := Check(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("capped filesystems are required in CI: %v", err)
		}
		t.Skip(err)
	}
	return New(uid, gid)
}

// programDir makes an empty program folder and removes it (with whatever
// is mounted in it) at the end of the test.
func programDir(t testing.TB, m *Manager) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "p")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Remove(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return dir
}

// fill writes name in 64 KiB chunks until an error or max bytes, and
// returns what it wrote and the error.
func fill(t *testing.T, name string, max int64) (int64, error) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	var n int64
	for n < max {
		k, err := f.Write(chunk)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, f.Sync()
}

func diskBytes(t *testing.T, name string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(name, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func mustMounted(t *testing.T, dir string, want bool) {
	t.Helper()
	c, err := canonical(dir)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mountedImage(filepath.Join(c, MountName))
	if err != nil {
		t.Fatal(err)
	}
	if got := img == filepath.Join(c, ImageName); got != want {
		t.Fatalf("%s mounted from its image: %v (mounted: %q), want %v", dir, got, img, want)
	}
}

func TestWritesPastTheLimitFailWithENOSPC(t *testing.T) {
	m := manager(t)
	dir := programDir(t, m)
	const limit = 8 << 20
	start := time.Now()
	if err := m.Ensure(context.Background(), dir, limit); err != nil {
		t.Fatal(err)
	}
	t.Logf("create, format and mount of %d MiB: %s; on disk: %d KiB", limit>>20, time.Since(start), diskBytes(t, filepath.Join(dir, ImageName))>>10)
	mustMounted(t, dir, true)

	mnt := filepath.Join(dir, MountName)
	var st syscall.Stat_t
	if err := syscall.Stat(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != uid || st.Gid != gid || st.Mode&0o777 != 0o700 {
		t.Errorf("root of the filesystem: uid %d gid %d mode %o, want %d %d 700", st.Uid, st.Gid, st.Mode&0o777, uid, gid)
	}
	if entries, _ := os.ReadDir(mnt); len(entries) != 0 {
		t.Errorf("a new filesystem holds %v, want nothing", entries)
	}

	n, err := fill(t, filepath.Join(mnt, "big"), 4*limit)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("wrote %d bytes into a %d-byte filesystem: err %v, want ENOSPC", n, limit, err)
	}
	if n > limit || n < limit/2 {
		t.Errorf("wrote %d bytes before ENOSPC, want between %d and %d", n, limit/2, limit)
	}
	if d := diskBytes(t, filepath.Join(dir, ImageName)); d > limit {
		t.Errorf("the image takes %d bytes on the host's disk, more than the limit %d", d, limit)
	}
	u, err := m.Usage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if u.Limit != limit || u.Used < n || u.Used > limit || u.Avail > 64<<10 {
		t.Errorf("usage %+v after writing %d bytes, want used >= written, limit %d, nothing left", u, n, limit)
	}

	// Deleting the file gives the blocks back, to the program and (discard)
	// to the host's disk.
	if err := os.Remove(filepath.Join(mnt, "big")); err != nil {
		t.Fatal(err)
	}
	// Discards go out after the journal commits, from a worker: wait.
	deadline := time.Now().Add(10 * time.Second)
	for {
		unix.Sync()
		d := diskBytes(t, filepath.Join(dir, ImageName))
		if d <= limit/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the image still takes %d bytes after the program deleted its data", d)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if u, err := m.Usage(dir); err != nil || u.Used > 1<<20 {
		t.Errorf("usage after deleting: %+v %v", u, err)
	}
}

func TestReleaseAndEnsureAgainKeepTheData(t *testing.T) {
	m := manager(t)
	dir := programDir(t, m)
	ctx := context.Background()
	if err := m.Ensure(ctx, dir, 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := m.Ensure(ctx, dir, 8<<20); err != nil { // mounted: nothing to do
		t.Fatal(err)
	}
	if ms, _ := mountsAt(filepath.Join(mustCanonical(t, dir), MountName)); len(ms) != 1 {
		t.Fatalf("%d mounts after two Ensures, want 1", len(ms))
	}
	if err := os.WriteFile(filepath.Join(dir, MountName, "kept"), []byte("yes"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A reboot: the mount and loop device are gone, the image stays.
	if err := m.Release(dir); err != nil {
		t.Fatal(err)
	}
	mustMounted(t, dir, false)
	waitNoLoops(t, dir)
	if _, err := m.Usage(dir); !errors.Is(err, ErrNotMounted) {
		t.Errorf("Usage of a released filesystem: %v, want ErrNotMounted", err)
	}
	if err := m.Ensure(ctx, dir, 8<<20); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, MountName, "kept")); err != nil || string(b) != "yes" {
		t.Fatalf("after release and ensure: %q %v", b, err)
	}
}

// waitNoLoopsOn waits until no loop device is bound to img, or to the
// file that was img before it was removed.
func waitNoLoopsOn(t *testing.T, img string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		paths, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
		var bound []string
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil && strings.HasPrefix(string(b), img) {
				bound = append(bound, p)
			}
		}
		if len(bound) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("loop devices still bound to %s: %v", img, bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustCanonical(t *testing.T, dir string) string {
	t.Helper()
	c, err := canonical(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitNoLoops(t *testing.T, dir string) {
	t.Helper()
	img := filepath.Join(mustCanonical(t, dir), ImageName)
	if err := waitDetached(img, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// canGrowOnline reports whether this process may resize a mounted ext4
// (CAP_SYS_RESOURCE; some sandboxed hosts drop it even for root).
func canGrowOnline(t *testing.T) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return caps&(1<<unix.CAP_SYS_RESOURCE) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}

func TestGrow(t *testing.T) {
	m := manager(t)
	dir := programDir(t, m)
	ctx := context.Background()
	if err := m.Ensure(ctx, dir, 8<<20); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, MountName)
	big := filepath.Join(mnt, "big")
	n1, err := fill(t, big, 64<<20)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("fill: %d %v", n1, err)
	}

	// Held by a container (a mount elsewhere): grown online if the kernel
	// lets us, else refused with nothing changed.
	other := filepath.Join(t.TempDir(), "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(mnt, other, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	err = m.Resize(ctx, dir, 12<<20)
	if uerr := unix.Unmount(other, 0); uerr != nil {
		t.Fatal(uerr)
	}
	online := canGrowOnline(t)
	t.Logf("online growth possible here: %v", online)
	want := int64(12 << 20)
	if online && err != nil {
		t.Fatalf("growing online: %v", err)
	}
	if !online {
		if !errors.Is(err, ErrBusy) {
			t.Fatalf("growing a filesystem in use without CAP_SYS_RESOURCE: %v, want ErrBusy", err)
		}
		want = 8 << 20
	}
	mustMounted(t, dir, true)
	if u, err := m.Usage(dir); err != nil || u.Limit != want {
		t.Fatalf("usage: %+v %v, want limit %d", u, err, want)
	}

	// In use by nobody: grown in any case.
	if err := m.Resize(ctx, dir, 16<<20); err != nil {
		t.Fatal(err)
	}
	mustMounted(t, dir, true)
	n2, err := fill(t, big, 64<<20)
	if !errors.Is(err, syscall.ENOSPC) || n2 < 6<<20 {
		t.Fatalf("after growing to 16 MiB: wrote %d more, err %v; want about 8 MiB more, then ENOSPC", n2, err)
	}
	if u, err := m.Usage(dir); err != nil || u.Limit != 16<<20 || u.Used < n1+n2 {
		t.Fatalf("usage after growing: %+v %v", u, err)
	}
	// Ensure with a larger limit grows too (an operator raised the default).
	if err := m.Ensure(ctx, dir, 20<<20); err != nil {
		t.Fatal(err)
	}
	if u, err := m.Usage(dir); err != nil || u.Limit != 20<<20 || u.Avail < 3<<20 {
		t.Fatalf("usage after Ensure with a larger limit: %+v %v", u, err)
	}
	// ... and with a smaller one keeps the size.
	if err := m.Ensure(ctx, dir, 8<<20); err != nil {
		t.Fatal(err)
	}
	if u, _ := m.Usage(dir); u.Limit != 20<<20 {
		t.Fatalf("Ensure shrank the filesystem: %+v", u)
	}
	if st, err := os.Stat(big); err != nil || st.Size() != n1+n2 {
		t.Fatalf("the data after growing: %v %v", st, err)
	}
}

func TestShrink(t *testing.T) {
	m := manager(t)
	dir := programDir(t, m)
	ctx := context.Background()
	if err := m.Ensure(ctx, dir, 32<<20); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, MountName)
	if n, err := fill(t, filepath.Join(mnt, "a"), 12<<20); err != nil {
		t.Fatal(n, err)
	}

	// More stored than fits: refused, nothing changed.
	if err := m.Resize(ctx, dir, 8<<20); !errors.Is(err, ErrTooSmall) {
		t.Fatalf("shrinking below the data: %v, want ErrTooSmall", err)
	}
	mustMounted(t, dir, true)

	// Mounted elsewhere too (as in a running container's namespace):
	// refused, and mounted here again.
	other := filepath.Join(t.TempDir(), "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(mnt, other, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	err := m.Resize(ctx, dir, 16<<20)
	if uerr := unix.Unmount(other, 0); uerr != nil {
		t.Fatal(uerr)
	}
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("shrinking a filesystem mounted elsewhere: %v, want ErrBusy", err)
	}
	mustMounted(t, dir, true)

	if err := m.Resize(ctx, dir, 16<<20); err != nil {
		t.Fatal(err)
	}
	mustMounted(t, dir, true)
	u, err := m.Usage(dir)
	if err != nil || u.Limit != 16<<20 {
		t.Fatalf("after shrinking: %+v %v", u, err)
	}
	if st, err := os.Stat(filepath.Join(mnt, "a")); err != nil || st.Size() != 12<<20 {
		t.Fatalf("data after shrinking: %v %v", st, err)
	}
	if n, err := fill(t, filepath.Join(mnt, "b"), 64<<20); !errors.Is(err, syscall.ENOSPC) || n > 4<<20 {
		t.Fatalf("after shrinking to 16 MiB with 12 stored: wrote %d more, err %v", n, err)
	}
	if err := m.Resize(ctx, dir, MinBytes-4096); !errors.Is(err, ErrTooSmall) {
		t.Fatalf("a limit below the minimum: %v", err)
	}
}

func TestMigrateAPlainStateDirectory(t *testing.T) {
	m := manager(t)
	dir := programDir(t, m)
	mnt := filepath.Join(dir, MountName)
	// What a program made before capped filesystems left in state/.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(mnt, "sub", "deeper"), 0o750))
	must(os.WriteFile(filepath.Join(mnt, "state.json"), []byte(`{"count":41}`), 0o640))
	must(os.WriteFile(filepath.Join(mnt, "sub", "deeper", "empty"), nil, 0o600))
	must(os.WriteFile(filepath.Join(mnt, "sub", "one-mib"), bytes.Repeat([]byte{7}, 1<<20), 0o600))
	must(os.Symlink("/etc/passwd", filepath.Join(mnt, "link")))
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(os.Chtimes(filepath.Join(mnt, "state.json"), old, old))
	must(filepath.Walk(mnt, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}))
	must(os.Chmod(mnt, 0o700))

	if err := m.Ensure(context.Background(), dir, 8<<20); err != nil {
		t.Fatal(err)
	}
	mustMounted(t, dir, true)
	if b, err := os.ReadFile(filepath.Join(mnt, "state.json")); err != nil || string(b) != `{"count":41}` {
		t.Fatalf("state.json after migration: %q %v", b, err)
	}
	st, err := os.Stat(filepath.Join(mnt, "state.json"))
	if err != nil || st.Mode().Perm() != 0o640 || !st.ModTime().Equal(old) || st.Sys().(*syscall.Stat_t).Uid != uid {
		t.Fatalf("state.json's mode, time or owner changed: %v %v", st, err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "sub", "one-mib")); err != nil || len(b) != 1<<20 || b[0] != 7 {
		t.Fatalf("sub/one-mib: %d bytes, %v", len(b), err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "sub", "deeper", "empty")); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(mnt, "link")); err != nil || target != "/etc/passwd" {
		t.Fatalf("the symbolic link: %q %v (copied as a link, never followed)", target, err)
	}
	for _, leftover := range []string{newImageName, newMountName} {
		if _, err := os.Lstat(filepath.Join(dir, leftover)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", leftover, err)
		}
	}
	// Under the mount, the old directory is empty: its data lives only in
	// the image now, and is not counted twice on the host's disk.
	must(m.Release(dir))
	if entries, _ := os.ReadDir(mnt); len(entries) != 0 {
		t.Errorf("the bare mount point still holds %d entries", len(entries))
	}
}

func TestMigrationThatDoesNotFitLosesNothing(t *testing.T) {
	m := manager(t)
	dir := programDir(t, m)
	mnt := filepath.Join(dir, MountName)
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("z"), 12<<20)
	if err := os.WriteFile(filepath.Join(mnt, "big"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	err := m.Ensure(context.Background(), dir, 8<<20)
	if !errors.Is(err, ErrTooSmall) {
		t.Fatalf("migrating 12 MiB into 8: %v, want ErrTooSmall", err)
	}
	mustMounted(t, dir, false)
	if b, err := os.ReadFile(filepath.Join(mnt, "big")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("the old state after a failed migration: %d bytes, %v", len(b), err)
	}
	for _, name := range []string{ImageName, newImageName, newMountName} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", name, err)
		}
	}
	waitNoLoops(t, dir)
	if err := m.Ensure(context.Background(), dir, 16<<20); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "big")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("after migrating into 16 MiB: %d bytes, %v", len(b), err)
	}
}

func TestLeftoversOfAnInterruptedCreateOrMigration(t *testing.T) {
	m := manager(t)
	dir := programDir(t, m)
	ctx := context.Background()
	if err := m.Ensure(ctx, dir, 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, MountName, "real"), []byte("1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Release(dir); err != nil {
		t.Fatal(err)
	}
	// A crash after the image was committed but before the old directory
	// was cleared, and a half-made image of another attempt.
	if err := os.WriteFile(filepath.Join(dir, MountName, "copied-already"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, newImageName), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Ensure(ctx, dir, 8<<20); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, MountName))
	if len(entries) != 1 || entries[0].Name() != "real" {
		t.Fatalf("mounted filesystem holds %v, want only real", entries)
	}
	if err := m.Release(dir); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, MountName)); len(entries) != 0 {
		t.Fatalf("the bare mount point still holds %v", entries)
	}
}

func TestEnsureRefusesWhatIsNotItsOwn(t *testing.T) {
	m := manager(t)
	ctx := context.Background()
	gone := filepath.Join(t.TempDir(), "deleted")
	if err := m.Ensure(ctx, gone, 8<<20); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Ensure in a missing folder: %v, want not exist", err)
	}
	if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Ensure created a program's folder")
	}
	dir := programDir(t, m)
	if err := m.Ensure(ctx, dir, 1<<20); !errors.Is(err, ErrTooSmall) {
		t.Fatalf("a 1 MiB limit: %v, want ErrTooSmall", err)
	}
	mnt := filepath.Join(dir, MountName)
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(mnt, 0)
	if err := m.Ensure(ctx, dir, 8<<20); err == nil {
		t.Fatal("Ensure accepted a tmpfs mounted at state/")
	}
}

// A start cancelled by a delete runs Ensure while Remove runs: whatever
// the order, nothing may stay mounted or bound, and the folder ends gone.
func TestEnsureRacingRemoveLeavesNothing(t *testing.T) {
	m := manager(t)
	ctx := context.Background()
	for i := range 8 {
		dir := filepath.Join(t.TempDir(), fmt.Sprint("p", i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		canon := mustCanonical(t, dir)
		if i%2 == 0 { // half of them already have a filesystem
			if err := m.Ensure(ctx, dir, 8<<20); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		var removeErr error
		wg.Add(3)
		go func() { defer wg.Done(); m.Ensure(ctx, dir, 8<<20) }()
		go func() { defer wg.Done(); removeErr = m.Remove(dir) }()
		go func() { defer wg.Done(); m.Ensure(ctx, dir, 8<<20) }()
		wg.Wait()
		if removeErr != nil {
			t.Fatal(removeErr)
		}
		// An Ensure after the Remove fails; one before it was undone. Once
		// more, to be sure the folder stays gone.
		if err := m.Remove(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("round %d: the folder survived: %v", i, err)
		}
		for _, p := range []string{MountName, newMountName} {
			if ms, _ := mountsAt(filepath.Join(canon, p)); len(ms) != 0 {
				t.Fatalf("round %d: %s still mounted", i, p)
			}
		}
		waitNoLoopsOn(t, filepath.Join(canon, ImageName))
	}
	if len(m.locks) != 0 {
		t.Errorf("%d folder locks left", len(m.locks))
	}
}

func TestRemoveLeavesNothing(t *testing.T) {
	m := manager(t)
	dir := filepath.Join(t.TempDir(), "p")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	canon := mustCanonical(t, dir)
	if err := m.Ensure(context.Background(), dir, 8<<20); err != nil {
		t.Fatal(err)
	}
	// A file open in the filesystem on the host makes the unmount lazy.
	f, err := os.Create(filepath.Join(dir, MountName, "open"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("folder survived: %v", err)
	}
	if ms, _ := mountsAt(filepath.Join(canon, MountName)); len(ms) != 0 {
		t.Fatal("still mounted")
	}
	f.Close() // the last user: the kernel lets go of the filesystem
	waitNoLoopsOn(t, filepath.Join(canon, ImageName))
	if err := m.Remove(dir); err != nil {
		t.Fatalf("Remove of a removed folder: %v", err)
	}
}

func BenchmarkEnsureNew(b *testing.B) {
	m := manager(b)
	ctx := context.Background()
	base := b.TempDir()
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(base, fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		if err := m.Ensure(ctx, dir, 256<<20); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := m.Remove(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func BenchmarkEnsureMounted(b *testing.B) {
	m := manager(b)
	ctx := context.Background()
	dir := programDir(b, m)
	if err := m.Ensure(ctx, dir, 256<<20); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := m.Ensure(ctx, dir, 256<<20); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUsage is what the Host pays per running program and sampling
// round (and per program in a list, at most every 2 s) to know how much of
// its /state is used: a few stats and a statfs of the mount.
func BenchmarkUsage(b *testing.B) {
	m := manager(b)
	dir := programDir(b, m)
	if err := m.Ensure(context.Background(), dir, 256<<20); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := m.Usage(dir); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRemount is what a Host pays per program when it opens after a
// reboot or a restart: mount an existing filesystem again.
func BenchmarkRemount(b *testing.B) {
	m := manager(b)
	ctx := context.Background()
	dir := programDir(b, m)
	if err := m.Ensure(ctx, dir, 256<<20); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		if err := m.Release(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := m.Ensure(ctx, dir, 256<<20); err != nil {
			b.Fatal(err)
		}
	}
}
