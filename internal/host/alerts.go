package host

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/alerts"
	"github.com/hershyorg/hershy/internal/store"
	"github.com/hershyorg/hershy/internal/tokens"
)

// Webhook alerts: the Host hears every lifecycle change (Subscribe), finds
// the alerts in it (package alerts), and delivers each to the webhooks that
// want it, each delivery in its own goroutine so a slow receiver holds up
// nothing else. Pending deliveries are not persisted: a Host that stops
// drops the retries it still owed (the delivery log shows the last
// attempt).

// AlertOptions configure webhook alerts.
type AlertOptions struct {
	// Allow lets deliveries reach these addresses besides public ones
	// (loopback, a private network): the operator's --webhook-allow.
	Allow []netip.Prefix
	// HostPorts are the Host's own ports (its API, its proxy ports): no
	// delivery reaches them on this machine, whatever Allow says.
	HostPorts []alerts.PortRange
	// Attempts, RetryBase and RetryMax are the delivery's retries (zero:
	// the alerts package's defaults).
	Attempts            int
	RetryBase, RetryMax time.Duration
	// StateEvery is how often /state is checked for nearly full (default
	// DefaultStateAlertEvery).
	StateEvery time.Duration
	// MaxWebhooks is how many webhooks one user may have (default
	// DefaultMaxWebhooks).
	MaxWebhooks int
	// MaxPending is how many deliveries may be under way at once (default
	// DefaultMaxPending); beyond it an alert is dropped, and logged so.
	MaxPending int
}

// Defaults of AlertOptions.
const (
	DefaultStateAlertEvery = time.Minute
	DefaultMaxWebhooks     = 20
	DefaultMaxPending      = 256
)

func (o AlertOptions) withDefaults() AlertOptions {
	if o.StateEvery <= 0 {
		o.StateEvery = DefaultStateAlertEvery
	}
	if o.MaxWebhooks <= 0 {
		o.MaxWebhooks = DefaultMaxWebhooks
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	return o
}

// alerter is the Host's alert state: the webhooks (a copy of the store's,
// read by every change), the detectors, and the deliveries' bound.
type alerter struct {
	guard   *alerts.Guard
	sender  *alerts.Sender
	pending chan struct{}

	mu    sync.Mutex
	hooks map[string]store.Webhook
	loops *alerts.CrashLoops
	full  *alerts.Fullness
}

func newAlerter(o AlertOptions) *alerter {
	g := alerts.NewGuard(o.Allow)
	g.DenyHostPorts(o.HostPorts...)
	s := alerts.NewSender(g)
	if o.Attempts > 0 {
		s.Attempts = o.Attempts
	}
	if o.RetryBase > 0 {
		s.Base = o.RetryBase
	}
	if o.RetryMax > 0 {
		s.Max = o.RetryMax
	}
	return &alerter{
		guard: g, sender: s, pending: make(chan struct{}, o.MaxPending),
		hooks: map[string]store.Webhook{}, loops: alerts.NewCrashLoops(), full: alerts.NewFullness(),
	}
}

// startAlerts loads the webhooks and begins to listen; Open calls it
// before reconciling, so a crash found then is alerted too.
func (h *Host) startAlerts(ctx context.Context) error {
	hooks, err := h.store.Webhooks(ctx, "")
	if err != nil {
		return err
	}
	a := h.alerts
	a.mu.Lock()
	for _, w := range hooks {
		a.hooks[w.ID] = w
	}
	a.mu.Unlock()
	h.Subscribe(h.alertOnChange)
	return nil
}

// wants reports whether webhook w wants alerts of kind k about the
// program: its own, or all of its user's, or (the admin's) all.
func wants(w store.Webhook, k alerts.Kind, programID, userID string) bool {
	switch {
	case w.ProgramID != "" && w.ProgramID != programID:
		return false
	case w.ProgramID == "" && w.UserID != userID && w.UserID != tokens.AdminUserID:
		return false
	}
	return len(w.Events) == 0 || slices.Contains(w.Events, string(k))
}

// alertOnChange is the Host's subscriber: it runs in the program's
// supervisor loop, so it only decides and hands deliveries off.
func (h *Host) alertOnChange(c Change) {
	a := h.alerts
	if c.Deleted {
		a.mu.Lock()
		a.loops.Forget(c.ProgramID)
		a.full.Forget(c.ProgramID)
		a.mu.Unlock()
		return
	}
	if c.Build != nil {
		return
	}
	kind, ok := alerts.Classify(c.Prev, c.Next)
	if !ok {
		return
	}
	ev := alerts.Event{ID: alerts.NewID(), Kind: kind, At: c.At.UTC(), ProgramID: c.ProgramID, UserID: c.UserID, Message: c.Next.ErrorMsg}
	if kind != alerts.BuildFailed {
		ev.ExitCode = c.Next.LastExitCode
	}
	type send struct {
		w  store.Webhook
		ev alerts.Event
	}
	var out []send
	a.mu.Lock()
	crash := kind == alerts.Crashed || kind == alerts.OOMKilled
	if crash {
		a.loops.Crash(c.ProgramID, c.At)
	}
	for _, w := range a.hooks {
		if wants(w, kind, c.ProgramID, c.UserID) {
			out = append(out, send{w, ev})
		}
		if crash && wants(w, alerts.CrashLoop, c.ProgramID, c.UserID) {
			rule := alerts.LoopRule{Crashes: w.CrashLoopCrashes, Window: w.CrashLoopWindow}
			if n, loop := a.loops.Loop(w.ID, c.ProgramID, rule, c.At); loop {
				out = append(out, send{w, alerts.Event{
					ID: alerts.NewID(), Kind: alerts.CrashLoop, At: ev.At, ProgramID: c.ProgramID, UserID: c.UserID,
					Crashes: n, WindowSeconds: rule.Window.Seconds(),
					Message: fmt.Sprintf("%d crashes within %s; last: %s", n, rule.Window, c.Next.ErrorMsg),
				}})
			}
		}
	}
	a.mu.Unlock()
	for _, s := range out {
		h.dispatch(s.w, s.ev)
	}
}

// checkStateAlerts reads the /state use of the programs that have one
// mounted and alerts the ones past alerts.FullAt of their cap.
func (h *Host) checkStateAlerts() {
	h.mu.Lock()
	rows := make([]store.Program, 0, len(h.rows))
	for _, r := range h.rows {
		rows = append(rows, r)
	}
	h.mu.Unlock()
	a := h.alerts
	for _, r := range rows {
		u, ok := h.StateUsage(r)
		if !ok || u.Used == 0 {
			continue
		}
		a.mu.Lock()
		// Full is when the program can write no more, which comes before
		// Used reaches Limit: the filesystem keeps blocks for itself.
		fire := a.full.Reading(r.ID, u.Used, u.Used+u.Avail)
		var hooks []store.Webhook
		if fire {
			for _, w := range a.hooks {
				if wants(w, alerts.StateNearlyFull, r.ID, r.UserID) {
					hooks = append(hooks, w)
				}
			}
		}
		a.mu.Unlock()
		if len(hooks) == 0 {
			continue
		}
		ev := alerts.Event{
			ID: alerts.NewID(), Kind: alerts.StateNearlyFull, At: time.Now().UTC(), ProgramID: r.ID, UserID: r.UserID,
			StateUsed: u.Used, StateLimit: u.Limit, StateAvail: u.Avail,
			Message: fmt.Sprintf("/state is %.0f%% full: %d bytes used, %d left to write (its cap: %d bytes)",
				100*float64(u.Used)/float64(u.Used+u.Avail), u.Used, u.Avail, u.Limit),
		}
		for _, w := range hooks {
			h.dispatch(w, ev)
		}
	}
}

// dispatch delivers ev to w in a goroutine of the Host's, logging every
// attempt; when too many are under way it logs the alert as dropped.
func (h *Host) dispatch(w store.Webhook, ev alerts.Event) {
	record := func(at alerts.Attempt) {
		d := store.Delivery{
			WebhookID: w.ID, EventID: ev.ID, Kind: string(ev.Kind), ProgramID: ev.ProgramID,
			Attempt: at.N, At: at.At, Status: at.Status, Error: at.Err, Took: at.Took, Outcome: string(at.Outcome),
		}
		// The last attempt is logged even as the Host closes.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), 5*time.Second)
		defer cancel()
		if _, err := h.store.AddDelivery(ctx, d); err != nil && !errors.Is(err, store.ErrNotFound) {
			h.log.Warn("logging a webhook delivery", "webhook", w.ID, "err", err)
		}
	}
	select {
	case h.alerts.pending <- struct{}{}:
	default:
		record(alerts.Attempt{N: 1, At: time.Now(), Err: "too many deliveries under way", Outcome: alerts.Dropped})
		h.log.Warn("webhook alert dropped: too many deliveries under way", "webhook", w.ID, "event", ev.Kind, "program", ev.ProgramID)
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer func() { <-h.alerts.pending }()
		if !h.alerts.sender.Deliver(h.ctx, w.URL, w.Secret, ev, record) && h.ctx.Err() == nil {
			h.log.Warn("webhook delivery failed", "webhook", w.ID, "event", ev.Kind, "program", ev.ProgramID)
		}
	}()
}

// WebhookRequest asks for a new webhook.
type WebhookRequest struct {
	UserID    string
	ProgramID string // "": all the user's programs (the admin's: all)
	URL       string
	Events    []string // empty: all kinds
	CrashLoop alerts.LoopRule
}

// AddWebhook registers a webhook and returns it with its secret (which no
// later read shows).
func (h *Host) AddWebhook(ctx context.Context, req WebhookRequest) (store.Webhook, error) {
	url, err := h.alerts.guard.CheckURL(req.URL)
	if err != nil {
		return store.Webhook{}, fmt.Errorf("%w: webhook url: %v", ErrInvalid, err)
	}
	kinds, err := alerts.ParseKinds(req.Events)
	if err != nil {
		return store.Webhook{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	rule := req.CrashLoop
	if rule == (alerts.LoopRule{}) {
		rule = alerts.DefaultLoopRule
	}
	if err := rule.Check(); err != nil {
		return store.Webhook{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if req.ProgramID != "" {
		owner, err := h.Owner(ctx, req.ProgramID)
		if err != nil {
			return store.Webhook{}, err
		}
		if owner != req.UserID && req.UserID != tokens.AdminUserID {
			return store.Webhook{}, fmt.Errorf("%w: program %s", ErrNotFound, req.ProgramID)
		}
	}
	mine, err := h.store.Webhooks(ctx, req.UserID)
	if err != nil {
		return store.Webhook{}, err
	}
	if max := h.opts.Alerts.MaxWebhooks; len(mine) >= max {
		return store.Webhook{}, fmt.Errorf("%w: %d webhooks at most per user", ErrQuota, max)
	}
	var events []string
	if len(req.Events) > 0 {
		for _, k := range kinds {
			events = append(events, string(k))
		}
	}
	w, err := h.store.AddWebhook(ctx, store.Webhook{
		ID: "wh_" + randomHex(8), UserID: req.UserID, ProgramID: req.ProgramID, URL: url,
		Secret: "whsec_" + randomHex(24), Events: events,
		CrashLoopCrashes: rule.Crashes, CrashLoopWindow: rule.Window,
	})
	if err != nil {
		return store.Webhook{}, err
	}
	h.alerts.mu.Lock()
	h.alerts.hooks[w.ID] = w
	h.alerts.mu.Unlock()
	return w, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Webhooks lists a user's webhooks ("": everyone's).
func (h *Host) Webhooks(ctx context.Context, userID string) ([]store.Webhook, error) {
	return h.store.Webhooks(ctx, userID)
}

// Webhook reads one webhook.
func (h *Host) Webhook(ctx context.Context, id string) (store.Webhook, error) {
	return h.store.GetWebhook(ctx, id)
}

// DeleteWebhook removes a webhook and its delivery log; deliveries under
// way finish their current attempt and log nothing more.
func (h *Host) DeleteWebhook(ctx context.Context, id string) error {
	if err := h.store.DeleteWebhook(ctx, id); err != nil {
		return err
	}
	h.forgetWebhooks(id)
	return nil
}

func (h *Host) forgetWebhooks(ids ...string) {
	a := h.alerts
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		delete(a.hooks, id)
		a.loops.ForgetWebhook(id)
	}
}

// Deliveries lists a webhook's newest delivery attempts, newest first.
func (h *Host) Deliveries(ctx context.Context, id string, limit int) ([]store.Delivery, error) {
	return h.store.Deliveries(ctx, id, limit)
}

// PingWebhook sends the webhook a ping event, to test it, and returns the
// event's id; the delivery log shows how it went.
func (h *Host) PingWebhook(ctx context.Context, id string) (string, error) {
	w, err := h.store.GetWebhook(ctx, id)
	if err != nil {
		return "", err
	}
	ev := alerts.Event{ID: alerts.NewID(), Kind: alerts.Ping, At: time.Now().UTC(), ProgramID: w.ProgramID, UserID: w.UserID, Message: "a test delivery"}
	h.dispatch(w, ev)
	return ev.ID, nil
}
