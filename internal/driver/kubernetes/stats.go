package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
)

// summaryTTL is how long one node's summary answers for all its Pods: the
// kubelet itself refreshes its figures every few seconds, and the Host
// reads every program's stats in one sweep.
const summaryTTL = time.Second

// nodeSummary is one node's kubelet summary, as far as the driver reads it.
type nodeSummary struct {
	at   time.Time
	pods map[string]podSummary // by namespace/name
}

// podSummary is the part of the kubelet's stats/summary the driver reads
// (its JSON names; the types are in k8s.io/kubelet, not worth a module).
type podSummary struct {
	PodRef struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		UID       string `json:"uid"`
	} `json:"podRef"`
	CPU *struct {
		UsageCoreNanoSeconds *uint64 `json:"usageCoreNanoSeconds"`
	} `json:"cpu"`
	Memory *struct {
		WorkingSetBytes *uint64 `json:"workingSetBytes"`
	} `json:"memory"`
	Network *struct {
		Interfaces []struct {
			Name    string  `json:"name"`
			RxBytes *uint64 `json:"rxBytes"`
			TxBytes *uint64 `json:"txBytes"`
		} `json:"interfaces"`
	} `json:"network"`
	ProcessStats *struct {
		ProcessCount *uint64 `json:"process_count"`
	} `json:"process_stats"`
}

// Stats reads the program's use from its node's kubelet summary: the
// Pod's CPU time, working set, tasks and network bytes (the Pod's one
// interface). A Pod the kubelet has not measured yet reads as zero use.
func (d *Driver) Stats(ctx context.Context, id string) (driver.Stats, error) {
	p, err := d.get(ctx, id)
	if err != nil {
		return driver.Stats{}, err
	}
	if s := stateOf(p); !s.running || p.DeletionTimestamp != nil {
		return driver.Stats{}, fmt.Errorf("kubernetes: stats of %s: %w", id, driver.ErrNotRunning)
	}
	sum, err := d.nodeSummary(ctx, p.Spec.NodeName)
	if err != nil {
		return driver.Stats{}, err
	}
	st := driver.Stats{At: sum.at}
	if q, ok := p.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]; ok {
		st.MemoryLimitBytes = q.Value()
	}
	ps, ok := sum.pods[p.Namespace+"/"+p.Name]
	if !ok || ps.PodRef.UID != string(p.UID) {
		return st, nil
	}
	if ps.CPU != nil && ps.CPU.UsageCoreNanoSeconds != nil {
		st.CPUNanos = int64(*ps.CPU.UsageCoreNanoSeconds)
	}
	if ps.Memory != nil && ps.Memory.WorkingSetBytes != nil {
		st.MemoryBytes = int64(*ps.Memory.WorkingSetBytes)
	}
	if ps.ProcessStats != nil && ps.ProcessStats.ProcessCount != nil {
		st.Pids = int64(*ps.ProcessStats.ProcessCount)
	}
	if ps.Network != nil {
		for _, i := range ps.Network.Interfaces {
			if i.Name == "lo" {
				continue
			}
			if i.RxBytes != nil {
				st.NetRxBytes += int64(*i.RxBytes)
			}
			if i.TxBytes != nil {
				st.NetTxBytes += int64(*i.TxBytes)
			}
		}
	}
	return st, nil
}

// nodeSummary returns node's summary, read at most once per summaryTTL.
func (d *Driver) nodeSummary(ctx context.Context, node string) (*nodeSummary, error) {
	d.statsMu.Lock()
	defer d.statsMu.Unlock()
	if s := d.summary[node]; s != nil && time.Since(s.at) < summaryTTL {
		return s, nil
	}
	body, err := d.readSummary(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: stats of node %s: %w", node, err)
	}
	var raw struct {
		Pods []podSummary `json:"pods"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("kubernetes: stats of node %s: %w", node, err)
	}
	s := &nodeSummary{at: time.Now(), pods: map[string]podSummary{}}
	for _, p := range raw.Pods {
		if p.PodRef.Namespace == d.ns {
			s.pods[p.PodRef.Namespace+"/"+p.PodRef.Name] = p
		}
	}
	d.summary[node] = s
	return s, nil
}

// readSummary asks the API server's node proxy for the kubelet's summary,
// or, with Options.DirectKubelet, the kubelet itself at the node's name.
func (d *Driver) readSummary(ctx context.Context, node string) ([]byte, error) {
	if !d.opts.DirectKubelet {
		return d.cs.CoreV1().RESTClient().Get().Resource("nodes").Name(node).SubResource("proxy").Suffix("stats/summary").Do(ctx).Raw()
	}
	d.kubeletOnce.Do(func() {
		cfg := rest.CopyConfig(d.cfg)
		cfg.Host = ""
		d.kubelet, d.kubeletErr = rest.HTTPClientFor(cfg)
	})
	if d.kubeletErr != nil {
		return nil, d.kubeletErr
	}
	u := url.URL{Scheme: "https", Host: node + ":10250", Path: "/stats/summary"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.kubelet.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the kubelet answered %s: %.200s", resp.Status, body)
	}
	return body, nil
}
