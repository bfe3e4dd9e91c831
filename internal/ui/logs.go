package ui

import (
	"bufio"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// logsPage shows the program's container logs: the last lines, optionally
// only those containing a search text. The script follows new lines over
// the pass-through (logs?follow=1) and filters as the user types.
func (h *Handler) logsPage(w http.ResponseWriter, r *http.Request, req *request) {
	p, ok := h.loadProgram(w, r, req)
	if !ok {
		return
	}
	q := r.URL.Query().Get("q")
	tail := 500
	if v := r.URL.Query().Get("tail"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 && n <= 100000 {
			tail = n
		}
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	var logs struct {
		Logs string `json:"logs"`
	}
	// A follow starts where this read ends: lines captured from now.
	since := h.opts.Now()
	err := req.api.get(ctx, programPath(p.ProgramID, "/logs?tail="+strconv.Itoa(tail)), &logs)
	lines := filterLines(logs.Logs, q)
	h.render(w, r, req, http.StatusOK, "logs", "Logs of "+p.ProgramID, map[string]any{
		"P": p, "Tab": "logs", "Lines": lines, "Q": q, "Tail": tail, "Err": errText(err), "Since": since,
	})
}

// filterLines splits logs into lines, keeping those containing q
// (case-insensitive; all when q is empty).
func filterLines(logs, q string) []string {
	var out []string
	lq := strings.ToLower(q)
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if q == "" || strings.Contains(strings.ToLower(sc.Text()), lq) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// logsDownload sends the whole kept history as a text file.
func (h *Handler) logsDownload(w http.ResponseWriter, r *http.Request, req *request) {
	id := r.PathValue("id")
	ctx, cancel := pageCtx(r)
	defer cancel()
	var logs struct {
		Logs string `json:"logs"`
	}
	if err := req.api.get(ctx, programPath(id, "/logs?tail=100000"), &logs); err != nil {
		h.refuse(w, r, statusOf(err), "Could not read the logs: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+safeFileName(id)+`.log"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(logs.Logs))
}

// statusOf is an API error's status (502 for anything else).
func statusOf(err error) int {
	if e, ok := err.(*apiError); ok {
		return e.Status
	}
	return http.StatusBadGateway
}

// safeFileName keeps letters, digits, dots, dashes and underscores.
func safeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, s)
}

// buildPage shows a build as it happens: the state (refreshed from the
// event stream with the build's progress) and the build log, which the
// script follows; when the program is Ready the script goes to its page.
func (h *Handler) buildPage(w http.ResponseWriter, r *http.Request, req *request) {
	p, ok := h.loadProgram(w, r, req)
	if !ok {
		return
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	b, _, err := req.api.raw(ctx, http.MethodGet, programPath(p.ProgramID, "/build-log"), nil)
	logText := string(b)
	if isStatus(err, http.StatusNotFound) {
		err = nil
		logText = ""
	}
	h.render(w, r, req, http.StatusOK, "build", "Build of "+p.ProgramID, map[string]any{
		"P": p, "Tab": "build", "Log": logText, "Err": errText(err),
	})
}

// sourcePage lists the program's files and shows one, highlighted.
func (h *Handler) sourcePage(w http.ResponseWriter, r *http.Request, req *request) {
	p, ok := h.loadProgram(w, r, req)
	if !ok {
		return
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	var src struct {
		Files map[string]string `json:"files"`
	}
	err := req.api.get(ctx, programPath(p.ProgramID, "/source"), &src)
	names := sortedKeys(src.Files)
	sort.SliceStable(names, func(i, j int) bool { return rankFile(names[i]) < rankFile(names[j]) })
	file := r.URL.Query().Get("file")
	if _, ok := src.Files[file]; !ok && len(names) > 0 {
		file = names[0]
	}
	h.render(w, r, req, http.StatusOK, "source", "Source of "+p.ProgramID, map[string]any{
		"P": p, "Tab": "source", "Files": names, "File": file, "Code": highlighted(file, src.Files[file]), "Err": errText(err),
	})
}

// rankFile shows the files that say most first: main.go, the Dockerfile,
// go.mod, then the rest in order.
func rankFile(name string) int {
	switch name {
	case "main.go":
		return 0
	case "Dockerfile":
		return 1
	case "go.mod":
		return 2
	}
	return 3
}
