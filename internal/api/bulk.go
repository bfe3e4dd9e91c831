package api

import (
	"net/http"
	"time"

	"github.com/hershyorg/hershy/internal/store"
)

// maxBulk is how many requests that hold a whole program source in memory
// (uploads of up to 32 MiB of JSON, more once decoded, and source reads),
// or copy a whole /state (exports and imports), the API serves at once. The others wait their turn: without the bound a
// user's hundred parallel uploads would take gigabytes from the Host, as a
// hundred parallel log reads once did.
const maxBulk = 4

// bulkWait is how long a request waits for its turn before a 503.
const bulkWait = time.Minute

// bulk takes one of the maxBulk turns for a request that reads or sends a
// whole source, waiting while the others finish. It answers 503 (and
// returns ok false) when the wait is too long or the client gives up.
func (s *server) bulk(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	t := time.NewTimer(bulkWait)
	defer t.Stop()
	select {
	case s.bulkTurns <- struct{}{}:
		return func() { <-s.bulkTurns }, true
	case <-r.Context().Done():
		return nil, false
	case <-t.C:
		writeError(w, http.StatusServiceUnavailable, "too many source uploads and reads at once; try again")
		return nil, false
	}
}

// programBulk is program then bulk: the request's program, and a turn
// held until release.
func (s *server) programBulk(w http.ResponseWriter, r *http.Request, p principal) (row store.Program, release func(), ok bool) {
	if row, ok = s.program(w, r, p); !ok {
		return row, nil, false
	}
	release, ok = s.bulk(w, r)
	return row, release, ok
}
