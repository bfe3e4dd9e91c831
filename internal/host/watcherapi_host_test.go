package host_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

// TestSeedContractProgramBecomesReady: a Go-source program without
// /watcher/ready (testdata/seed), built and run by the Host, becomes Ready
// through the fallback to /watcher/status.
func TestSeedContractProgramBecomesReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := hosttest.OpenFake(t)
		id := createProgram(t, h, host.CreateRequest{UserID: "alice", Files: hosttest.SeedSource()})
		startProgram(t, h, id)
		settle(t, h, id, lifecycle.Ready)
		if st := hosttest.WatcherGet(t, h, id, "/watcher/status"); st["isRunning"] != true {
			t.Fatalf("status %v", st)
		}
		// The probe asked /watcher/ready (404), then /watcher/status.
		all := strings.Join(hosttest.LogLines(t, h, id, ""), "\n")
		ready := strings.Index(all, "seen GET /watcher/ready")
		status := strings.Index(all, "seen GET /watcher/status")
		if ready < 0 || status < ready {
			t.Fatalf("the program's log does not show the probe's fallback:\n%s", all)
		}
		if err := h.Delete(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	})
}
