package bench

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/hershyorg/hershy/internal/api/proxybench"
)

// proxyFigures: GET /watcher/status of a Ready program through the Host's
// proxy, against the same request sent straight into the container's
// network namespace (the proxy's own hop) and the Host's /healthz (the
// hop to the Host), interleaved; and throughput at 16 clients, proxied
// against direct (package proxybench).
func (r *runner) proxyFigures(ctx context.Context, h *hostProc) error {
	t := newTracker(ctx, h.admin)
	defer t.close()
	p, err := deployProgram(ctx, h, t, benchUser, 1, 0)
	if err != nil {
		return err
	}
	o := proxybench.Options{}
	if r.o.Rounds < 10 { // a smoke run: every figure, briefly
		o = proxybench.Options{Requests: 100 * r.o.Rounds, Rounds: 2 * r.o.Rounds}
	}
	res, err := proxybench.Run(ctx, proxybench.Target{
		API: h.url(), Token: h.admin.Token, ProgramID: p.ProgramID,
		Dial: func(ctx context.Context) (net.Conn, error) {
			return r.engine.DialContext(ctx, p.ContainerID, "127.0.0.1:8080")
		},
	}, o)
	if err != nil {
		return err
	}
	r.rep.add(Figure{
		Name: "proxied GET /watcher/status, c=1 p50, minus (direct into the netns p50 + Host /healthz p50)", Runtime: r.rt,
		Value: fmt.Sprintf("%+.0f µs", float64(res.Overhead)/float64(time.Microsecond)), Target: "≤ +100 µs", Met: res.Overhead <= 100*time.Microsecond,
		Note: fmt.Sprintf("p50 proxied %s, direct %s, healthz %s", ms(res.ProxiedP50), ms(res.DirectP50), ms(res.HealthzP50)),
	})
	r.rep.add(Figure{
		Name: fmt.Sprintf("proxied throughput at c=%d, vs direct into the netns", res.Concurrency), Runtime: r.rt,
		Value: fmt.Sprintf("%.0f req/s", res.ProxiedRPS), Baseline: fmt.Sprintf("%.0f req/s", res.DirectRPS),
		Ratio: res.Ratio, Target: "≥ 0.6×", Met: res.Ratio >= 0.6,
		Note: "the ratio is the median of rounds run back to back",
	})
	return nil
}
