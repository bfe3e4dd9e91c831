package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
)

// BenchmarkListPrograms measures GET /programs listing 1,000 programs (the
// whole answer, as a dashboard asks for it), against GET /healthz in the
// same loop, on the fake engine: what the handler itself costs (the
// Host's memory, the views, the JSON), without the network. It reports
// both p99s and their ratio; hershy bench measures the same over a real
// Host's loopback socket.
//
//	go test ./internal/api -run '^$' -bench ListPrograms -benchtime 300x
func BenchmarkListPrograms(b *testing.B) {
	const n = 1000
	d := hosttest.NewFake(b, fake.Options{})
	dir := b.TempDir()
	h := d.Open(b, dir, func(o *host.Options) { o.Quotas.MaxPrograms = n })
	ctx := context.Background()
	for i := range n {
		req := host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(1)}
		if _, err := h.Create(ctx, req); err != nil {
			b.Fatalf("program %d: %v", i, err)
		}
	}
	tok, _, _, err := h.Tokens().EnsureAdmin(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(h, Options{DataDir: dir, Version: "bench", ProxyBase: "http://127.0.0.1:1"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	get := func(path string, auth bool) time.Duration {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if auth {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		w := httptest.NewRecorder()
		t0 := time.Now()
		srv.ServeHTTP(w, r)
		d := time.Since(t0)
		if w.Code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, w.Code, w.Body.String())
		}
		return d
	}
	if got := get("/programs?limit=1000", true); got <= 0 {
		b.Fatal("no time")
	}
	var list, health []time.Duration
	b.ResetTimer()
	for b.Loop() {
		list = append(list, get("/programs?limit=1000", true))
		health = append(health, get("/healthz", false))
	}
	b.StopTimer()
	p99 := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[min(len(ds)-1, len(ds)*99/100)]
	}
	lp, hp := p99(list), p99(health)
	b.ReportMetric(float64(lp)/1e6, "list-p99-ms")
	b.ReportMetric(float64(hp)/1e6, "healthz-p99-ms")
	b.ReportMetric(float64(lp)/float64(hp), "ratio")
	b.Log(fmt.Sprintf("%d programs: list p99 %v, healthz p99 %v", n, lp, hp))
}
