package ui

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The admin's pages: tokens and an overview of the Host. They are shown to
// an admin session only, and every read and action is the API's admin
// route, which refuses any other token whatever the dashboard shows.

type adminView struct {
	Tokens    []tokenInfo
	TokensErr string
	Created   *createdToken // a token just made: shown once, on this answer only
	ByState   []kv
	Total     int
	Queue     []program // building programs, in queue order
	Health    health
	HealthErr string
	Version   []kv
}

// health is GET /healthz's answer: 200 or 503, both with this body.
type health struct {
	Status    string            `json:"status"`
	CheckedAt time.Time         `json:"checked_at"`
	Engine    healthOfComponent `json:"engine"`
	Runtime   healthOfComponent `json:"runtime"`
}

type healthOfComponent struct {
	Name    string    `json:"name"`
	OK      bool      `json:"ok"`
	Problem string    `json:"problem"`
	Since   time.Time `json:"since"`
}

// Components lists the engine, then the runtime.
func (hl health) Components() []healthOfComponent {
	return []healthOfComponent{hl.Engine, hl.Runtime}
}

type createdToken struct{ User, Token string }

func (h *Handler) adminPage(w http.ResponseWriter, r *http.Request, req *request) {
	h.renderAdmin(w, r, req, nil)
}

func (h *Handler) renderAdmin(w http.ResponseWriter, r *http.Request, req *request, created *createdToken) {
	if !req.s.admin {
		h.refuse(w, r, http.StatusForbidden, "These pages are for the admin token.")
		return
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	v := adminView{Created: created}
	var toks struct {
		Tokens []tokenInfo `json:"tokens"`
	}
	v.TokensErr = errText(req.api.get(ctx, "/tokens", &toks))
	v.Tokens = toks.Tokens
	sort.SliceStable(v.Tokens, func(i, j int) bool { return v.Tokens[i].CreatedAt.After(v.Tokens[j].CreatedAt) })

	var list programList
	if err := req.api.get(ctx, "/programs?limit=1000", &list); err == nil {
		counts := map[string]int{}
		for _, p := range list.Programs {
			counts[p.State]++
			if p.State == "Building" {
				v.Queue = append(v.Queue, p)
			}
		}
		for _, s := range states {
			v.ByState = append(v.ByState, kv{s, strconv.Itoa(counts[s])})
		}
		v.Total = list.Total
		sort.SliceStable(v.Queue, func(i, j int) bool { return v.Queue[i].QueuePosition < v.Queue[j].QueuePosition })
	}
	b, _, err := req.api.raw(ctx, http.MethodGet, "/healthz", nil)
	if ae, ok := errors.AsType[*apiError](err); ok && ae.Status == http.StatusServiceUnavailable {
		b, err = ae.Body, nil // degraded: the body says what is down
	}
	if err == nil {
		err = json.Unmarshal(b, &v.Health)
	}
	if err != nil {
		v.HealthErr = err.Error()
	}
	var version map[string]any
	_ = req.api.get(ctx, "/version", &version)
	v.Version = flatten("", version)
	h.render(w, r, req, http.StatusOK, "admin", "Admin", v)
}

// flatten shows a JSON object's leaves as "a.b: value" lines.
func flatten(prefix string, m map[string]any) []kv {
	var out []kv
	for _, k := range sortedKeys(m) {
		name := k
		if prefix != "" {
			name = prefix + "." + k
		}
		if sub, ok := m[k].(map[string]any); ok {
			out = append(out, flatten(name, sub)...)
			continue
		}
		out = append(out, kv{name, cell(k, m[k])})
	}
	return out
}

// createToken makes a token for a user and shows it once, in this answer
// (not stored, not in a URL): the user needs it to sign in or use the CLI.
func (h *Handler) createToken(w http.ResponseWriter, r *http.Request, req *request) {
	user := strings.TrimSpace(r.PostForm.Get("user_id"))
	ctx, cancel := pageCtx(r)
	defer cancel()
	var out struct {
		Token  string `json:"token"`
		UserID string `json:"user_id"`
	}
	if err := req.api.call(ctx, http.MethodPost, "/tokens", map[string]string{"user_id": user}, &out); err != nil {
		h.back(w, r, req, "/ui/admin", err, "")
		return
	}
	h.renderAdmin(w, r, req, &createdToken{User: out.UserID, Token: out.Token})
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request, req *request) {
	id := r.PathValue("tid")
	ctx, cancel := pageCtx(r)
	defer cancel()
	err := req.api.call(ctx, http.MethodDelete, "/tokens/"+url.PathEscape(id), nil, nil)
	h.back(w, r, req, "/ui/admin", err, "Token "+id+" revoked; sessions signed in with it end at their next request.")
}
