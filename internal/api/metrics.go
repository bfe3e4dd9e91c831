package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

type metrics struct {
	reg          *prometheus.Registry
	handler      http.Handler
	requests     *prometheus.CounterVec
	proxyReqs    *prometheus.CounterVec
	proxyLatency prometheus.Histogram
}

// stateCollector reads programs and builds from the store at scrape time.
type stateCollector struct {
	s        *server
	programs *prometheus.Desc
	restarts *prometheus.Desc
	builds   *prometheus.Desc
	buildDur *prometheus.Desc
	state    *prometheus.Desc
	stateCap *prometheus.Desc
	engineUp *prometheus.Desc
	rtUp     *prometheus.Desc
	answers  *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.programs
	ch <- c.restarts
	ch <- c.builds
	ch <- c.buildDur
	ch <- c.state
	ch <- c.stateCap
	ch <- c.engineUp
	ch <- c.rtUp
	ch <- c.answers
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hl := c.s.h.Health()
	ch <- prometheus.MustNewConstMetric(c.engineUp, prometheus.GaugeValue, up(hl.Engine.OK))
	ch <- prometheus.MustNewConstMetric(c.rtUp, prometheus.GaugeValue, up(hl.Runtime.OK), hl.Runtime.Name)
	rows, _, err := c.s.h.List(ctx, store.ProgramFilter{})
	if err == nil {
		counts := map[lifecycle.State]int{}
		restarts := 0
		for _, r := range rows {
			counts[r.State]++
			restarts += r.RestartCount
			if a, ok := c.s.h.Answering(r.ID); ok && r.State == lifecycle.Ready {
				ch <- prometheus.MustNewConstMetric(c.answers, prometheus.GaugeValue, up(a.Answering), r.ID)
			}
			if u, ok := c.s.h.StateUsage(r); ok {
				ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, float64(u.Used), r.ID)
				ch <- prometheus.MustNewConstMetric(c.stateCap, prometheus.GaugeValue, float64(u.Limit), r.ID)
			}
		}
		for _, st := range lifecycle.States {
			ch <- prometheus.MustNewConstMetric(c.programs, prometheus.GaugeValue, float64(counts[st]), string(st))
		}
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.GaugeValue, float64(restarts))
	}
	builds, err := c.s.h.Builds(ctx)
	if err == nil {
		counts := map[string]int{}
		sums := map[string]float64{}
		for _, b := range builds {
			counts[b.Status]++
			sums[b.Status] += b.Duration.Seconds()
		}
		for st, n := range counts {
			ch <- prometheus.MustNewConstMetric(c.builds, prometheus.GaugeValue, float64(n), st)
			ch <- prometheus.MustNewConstMetric(c.buildDur, prometheus.GaugeValue, sums[st], st)
		}
	}
}

// usageCollector reports each running program's latest resource reading
// (the Host's sampler, every fine step) with a program label. Only the
// programs running at the last round have series: a stopped or deleted
// program's disappear.
type usageCollector struct {
	s                        *server
	cpu, mem, memLimit, pids *prometheus.Desc
	netRx, netTx             *prometheus.Desc
}

func newUsageCollector(s *server) *usageCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"program"}, nil)
	}
	return &usageCollector{
		s:        s,
		cpu:      desc("hershy_program_cpu_seconds_total", "CPU time a program's container has used since it started (user and system, all cores)."),
		mem:      desc("hershy_program_memory_bytes", "A program's memory working set (in use less the inactive file cache)."),
		memLimit: desc("hershy_program_memory_limit_bytes", "A program's memory limit."),
		pids:     desc("hershy_program_pids", "Tasks (processes and threads) in a program's container; under runsc gVisor's own too."),
		netRx:    desc("hershy_program_network_receive_bytes_total", "Bytes a program's container received since it started (loopback excluded)."),
		netTx:    desc("hershy_program_network_transmit_bytes_total", "Bytes a program's container sent since it started (loopback excluded)."),
	}
}

func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.cpu, c.mem, c.memLimit, c.pids, c.netRx, c.netTx} {
		ch <- d
	}
}

func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	for _, u := range c.s.h.LatestUsage() {
		id, st := u.ProgramID, u.Usage
		ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, float64(st.CPUNanos)/1e9, id)
		ch <- prometheus.MustNewConstMetric(c.mem, prometheus.GaugeValue, float64(st.MemoryBytes), id)
		ch <- prometheus.MustNewConstMetric(c.memLimit, prometheus.GaugeValue, float64(st.MemoryLimitBytes), id)
		ch <- prometheus.MustNewConstMetric(c.pids, prometheus.GaugeValue, float64(st.Pids), id)
		ch <- prometheus.MustNewConstMetric(c.netRx, prometheus.CounterValue, float64(st.NetRxBytes), id)
		ch <- prometheus.MustNewConstMetric(c.netTx, prometheus.CounterValue, float64(st.NetTxBytes), id)
	}
}

func newMetrics(s *server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hershy_http_requests_total", Help: "API requests by route and status code.",
	}, []string{"route", "code"})
	m.proxyReqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hershy_proxy_requests_total", Help: "Requests proxied to WatcherAPIs by status code.",
	}, []string{"code"})
	m.proxyLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "hershy_proxy_request_duration_seconds", Help: "Latency of proxied WatcherAPI requests.",
		Buckets: prometheus.DefBuckets,
	})
	m.reg.MustRegister(m.requests, m.proxyReqs, m.proxyLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{
			s:        s,
			programs: prometheus.NewDesc("hershy_programs", "Programs by state.", []string{"state"}, nil),
			restarts: prometheus.NewDesc("hershy_program_restarts", "Sum of the programs' current restart counts.", nil, nil),
			builds:   prometheus.NewDesc("hershy_builds", "Recorded builds by status.", []string{"status"}, nil),
			buildDur: prometheus.NewDesc("hershy_build_duration_seconds_sum", "Total duration of recorded builds by status.", []string{"status"}, nil),
			state:    prometheus.NewDesc("hershy_program_state_bytes", "Bytes a program stores in /state.", []string{"program"}, nil),
			stateCap: prometheus.NewDesc("hershy_program_state_limit_bytes", "Size cap of a program's /state.", []string{"program"}, nil),
			engineUp: prometheus.NewDesc("hershy_engine_up", engineUpHelp, nil, nil),
			rtUp:     prometheus.NewDesc("hershy_runtime_up", runtimeUpHelp, []string{"runtime"}, nil),
			answers:  prometheus.NewDesc("hershy_program_watcher_answering", "1 when a Ready program's WatcherAPI answered the Host's last check.", []string{"program"}, nil),
		},
		newUsageCollector(s))
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

func (m *metrics) observeRequest(rt route, code int, _ time.Duration) {
	m.requests.WithLabelValues(rt.pattern, strconv.Itoa(code)).Inc()
}

func (m *metrics) observeProxy(code int, d time.Duration) {
	m.proxyReqs.WithLabelValues(strconv.Itoa(code)).Inc()
	m.proxyLatency.Observe(d.Seconds())
}

func (s *server) serveMetrics(w http.ResponseWriter, r *http.Request, _ principal) {
	s.metrics.handler.ServeHTTP(w, r)
}

func up(ok bool) float64 {
	if ok {
		return 1
	}
	return 0
}
