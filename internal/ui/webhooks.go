package ui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The alerts page: the user's webhooks (the admin's: everyone's), each
// with its newest delivery attempts, and the forms to add, test and
// remove one. Every read and action is the API's /webhooks.

type webhookInfo struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	ProgramID string    `json:"program_id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"created_at"`
	CrashLoop struct {
		Crashes       int     `json:"crashes"`
		WindowSeconds float64 `json:"window_seconds"`
	} `json:"crash_loop"`
	Secret     string         `json:"secret"`
	Deliveries []deliveryInfo `json:"-"`
	DelivErr   string         `json:"-"`
}

// Loop says the webhook's crash loop rule, e.g. "3 in 10m0s".
func (w webhookInfo) Loop() string {
	return strconv.Itoa(w.CrashLoop.Crashes) + " in " + (time.Duration(w.CrashLoop.WindowSeconds) * time.Second).String()
}

type deliveryInfo struct {
	EventID   string    `json:"event_id"`
	Type      string    `json:"type"`
	ProgramID string    `json:"program_id"`
	Attempt   int       `json:"attempt"`
	At        time.Time `json:"at"`
	Status    int       `json:"status"`
	Error     string    `json:"error"`
	Outcome   string    `json:"outcome"`
}

type webhooksView struct {
	Hooks    []webhookInfo
	HooksErr string
	Programs []program // the user's, for the form's choice
	Kinds    []string
	Created  *webhookInfo // a webhook just added: its secret is shown once
}

// alertKinds are the events a webhook may ask for (package alerts).
var alertKinds = []string{"crashed", "crash_loop", "oom_killed", "build_failed", "state_nearly_full"}

// shownDeliveries is how many attempts the page shows per webhook.
const shownDeliveries = 5

func (h *Handler) webhooksPage(w http.ResponseWriter, r *http.Request, req *request) {
	h.renderWebhooks(w, r, req, nil)
}

func (h *Handler) renderWebhooks(w http.ResponseWriter, r *http.Request, req *request, created *webhookInfo) {
	ctx, cancel := pageCtx(r)
	defer cancel()
	v := webhooksView{Kinds: alertKinds, Created: created}
	var hooks struct {
		Webhooks []webhookInfo `json:"webhooks"`
	}
	v.HooksErr = errText(req.api.get(ctx, "/webhooks", &hooks))
	v.Hooks = hooks.Webhooks
	for i := range v.Hooks {
		var ds struct {
			Deliveries []deliveryInfo `json:"deliveries"`
		}
		v.Hooks[i].DelivErr = errText(req.api.get(ctx, "/webhooks/"+url.PathEscape(v.Hooks[i].ID)+"/deliveries?limit="+strconv.Itoa(shownDeliveries), &ds))
		v.Hooks[i].Deliveries = ds.Deliveries
	}
	var list programList
	if err := req.api.get(ctx, "/programs?limit=1000", &list); err == nil {
		v.Programs = list.Programs
	}
	h.render(w, r, req, http.StatusOK, "webhooks", "Alerts", v)
}

// addWebhook registers a webhook from the form and shows its secret once,
// on this answer (never stored or put in a URL).
func (h *Handler) addWebhook(w http.ResponseWriter, r *http.Request, req *request) {
	body := map[string]any{"url": strings.TrimSpace(r.PostForm.Get("url"))}
	if p := r.PostForm.Get("program_id"); p != "" {
		body["program_id"] = p
	}
	if ev := r.PostForm["events"]; len(ev) > 0 {
		body["events"] = ev
	}
	if n := r.PostForm.Get("crashes"); n != "" {
		crashes, err1 := strconv.Atoi(n)
		minutes, err2 := strconv.ParseFloat(r.PostForm.Get("window_minutes"), 64)
		if err1 != nil || err2 != nil {
			h.back(w, r, req, "/ui/webhooks", errBadForm("a crash loop is a number of crashes within a number of minutes"), "")
			return
		}
		body["crash_loop"] = map[string]any{"crashes": crashes, "window_seconds": minutes * 60}
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	var out webhookInfo
	if err := req.api.call(ctx, http.MethodPost, "/webhooks", body, &out); err != nil {
		h.back(w, r, req, "/ui/webhooks", err, "")
		return
	}
	h.renderWebhooks(w, r, req, &out)
}

func (h *Handler) deleteWebhook(w http.ResponseWriter, r *http.Request, req *request) {
	id := r.PathValue("wid")
	ctx, cancel := pageCtx(r)
	defer cancel()
	err := req.api.call(ctx, http.MethodDelete, "/webhooks/"+url.PathEscape(id), nil, nil)
	h.back(w, r, req, "/ui/webhooks", err, "Webhook "+id+" removed.")
}

func (h *Handler) pingWebhook(w http.ResponseWriter, r *http.Request, req *request) {
	id := r.PathValue("wid")
	ctx, cancel := pageCtx(r)
	defer cancel()
	err := req.api.call(ctx, http.MethodPost, "/webhooks/"+url.PathEscape(id)+"/ping", nil, nil)
	h.back(w, r, req, "/ui/webhooks", err, "A test event is on its way to webhook "+id+"; its delivery shows below.")
}

// errBadForm is a form the page cannot send on.
type errBadForm string

func (e errBadForm) Error() string { return string(e) }
