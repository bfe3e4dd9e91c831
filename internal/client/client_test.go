package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newServer(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return New(srv.URL+"/", "tok")
}

func TestCreateSendsJSONAndAuth(t *testing.T) {
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/programs" {
			t.Errorf("got %s %s", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer tok" {
			t.Errorf("Authorization = %q", got)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		var req map[string]any
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Fatal(err)
		}
		files, _ := req["src_files"].(map[string]any)
		if files["main.go"] != "package main" {
			t.Errorf("src_files = %v", req["src_files"])
		}
		if _, ok := req["network"]; ok {
			t.Errorf("network sent although unset: %v", req)
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"program_id":"u-b-1","build_id":"b","state":"Created","proxy_url":"http://x/programs/u-b-1/proxy","created_at":"2026-01-01T00:00:00Z"}`)
	})
	res, err := c.CreateProgram(context.Background(), SourceRequest{SrcFiles: map[string]string{"main.go": "package main"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ProgramID != "u-b-1" || res.State != "Created" {
		t.Fatalf("res = %+v", res)
	}
}

func TestErrorDecoding(t *testing.T) {
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/programs/x":
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"Not Found","code":404,"message":"no program x"}`)
		default:
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "upstream broke")
		}
	})
	_, err := c.GetProgram(context.Background(), "x")
	var e *Error
	if !asError(err, &e) || e.Status != 404 || e.Code != 404 || e.Message != "no program x" {
		t.Fatalf("err = %#v", err)
	}
	if !IsStatus(err, 404) || IsStatus(err, 409) {
		t.Fatal("IsStatus wrong")
	}
	if got := err.Error(); got != "Not Found (404): no program x" {
		t.Fatalf("Error() = %q", got)
	}
	_, err = c.Start(context.Background(), "y")
	if !asError(err, &e) || e.Code != 502 || e.Message != "upstream broke" {
		t.Fatalf("non-JSON error = %#v", err)
	}
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

func TestListQueryAndDecode(t *testing.T) {
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("state") != "Ready" || q.Get("user_id") != "alice" || q.Get("limit") != "5" || q.Get("offset") != "10" {
			t.Errorf("query = %v", q)
		}
		fmt.Fprint(w, `{"programs":[{"program_id":"a","state":"Ready","restart_count":2,"last_exit_code":1,"restart_policy":"always"}],"count":1,"total":11}`)
	})
	l, err := c.ListPrograms(context.Background(), ListOptions{State: "Ready", UserID: "alice", Limit: 5, Offset: 10})
	if err != nil {
		t.Fatal(err)
	}
	if l.Total != 11 || len(l.Programs) != 1 || l.Programs[0].RestartCount != 2 || *l.Programs[0].LastExitCode != 1 {
		t.Fatalf("list = %+v", l)
	}
}

func TestActionsAndDelete(t *testing.T) {
	var seen []string
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Method+" "+r.URL.Path)
		if r.Method == http.MethodDelete {
			fmt.Fprint(w, `{}`)
			return
		}
		fmt.Fprintf(w, `{"program_id":"p","state":"Starting","message":"%s"}`, r.URL.Path)
	})
	ctx := context.Background()
	for _, f := range []func(context.Context, string) (*ActionResponse, error){c.Start, c.Stop, c.Restart} {
		if _, err := f(ctx, "p"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.DeleteProgram(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	want := "POST /programs/p/start,POST /programs/p/stop,POST /programs/p/restart,DELETE /programs/p"
	if got := strings.Join(seen, ","); got != want {
		t.Fatalf("seen %s", got)
	}
}

func TestLogsAndFollow(t *testing.T) {
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("follow") == "1" {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, ": comment\n\ndata: one\n\nevent: x\ndata:two\n\n")
			return
		}
		since, err := time.Parse(time.RFC3339, q.Get("since"))
		if q.Get("tail") != "3" || err != nil || time.Since(since) < 9*time.Minute || time.Since(since) > 11*time.Minute {
			t.Errorf("query = %v", q)
		}
		fmt.Fprint(w, `{"program_id":"p","container_id":"c","logs":"a\nb\n","timestamp":"t"}`)
	})
	ctx := context.Background()
	l, err := c.Logs(ctx, "p", LogOptions{Tail: 3, Since: "10m"})
	if err != nil || l.Logs != "a\nb\n" {
		t.Fatalf("logs = %+v, %v", l, err)
	}
	var lines []string
	err = c.FollowLogs(ctx, "p", LogOptions{}, func(s string) error { lines = append(lines, s); return nil })
	if err != nil || strings.Join(lines, "|") != "one|two" {
		t.Fatalf("lines = %q, %v", lines, err)
	}
}

func TestBuildLogStreams(t *testing.T) {
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/programs/p/build-log" || r.URL.Query().Get("follow") != "1" {
			t.Errorf("got %s", r.URL)
		}
		fmt.Fprint(w, "step 1\nstep 2\n")
	})
	rc, err := c.BuildLog(context.Background(), "p", true)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	if string(b) != "step 1\nstep 2\n" {
		t.Fatalf("build log %q", b)
	}
}

func TestProxyAndWatcher(t *testing.T) {
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "GET /programs/p/proxy/watcher/status":
			fmt.Fprint(w, `{"state":"Ready","isRunning":true,"uptime":"1m","lastUpdate":"now"}`)
		case "GET /programs/p/proxy/watcher/signals":
			fmt.Fprint(w, `{"varSigCount":1,"userSigCount":2,"watcherSigCount":0,"totalPending":3,"recentSignals":[{"type":"user","content":"hi","createdAt":"t"}]}`)
		case "GET /programs/p/proxy/watcher/varState":
			fmt.Fprint(w, `{"variables":{"price":42},"count":1}`)
		case "POST /programs/p/proxy/watcher/message":
			var body map[string]string
			_ = json.NewDecoder(r.Body).Decode(&body)
			if body["content"] != "hello" {
				t.Errorf("message body %v", body)
			}
			fmt.Fprint(w, `{"status":"message sent"}`)
		default:
			http.NotFound(w, r)
		}
	})
	ctx := context.Background()
	st, err := c.WatcherStatus(ctx, "p")
	if err != nil || !st.IsRunning || st.State != "Ready" {
		t.Fatalf("status %+v %v", st, err)
	}
	sig, err := c.WatcherSignals(ctx, "p")
	if err != nil || sig.TotalPending != 3 || len(sig.RecentSignals) != 1 {
		t.Fatalf("signals %+v %v", sig, err)
	}
	vs, err := c.WatcherVarState(ctx, "p")
	if err != nil || vs.Variables["price"] != float64(42) {
		t.Fatalf("vars %+v %v", vs, err)
	}
	res, err := c.SendMessage(ctx, "p", "hello")
	if err != nil || res["status"] != "message sent" {
		t.Fatalf("send %v %v", res, err)
	}
}

func TestTokens(t *testing.T) {
	listShape := `{"tokens":[{"id":"1","user_id":"alice"}]}`
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "POST /tokens":
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"token":"secret","id":"1","user_id":"alice"}`)
		case "GET /tokens":
			fmt.Fprint(w, listShape)
		case "DELETE /tokens/1":
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	})
	ctx := context.Background()
	tok, err := c.CreateToken(ctx, "alice")
	if err != nil || tok.Token != "secret" {
		t.Fatalf("create %+v %v", tok, err)
	}
	for _, shape := range []string{listShape, `[{"id":"1","user_id":"alice"}]`} {
		listShape = shape
		toks, err := c.ListTokens(ctx)
		if err != nil || len(toks) != 1 || toks[0].UserID != "alice" {
			t.Fatalf("list %s: %+v %v", shape, toks, err)
		}
	}
	if err := c.RevokeToken(ctx, "1"); err != nil {
		t.Fatal(err)
	}
}
