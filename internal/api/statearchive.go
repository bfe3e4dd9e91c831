package api

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
)

// The program's /state as a gzip'd tar: GET exports it (a running program
// is stopped for the copy and started again), PUT imports one into a
// program that does not run (host.ExportState, host.ImportState).

func (s *server) exportState(w http.ResponseWriter, r *http.Request, p principal) {
	row, release, ok := s.programBulk(w, r, p)
	if !ok {
		return
	}
	defer release()
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", row.ID+"-state.tar.gz"))
	// The archive is written as it is read: an error after the first byte
	// can only end the stream, which the gzip and tar trailers then lack.
	cw := &countingWriter{w: w}
	if err := s.h.ExportState(r.Context(), row.ID, cw); err != nil {
		if cw.n == 0 {
			s.fail(w, err)
			return
		}
		s.log.Error("state export cut short", "program", row.ID, "err", err)
		panic(http.ErrAbortHandler)
	}
}

type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// maxStateArchive caps an import's body: the archive is compressed, and
// its content is checked against the program's /state cap as it is read.
const maxStateArchive = 4 << 30

func (s *server) importState(w http.ResponseWriter, r *http.Request, p principal) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/gzip" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/gzip (a .tar.gz of /state)")
		return
	}
	row, release, ok := s.programBulk(w, r, p)
	if !ok {
		return
	}
	defer release()
	r.Body = http.MaxBytesReader(w, r.Body, maxStateArchive)
	res, err := s.h.ImportState(r.Context(), row.ID, r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("archive larger than %d bytes", int64(maxStateArchive)))
			return
		}
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"program_id": row.ID, "files": res.Files, "bytes": res.Bytes})
}
