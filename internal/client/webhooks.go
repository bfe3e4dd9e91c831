package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// CrashLoop is a webhook's idea of a crash loop: Crashes within
// WindowSeconds.
type CrashLoop struct {
	Crashes       int     `json:"crashes"`
	WindowSeconds float64 `json:"window_seconds"`
}

// Webhook is a registered webhook. Secret is set only in the answer to
// CreateWebhook: it signs every delivery, and no later read shows it.
type Webhook struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	ProgramID string    `json:"program_id,omitempty"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	CrashLoop CrashLoop `json:"crash_loop"`
	CreatedAt time.Time `json:"created_at"`
	Secret    string    `json:"secret,omitempty"`
}

// WebhookRequest asks for a webhook: of one program, or of all the user's
// when ProgramID is empty; of the events named, or all when Events is
// empty; CrashLoop nil takes the Host's default (3 crashes in 10 minutes).
type WebhookRequest struct {
	URL       string     `json:"url"`
	ProgramID string     `json:"program_id,omitempty"`
	Events    []string   `json:"events,omitempty"`
	CrashLoop *CrashLoop `json:"crash_loop,omitempty"`
}

// Delivery is one attempt to deliver an event to a webhook.
type Delivery struct {
	EventID   string    `json:"event_id"`
	Type      string    `json:"type"`
	ProgramID string    `json:"program_id,omitempty"`
	Attempt   int       `json:"attempt"`
	At        time.Time `json:"at"`
	Status    int       `json:"status,omitempty"`
	Error     string    `json:"error,omitempty"`
	TookMS    float64   `json:"took_ms"`
	Outcome   string    `json:"outcome"` // delivered, retrying, failed or dropped
}

// CreateWebhook registers a webhook; the answer holds its secret.
func (c *Client) CreateWebhook(ctx context.Context, req WebhookRequest) (*Webhook, error) {
	var out Webhook
	return &out, c.do(ctx, http.MethodPost, "/webhooks", req, &out)
}

// ListWebhooks lists the caller's webhooks (the admin's: everyone's).
func (c *Client) ListWebhooks(ctx context.Context) ([]Webhook, error) {
	var out struct {
		Webhooks []Webhook `json:"webhooks"`
	}
	err := c.do(ctx, http.MethodGet, "/webhooks", nil, &out)
	return out.Webhooks, err
}

// GetWebhook reads one webhook.
func (c *Client) GetWebhook(ctx context.Context, id string) (*Webhook, error) {
	var out Webhook
	return &out, c.do(ctx, http.MethodGet, "/webhooks/"+url.PathEscape(id), nil, &out)
}

// DeleteWebhook removes a webhook and its delivery log.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/webhooks/"+url.PathEscape(id), nil, nil)
}

// Deliveries lists a webhook's newest delivery attempts, newest first
// (limit 0: the Host's default).
func (c *Client) Deliveries(ctx context.Context, id string, limit int) ([]Delivery, error) {
	path := "/webhooks/" + url.PathEscape(id) + "/deliveries"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out struct {
		Deliveries []Delivery `json:"deliveries"`
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Deliveries, err
}

// PingWebhook sends the webhook a test event and returns its id.
func (c *Client) PingWebhook(ctx context.Context, id string) (string, error) {
	var out struct {
		EventID string `json:"event_id"`
	}
	err := c.do(ctx, http.MethodPost, "/webhooks/"+url.PathEscape(id)+"/ping", nil, &out)
	return out.EventID, err
}
