package hersh

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// The WatcherAPI: introspection and messaging over HTTP, served by every
// program (the routes and answers of the seed's WatcherAPI, which users'
// scripts rely on). Routes only read copies of engine state, never the
// queues themselves, so looking never changes what happens next.

const (
	maxMessageBody  = 1 << 20
	defaultLogLimit = 100
)

type route struct {
	method string
	fn     func(w *Watcher, r *http.Request) (int, any)
}

func newAPI(w *Watcher) http.Handler {
	routes := map[string]route{
		"/watcher/status":    {http.MethodGet, apiStatus},
		"/watcher/ready":     {http.MethodGet, apiReady},
		"/watcher/logs":      {http.MethodGet, apiLogs},
		"/watcher/signals":   {http.MethodGet, apiSignals},
		"/watcher/message":   {http.MethodPost, apiMessage},
		"/watcher/watching":  {http.MethodGet, apiWatching},
		"/watcher/memoCache": {http.MethodGet, apiMemo},
		"/watcher/varState":  {http.MethodGet, apiVars},
		"/watcher/config":    {http.MethodGet, apiConfig},
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rt, ok := routes[r.URL.Path]
		if !ok {
			writeJSON(rw, http.StatusNotFound, apiError("no such route: "+r.URL.Path))
			return
		}
		if r.Method != rt.method && !(rt.method == http.MethodGet && r.Method == http.MethodHead) {
			allow := rt.method
			if rt.method == http.MethodGet {
				allow += ", " + http.MethodHead
			}
			rw.Header().Set("Allow", allow)
			writeJSON(rw, http.StatusMethodNotAllowed, apiError(r.Method+" is not allowed here; use "+rt.method))
			return
		}
		code, body := rt.fn(w, r)
		writeJSON(rw, code, body)
	})
}

// ErrorResponse is the body of every WatcherAPI error.
type ErrorResponse struct {
	Error string `json:"error"`
}

func apiError(msg string) ErrorResponse { return ErrorResponse{Error: msg} }

// writeJSON encodes body fully before writing anything, so a failure is an
// honest 500 with a JSON error rather than a 200 with a broken body.
func writeJSON(rw http.ResponseWriter, code int, body any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		buf.Reset()
		code = http.StatusInternalServerError
		_ = json.NewEncoder(&buf).Encode(apiError("encoding response: " + err.Error()))
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.Header().Set("X-Content-Type-Options", "nosniff")
	rw.WriteHeader(code)
	_, _ = rw.Write(buf.Bytes())
}

// Status is the answer of GET /watcher/status.
type Status struct {
	State               State     `json:"state"`
	IsRunning           bool      `json:"isRunning"`
	Uptime              string    `json:"uptime"`
	UptimeSeconds       float64   `json:"uptimeSeconds"`
	LastUpdate          time.Time `json:"lastUpdate"`
	StartedAt           time.Time `json:"startedAt"`
	ConsecutiveFailures int       `json:"consecutiveFailures"`
	Runs                uint64    `json:"runs"`
	LastError           string    `json:"lastError,omitempty"`
}

// Status reports the watcher's state for the status route.
func (w *Watcher) Status() Status {
	st := Status{State: StateNotRun}
	s := w.lastSession()
	if s == nil {
		return st
	}
	st.State = s.state()
	st.IsRunning = !s.ended()
	st.StartedAt = s.started
	st.LastUpdate = time.Unix(0, s.updated.Load())
	end := time.Now()
	if !st.IsRunning {
		end = st.LastUpdate
	}
	up := end.Sub(s.started)
	st.Uptime = up.Round(time.Millisecond).String()
	st.UptimeSeconds = up.Seconds()
	st.ConsecutiveFailures = int(s.fails.Load())
	st.Runs = w.runSeq.Load()
	if s.ended() && s.err != nil {
		st.LastError = s.err.Error()
	}
	return st
}

func apiStatus(w *Watcher, _ *http.Request) (int, any) { return http.StatusOK, w.Status() }

// apiReady is the probe the Host uses: 200 while a session runs.
func apiReady(w *Watcher, _ *http.Request) (int, any) {
	s := w.cur.Load()
	body := map[string]any{"ready": s != nil && !s.closing.Load(), "state": w.State()}
	if s == nil || s.closing.Load() {
		return http.StatusServiceUnavailable, body
	}
	return http.StatusOK, body
}

func apiLogs(w *Watcher, r *http.Request) (int, any) {
	q := r.URL.Query()
	kind := q.Get("type")
	if kind == "" {
		kind = "all"
	}
	limit := defaultLogLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > w.cfg.MaxLogEntries {
			return http.StatusBadRequest, apiError(fmt.Sprintf("limit must be a whole number from 1 to %d", w.cfg.MaxLogEntries))
		}
		limit = n
	}
	out, ok := w.Logs(kind, limit)
	if !ok {
		return http.StatusBadRequest, apiError(fmt.Sprintf("unknown log type %q; use one of %v", kind, LogKinds))
	}
	return http.StatusOK, out
}

// SignalsInfo is the answer of GET /watcher/signals.
type SignalsInfo struct {
	VarSigCount     int          `json:"varSigCount"`
	UserSigCount    int          `json:"userSigCount"`
	WatcherSigCount int          `json:"watcherSigCount"`
	TotalPending    int          `json:"totalPending"`
	RecentSignals   []SignalInfo `json:"recentSignals"` // the newest received, oldest first
	Timestamp       time.Time    `json:"timestamp"`
}

// Signals reports the pending signal counts. It reads queue lengths only;
// it never takes anything out of a queue. It reads only atomics and channel
// lengths: the engine-owned recovery timer is not touched from here, a
// pending recovery run shows as the WaitRecover state.
func (w *Watcher) Signals() SignalsInfo {
	out := SignalsInfo{RecentSignals: w.recentSignals(), Timestamp: time.Now()}
	if s := w.cur.Load(); s != nil {
		out.VarSigCount = s.vars.pending()
		out.UserSigCount = s.msgs.pending()
		if s.stopReq.Load() != reqNone || s.state() == StateWaitRecover {
			out.WatcherSigCount = 1
		}
	}
	out.TotalPending = out.VarSigCount + out.UserSigCount + out.WatcherSigCount
	return out
}

func apiSignals(w *Watcher, _ *http.Request) (int, any) { return http.StatusOK, w.Signals() }

func apiMessage(w *Watcher, r *http.Request) (int, any) {
	var body struct {
		Content *string `json:"content"`
	}
	// MaxBytesReader (not LimitReader) so an oversized body is reported as
	// such, not as truncated JSON. A nil ResponseWriter is allowed.
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxMessageBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(&body)
	if err == nil {
		// Exactly one value: anything after it ("}", a second object) is an error.
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the JSON object")
			if terr != nil {
				err = terr
			}
		}
	}
	if tooBig := new(http.MaxBytesError); errors.As(err, &tooBig) {
		return http.StatusRequestEntityTooLarge, apiError(fmt.Sprintf("body larger than %d bytes", maxMessageBody))
	}
	if err != nil {
		return http.StatusBadRequest, apiError("body must be one JSON object {\"content\": \"...\"}: " + err.Error())
	}
	if body.Content == nil || *body.Content == "" {
		return http.StatusBadRequest, apiError("content must not be empty")
	}
	switch err := w.TrySend(*body.Content); {
	case err == nil:
		return http.StatusOK, map[string]string{"status": "message sent"}
	case errors.Is(err, ErrQueueFull):
		return http.StatusServiceUnavailable, apiError(err.Error())
	case errors.Is(err, ErrNotRunning):
		return http.StatusConflict, apiError(err.Error())
	default:
		return http.StatusInternalServerError, apiError(err.Error())
	}
}

// WatchInfo describes one watched variable.
type WatchInfo struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	Interval  string    `json:"interval,omitempty"`
	HasValue  bool      `json:"hasValue"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
}

func (w *Watcher) watches() []WatchInfo {
	out := []WatchInfo{}
	s := w.cur.Load()
	if s == nil {
		return out
	}
	s.hooksMu.RLock()
	hs := append([]*hook(nil), s.watches...)
	s.hooksMu.RUnlock()
	for _, h := range hs {
		wi := WatchInfo{Name: h.name, Kind: h.kind}
		if h.interval > 0 {
			wi.Interval = h.interval.String()
		}
		h.slot.mu.Lock()
		wi.HasValue, wi.UpdatedAt = h.slot.hasValue, h.slot.updatedAt
		h.slot.mu.Unlock()
		out = append(out, wi)
	}
	return out
}

func apiWatching(w *Watcher, _ *http.Request) (int, any) {
	ws := w.watches()
	names := make([]string, len(ws))
	for i, wi := range ws {
		names[i] = wi.Name
	}
	return http.StatusOK, map[string]any{"watchedVars": names, "details": ws, "count": len(ws), "timestamp": time.Now()}
}

// VarState returns each watched variable's current value.
func (w *Watcher) VarState() map[string]any {
	out := map[string]any{}
	if s := w.cur.Load(); s != nil {
		s.hooksMu.RLock()
		hs := append([]*hook(nil), s.watches...)
		s.hooksMu.RUnlock()
		for _, h := range hs {
			if v, ok := h.slot.get(); ok {
				out[h.name] = v
			}
		}
	}
	return out
}

// MemoCache returns each memoized value.
func (w *Watcher) MemoCache() map[string]any {
	out := map[string]any{}
	if s := w.cur.Load(); s != nil {
		s.hooksMu.RLock()
		for name, h := range s.hooks {
			if b, ok := h.memo.(interface{ unbox() any }); ok {
				out[name] = b.unbox()
			}
		}
		s.hooksMu.RUnlock()
	}
	return out
}

func (b memoBox[T]) unbox() any { return b.v }

func apiVars(w *Watcher, _ *http.Request) (int, any) {
	vars := encodable(w.VarState())
	return http.StatusOK, map[string]any{"variables": vars, "count": len(vars), "timestamp": time.Now()}
}

func apiMemo(w *Watcher, _ *http.Request) (int, any) {
	entries := encodable(w.MemoCache())
	return http.StatusOK, map[string]any{"entries": entries, "count": len(entries), "timestamp": time.Now()}
}

// encodable encodes each value on its own; one that JSON cannot encode (a
// channel, a func, a cycle, a failing MarshalJSON) is shown as a string.
func encodable(m map[string]any) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		out[k] = encodeOne(v)
	}
	return out
}

// encodeOne encodes v, or a string in its place when JSON cannot encode it.
// The replacement names the type and the reason, never the value itself:
// formatting a value with %v recurses without limit through a cyclic map or
// slice, and that stack overflow is fatal, not a recoverable panic.
func encodeOne(v any) (raw json.RawMessage) {
	defer func() {
		if r := recover(); r != nil {
			raw, _ = json.Marshal(fmt.Sprintf("<%T: unencodable: MarshalJSON panicked: %s>", v, describe(r)))
		}
	}()
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprintf("<%T: unencodable: %v>", v, err))
	}
	return b
}

// ConfigInfo is the config route's view of the configuration.
type ConfigInfo struct {
	ServerPort         int    `json:"serverPort"`
	APIAddr            string `json:"apiAddr"`
	ListenAddr         string `json:"listenAddr,omitempty"` // bound address while serving (differs with port 0)
	SignalChanCapacity int    `json:"signalChanCapacity"`
	MaxLogEntries      int    `json:"maxLogEntries"`
	MaxMemoEntries     int    `json:"maxMemoEntries"`
	RunTimeout         string `json:"runTimeout"`
	StateDir           string `json:"stateDir,omitempty"`
	MaxFailures        int    `json:"maxConsecutiveFailures"`
	BackoffBase        string `json:"backoffBase"`
	BackoffMax         string `json:"backoffMax"`
}

func apiConfig(w *Watcher, _ *http.Request) (int, any) {
	c := w.cfg
	return http.StatusOK, map[string]any{"config": ConfigInfo{
		ServerPort: c.port(), APIAddr: c.APIAddr, ListenAddr: w.APIAddr(), SignalChanCapacity: c.SignalCapacity,
		MaxLogEntries: c.MaxLogEntries, MaxMemoEntries: c.MaxMemoEntries, RunTimeout: c.RunTimeout.String(),
		StateDir: c.StateDir, MaxFailures: c.Recovery.MaxFailures,
		BackoffBase: c.Recovery.Base.String(), BackoffMax: c.Recovery.Max.String(),
	}, "timestamp": time.Now()}
}
