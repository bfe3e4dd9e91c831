package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// The watcher page reads the program's WatcherAPI through the Host's
// authenticated proxy (GET /programs/{id}/proxy/watcher/...), with the
// user's token like every other read: status, configuration, watched
// variables, memos, signals and execution logs. Its live part is
// re-fetched every couple of seconds by the script.

// logKinds are the execution logs' types, as the WatcherAPI names them,
// with the key of their list in its answer and a title.
var logKinds = []struct{ Type, Key, Title string }{
	{"effect_result", "effectResults", "Runs"},
	{"reduce", "reduceLogs", "State changes"},
	{"effect", "effectLogs", "Effects"},
	{"watch_error", "watchErrorLogs", "Watch errors"},
	{"context", "contextLogs", "Context state"},
	{"state_fault", "stateFaultLogs", "State faults"},
}

// table is a list of JSON objects shown as rows, columns in a stable order.
type table struct {
	Columns []string
	Rows    [][]string
}

// watchedVar is one watched variable: its kind, whether it holds a value
// yet (is initialised) and the value.
type watchedVar struct {
	Name, Kind, Interval string
	HasValue             bool
	UpdatedAt            time.Time
	Value                string
}

type watcherView struct {
	Status    map[string]any
	StatusErr string
	Config    []kv
	Vars      []watchedVar
	Memos     []kv
	Signals   struct {
		VarSigCount, UserSigCount, WatcherSigCount, TotalPending int
		Recent                                                   []map[string]any
	}
	LogType  string
	LogTitle string
	Log      table
	Errs     []string
}

type kv struct{ Key, Value string }

func (h *Handler) watcherPage(w http.ResponseWriter, r *http.Request, req *request) {
	p, ok := h.loadProgram(w, r, req)
	if !ok {
		return
	}
	logType := r.URL.Query().Get("log")
	logKey, logTitle := "", ""
	for _, k := range logKinds {
		if k.Type == logType {
			logKey, logTitle = k.Key, k.Title
		}
	}
	if logKey == "" {
		logType, logKey, logTitle = logKinds[0].Type, logKinds[0].Key, logKinds[0].Title
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	v := h.readWatcher(ctx, req.api, p.ProgramID, logType, logKey)
	v.LogType, v.LogTitle = logType, logTitle
	h.render(w, r, req, http.StatusOK, "watcher", "Watcher of "+p.ProgramID, map[string]any{
		"P": p, "Tab": "watcher", "W": v, "LogKinds": logKinds, "Sent": req.s.sentTo(p.ProgramID),
	})
}

// readWatcher asks the WatcherAPI's routes at once (each is a proxied
// request into the program's sandbox).
func (h *Handler) readWatcher(ctx context.Context, c *apiClient, id, logType, logKey string) *watcherView {
	v := &watcherView{}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		status  map[string]any
		config  struct{ Config map[string]json.RawMessage }
		watch   struct{ Details []watchedVar }
		vars    struct{ Variables map[string]json.RawMessage }
		memos   struct{ Entries map[string]json.RawMessage }
		signals struct {
			VarSigCount, UserSigCount, WatcherSigCount, TotalPending int
			RecentSignals                                            []map[string]any
		}
		logs map[string][]map[string]any
	)
	get := func(route string, out any) {
		defer wg.Done()
		err := c.get(ctx, programPath(id, "/proxy/watcher/"+route), out)
		if err != nil {
			mu.Lock()
			v.Errs = append(v.Errs, route+": "+err.Error())
			mu.Unlock()
		}
	}
	wg.Add(7)
	go get("status", &status)
	go get("config", &config)
	go get("watching", &watch)
	go get("varState", &vars)
	go get("memoCache", &memos)
	go get("signals", &signals)
	go get("logs?type="+logType+"&limit=100", &logs)
	wg.Wait()
	sort.Strings(v.Errs)
	v.Status = status
	for _, k := range sortedKeys(config.Config) {
		v.Config = append(v.Config, kv{k, strings.Trim(string(config.Config[k]), `"`)})
	}
	seen := map[string]bool{}
	for _, d := range watch.Details {
		if raw, ok := vars.Variables[d.Name]; ok {
			d.Value = prettyJSON(raw)
		}
		seen[d.Name] = true
		v.Vars = append(v.Vars, d)
	}
	// A program written to the seed's contract may list values without
	// details.
	for _, k := range sortedKeys(vars.Variables) {
		if !seen[k] {
			v.Vars = append(v.Vars, watchedVar{Name: k, HasValue: true, Value: prettyJSON(vars.Variables[k])})
		}
	}
	for _, k := range sortedKeys(memos.Entries) {
		v.Memos = append(v.Memos, kv{k, prettyJSON(memos.Entries[k])})
	}
	v.Signals.VarSigCount, v.Signals.UserSigCount = signals.VarSigCount, signals.UserSigCount
	v.Signals.WatcherSigCount, v.Signals.TotalPending = signals.WatcherSigCount, signals.TotalPending
	// Newest first.
	for i := len(signals.RecentSignals) - 1; i >= 0; i-- {
		v.Signals.Recent = append(v.Signals.Recent, signals.RecentSignals[i])
	}
	v.Log = toTable(logs[logKey])
	if len(v.Errs) == 7 {
		v.Errs = []string{"The WatcherAPI did not answer: " + firstErr(v.Errs)}
	}
	return v
}

func firstErr(errs []string) string {
	_, after, _ := strings.Cut(errs[0], ": ")
	return after
}

// columnOrder puts the fields that identify an entry first.
var columnOrder = map[string]int{"id": 0, "runId": 1, "time": 2, "startedAt": 3, "trigger": 4, "success": 5, "stateAfter": 6}

// toTable shows log entries newest first.
func toTable(entries []map[string]any) table {
	var t table
	cols := map[string]bool{}
	for _, e := range entries {
		for k := range e {
			cols[k] = true
		}
	}
	for k := range cols {
		t.Columns = append(t.Columns, k)
	}
	sort.Slice(t.Columns, func(i, j int) bool {
		a, aok := columnOrder[t.Columns[i]]
		b, bok := columnOrder[t.Columns[j]]
		switch {
		case aok && bok:
			return a < b
		case aok != bok:
			return aok
		}
		return t.Columns[i] < t.Columns[j]
	})
	for i := len(entries) - 1; i >= 0; i-- {
		row := make([]string, len(t.Columns))
		for j, c := range t.Columns {
			row[j] = cell(c, entries[i][c])
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

func cell(col string, v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		if col == "durationNs" {
			return time.Duration(x).String()
		}
		return fmt.Sprint(x)
	case bool:
		return fmt.Sprint(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// sendMessage posts a message to the program's WatcherAPI through the
// proxy and keeps it, with the answer, in the session's console history.
func (h *Handler) sendMessage(w http.ResponseWriter, r *http.Request, req *request) {
	id := r.PathValue("id")
	content := r.PostForm.Get("content")
	if content == "" && r.Header.Get(csrfHeader) != "" {
		var b struct {
			Content string `json:"content"`
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		_ = json.NewDecoder(r.Body).Decode(&b)
		content = b.Content
	}
	to := programURL(id, "/watcher") + "#console"
	if content == "" {
		h.back(w, r, req, to, fmt.Errorf("type a message to send"), "")
		return
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	var out map[string]any
	err := req.api.call(ctx, http.MethodPost, programPath(id, "/proxy/watcher/message"), map[string]string{"content": content}, &out)
	m := sentMessage{At: h.opts.Now(), Content: content, OK: err == nil, Result: "sent"}
	if err != nil {
		m.Result = err.Error()
	} else if s, ok := out["status"].(string); ok {
		m.Result = s
	}
	if !isStatus(err, http.StatusNotFound) { // not another user's program
		req.s.addSent(id, m)
	}
	h.back(w, r, req, to, err, "")
}
