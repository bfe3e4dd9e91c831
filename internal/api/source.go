package api

import (
	"net/http"
	"time"

	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/source"
)

func (s *server) replaceSource(w http.ResponseWriter, r *http.Request, p principal) {
	release, ok := s.bulk(w, r)
	if !ok {
		return
	}
	defer release()
	var b programBody
	if !decode(w, r, maxSourceBody, &b) {
		return
	}
	row, ok := s.program(w, r, p)
	if !ok {
		return
	}
	// The same body as POST /programs. The owner cannot change; options
	// are fixed at create (the restart policy has its own route, and is
	// applied here too; state_bytes is applied here first), so differing
	// options are refused rather than silently ignored.
	if b.UserID != "" && b.UserID != row.UserID {
		writeError(w, http.StatusBadRequest, "user_id cannot change (the program belongs to "+row.UserID+")")
		return
	}
	o := row.Options
	if (b.Network && !o.Network) || (b.MemoryBytes != 0 && b.MemoryBytes != o.MemoryBytes) ||
		(b.CPUs != 0 && b.CPUs != o.CPUs) || (b.Env != nil && !sameEnv(b.Env, o.Env)) {
		writeError(w, http.StatusBadRequest, "network, memory_bytes, cpus and env are set at create; delete and re-create the program to change them")
		return
	}
	files := source.Files(b.SrcFiles)
	if files == nil {
		files = source.Files{}
	}
	next, err := s.h.Update(r.Context(), row.ID, host.UpdateRequest{
		Dockerfile: b.Dockerfile, Files: files, StateBytes: b.StateBytes, RestartPolicy: b.RestartPolicy, By: p.UserID,
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.view(next))
}

func sameEnv(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func (s *server) getSource(w http.ResponseWriter, r *http.Request, p principal) {
	row, release, ok := s.programBulk(w, r, p)
	if !ok {
		return
	}
	defer release()
	files, err := s.h.Source(r.Context(), row.ID)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"program_id": row.ID, "files": files, "retrieved_at": time.Now().UTC()})
}
