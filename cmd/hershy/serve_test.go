package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/spf13/pflag"
)

func TestServeHTTPShutsDownOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	go func() { done <- serveHTTP(ctx, ln, h, slog.New(slog.DiscardHandler)) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serveHTTP: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no shutdown")
	}
}

func TestDefaultDataDir(t *testing.T) {
	t.Setenv("HERSHY_DATA", "/srv/hershy")
	if got := defaultDataDir(); got != "/srv/hershy" {
		t.Fatalf("defaultDataDir = %q", got)
	}
}

// TestServeWaitsForEngine: with no engine to talk to, serve stays up and
// says what it waits for (/healthz 503 "starting", hershy_engine_up 0, the
// API 503) instead of exiting, before it opens the data directory; it
// stops cleanly when told to. (The e2e engine restart test sees such a
// Host open once the engine answers.)
func TestServeWaitsForEngine(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(dir, "no-engine.sock"))
	t.Setenv("HERSHY_CONFIG", filepath.Join(dir, "none.json"))
	data := filepath.Join(dir, "data")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// run writes through a syncWriter; the buffers are read once it returned.
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--data", data, "--listen", addr, "--runtime", "runc"}, &out, &errOut)
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := get("/healthz")
		var h struct {
			Status    string    `json:"status"`
			CheckedAt time.Time `json:"checked_at"`
			Engine    struct {
				Problem string    `json:"problem"`
				Since   time.Time `json:"since"`
			} `json:"engine"`
		}
		json.Unmarshal([]byte(body), &h)
		// Until the first check has failed, checked_at is the wait's start.
		if code == http.StatusServiceUnavailable && h.Status == "starting" && strings.Contains(h.Engine.Problem, "engine does not answer") && h.CheckedAt.After(h.Engine.Since) {
			break
		}
		select {
		case c := <-done:
			t.Fatalf("serve exited (%d) without an engine:\n%s", c, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "hershy_engine_up 0") {
		t.Errorf("/metrics: %d %s", code, body)
	}
	if code, body := get("/programs"); code != http.StatusServiceUnavailable || !strings.Contains(body, "the Host is starting") {
		t.Errorf("/programs: %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(data, "hershy.db")); !os.IsNotExist(err) {
		t.Errorf("serve opened its database before the engine answered: %v", err)
	}
	cancel()
	select {
	case c := <-done:
		if c != 0 {
			t.Errorf("serve stopped while waiting: exit %d\n%s", c, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(errOut.String(), "Waiting for the container engine") {
		t.Errorf("stderr does not say what serve waits for:\n%s", errOut.String())
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "536870912": 512 << 20, "512MiB": 512 << 20, "512M": 512 << 20, "512mb": 512 << 20,
		"4GiB": 4 << 30, "4g": 4 << 30, " 4Gi ": 4 << 30, "1k": 1024, "2TiB": 2 << 40, "100b": 100,
	} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "4ib", "4i", "1.5G", "-1G", "4PB", "4 G B", "9999999999T", "x"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", in, got)
		}
	}
}

// TestServeQuotaFlags: the quota flags take counts and sizes with units,
// and refuse what is not a size.
func TestServeQuotaFlags(t *testing.T) {
	a := &app{}
	cmd := a.serveCmd()
	if err := cmd.ParseFlags([]string{"--max-programs", "5", "--max-program-memory", "1GiB", "--max-user-memory", "2g"}); err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{"max-programs": "5", "max-program-memory": "1073741824", "max-user-memory": "2147483648"} {
		if got := cmd.Flags().Lookup(flag).Value.String(); got != want {
			t.Errorf("--%s = %s, want %s", flag, got, want)
		}
	}
	if err := cmd.ParseFlags([]string{"--max-user-memory", "lots"}); err == nil {
		t.Error("--max-user-memory lots accepted")
	}
}

// TestOpenEngineRefusals: the cluster's flags are checked before anything
// is reached.
func TestOpenEngineRefusals(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {token: x}}]\n"), 0o600)
	for name, tc := range map[string]struct {
		c    clusterOpts
		want string
	}{
		"unknown engine":    {clusterOpts{engine: "nomad"}, `--engine "nomad"`},
		"no registry":       {clusterOpts{engine: "kubernetes", namespace: "h", kubeconfig: kubeconfig}, "needs --registry"},
		"bad deny CIDR":     {clusterOpts{engine: "kubernetes", namespace: "h", kubeconfig: kubeconfig, registry: "127.0.0.1:5000/h", denyCIDRs: []string{"10.0.0.1"}}, "--deny-cidr"},
		"registry w/o host": {clusterOpts{engine: "kubernetes", namespace: "h", kubeconfig: kubeconfig, registry: "hershy"}, "a host"},
		"missing config":    {clusterOpts{engine: "kubernetes", namespace: "h", kubeconfig: kubeconfig + ".missing", registry: "127.0.0.1:5000/h"}, "configuration"},
	} {
		t.Run(name, func(t *testing.T) {
			e, err := openEngine(serveOpts{runtime: "runsc", cluster: tc.c})
			if err == nil {
				e.Close()
				t.Fatalf("accepted: want an error saying %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
	e, err := openEngine(serveOpts{runtime: "runsc", cluster: clusterOpts{engine: "kubernetes", namespace: "h", kubeconfig: kubeconfig, registry: "127.0.0.1:5000/h"}})
	if err != nil {
		t.Fatalf("a valid cluster set-up: %v", err)
	}
	if _, ok := e.(driver.VolumeKeeper); !ok {
		t.Error("the cluster engine does not keep volumes")
	}
	if _, ok := e.(driver.BuildEngine); !ok {
		t.Error("the cluster engine does not build on this machine")
	}
	e.Close()
}

// TestServeConfig: the config file sets what the command line does not,
// the command line wins, and a misspelt or ill-typed setting is refused;
// on a reload the quotas are read again the same way.
func TestServeConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "serve.json")
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	var o serveOpts
	f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	serveFlags(f, &o)
	if err := f.Parse([]string{"--max-programs", "7"}); err != nil {
		t.Fatal(err)
	}
	given := givenFlags(f)
	cfg := write(`{"max-programs": 50, "max-user-memory": "1GiB", "listen": "127.0.0.1:9999", "log-format": "json", "deny-cidr": ["192.0.2.0/24", "198.51.100.7/32"], "uncapped-state": true}`)
	if err := applyConfig(f, cfg); err != nil {
		t.Fatal(err)
	}
	if o.quotas.MaxPrograms != 7 || o.quotas.MaxUserMemory != 1<<30 || o.listen != "127.0.0.1:9999" || o.logFormat != "json" ||
		len(o.cluster.denyCIDRs) != 2 || !o.uncappedState {
		t.Errorf("settings after the file: %+v", o)
	}
	for body, want := range map[string]string{
		`{"max-programz": 5}`:           "unknown setting",
		`{"max-programs": "many"}`:      "max-programs",
		`{"max-programs": [1, 2]}`:      "one value",
		`{"config": "/etc/other.json"}`: "unknown setting",
		`not json`:                      "--config",
	} {
		var o serveOpts
		f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		serveFlags(f, &o)
		if err := applyConfig(f, write(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %s: %v, want an error saying %q", body, err, want)
		}
	}
	// The reload: the command line's 7 still wins; the file's new memory counts.
	write(`{"max-programs": 50, "max-user-memory": "2GiB"}`)
	q, err := reloadQuotas(given, cfg)
	if err != nil || q.MaxPrograms != 7 || q.MaxUserMemory != 2<<30 {
		t.Errorf("reloaded quotas %+v, %v", q, err)
	}
}
