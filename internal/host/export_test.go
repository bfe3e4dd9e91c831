package host

import (
	"context"
	"net/http"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/stats"
	"github.com/hershyorg/hershy/internal/store"
)

// What the package's external tests (package host_test, which open Hosts
// through package hosttest) need of its insides.

// ImageTag names the image of a build.
func ImageTag(buildID string) string { return imageTag(buildID) }

// Supervised is the program as its supervisor holds it now: Waiting counts
// the effects in flight, which the store does not keep.
func (h *Host) Supervised(id string) (lifecycle.Program, error) {
	s, err := h.sup(id)
	if err != nil {
		return lifecycle.Program{}, err
	}
	return s.Program(), nil
}

// ProgramDir is the program's folder in the data directory.
func (h *Host) ProgramDir(id string) string { return h.programDir(id) }

// StateLimit is the cap of the program's /state.
func (h *Host) StateLimit(row store.Program) int64 { return h.stateLimit(row) }

// Spec is the container spec the Host asks for to run row on image.
func (h *Host) Spec(row store.Program, image string) driver.ContainerSpec { return h.spec(row, image) }

// StoreList is the store's answer to List's query.
func (h *Host) StoreList(ctx context.Context, f store.ProgramFilter) ([]store.Program, int, error) {
	return h.store.ListPrograms(ctx, f)
}

// UsageFresh is how old a listed /state usage may be.
const UsageFresh = usageFresh

// AgeUsage makes the program's remembered /state usage older by d.
func (h *Host) AgeUsage(id string, d time.Duration) {
	h.usageMu.Lock()
	defer h.usageMu.Unlock()
	c := h.usage[id]
	c.at = c.at.Add(-d)
	h.usage[id] = c
}

// UsageKept reports whether a /state usage is remembered for the program.
func (h *Host) UsageKept(id string) bool {
	h.usageMu.Lock()
	defer h.usageMu.Unlock()
	_, ok := h.usage[id]
	return ok
}

// StoredStats is every sample of resolution r the store keeps for the
// program, whatever the policy's window.
func (h *Host) StoredStats(ctx context.Context, id string, r stats.Resolution) ([]stats.Sample, error) {
	return h.store.ListStats(ctx, id, r, time.Time{})
}

// SetAlertTransport sends the Host's webhook deliveries through rt (an
// in-memory receiver), in place of the network.
func (h *Host) SetAlertTransport(rt http.RoundTripper) { h.alerts.sender.Client.Transport = rt }
