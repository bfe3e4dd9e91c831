package ui

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// programCtx loads the program of the path; a 404 (missing, or another
// user's: the API says the same for both) is the not-found page.
func (h *Handler) loadProgram(w http.ResponseWriter, r *http.Request, req *request) (program, bool) {
	ctx, cancel := pageCtx(r)
	defer cancel()
	var p program
	err := req.api.get(ctx, programPath(r.PathValue("id")), &p)
	if err != nil {
		if isStatus(err, http.StatusNotFound) {
			h.refuse(w, r, http.StatusNotFound, "No program "+r.PathValue("id")+" that you may see.")
		} else {
			h.refuse(w, r, http.StatusBadGateway, "Could not read the program: "+err.Error())
		}
		return program{}, false
	}
	return p, true
}

func programURL(id string, more ...string) string {
	return "/ui/programs/" + url.PathEscape(id) + strings.Join(more, "")
}

// programPage: metadata, actions, secrets, the state history.
func (h *Handler) programPage(w http.ResponseWriter, r *http.Request, req *request) {
	p, ok := h.loadProgram(w, r, req)
	if !ok {
		return
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	var hist struct {
		Transitions []transition `json:"transitions"`
	}
	histErr := req.api.get(ctx, programPath(p.ProgramID, "/history?limit=100"), &hist)
	// Newest first.
	ts := hist.Transitions
	for i, j := 0, len(ts)-1; i < j; i, j = i+1, j-1 {
		ts[i], ts[j] = ts[j], ts[i]
	}
	var secs struct {
		Secrets []secret `json:"secrets"`
	}
	secErr := req.api.get(ctx, programPath(p.ProgramID, "/secrets"), &secs)
	var rels struct {
		Releases []release `json:"releases"`
	}
	relErr := req.api.get(ctx, programPath(p.ProgramID, "/releases"), &rels)
	h.render(w, r, req, http.StatusOK, "program", p.ProgramID, map[string]any{
		"P": p, "Tab": "overview", "History": ts, "HistoryErr": errText(histErr),
		"Secrets": secs.Secrets, "SecretsErr": errText(secErr), "EnvNames": sortedKeys(p.Options.Env),
		"Releases": rels.Releases, "ReleasesErr": errText(relErr),
	})
}

// rollback puts the program back on an earlier release (the form's "to").
func (h *Handler) rollback(w http.ResponseWriter, r *http.Request, req *request) {
	id := r.PathValue("id")
	to, err := strconv.Atoi(r.PostForm.Get("to"))
	if err != nil || to < 1 {
		h.back(w, r, req, programURL(id)+"#releases", fmt.Errorf("choose a release to roll back to"), "")
		return
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	var res struct {
		Release release `json:"release"`
	}
	err = req.api.call(ctx, http.MethodPost, programPath(id, "/rollback"), map[string]int{"to": to}, &res)
	h.back(w, r, req, programURL(id)+"#releases", err,
		fmt.Sprintf("Rolled back to release %d: now release %d, starting.", to, res.Release.Number))
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// programAction is start, stop or restart.
func (h *Handler) programAction(w http.ResponseWriter, r *http.Request, req *request) {
	verb := r.PathValue("verb")
	if verb != "start" && verb != "stop" && verb != "restart" {
		h.notFound(w, r, req)
		return
	}
	id := r.PathValue("id")
	ctx, cancel := pageCtx(r)
	defer cancel()
	err := req.api.call(ctx, http.MethodPost, programPath(id, "/"+verb), nil, nil)
	done := map[string]string{"start": "Start requested.", "stop": "Stop requested.", "restart": "Restart requested."}[verb]
	h.back(w, r, req, programURL(id), err, done)
}

// deletePage asks for confirmation: deleting removes the container, the
// image, /state and the logs, and cannot be undone.
func (h *Handler) deletePage(w http.ResponseWriter, r *http.Request, req *request) {
	p, ok := h.loadProgram(w, r, req)
	if !ok {
		return
	}
	h.render(w, r, req, http.StatusOK, "delete", "Delete "+p.ProgramID, map[string]any{"P": p})
}

func (h *Handler) deleteProgram(w http.ResponseWriter, r *http.Request, req *request) {
	id := r.PathValue("id")
	if r.PostForm.Get("confirm") != id && r.Header.Get(csrfHeader) == "" {
		req.s.setFlash(true, "Type the program's id to confirm the deletion.")
		http.Redirect(w, r, programURL(id, "/delete"), http.StatusSeeOther)
		return
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	err := req.api.call(ctx, http.MethodDelete, programPath(id), nil, nil)
	if err != nil {
		h.back(w, r, req, programURL(id), err, "")
		return
	}
	h.back(w, r, req, "/ui/", nil, fmt.Sprintf("Program %s deleted: its container, image, /state and logs are gone.", id))
}

// setSecret sets (or replaces) a secret; its value is never shown again.
func (h *Handler) setSecret(w http.ResponseWriter, r *http.Request, req *request) {
	id := r.PathValue("id")
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if name == "" {
		h.back(w, r, req, programURL(id)+"#secrets", fmt.Errorf("a secret needs a name"), "")
		return
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	err := req.api.call(ctx, http.MethodPut, programPath(id, "/secrets/"+url.PathEscape(name)),
		map[string]string{"value": r.PostForm.Get("value")}, nil)
	h.back(w, r, req, programURL(id)+"#secrets", err,
		"Secret "+name+" set; the program reads it at /run/secrets/"+name+" from its next start.")
}

func (h *Handler) deleteSecret(w http.ResponseWriter, r *http.Request, req *request) {
	id, name := r.PathValue("id"), r.PathValue("name")
	ctx, cancel := pageCtx(r)
	defer cancel()
	err := req.api.call(ctx, http.MethodDelete, programPath(id, "/secrets/"+url.PathEscape(name)), nil, nil)
	h.back(w, r, req, programURL(id)+"#secrets", err, "Secret "+name+" deleted.")
}
