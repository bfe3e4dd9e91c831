package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/client"
)

// BenchmarkWatcherAPI measures one GET /watcher/status of a sandboxed
// program, per runtime, two ways in the same run:
//
//   - proxy: what a user does: HTTP to `hershy serve` on 127.0.0.1, bearer
//     token check, ownership lookup, and the Host's reverse proxy into the
//     program (keep-alive on both hops);
//   - netns: the baseline, the hop alone: a keep-alive HTTP client whose
//     connections are dialed inside the container's network namespace by
//     the same driver the Host uses.
//
// The ratio proxy/netns is what the Host's front adds (see BENCHMARKS.md).
//
//	go test -run '^$' -bench WatcherAPI -benchtime 3000x ./e2e
func BenchmarkWatcherAPI(b *testing.B) {
	for _, rt := range []string{"runc", "runsc"} {
		b.Run(rt, func(b *testing.B) {
			h := startHost(b, rt)
			alice := h.user("alice")
			p := h.deploy(b, alice, "probe", client.SourceRequest{SrcFiles: readSource(b, "testdata/probe")})
			cid := p.waitState("Ready", 3*time.Minute).ContainerID

			proxy := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			req, _ := http.NewRequest(http.MethodGet, h.url()+"/programs/"+p.id+"/proxy/watcher/status", nil)
			req.Header.Set("Authorization", "Bearer "+alice.token)
			b.Run("proxy", func(b *testing.B) { benchGet(b, proxy, req) })
			info, _ := http.NewRequest(http.MethodGet, h.url()+"/programs/"+p.id, nil)
			info.Header.Set("Authorization", "Bearer "+alice.token)
			b.Run("api-get", func(b *testing.B) { benchGet(b, proxy, info) })
			health, _ := http.NewRequest(http.MethodGet, h.url()+"/healthz", nil)
			b.Run("healthz", func(b *testing.B) { benchGet(b, proxy, health) })

			netns := &http.Client{Transport: &http.Transport{
				MaxIdleConnsPerHost: 4,
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return h.engine.DialContext(ctx, cid, "127.0.0.1:8080")
				},
			}}
			direct, _ := http.NewRequest(http.MethodGet, "http://program/watcher/status", nil)
			b.Run("netns", func(b *testing.B) { benchGet(b, netns, direct) })
		})
	}
}

func benchGet(b *testing.B, c *http.Client, req *http.Request) {
	get := func() {
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	get() // dial outside the timing
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		get()
	}
}
