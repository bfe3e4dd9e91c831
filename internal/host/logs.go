package host

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/logstore"
)

// capture copies one container's output into its program's log file.
type capture struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// logFile opens (once) the program's container log.
func (h *Host) logFile(id string) (*logstore.File, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.files == nil {
		h.files = map[string]*logstore.File{}
	}
	if f, ok := h.files[id]; ok {
		return f, nil
	}
	dir := filepath.Join(h.programDir(id), "logs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := logstore.Open(filepath.Join(dir, "container.log"), h.opts.LogMaxBytes, h.opts.LogKeep)
	if err != nil {
		return nil, err
	}
	h.files[id] = f
	return f, nil
}

// startCapture follows a container's stdout and stderr (demultiplexed by
// the driver) from since until the container exits or the Host closes.
func (h *Host) startCapture(id, cid string, since time.Time) {
	f, err := h.logFile(id)
	if err != nil {
		h.log.Error("opening the container log", "program", id, "err", err)
		return
	}
	h.mu.Lock()
	if _, running := h.captures[cid]; running {
		h.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(h.ctx)
	c := &capture{cancel: cancel, done: make(chan struct{})}
	h.captures[cid] = c
	h.mu.Unlock()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer close(c.done)
		defer cancel()
		// The stream lives as long as the container: a small buffer, since
		// there is one per running program (output lines are short; a long
		// one takes a few reads).
		buf := make([]byte, 2<<10)
		for {
			h.follow(ctx, id, cid, since, f, buf)
			f.Flush()
			// The stream ended: the container exited, or the engine went
			// away under it (a restart under live-restore keeps the
			// container running). Follow again, after the last line
			// stored, for as long as the container runs.
			if !h.mayStillRun(ctx, cid) {
				break
			}
			since = h.logSince(id)
		}
		h.mu.Lock()
		if h.captures[cid] == c {
			delete(h.captures, cid)
		}
		h.mu.Unlock()
	}()
}

// follow copies a container's output from since to f until the stream
// ends.
func (h *Host) follow(ctx context.Context, id, cid string, since time.Time, f io.Writer, buf []byte) {
	rc, err := h.driver.Logs(ctx, cid, since, true)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, driver.ErrNotFound) {
			h.log.Warn("following container output", "program", id, "err", err)
		}
		return
	}
	defer rc.Close()
	defer context.AfterFunc(ctx, func() { rc.Close() })()
	if _, err := io.CopyBuffer(f, rc, buf); err != nil && ctx.Err() == nil && !errors.Is(err, io.ErrClosedPipe) {
		h.log.Warn("capturing container output", "program", id, "err", err)
	}
}

// mayStillRun waits a second and tells whether a container whose output
// stream ended may still be running: it runs, or the engine does not
// answer yet (the capture tries again). False once ctx ends.
func (h *Host) mayStillRun(ctx context.Context, cid string) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Second):
	}
	info, err := h.driver.InspectContainer(ctx, cid)
	switch {
	case ctx.Err() != nil, errors.Is(err, driver.ErrNotFound):
		return false
	case err != nil:
		return true
	}
	return info.Running
}

// stopCapture ends a container's capture and waits until its output so far
// is stored.
func (h *Host) stopCapture(cid string) {
	h.mu.Lock()
	c, ok := h.captures[cid]
	delete(h.captures, cid)
	h.mu.Unlock()
	if ok {
		c.cancel()
		<-c.done
	}
}

// Logs reads a program's captured container output: the last q.Tail lines,
// or those since q.Since, following new output with q.Follow until ctx ends.
func (h *Host) Logs(ctx context.Context, id string, q logstore.Query, emit func(logstore.Line) error) error {
	if _, err := h.store.GetProgram(ctx, id); err != nil {
		return err
	}
	f, err := h.logFile(id)
	if err != nil {
		return err
	}
	return f.Read(ctx, q, emit)
}

// BuildLog opens a build's log; with follow it keeps reading while the
// build runs.
func (h *Host) BuildLog(ctx context.Context, buildID string, follow bool) (io.ReadCloser, error) {
	return h.builder.Logs().Open(ctx, buildID, follow)
}

func (h *Host) closeLogs() {
	h.mu.Lock()
	files := h.files
	h.files = nil
	h.mu.Unlock()
	for _, f := range files {
		f.Close()
	}
}
