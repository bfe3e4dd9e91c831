package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/hershyorg/hershy/internal/testenv"
)

// TestBenchSmoke runs `hershy bench --smoke` as an operator would, so the
// benchmark command cannot rot: every figure must be measured and land in
// the report. Its timings are not checked (a smoke run is one round on a
// busy machine).
func TestBenchSmoke(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt string) {
		testenv.Engine(t, rt)
		cmd := exec.Command(hershyBin, "bench", "--smoke", "--runtime", rt, "--go-shared-cache", testenv.GoCaches(t).SharedCacheDir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("hershy bench: %v\n%s", err, stderr.String())
		}
		report := string(out)
		for _, figure := range []string{
			"start of a built program → Ready",
			"`hershy deploy` of a source built before: Ready → the command returns",
			"image step of a Go-source deploy, vs the same import by hand",
			"warm deploy of changed source → Ready, vs go build + import + run by hand",
			"proxied GET /watcher/status, c=1 p50",
			"proxied throughput at c=16, vs direct into the netns",
			"3 programs started at once → all Ready",
			"memory per running program",
			"Host RSS with 3 programs running",
			"GET /programs (all 3) p99",
			"SIGKILL the Host with 3 programs running → all re-adopted",
		} {
			if !strings.Contains(report, "\n| "+figure) {
				t.Errorf("the report has no figure %q:\n%s", figure, report)
			}
		}
		// The start-many figure says where its time went on each side.
		if !strings.Contains(report, "CPU used meanwhile: Host ") || !strings.Contains(report, "against bench ") {
			t.Errorf("the start-many figure has no CPU split:\n%s", report)
		}
		if t.Failed() {
			t.Logf("progress:\n%s", stderr.String())
		}
	})
}
