package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/hershyorg/hershy/internal/alerts"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/store"
)

// Webhooks: a user's alerts of their programs' events (package alerts).
// A webhook is its user's alone: another user's is a 404, as a program
// is; the admin sees every one, and the admin's own webhooks without a
// program hear of every program.

type crashLoopView struct {
	Crashes       int     `json:"crashes"`
	WindowSeconds float64 `json:"window_seconds"`
}

type webhookView struct {
	ID        string        `json:"id"`
	UserID    string        `json:"user_id"`
	ProgramID string        `json:"program_id,omitempty"`
	URL       string        `json:"url"`
	Events    []string      `json:"events"`
	CrashLoop crashLoopView `json:"crash_loop"`
	CreatedAt time.Time     `json:"created_at"`
	// Secret is shown once, in the answer to the create.
	Secret string `json:"secret,omitempty"`
}

func viewWebhook(w store.Webhook) webhookView {
	events := w.Events
	if len(events) == 0 {
		for _, k := range alerts.Kinds {
			events = append(events, string(k))
		}
	}
	return webhookView{
		ID: w.ID, UserID: w.UserID, ProgramID: w.ProgramID, URL: w.URL, Events: events,
		CrashLoop: crashLoopView{w.CrashLoopCrashes, w.CrashLoopWindow.Seconds()}, CreatedAt: w.CreatedAt,
	}
}

type deliveryView struct {
	EventID   string    `json:"event_id"`
	Type      string    `json:"type"`
	ProgramID string    `json:"program_id,omitempty"`
	Attempt   int       `json:"attempt"`
	At        time.Time `json:"at"`
	Status    int       `json:"status,omitempty"`
	Error     string    `json:"error,omitempty"`
	TookMS    float64   `json:"took_ms"`
	Outcome   string    `json:"outcome"`
}

func (s *server) createWebhook(w http.ResponseWriter, r *http.Request, p principal) {
	var b struct {
		URL       string   `json:"url"`
		ProgramID string   `json:"program_id"`
		Events    []string `json:"events"`
		CrashLoop *struct {
			Crashes       int     `json:"crashes"`
			WindowSeconds float64 `json:"window_seconds"`
		} `json:"crash_loop"`
	}
	if !decode(w, r, maxSmallBody, &b) {
		return
	}
	if b.URL == "" {
		writeError(w, http.StatusBadRequest, "url is required")
		return
	}
	req := host.WebhookRequest{UserID: p.UserID, ProgramID: b.ProgramID, URL: b.URL, Events: b.Events}
	if c := b.CrashLoop; c != nil {
		if c.WindowSeconds < 0 || c.WindowSeconds > 1e6 {
			writeError(w, http.StatusBadRequest, "crash_loop.window_seconds must be 60 to 86400")
			return
		}
		req.CrashLoop = alerts.LoopRule{Crashes: c.Crashes, Window: time.Duration(c.WindowSeconds * float64(time.Second))}
	}
	hook, err := s.h.AddWebhook(r.Context(), req)
	if errors.Is(err, host.ErrNotFound) {
		writeError(w, http.StatusNotFound, "program "+b.ProgramID+" not found")
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	v := viewWebhook(hook)
	v.Secret = hook.Secret
	writeJSON(w, http.StatusCreated, v)
}

func (s *server) listWebhooks(w http.ResponseWriter, r *http.Request, p principal) {
	user := p.UserID
	if p.Admin {
		user = ""
	}
	hooks, err := s.h.Webhooks(r.Context(), user)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := make([]webhookView, 0, len(hooks))
	for _, h := range hooks {
		out = append(out, viewWebhook(h))
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": out})
}

// webhook looks up the path's webhook, answering 404 unless p may see it.
func (s *server) webhook(w http.ResponseWriter, r *http.Request, p principal) (store.Webhook, bool) {
	id := r.PathValue("id")
	hook, err := s.h.Webhook(r.Context(), id)
	if err == nil && !p.Admin && hook.UserID != p.UserID {
		err = host.ErrNotFound
	}
	if errors.Is(err, host.ErrNotFound) {
		writeError(w, http.StatusNotFound, "webhook "+id+" not found")
		return store.Webhook{}, false
	}
	if err != nil {
		s.fail(w, err)
		return store.Webhook{}, false
	}
	return hook, true
}

func (s *server) getWebhook(w http.ResponseWriter, r *http.Request, p principal) {
	if hook, ok := s.webhook(w, r, p); ok {
		writeJSON(w, http.StatusOK, viewWebhook(hook))
	}
}

func (s *server) deleteWebhook(w http.ResponseWriter, r *http.Request, p principal) {
	hook, ok := s.webhook(w, r, p)
	if !ok {
		return
	}
	if err := s.h.DeleteWebhook(r.Context(), hook.ID); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) webhookDeliveries(w http.ResponseWriter, r *http.Request, p principal) {
	hook, ok := s.webhook(w, r, p)
	if !ok {
		return
	}
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.KeepDeliveries {
			writeError(w, http.StatusBadRequest, "limit must be 1 to "+strconv.Itoa(store.KeepDeliveries))
			return
		}
		limit = n
	}
	ds, err := s.h.Deliveries(r.Context(), hook.ID, limit)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := make([]deliveryView, 0, len(ds))
	for _, d := range ds {
		out = append(out, deliveryView{
			EventID: d.EventID, Type: d.Kind, ProgramID: d.ProgramID, Attempt: d.Attempt, At: d.At,
			Status: d.Status, Error: d.Error, TookMS: float64(d.Took) / float64(time.Millisecond), Outcome: d.Outcome,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhook_id": hook.ID, "deliveries": out})
}

func (s *server) pingWebhook(w http.ResponseWriter, r *http.Request, p principal) {
	hook, ok := s.webhook(w, r, p)
	if !ok {
		return
	}
	id, err := s.h.PingWebhook(r.Context(), hook.ID)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"event_id": id})
}
