package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/logstore"
)

// Log reads: GET /programs/{id}/logs and /build-log. A read holds a chunk
// and a line whatever the history size (see logstore), and its answer is
// written as the lines come, so the memory of a read does not grow with
// what it returns. Follows (server-sent events, or build-log?follow=1) last
// as long as their clients want, so each user may hold only a few at once.

// Defaults of Options.MaxFollows and Options.MaxAdminFollows.
const (
	DefaultMaxFollows      = 8
	DefaultMaxAdminFollows = 32
)

// maxTail caps ?tail. A read costs no more memory for a larger tail; the
// cap keeps requests meaningful (the default history holds 32 MiB).
const maxTail = 100000

// errTooManyFollows is a follow beyond the caller's cap: 429.
var errTooManyFollows = errors.New("too many log streams")

// follows counts the follows each user has open. The admin has its own cap
// (Options.MaxAdminFollows): it is the operator, often several tools at
// once, but a runaway script of its own must not hold the Host either.
type follows struct {
	mu   sync.Mutex
	open map[string]int // user id -> open follows
}

// acquireFollow takes one of p's follow slots, or fails with errTooManyFollows;
// release gives it back (once, however often it is called).
func (s *server) acquireFollow(p principal) (release func(), err error) {
	limit := s.opts.MaxFollows
	if p.Admin {
		limit = s.opts.MaxAdminFollows
	}
	f := &s.follows
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.open[p.UserID]; n >= limit {
		return nil, fmt.Errorf("%w: %s has %d open (at most %d at once); close one and retry",
			errTooManyFollows, p.UserID, n, limit)
	}
	if f.open == nil {
		f.open = map[string]int{}
	}
	f.open[p.UserID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.open[p.UserID]--; f.open[p.UserID] <= 0 {
				delete(f.open, p.UserID)
			}
		})
	}, nil
}

func (s *server) buildLog(w http.ResponseWriter, r *http.Request, p principal) {
	row, ok := s.program(w, r, p)
	if !ok {
		return
	}
	follow := isTrue(r.URL.Query().Get("follow"))
	if follow {
		release, err := s.acquireFollow(p)
		if err != nil {
			s.fail(w, err)
			return
		}
		defer release()
	}
	rc, err := s.h.BuildLog(r.Context(), row.BuildID, follow)
	if err != nil {
		if errors.Is(err, host.ErrNotFound) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "no such file") {
			writeError(w, http.StatusNotFound, "no build log for program "+row.ID+" yet")
			return
		}
		s.fail(w, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	ctl := http.NewResponseController(w)
	if follow {
		ctl.SetWriteDeadline(time.Time{})
	}
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if follow {
				ctl.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *server) logs(w http.ResponseWriter, r *http.Request, p principal) {
	row, ok := s.program(w, r, p)
	if !ok {
		return
	}
	qv := r.URL.Query()
	q := logstore.Query{Tail: 200, Follow: isTrue(qv.Get("follow"))}
	if v := qv.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxTail {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("tail must be an integer between 0 and %d (0: all)", maxTail))
			return
		}
		q.Tail = n
	}
	if v := qv.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "since must be an RFC 3339 time")
			return
		}
		q.Since = t
		if qv.Get("tail") == "" {
			q.Tail = 0
		}
	}
	if !q.Follow {
		s.logsJSON(w, r, row.ID, row.ContainerID, q)
		return
	}
	release, err := s.acquireFollow(p)
	if err != nil {
		s.fail(w, err)
		return
	}
	defer release()
	// Server-sent events: one event per line, flushed at once, until the
	// client goes away.
	ctl := http.NewResponseController(w)
	ctl.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctl.Flush()
	bw := bufio.NewWriter(w)
	err = s.h.Logs(r.Context(), row.ID, q, func(l logstore.Line) error {
		// One data: field per line; the text never contains a newline
		// (lines are split by the capture), but guard anyway.
		for _, part := range strings.Split(strings.TrimRight(l.Text, "\r\n"), "\n") {
			bw.WriteString("data: ")
			bw.WriteString(strings.TrimRight(part, "\r"))
			bw.WriteByte('\n')
		}
		bw.WriteByte('\n')
		if err := bw.Flush(); err != nil {
			return err
		}
		return ctl.Flush()
	})
	if err != nil && r.Context().Err() == nil {
		s.log.Debug("log stream", "program", row.ID, "err", err)
	}
}

// logsJSON answers a log read that does not follow with
// {container_id, logs, program_id, timestamp}, byte for byte what
// writeJSON gives for that object, but written while the lines are read:
// the logs string is encoded line by line. An error before the first line
// is an ordinary error answer; after it the status is sent, so the
// connection is broken off (the client sees a truncated body, never a
// shortened log that looks whole).
func (s *server) logsJSON(w http.ResponseWriter, r *http.Request, programID, containerID string, q logstore.Query) {
	var (
		bw      = bufio.NewWriterSize(w, 16<<10)
		buf     bytes.Buffer
		enc     = json.NewEncoder(&buf)
		started bool
	)
	quoted := func(v any) []byte {
		buf.Reset()
		enc.Encode(v) // strings and times always encode
		return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
	}
	begin := func() {
		started = true
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		bw.WriteString(`{"container_id":`)
		bw.Write(quoted(containerID))
		bw.WriteString(`,"logs":"`)
	}
	err := s.h.Logs(r.Context(), programID, q, func(l logstore.Line) error {
		if !started {
			begin()
		}
		b := quoted(l.Text)
		bw.Write(b[1 : len(b)-1]) // the text escaped, without its quotes
		_, err := bw.WriteString(`\n`)
		return err
	})
	if err != nil && !started {
		s.fail(w, err)
		return
	}
	if err != nil {
		if r.Context().Err() == nil {
			s.log.Warn("log read broken off", "program", programID, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	if !started {
		begin()
	}
	bw.WriteString(`","program_id":`)
	bw.Write(quoted(programID))
	bw.WriteString(`,"timestamp":`)
	bw.Write(quoted(time.Now().UTC()))
	bw.WriteString("}\n")
	bw.Flush()
}
