package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hershyorg/hershy/internal/testenv"
)

// TestSoak runs a short `hershy soak` as an operator would: the examples
// under load for two minutes, under runc. The command exits non-zero when
// a series kept growing or a program restarted by itself, and its report
// must hold every series. RELIABILITY.md reports a long run.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	testenv.Engine(t, "runc")
	charts := t.TempDir()
	out := filepath.Join(t.TempDir(), "soak.md")
	cmd := exec.Command(hershyBin, "soak", "--runtime", "runc", "--duration", "2m", "--every", "5s",
		"--examples", examplesDir, "--go-shared-cache", testenv.GoCaches(t).SharedCacheDir, "--charts", charts, "--out", out)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	report, _ := os.ReadFile(out)
	if err != nil {
		t.Fatalf("hershy soak: %v\nreport:\n%s\nprogress:\n%s", err, report, stderr.String())
	}
	for _, series := range []string{"Host RSS", "Host goroutines", "Host open files", "programs' memory", "database size", "programs' automatic restarts"} {
		if !strings.Contains(string(report), "\n| "+series+" |") {
			t.Errorf("the report has no series %q", series)
		}
		if _, err := os.Stat(filepath.Join(charts, "soak-"+strings.NewReplacer(" ", "-", "'", "").Replace(strings.ToLower(series))+".svg")); err != nil {
			t.Errorf("no chart of %q: %v", series, err)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", report)
	}
}
