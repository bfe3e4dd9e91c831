package host

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

// A program's /state as an archive: a gzip'd tar of its regular files and
// folders, names relative to /state. Export takes a consistent copy: the
// program does not run while it is read (a running one is stopped for it,
// which also makes the framework write its durable file, and started
// again). Import replaces /state of a program that does not run, with an
// archive checked entry by entry first: regular files and folders only,
// clean relative names, within the /state cap. It is how a program's state
// moves between Hosts.

// Import limits, besides the program's /state cap.
const (
	maxStateEntries = 100_000
	maxStateName    = 1024
)

// ImportResult says what an import wrote.
type ImportResult struct {
	Files int
	Bytes int64
}

// stateDir is the program's /state on this machine, or an error when the
// engine keeps it (a cluster's volume).
func (h *Host) stateDir(id string) (string, error) {
	if h.volumes != nil {
		return "", fmt.Errorf("%w: this Host's engine keeps /state (a cluster volume); export and import run on a Host whose /state is on its own disk", ErrInvalid)
	}
	return filepath.Join(h.programDir(id), "state"), nil
}

// notRunning reports whether the program has no container that could
// change /state: created, stopped or failed, and settled.
func notRunning(p lifecycle.Program) bool {
	switch p.State {
	case lifecycle.Created, lifecycle.Stopped, lifecycle.Error:
		return true
	}
	return false
}

// waitState waits until the program settles in a state ok accepts.
func (h *Host) waitState(ctx context.Context, id string, ok func(lifecycle.Program) bool) error {
	s, err := h.sup(id)
	if err != nil {
		return err
	}
	for {
		changed := s.Changed()
		if ok(s.Program()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.Done():
			return fmt.Errorf("%w: the program was deleted", ErrNotFound)
		case <-changed:
		}
	}
}

// ExportState writes the program's /state to w as a gzip'd tar. A running
// program is stopped for the copy and started again after it. Links,
// devices and other special files are left out (and counted in the log).
func (h *Host) ExportState(ctx context.Context, id string, w io.Writer) error {
	dir, err := h.stateDir(id)
	if err != nil {
		return err
	}
	s, err := h.sup(id)
	if err != nil {
		return err
	}
	restart := s.Program().Desired == lifecycle.DesiredRunning
	if restart {
		if _, err := h.Stop(ctx, id); err != nil {
			return err
		}
		defer func() {
			if _, err := h.Start(context.WithoutCancel(ctx), id); err != nil {
				h.log.Error("starting the program again after its /state export", "program", id, "err", err)
			}
		}()
	}
	if err := h.waitState(ctx, id, notRunning); err != nil {
		return err
	}
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	skipped := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case rel == ".":
			return nil
		case rel == "lost+found" && d.IsDir(), strings.HasPrefix(rel, ".hershy-import-"):
			return filepath.SkipDir // the filesystem's own; an import cut short
		}
		name := filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o700, ModTime: modTime(d)})
		case d.Type().IsRegular():
			return exportFile(tw, p, name)
		default:
			skipped++
			return nil
		}
	})
	if err != nil {
		return fmt.Errorf("exporting /state: %s", h.RelPaths(err.Error()))
	}
	if skipped > 0 {
		h.log.Info("state export left out special files (links, devices)", "program", id, "count", skipped)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func modTime(d fs.DirEntry) time.Time {
	if info, err := d.Info(); err == nil {
		return info.ModTime()
	}
	return time.Time{}
}

// exportFile adds one regular file, opened without following a link (the
// program is stopped, but its files are still its own).
func exportFile(tw *tar.Writer, p, name string) error {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(info.Mode().Perm() & 0o700), Size: info.Size(), ModTime: info.ModTime()}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, info.Size())
	return err
}

// ImportState replaces the /state of a program that does not run with the
// gzip'd tar r. Every entry is checked before /state changes: regular
// files and folders only, clean relative names, at most maxStateEntries,
// and in all no more than the program's /state cap. The new files belong
// to the program's user. Until the last entry is in, the old /state stays;
// /state needs room for both meanwhile.
func (h *Host) ImportState(ctx context.Context, id string, r io.Reader) (ImportResult, error) {
	dir, err := h.stateDir(id)
	if err != nil {
		return ImportResult{}, err
	}
	s, err := h.sup(id)
	if err != nil {
		return ImportResult{}, err
	}
	if p := s.Program(); !notRunning(p) {
		return ImportResult{}, fmt.Errorf("%w: the program is %s: stop it to import its /state", ErrConflict, p.State)
	}
	row, err := h.store.GetProgram(ctx, id)
	if err != nil {
		return ImportResult{}, err
	}
	limit := h.stateLimit(row)
	if h.states == nil {
		limit = h.opts.MaxStateBytes // uncapped /state: the Host's maximum still bounds an import
	}
	// Into a fresh folder of /state's own filesystem (so the swap is a
	// rename), which nothing but this import writes.
	var b [6]byte
	rand.Read(b[:])
	tmp := filepath.Join(dir, ".hershy-import-"+hex.EncodeToString(b[:]))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return ImportResult{}, fmt.Errorf("importing /state: %s", h.RelPaths(err.Error()))
	}
	defer os.RemoveAll(tmp)
	res, err := extractState(r, tmp, limit)
	if err != nil {
		return ImportResult{}, fmt.Errorf("%w: importing /state: %w", ErrInvalid, err)
	}
	if p := s.Program(); !notRunning(p) {
		return ImportResult{}, fmt.Errorf("%w: the program started during the import; nothing was changed", ErrConflict)
	}
	// The swap: the old entries go (a link among them is removed, not
	// followed), the new ones move in.
	old, err := os.ReadDir(dir)
	if err != nil {
		return ImportResult{}, err
	}
	for _, e := range old {
		if e.Name() == filepath.Base(tmp) || e.Name() == "lost+found" {
			continue
		}
		// An import cut short before (a killed Host) is removed with the rest.
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return ImportResult{}, fmt.Errorf("importing /state: clearing the old state: %s", h.RelPaths(err.Error()))
		}
	}
	fresh, err := os.ReadDir(tmp)
	if err != nil {
		return ImportResult{}, err
	}
	for _, e := range fresh {
		if err := os.Rename(filepath.Join(tmp, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return ImportResult{}, fmt.Errorf("importing /state: %s", h.RelPaths(err.Error()))
		}
	}
	h.log.Info("imported /state", "program", id, "files", res.Files, "bytes", res.Bytes)
	return res, nil
}

// extractState writes the archive's entries under dir, refusing any entry
// that is not a regular file or a folder with a clean relative name, more
// than maxStateEntries entries, and more than limit bytes in all.
func extractState(r io.Reader, dir string, limit int64) (ImportResult, error) {
	var res ImportResult
	zr, err := gzip.NewReader(r)
	if err != nil {
		return res, fmt.Errorf("not a gzip stream: %w", err)
	}
	tr := tar.NewReader(zr)
	entries := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("reading the archive: %w", err)
		}
		if entries++; entries > maxStateEntries {
			return res, fmt.Errorf("more than %d entries", maxStateEntries)
		}
		name, err := stateEntryName(hdr.Name)
		if err != nil {
			return res, err
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return res, err
			}
		case tar.TypeReg:
			if hdr.Size < 0 || res.Bytes+hdr.Size > limit {
				return res, fmt.Errorf("%s: the archive holds more than the /state cap of %d bytes", name, limit)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return res, err
			}
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, os.FileMode(hdr.Mode)&0o700|0o600)
			if err != nil {
				return res, fmt.Errorf("%s: %w", name, err)
			}
			n, err := io.Copy(f, io.LimitReader(tr, hdr.Size))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return res, fmt.Errorf("%s: %w", name, err)
			}
			res.Files++
			res.Bytes += n
			if err := os.Chown(target, builder.ProgramUID, builder.ProgramGID); err != nil && !errors.Is(err, os.ErrPermission) {
				return res, err
			}
			continue
		default:
			return res, fmt.Errorf("%s: only regular files and folders may be imported (type %q)", name, hdr.Typeflag)
		}
		if err := os.Chown(target, builder.ProgramUID, builder.ProgramGID); err != nil && !errors.Is(err, os.ErrPermission) {
			return res, err
		}
	}
}

// stateEntryName checks an entry's name: relative, clean once a folder's
// trailing slash is dropped, no "..", no control characters, not too long.
func stateEntryName(n string) (string, error) {
	name := strings.TrimSuffix(n, "/")
	switch {
	case name == "" || len(name) > maxStateName:
		return "", fmt.Errorf("entry %q: a name of 1 to %d bytes is required", n, maxStateName)
	case strings.HasPrefix(name, "/") || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../"):
		return "", fmt.Errorf("entry %q: a clean relative name inside /state is required", n)
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }):
		return "", fmt.Errorf("entry %q: control characters and backslashes are not allowed", n)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." || part == "." {
			return "", fmt.Errorf("entry %q: a clean relative name inside /state is required", n)
		}
	}
	return name, nil
}
