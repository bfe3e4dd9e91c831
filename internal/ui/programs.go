package ui

import (
	"net/http"
	"net/url"
	"strings"
)

// states lists the lifecycle states, for the filter (the API's order).
var states = []string{"Created", "Building", "Starting", "Ready", "Stopping", "Stopped", "Error", "Deleting"}

// maxSparkRows is how many rows of the programs page get sparklines.
const maxSparkRows = 200

// programRow is one line of the programs page.
type programRow struct {
	P     program
	Spark sparks
}

// programsPage lists the programs the token may see (the admin: every
// user's), with search and a state filter. The script keeps the list
// current from the event stream, re-fetching part-list.
func (h *Handler) programsPage(w http.ResponseWriter, r *http.Request, req *request) {
	ctx, cancel := pageCtx(r)
	defer cancel()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	state := r.URL.Query().Get("state")
	path := "/programs?limit=1000"
	if state != "" {
		path += "&state=" + url.QueryEscape(state)
	}
	var list programList
	err := req.api.get(ctx, path, &list)
	var rows []programRow
	counts := map[string]int{}
	for _, p := range list.Programs {
		counts[p.State]++
		if q != "" && !matches(p, q) {
			continue
		}
		row := programRow{P: p}
		// Each sparkline is a history read: the first rows get them, so a
		// list of a thousand programs stays cheap to refresh.
		if len(rows) < maxSparkRows {
			row.Spark = h.sparksFor(ctx, req.api, p)
		}
		rows = append(rows, row)
	}
	errText := ""
	if err != nil {
		errText = "Could not list programs: " + err.Error()
	}
	h.render(w, r, req, http.StatusOK, "programs", "Programs", map[string]any{
		"Rows": rows, "Q": q, "State": state, "States": states, "Total": list.Total, "Counts": counts, "Err": errText,
	})
}

// matches is the search: a case-insensitive substring of the id, the
// owner, the state or the runtime.
func matches(p program, q string) bool {
	q = strings.ToLower(q)
	for _, s := range []string{p.ProgramID, p.UserID, p.State, p.Runtime, p.BuildID} {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	return false
}
