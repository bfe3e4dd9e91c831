package api

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/api/proxybench"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/testenv"
)

// BenchmarkProxyEngine measures the WatcherAPI proxy on the real engine,
// under runc and runsc: a Host in this process serving its API on
// 127.0.0.1, one sandboxed hersh program, and package proxybench's run —
// proxied GET /watcher/status against the same request sent straight into
// the program's network namespace and against the Host's /healthz,
// interleaved (b.N requests of each kind at concurrency 1, then throughput
// rounds at concurrency 16). It reports the p50s, the proxy's overhead
// (proxied − direct − healthz) and the throughput ratio; ns/op is the
// whole run divided by b.N and means little. Its bare-forwarder part runs
// the same measures against a forwarder that does nothing but forward (no
// token, no owner, no metrics): the floor the proxy's figures are bounded
// by on this machine, since a proxied request is two HTTP round trips on
// the same cores.
//
//	go test -run '^$' -bench ProxyEngine -benchtime 2000x ./internal/api
//
// Without an engine it is skipped, except in CI, where it fails
// (testenv.Engine).
func BenchmarkProxyEngine(b *testing.B) {
	for _, rt := range []string{driver.RuntimeRunc, driver.RuntimeRunsc} {
		b.Run(rt, func(b *testing.B) {
			target := engineBenchTarget(b, rt)
			run := func(b *testing.B, target proxybench.Target) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				res, err := proxybench.Run(ctx, target, proxybench.Options{Requests: b.N})
				if err != nil {
					b.Fatal(err)
				}
				reportProxyBench(b, res)
			}
			b.Run("status", func(b *testing.B) { run(b, target) })
			// The floor of any proxy built on net/http, measured the same
			// way: a server in this process that forwards with a plain
			// transport and checks nothing.
			b.Run("bare-forwarder", func(b *testing.B) {
				bare := target
				bare.API = bareForwarder(b, target.Dial)
				run(b, bare)
			})
		})
	}
}

// reportProxyBench reports a run's figures as the benchmark's metrics.
func reportProxyBench(b *testing.B, r proxybench.Result) {
	b.ReportMetric(float64(r.ProxiedP50.Microseconds()), "proxied-p50-µs")
	b.ReportMetric(float64(r.DirectP50.Microseconds()), "direct-p50-µs")
	b.ReportMetric(float64(r.HealthzP50.Microseconds()), "healthz-p50-µs")
	b.ReportMetric(float64(r.Overhead.Microseconds()), "overhead-µs")
	b.ReportMetric(r.ProxiedRPS, "proxied-req/s")
	b.ReportMetric(r.DirectRPS, "direct-req/s")
	b.ReportMetric(r.Ratio, "throughput-ratio")
	b.Logf("%s: %s", b.Name(), r)
}

// benchProgram is the smallest hersh program: a WatcherAPI and a managed
// function that never runs after its start, so nothing but the requests
// uses the sandbox's CPU.
const benchProgram = `package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hershyorg/hershy/hersh"
)

func main() {
	w, err := hersh.New(hersh.Config{}, func(c *hersh.Context) error { return nil })
	if err != nil {
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(hersh.ExitCode(w.Run(ctx)))
}
`

// engineBenchTarget opens a Host on the engine with runtime rt, serves its
// API on loopback, deploys benchProgram for a user and waits until it is
// Ready. Everything is removed when b ends.
func engineBenchTarget(b *testing.B, rt string) proxybench.Target {
	b.Helper()
	d := testenv.Engine(b, rt)
	dir := b.TempDir()
	h := hosttest.Open(b, dir, rt, d)
	ctx := context.Background()
	api, err := New(h, Options{DataDir: dir, Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api) // 127.0.0.1
	b.Cleanup(func() {
		srv.Close()
		api.Close()
	})
	tok, _, err := h.Tokens().Create(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	p, err := h.Create(ctx, host.CreateRequest{UserID: "bench", Files: source.Files{
		"main.go": benchProgram,
		"go.mod":  "module example.com/bench\n\ngo 1.25\n\nrequire github.com/hershyorg/hershy/hersh v0.0.0\n",
	}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := h.Delete(ctx, p.ID); err != nil {
			b.Errorf("deleting the benchmark's program: %v", err)
		}
	})
	if _, err := h.Start(ctx, p.ID); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		r, err := h.Get(ctx, p.ID)
		if err != nil {
			b.Fatal(err)
		}
		if r.State == lifecycle.Ready {
			p = r
			break
		}
		if (r.State == lifecycle.Error && r.NextRestartAt.IsZero()) || time.Now().After(deadline) {
			b.Fatalf("the benchmark's program did not become Ready: %s (%s)", r.State, r.ErrorMsg)
		}
	}
	cid := p.ContainerID
	return proxybench.Target{
		API: srv.URL, Token: tok, ProgramID: p.ID,
		Dial: func(ctx context.Context) (net.Conn, error) {
			return d.DialContext(ctx, cid, "127.0.0.1:8080")
		},
	}
}

// bareForwarder serves, on 127.0.0.1, /healthz and a forward of
// /programs/{id}/proxy/{path...} to the program that dial reaches, with a
// plain keep-alive transport and nothing else; it returns its URL.
func bareForwarder(b *testing.B, dial func(context.Context) (net.Conn, error)) string {
	tr := &http.Transport{
		DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		MaxIdleConnsPerHost: maxIdlePerProgram,
		DisableCompression:  true,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"status":"ok"}`+"\n")
			return
		}
		_, path, ok := strings.Cut(r.URL.Path, "/proxy/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://program/"+path, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	b.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return srv.URL
}
