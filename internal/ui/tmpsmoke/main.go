package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/ui"
)

func main() {
	now := time.Now().UTC()
	next := now.Add(5 * time.Second)
	exit := 3
	used, lim := int64(4096), int64(256<<20)
	prog := map[string]any{"program_id": "alice-1", "user_id": "alice", "state": "Error", "build_id": "build-1", "runtime": "runc",
		"restart_count": 2, "next_restart_at": next, "last_exit_code": exit, "error_msg": "exited 3", "created_at": now, "updated_at": now,
		"restart_policy": "on-failure", "state_bytes_used": used, "state_bytes_limit": lim, "options": map[string]any{"env": map[string]string{"A": "***"}}}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js := func(v any) { w.Header().Set("Content-Type", "application/json"); json.NewEncoder(w).Encode(v) }
		p := r.URL.Path
		switch {
		case p == "/whoami":
			js(map[string]any{"user_id": "alice", "admin": true})
		case p == "/programs":
			js(map[string]any{"programs": []any{prog}, "count": 1, "total": 1})
		case strings.HasSuffix(p, "/stats"):
			var s []any
			for i := 0; i < 30; i++ {
				s = append(s, map[string]any{"at": now.Add(time.Duration(i-30) * 10 * time.Second), "cpu_percent": float64(i), "memory_bytes": 1 << 20 * i, "memory_limit_bytes": 256 << 20, "pids": 5, "state_bytes_used": 4096, "state_bytes_limit": 1 << 28, "restarts": 1})
			}
			js(map[string]any{"program_id": "alice-1", "step_seconds": 10, "samples": s})
		case strings.HasSuffix(p, "/history"):
			js(map[string]any{"transitions": []any{map[string]any{"from": "Ready", "to": "Error", "reason": "exit 3", "at": now}}})
		case strings.HasSuffix(p, "/secrets"):
			js(map[string]any{"secrets": []any{map[string]any{"name": "k", "updated_at": now}}})
		case strings.HasSuffix(p, "/logs"):
			js(map[string]any{"logs": "line one\n<b>two</b>\n"})
		case strings.HasSuffix(p, "/build-log"):
			io.WriteString(w, "building\n")
		case strings.HasSuffix(p, "/source"):
			js(map[string]any{"files": map[string]string{"main.go": "package main\nfunc main() {}\n", "go.mod": "module x\n"}})
		case strings.Contains(p, "/proxy/watcher/status"):
			js(map[string]any{"state": "Ready", "isRunning": true, "runs": 3})
		case strings.Contains(p, "/proxy/watcher/watching"):
			js(map[string]any{"details": []any{map[string]any{"name": "tick", "kind": "tick", "hasValue": true}}})
		case strings.Contains(p, "/proxy/watcher/varState"):
			js(map[string]any{"variables": map[string]any{"tick": map[string]any{"Count": 3}}})
		case strings.Contains(p, "/proxy/watcher/logs"):
			js(map[string]any{"effectResults": []any{map[string]any{"id": 1, "trigger": "start", "success": true, "durationNs": 1000}}})
		case strings.Contains(p, "/proxy/watcher/signals"):
			js(map[string]any{"recentSignals": []any{map[string]any{"type": "user", "content": "hi", "createdAt": now}}})
		case strings.Contains(p, "/proxy/watcher/"):
			js(map[string]any{"config": map[string]any{"a": 1}, "entries": map[string]any{"m": 1}})
		case p == "/tokens":
			js(map[string]any{"tokens": []any{map[string]any{"id": "t1", "user_id": "alice", "created_at": now}}})
		case p == "/healthz":
			js(map[string]any{"status": "ok"})
		case p == "/version":
			js(map[string]any{"version": "x", "runtime": "runc"})
		case strings.HasPrefix(p, "/programs/"):
			js(prog)
		default:
			w.WriteHeader(404)
			js(map[string]any{"message": "no"})
		}
	})
	d, err := ui.New(api, ui.Options{})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(ui.Mount(api, d))
	defer srv.Close()
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	get := func(path string, cookies []*http.Cookie) (*http.Response, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		resp, err := c.Do(req)
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, body := get("/ui/signin", nil)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	form := url.Values{"csrf": {m[1]}, "token": {"tok"}}
	req, _ := http.NewRequest("POST", srv.URL+"/ui/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", srv.URL)
	req.AddCookie(resp.Cookies()[0])
	r2, err := c.Do(req)
	if err != nil {
		panic(err)
	}
	var sess []*http.Cookie
	for _, ck := range r2.Cookies() {
		if ck.Name == "hershy_session" {
			sess = append(sess, ck)
		}
	}
	fmt.Println("signin", r2.StatusCode, len(sess))
	for _, p := range []string{"/ui/", "/ui/deploy", "/ui/programs/alice-1", "/ui/programs/alice-1/logs", "/ui/programs/alice-1/build",
		"/ui/programs/alice-1/source", "/ui/programs/alice-1/watcher", "/ui/programs/alice-1/resources", "/ui/admin",
		"/ui/programs/alice-1/delete", "/ui/?part=part-list", "/ui/programs/alice-1/watcher?part=part-watcher", "/ui/static/app.js", "/ui/static/kit.css", "/ui/nope"} {
		resp, body := get(p, sess)
		fmt.Println(resp.StatusCode, p, len(body)); if p == "/ui/" || p == "/ui/programs/alice-1" { fmt.Println(body) }
		if resp.StatusCode >= 500 || strings.Contains(body, "internal error") {
			fmt.Println(body)
		}
	}
}
