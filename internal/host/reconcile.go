package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/statefs"
	"github.com/hershyorg/hershy/internal/store"
)

// reconcile runs at every start: it compares the store with the engine and
// sets things right. Containers of known programs are re-adopted as they
// are (a running program is not restarted); interrupted builds, starts and
// stops are resumed by the reducer's Recover handling; containers carrying
// this Host's labels that no program owns are removed; log capture resumes.
func (h *Host) reconcile(ctx context.Context) error {
	var rows []store.Program
	for offset := 0; ; {
		page, total, err := h.store.ListPrograms(ctx, store.ProgramFilter{Limit: 500, Offset: offset})
		if err != nil {
			return err
		}
		rows = append(rows, page...)
		offset += len(page)
		if len(page) == 0 || offset >= total {
			break
		}
	}
	containers, err := h.driver.ListContainers(ctx, map[string]string{driver.LabelManaged: "true", driver.LabelInstance: h.instance})
	if err != nil {
		return err
	}
	byProgram := map[string][]driver.ContainerInfo{}
	for _, c := range containers {
		byProgram[c.Labels[driver.LabelProgram]] = append(byProgram[c.Labels[driver.LabelProgram]], c)
	}
	// One reading of the mount table for every program's /state: with a
	// thousand containers it has thousands of lines.
	var mounts *statefs.MountTable
	if h.states != nil {
		if mounts, err = statefs.ReadMountTable(); err != nil {
			return err
		}
	}
	known := map[string]bool{}
	for _, r := range rows {
		known[r.ID] = true
		// A program whose folder vanished cannot run: say so instead of failing later.
		if _, err := os.Stat(filepath.Join(h.programDir(r.ID), "src")); err != nil && r.State != lifecycle.Deleting {
			r.ErrorMsg = "program storage missing: " + err.Error()
		}
		chosen := pick(byProgram[r.ID], r.ContainerID)
		// After a reboot nothing is mounted: /state first, before the
		// supervisor may launch or re-adopt a container.
		h.ensureStateAtOpen(ctx, r, chosen.Running, mounts)
		s := h.supervise(r)
		if chosen.Running {
			h.startCapture(r.ID, chosen.ID, h.logSince(r.ID))
		}
		if err := s.Notify(ctx, lifecycle.Recover{ContainerID: chosen.ID, Running: chosen.Running}); err != nil {
			return err
		}
	}
	h.removeUnrecorded(known)
	for pid, cs := range byProgram {
		if known[pid] {
			continue
		}
		for _, c := range cs {
			h.log.Warn("removing an orphan container", "container", c.ID, "program", pid)
			if err := h.driver.RemoveContainer(ctx, c.ID); err != nil && !errors.Is(err, driver.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// pick chooses the container that stands for a program: the recorded one
// if it still exists, else a running one, else any. Extra containers are
// removed by the next launch or halt.
func pick(cs []driver.ContainerInfo, recorded string) driver.ContainerInfo {
	var best driver.ContainerInfo
	for _, c := range cs {
		switch {
		case c.ID == recorded:
			return c
		case c.Running && !best.Running:
			best = c
		case best.ID == "":
			best = c
		}
	}
	return best
}

// logSince is where to resume capturing a program's output: just after
// the newest line its log holds (zero: from the container's start). The
// stamps are the Host's clock, as the engine's log times are (one
// machine); a file's modification time would be the file system's, which
// a test's fake clock does not move.
func (h *Host) logSince(id string) time.Time {
	f, err := h.logFile(id)
	if err != nil {
		return time.Time{}
	}
	if t := f.Newest(); !t.IsZero() {
		return t.Add(time.Nanosecond)
	}
	return time.Time{}
}

// removeUnrecorded removes the program folders no record owns: a create
// moves its folder in place (and mounts its /state) before it writes the
// record, so a Host killed in between leaves a folder that no program
// will ever use. It runs before the API serves, when no create is under
// way.
func (h *Host) removeUnrecorded(known map[string]bool) {
	entries, err := os.ReadDir(filepath.Join(h.opts.DataDir, "programs"))
	if err != nil {
		h.log.Error("looking for unrecorded program folders", "err", err)
		return
	}
	for _, e := range entries {
		if known[e.Name()] {
			continue
		}
		h.log.Warn("removing the folder of a program that was never recorded (a create cut short)", "program", e.Name())
		if err := h.removeProgramDir(e.Name()); err != nil {
			h.log.Error("removing an unrecorded program folder", "program", e.Name(), "err", err)
		}
	}
}
