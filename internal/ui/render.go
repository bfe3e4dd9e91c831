package ui

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// pageData is what every template gets.
type pageData struct {
	Title   string
	Nav     string // the active menu entry
	User    string
	Admin   bool
	CSRF    string // the session's CSRF token, for forms and the script
	Flash   *flash
	Version string
	Now     time.Time
	Data    any
}

// Pages are html/template files: layout.html and shared.html hold the frame
// and shared pieces; every other file is one page defining "content" and,
// for its live parts, "part-..." templates the script re-fetches
// (?part=...). html/template escapes everything a program or user chose
// (names, logs, source, WatcherAPI values) by context.
func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"bytes":    humanBytes,
		"bytesPtr": func(p *int64) string { return humanBytesPtr(p) },
		"dur":      humanDuration,
		"ago": func(t time.Time, now time.Time) string {
			if t.IsZero() {
				return ""
			}
			return humanDuration(now.Sub(t)) + " ago"
		},
		"stamp": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"rfc3339":     func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"rfc3339nano": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		"list":        func(xs ...int) []int { return xs },
		"badge":       programBadge,
		"problem":     problem,
		"uptime":      uptime,
		// transitional states change on their own soon: their pages also
		// poll, in case the event stream is down.
		"transitional": func(state string) bool {
			return state == "Building" || state == "Starting" || state == "Stopping" || state == "Deleting"
		},
		"lower": strings.ToLower,
		"percent": func(used, limit *int64) string {
			if used == nil || limit == nil || *limit <= 0 {
				return ""
			}
			return fmt.Sprintf("%.0f%%", 100*float64(*used)/float64(*limit))
		},
		"deref": func(p *int) int {
			if p == nil {
				return 0
			}
			return *p
		},
		"short": func(s string, n int) string {
			if len(s) > n {
				return s[:n]
			}
			return s
		},
	}
	base, err := template.New("base").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/shared.html")
	if err != nil {
		return nil, err
	}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" || name == "shared" {
			continue
		}
		t, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if _, err := t.ParseFS(templateFS, f); err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}

func humanBytesPtr(p *int64) string {
	if p == nil {
		return ""
	}
	return humanBytes(*p)
}

// render writes a page (or, with ?part=part-..., one of its live parts)
// with the headers pages carry: never stored (they show a user's data),
// HTML in UTF-8.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, req *request, code int, page, title string, data any) {
	t := h.pages[page]
	if t == nil {
		h.log.Error("ui: no such page template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	pd := pageData{Title: title, Nav: page, Version: h.opts.Version, Now: h.opts.Now(), Data: data}
	if req != nil {
		pd.User, pd.Admin, pd.CSRF = req.s.user, req.s.admin, req.s.csrf
		pd.Flash = req.s.takeFlash()
	}
	name := "layout"
	if part := r.URL.Query().Get("part"); part != "" {
		if !strings.HasPrefix(part, "part-") || t.Lookup(part) == nil {
			http.Error(w, "no such part", http.StatusNotFound)
			return
		}
		name = part
		if pd.Flash != nil && req != nil { // a live refresh must not eat a notice
			req.s.setFlash(pd.Flash.Error, pd.Flash.Text)
			pd.Flash = nil
		}
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, pd); err != nil {
		h.log.Error("ui: rendering", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// back redirects to a page after an action (POST, redirect, GET), with a
// notice for that page kept in the session, never in the URL.
func (h *Handler) back(w http.ResponseWriter, r *http.Request, req *request, to string, err error, ok string) {
	if wantsJSON(r) {
		if err != nil {
			code := http.StatusBadGateway
			if e, isAPI := err.(*apiError); isAPI {
				code = e.Status
			}
			jsonError(w, code, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		writeJSONBody(w, map[string]string{"message": ok, "location": to})
		return
	}
	if err != nil {
		req.s.setFlash(true, err.Error())
	} else if ok != "" {
		req.s.setFlash(false, ok)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}
