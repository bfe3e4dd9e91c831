package host_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

// TestProxyTargetAgreesWithWhatSubscribersHear: a subscriber that hears a
// program became Ready finds ProxyTarget naming its container, and one
// that hears it left Ready finds it no longer named. `hershy bench`'s
// proxy step, which proxies as soon as the event stream says Ready, was
// refused "not ready (state Starting)" while the supervisor showed a
// change only after telling the subscribers.
func TestProxyTargetAgreesWithWhatSubscribersHear(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFakeEngine(t, nil, fake.Hooks{})
		h := d.Open(t, t.TempDir())
		ctx := context.Background()
		id := createProgram(t, h, dockerfileProgram("alice", "1"))
		var (
			mu    sync.Mutex
			wrong []string
			heard int
		)
		cancel := h.Subscribe(func(c host.Change) {
			if c.ProgramID != id || c.Deleted || c.Build != nil || c.Prev.State == c.Next.State {
				return
			}
			pt, err := h.ProxyTarget(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			heard++
			ready := c.Next.State == lifecycle.Ready
			if err != nil || pt.State != c.Next.State || (pt.ContainerID != "") != ready || (ready && pt.ContainerID != c.Next.ContainerID) {
				wrong = append(wrong, fmt.Sprintf("heard %s, ProxyTarget %+v (%v)", c.Next.State, pt, err))
			}
		})
		defer cancel()
		startProgram(t, h, id)
		settle(t, h, id, lifecycle.Ready)
		if _, err := h.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
		settle(t, h, id, lifecycle.Stopped)
		mu.Lock()
		defer mu.Unlock()
		if heard < 4 || len(wrong) > 0 {
			t.Fatalf("heard %d changes; ProxyTarget disagreed with %v", heard, wrong)
		}
	})
}
