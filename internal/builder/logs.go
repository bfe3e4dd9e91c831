package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hershyorg/hershy/internal/source"
)

// Logs keeps one log file per build, <dir>/<build id>.log, and lets readers
// follow a log while its build is still writing it.
//
// The usual flow: w, _ := logs.Create(id); builder.Build(ctx, req, w);
// w.Close(). Meanwhile any number of logs.Open(ctx, id, true) readers see the
// output as it comes and reach io.EOF once the build is over (w closed).
type Logs struct {
	dir    string
	mu     sync.Mutex
	active map[string]*liveLog // logs with open writers
}

// liveLog is a log being written.
type liveLog struct {
	file    *os.File
	refs    int           // open writers (guarded by Logs.mu)
	mu      sync.Mutex    // serialises writes and guards changed
	changed chan struct{} // closed (and replaced) on every write
	done    chan struct{} // closed when the last writer closes
}

// NewLogs keeps logs in dir (created if missing).
func NewLogs(dir string) (*Logs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("build: logs: %w", err)
	}
	return &Logs{dir: dir, active: map[string]*liveLog{}}, nil
}

// Path returns the file holding buildID's log.
func (l *Logs) Path(buildID string) (string, error) {
	if err := source.ValidateBuildID(buildID); err != nil {
		return "", fmt.Errorf("build: logs: %w", err)
	}
	return filepath.Join(l.dir, buildID+".log"), nil
}

// Create starts buildID's log afresh (the log of an earlier build of the
// same id is replaced; readers that had it open keep reading the old one)
// and returns a writer for it. If the log is already being written (the
// same source being built for another program at the same time) the new
// writer appends to it. The log counts as finished when every writer is
// closed.
func (l *Logs) Create(buildID string) (*LogWriter, error) {
	path, err := l.Path(buildID)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if live := l.active[buildID]; live != nil {
		live.refs++
		return &LogWriter{logs: l, id: buildID, live: live}, nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("build: logs: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("build: logs: %w", err)
	}
	live := &liveLog{file: f, refs: 1, changed: make(chan struct{}), done: make(chan struct{})}
	l.active[buildID] = live
	return &LogWriter{logs: l, id: buildID, live: live}, nil
}

// Writing reports whether buildID's log has open writers.
func (l *Logs) Writing(buildID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.active[buildID] != nil
}

// Remove deletes buildID's log (a log being written is not removed).
func (l *Logs) Remove(buildID string) error {
	path, err := l.Path(buildID)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active[buildID] != nil {
		return fmt.Errorf("build: logs: %s is being written", buildID)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("build: logs: %w", err)
	}
	return nil
}

// Open reads buildID's log from the start (fs.ErrNotExist if there is
// none). With follow, a reader of a log still being written waits for more
// at the end instead of returning io.EOF, until the build finishes (every
// writer closed), ctx ends (Read returns ctx.Err()) or the reader is closed.
func (l *Logs) Open(ctx context.Context, buildID string, follow bool) (io.ReadCloser, error) {
	path, err := l.Path(buildID)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	live := l.active[buildID]
	f, err := os.Open(path) // under l.mu: the file and live belong together
	l.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("build: logs: %w", err)
	}
	if !follow || live == nil {
		return f, nil
	}
	return &followReader{ctx: ctx, f: f, live: live, closed: make(chan struct{})}, nil
}

// LogWriter appends to a build's log. It is safe for concurrent use.
type LogWriter struct {
	logs   *Logs
	id     string
	live   *liveLog
	once   sync.Once
	closed atomic.Bool
}

func (w *LogWriter) Write(p []byte) (int, error) {
	if w.closed.Load() {
		return 0, os.ErrClosed
	}
	lv := w.live
	lv.mu.Lock()
	defer lv.mu.Unlock()
	n, err := lv.file.Write(p)
	if n > 0 {
		close(lv.changed)
		lv.changed = make(chan struct{})
	}
	return n, err
}

// Close ends this writer; the last one to close finishes the log.
func (w *LogWriter) Close() error {
	var err error
	w.once.Do(func() {
		w.closed.Store(true)
		l, lv := w.logs, w.live
		l.mu.Lock()
		defer l.mu.Unlock()
		if lv.refs--; lv.refs > 0 {
			return
		}
		delete(l.active, w.id)
		lv.mu.Lock()
		err = lv.file.Close()
		close(lv.done)
		lv.mu.Unlock()
	})
	return err
}

// followReader reads a log that is still being written.
type followReader struct {
	ctx       context.Context
	f         *os.File
	live      *liveLog
	finished  bool
	closed    chan struct{}
	closeOnce sync.Once
}

func (r *followReader) Read(p []byte) (int, error) {
	for {
		if r.finished {
			return r.f.Read(p)
		}
		// Take the change signal before reading, so a write landing between
		// the read's EOF and the wait still wakes us.
		r.live.mu.Lock()
		changed := r.live.changed
		r.live.mu.Unlock()
		n, err := r.f.Read(p)
		if n > 0 || err != io.EOF {
			return n, err
		}
		select {
		case <-changed:
		case <-r.live.done:
			r.finished = true // read what is left, then EOF
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		case <-r.closed:
			return 0, os.ErrClosed
		}
	}
}

func (r *followReader) Close() error {
	err := os.ErrClosed
	r.closeOnce.Do(func() {
		close(r.closed)
		err = r.f.Close()
	})
	return err
}
