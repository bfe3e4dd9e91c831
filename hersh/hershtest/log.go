package hershtest

import (
	"bytes"
	"log"
	"strings"
	"sync"
	"testing"
)

// Log holds what the standard logger wrote during a test; see CaptureLog.
// It is safe for concurrent use: the watcher's goroutines write to it while
// the test reads it.
type Log struct {
	t   testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

// CaptureLog sends the standard logger's output (package log, and log/slog's
// default logger, which writes through it) to a Log until the test ends,
// without timestamps (flags 0) so that lines can be compared. Programs
// written with hersh report what they do this way; the WatcherAPI does not
// carry it. The logger is global: a test that captures it must not run in
// parallel with others that log.
func CaptureLog(t testing.TB) *Log {
	t.Helper()
	l := &Log{t: t}
	prev, flags := log.Writer(), log.Flags()
	log.SetOutput(l)
	log.SetFlags(0)
	t.Cleanup(func() {
		log.SetOutput(prev)
		log.SetFlags(flags)
	})
	return l
}

// Write appends p; it is how the logger reaches the Log.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Want fails the test if the log lacks any of parts, naming every missing
// one and showing the log.
func (l *Log) Want(parts ...string) {
	l.t.Helper()
	text := l.String()
	var missing []string
	for _, p := range parts {
		if !strings.Contains(text, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		l.t.Errorf("hershtest: the log lacks %q; it holds:\n%s", missing, text)
	}
}
