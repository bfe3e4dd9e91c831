package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/statearchive"
)

// A program's /state as an archive (package statearchive: a gzip'd tar of
// its regular files and folders, names relative to /state). Export takes a
// consistent copy: the program does not run while it is read (a running
// one is stopped for it, which also makes the framework write its durable
// file, and started again). Import replaces /state of a program that does
// not run, with an archive checked entry by entry first: regular files and
// folders only, clean relative names, within the /state cap. It is how a
// program's state moves between Hosts, and between engines.
//
// Where /state lives decides who reads and writes it: a /state on this
// machine's disk is the Host's to walk; a cluster's volume is the engine's
// (driver.StateCopier), which copies it in a sandbox of its own with the
// same package's checks, the Host checking an import as it sends it.

// ImportResult says what an import wrote.
type ImportResult = statearchive.Result

// stateDir is the program's /state on this machine.
func (h *Host) stateDir(id string) string {
	return filepath.Join(h.programDir(id), "state")
}

// stateCopier is the engine's copier of /state volumes; nil when /state is
// on this machine's disk, an error when the engine keeps /state but
// cannot copy it.
func (h *Host) stateCopier() (driver.StateCopier, error) {
	if h.volumes == nil {
		return nil, nil
	}
	c, ok := h.driver.(driver.StateCopier)
	if !ok {
		return nil, fmt.Errorf("%w: this Host's engine keeps /state (a cluster volume) and cannot copy it out or in", ErrInvalid)
	}
	return c, nil
}

// volumeCopy is what the engine's copier is told of the program's /state:
// its volume, made (or grown) first, since a program that never started
// has none yet; and the program's own user and runtime.
func (h *Host) volumeCopy(ctx context.Context, id string, limit int64) (driver.VolumeCopy, error) {
	row, err := h.store.GetProgram(ctx, id)
	if err != nil {
		return driver.VolumeCopy{}, err
	}
	if err := h.volumes.EnsureVolume(ctx, stateVolume(id), h.stateLimit(row), h.volumeLabels(id)); err != nil {
		if errors.Is(err, driver.ErrInvalidSpec) {
			return driver.VolumeCopy{}, fmt.Errorf("%w: /state: %v", ErrInvalid, err)
		}
		return driver.VolumeCopy{}, fmt.Errorf("/state: %w", err)
	}
	return driver.VolumeCopy{
		Volume:  stateVolume(id),
		User:    strconv.Itoa(builder.ProgramUID) + ":" + strconv.Itoa(builder.ProgramGID),
		Runtime: h.opts.Runtime,
		Labels:  map[string]string{driver.LabelManaged: "true", driver.LabelInstance: h.instance, driver.LabelJob: "state"},
		Limit:   limit,
	}, nil
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
	copier, err := h.stateCopier()
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
	if copier != nil {
		spec, err := h.volumeCopy(ctx, id, 0)
		if err != nil {
			return err
		}
		if err := copier.ExportVolume(ctx, spec, w); err != nil {
			return fmt.Errorf("exporting /state: %w", err)
		}
		return nil
	}
	skipped, err := statearchive.Write(w, h.stateDir(id))
	if err != nil {
		return fmt.Errorf("exporting /state: %s", h.RelPaths(err.Error()))
	}
	if skipped > 0 {
		h.log.Info("state export left out special files (links, devices)", "program", id, "count", skipped)
	}
	return nil
}

// ImportState replaces the /state of a program that does not run with the
// gzip'd tar r. Every entry is checked before /state changes (see package
// statearchive): regular files and folders only, clean relative names, at
// most statearchive.MaxEntries, and in all no more than the program's
// /state cap. The new files belong to the program's user. Until the last
// entry is in, the old /state stays; /state needs room for both meanwhile.
// A program started meanwhile keeps its /state (ErrConflict).
func (h *Host) ImportState(ctx context.Context, id string, r io.Reader) (ImportResult, error) {
	copier, err := h.stateCopier()
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
	if h.states == nil && h.volumes == nil {
		limit = h.opts.MaxStateBytes // uncapped /state: the Host's maximum still bounds an import
	}
	stillStopped := func() error {
		if p := s.Program(); !notRunning(p) {
			return fmt.Errorf("%w: the program started during the import; nothing was changed", ErrConflict)
		}
		return nil
	}
	if copier != nil {
		return h.importVolume(ctx, copier, id, limit, r, stillStopped)
	}
	// Into a fresh folder of /state's own filesystem (so the swap is a
	// rename), which nothing but this import writes.
	dir := h.stateDir(id)
	tmp := filepath.Join(dir, statearchive.TempPrefix+statearchive.NewToken())
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return ImportResult{}, fmt.Errorf("importing /state: %s", h.RelPaths(err.Error()))
	}
	defer os.RemoveAll(tmp)
	res, err := statearchive.Extract(r, tmp, limit, builder.ProgramUID, builder.ProgramGID)
	if err != nil {
		return ImportResult{}, fmt.Errorf("%w: importing /state: %s", ErrInvalid, h.RelPaths(err.Error()))
	}
	if err := stillStopped(); err != nil {
		return ImportResult{}, err
	}
	if err := statearchive.Swap(dir, tmp); err != nil {
		return ImportResult{}, fmt.Errorf("importing /state: %s", h.RelPaths(err.Error()))
	}
	h.log.Info("imported /state", "program", id, "files", res.Files, "bytes", res.Bytes)
	return res, nil
}

// importVolume sends the archive to the engine's copier, checking it on
// the way with the same rules the copier applies in its sandbox: a
// hostile archive is refused here as soon as its entry passes (the
// copier's stream is then cut), and the copier's commit waits for this
// check's verdict, so the volume changes only for an archive both sides
// passed.
func (h *Host) importVolume(ctx context.Context, copier driver.StateCopier, id string, limit int64, r io.Reader, stillStopped func() error) (ImportResult, error) {
	spec, err := h.volumeCopy(ctx, id, limit)
	if err != nil {
		return ImportResult{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	checked := make(chan struct{})
	var checkErr error
	go func() {
		defer close(checked)
		if _, checkErr = statearchive.Check(pr, limit); checkErr != nil {
			cancel() // the copier's stream is cut
			pr.CloseWithError(checkErr)
			return
		}
		pr.Close()
	}()
	commit := func() error {
		<-checked
		if checkErr != nil {
			return checkErr
		}
		return stillStopped()
	}
	res, err := copier.ImportVolume(ctx, spec, &checkedReader{r: r, w: pw}, commit)
	pw.CloseWithError(errors.New("the import ended"))
	<-checked
	if checkErr != nil {
		return ImportResult{}, fmt.Errorf("%w: importing /state: %s", ErrInvalid, checkErr)
	}
	switch {
	case errors.Is(err, statearchive.ErrRefused):
		return ImportResult{}, fmt.Errorf("%w: importing /state: %w", ErrInvalid, err)
	case errors.Is(err, ErrConflict):
		return ImportResult{}, err
	case err != nil:
		return ImportResult{}, fmt.Errorf("importing /state: %w", err)
	}
	h.log.Info("imported /state", "program", id, "files", res.Files, "bytes", res.Bytes)
	return res, nil
}

// checkedReader hands what it reads from r to the check's pipe w before
// returning it (and closes w at r's end): a read returns only bytes the
// check has taken, and the check's refusal once it has refused.
type checkedReader struct {
	r io.Reader
	w *io.PipeWriter
}

func (c *checkedReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		if _, werr := c.w.Write(b[:n]); werr != nil {
			return 0, werr
		}
	}
	if errors.Is(err, io.EOF) {
		c.w.Close()
	}
	return n, err
}
