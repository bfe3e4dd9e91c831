package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// Webhook is a user's request to hear of their programs' events (package
// alerts): of one program, or of all theirs when ProgramID is empty (all
// programs, for the admin).
type Webhook struct {
	ID        string
	UserID    string
	ProgramID string
	URL       string
	Secret    string   // signs each delivery
	Events    []string // the kinds wanted; empty: all
	// A crash loop is CrashLoopCrashes crashes within CrashLoopWindow.
	CrashLoopCrashes int
	CrashLoopWindow  time.Duration
	CreatedAt        time.Time
}

// Delivery is one attempt to deliver an event to a webhook.
type Delivery struct {
	ID        int64
	WebhookID string
	EventID   string
	Kind      string
	ProgramID string
	Attempt   int
	At        time.Time
	Status    int
	Error     string
	Took      time.Duration
	Outcome   string
}

// KeepDeliveries is how many attempts each webhook's log keeps.
const KeepDeliveries = 200

const webhookCols = `webhook_id, user_id, program_id, url, secret, events, crash_loop_crashes, crash_loop_window_s, created_at`

func scanWebhook(sc scanner) (Webhook, error) {
	var (
		w       Webhook
		events  string
		win, at int64
	)
	if err := sc.Scan(&w.ID, &w.UserID, &w.ProgramID, &w.URL, &w.Secret, &events, &w.CrashLoopCrashes, &win, &at); err != nil {
		return Webhook{}, err
	}
	if events != "" {
		w.Events = strings.Split(events, ",")
	}
	w.CrashLoopWindow = time.Duration(win) * time.Second
	w.CreatedAt = fromNanos(at)
	return w, nil
}

// AddWebhook stores a new webhook (a zero CreatedAt is filled in).
func (s *Store) AddWebhook(ctx context.Context, w Webhook) (Webhook, error) {
	if w.ID == "" || w.UserID == "" || w.URL == "" || w.Secret == "" {
		return Webhook{}, wrap("add webhook", invalid("an id, a user, a URL and a secret are required"))
	}
	if w.CreatedAt.IsZero() {
		w.CreatedAt = s.stamp()
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO webhooks (`+webhookCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			w.ID, w.UserID, w.ProgramID, w.URL, w.Secret, strings.Join(w.Events, ","),
			w.CrashLoopCrashes, int64(w.CrashLoopWindow/time.Second), toNanos(w.CreatedAt))
		return err
	})
	if err != nil {
		return Webhook{}, wrap("add webhook", err)
	}
	return w, nil
}

// Webhooks lists the webhooks of a user ("" for every user's), oldest
// first.
func (s *Store) Webhooks(ctx context.Context, userID string) ([]Webhook, error) {
	q, args := `SELECT `+webhookCols+` FROM webhooks ORDER BY created_at, webhook_id`, []any{}
	if userID != "" {
		q, args = `SELECT `+webhookCols+` FROM webhooks WHERE user_id = ? ORDER BY created_at, webhook_id`, []any{userID}
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("list webhooks", err)
	}
	defer rows.Close()
	var out []Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, wrap("list webhooks", err)
		}
		out = append(out, w)
	}
	return out, wrap("list webhooks", rows.Err())
}

// GetWebhook reads one webhook.
func (s *Store) GetWebhook(ctx context.Context, id string) (Webhook, error) {
	w, err := scanWebhook(s.r.QueryRowContext(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE webhook_id = ?`, id))
	if err != nil {
		return Webhook{}, wrap("get webhook "+id, err)
	}
	return w, nil
}

// DeleteWebhook removes a webhook and its delivery log.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	return wrap("delete webhook "+id, s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhooks WHERE webhook_id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	}))
}

// DeleteProgramWebhooks removes the webhooks of one program (it is gone)
// and returns their ids.
func (s *Store) DeleteProgramWebhooks(ctx context.Context, programID string) ([]string, error) {
	var ids []string
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM webhooks WHERE program_id = ? RETURNING webhook_id`, programID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	return ids, wrap("delete webhooks of "+programID, err)
}

// AddDelivery logs one delivery attempt and drops the webhook's attempts
// beyond the newest KeepDeliveries. A webhook deleted meanwhile is
// ErrNotFound.
func (s *Store) AddDelivery(ctx context.Context, d Delivery) (Delivery, error) {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries
(webhook_id, event_id, kind, program_id, attempt, at, status, error, took_ns, outcome)
SELECT webhook_id, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM webhooks WHERE webhook_id = ?`,
			d.EventID, d.Kind, d.ProgramID, d.Attempt, toNanos(d.At), d.Status, d.Error, int64(d.Took), d.Outcome, d.WebhookID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if d.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE webhook_id = ? AND id <= ?`, d.WebhookID, d.ID-KeepDeliveries)
		return err
	})
	if err != nil {
		return Delivery{}, wrap("log delivery", err)
	}
	return d, nil
}

// Deliveries lists a webhook's newest delivery attempts, newest first (at
// most limit; limit < 1 means KeepDeliveries).
func (s *Store) Deliveries(ctx context.Context, webhookID string, limit int) ([]Delivery, error) {
	if limit < 1 || limit > KeepDeliveries {
		limit = KeepDeliveries
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, webhook_id, event_id, kind, program_id, attempt, at, status, error, took_ns, outcome
FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ?`, webhookID, limit)
	if err != nil {
		return nil, wrap("list deliveries", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var (
			d        Delivery
			at, took int64
		)
		if err := rows.Scan(&d.ID, &d.WebhookID, &d.EventID, &d.Kind, &d.ProgramID, &d.Attempt, &at, &d.Status, &d.Error, &took, &d.Outcome); err != nil {
			return nil, wrap("list deliveries", err)
		}
		d.At, d.Took = fromNanos(at), time.Duration(took)
		out = append(out, d)
	}
	return out, wrap("list deliveries", rows.Err())
}
