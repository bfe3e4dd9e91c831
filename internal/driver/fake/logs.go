package fake

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// logRecord is one write of a program to its stdout or stderr, stamped by
// the engine's clock.
type logRecord struct {
	at   time.Time
	data []byte
}

// appendLog keeps b in c's log (d.mu held), dropping the oldest records
// past the container's log cap as the engine's rotation does.
func (c *container) appendLog(b []byte) {
	if len(b) == 0 {
		return
	}
	c.logs = append(c.logs, logRecord{at: now(), data: append([]byte(nil), b...)})
	c.logBytes += int64(len(b))
	for len(c.logs) > 1 && c.limits.LogBytes > 0 && c.logBytes > c.limits.LogBytes {
		c.logBytes -= int64(len(c.logs[0].data))
		c.logs = c.logs[1:]
		c.logFirst++
	}
	c.broadcast()
}

// Logs streams what the container's processes wrote, stdout and stderr as
// one plain text stream, from since (zero: from the start; a record
// written at or after since is included). With follow it goes on with new
// output until the process running at the call exits, the container is
// removed, ctx ends or the reader is closed; Close ends a blocked Read.
func (d *Driver) Logs(ctx context.Context, id string, since time.Time, follow bool) (io.ReadCloser, error) {
	call := Call{Method: "Logs", Ref: id}
	h, err := d.begin(ctx, call)
	if err != nil {
		return nil, err
	}
	var r *logReader
	d.mu.Lock()
	err = d.usableLocked("Logs")
	if err == nil {
		if c := d.lookup(id); c == nil {
			err = fmt.Errorf("fake: logs of container %s: %w", id, driver.ErrNotFound)
		} else {
			r = &logReader{d: d, c: c, ctx: ctx, since: since, next: c.logFirst, gen: d.gen, closed: make(chan struct{})}
			r.follow = follow && c.proc != nil
			r.run = c.runs
		}
	}
	d.mu.Unlock()
	if err = end(ctx, h, call, err); err != nil {
		return nil, err
	}
	return r, nil
}

type logReader struct {
	d      *Driver
	c      *container
	ctx    context.Context
	since  time.Time
	follow bool
	run    int    // the run followed
	gen    uint64 // the engine's crash count at the call
	next   uint64 // sequence number of the next record to read
	buf    []byte

	closeOnce sync.Once
	closed    chan struct{}
}

func (r *logReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		select {
		case <-r.closed:
			return 0, io.ErrClosedPipe
		default:
		}
		d, c := r.d, r.c
		d.mu.Lock()
		if d.gen != r.gen || d.closed {
			err := d.usableLocked("Logs")
			if err == nil {
				err = fmt.Errorf("fake: logs: %w", ErrEngineDown)
			}
			d.mu.Unlock()
			return 0, err
		}
		if r.next < c.logFirst {
			r.next = c.logFirst
		}
		for i := r.next - c.logFirst; int(i) < len(c.logs); i++ {
			r.next++
			if rec := c.logs[i]; r.since.IsZero() || !rec.at.Before(r.since) {
				r.buf = rec.data
				break
			}
		}
		if len(r.buf) > 0 {
			d.mu.Unlock()
			break
		}
		if !r.follow || c.removed || c.proc == nil || c.runs != r.run {
			d.mu.Unlock()
			return 0, io.EOF
		}
		changed, crashed := c.changed, d.crashed
		d.mu.Unlock()
		select {
		case <-changed:
		case <-crashed:
		case <-r.closed:
			return 0, io.ErrClosedPipe
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Close ends the stream; a Read blocked in a follow returns.
func (r *logReader) Close() error {
	r.closeOnce.Do(func() { close(r.closed) })
	return nil
}
