package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/testenv"
)

// TestStateMove moves a program's /state to another program with the
// CLI, as an operator moves one between Hosts: `hershy state export` of a
// running simple-counter (stopped for the copy and started again), then
// `hershy state import` into a second, stopped program, whose counter
// goes on from there. An import into a running program is refused.
func TestStateMove(t *testing.T) { forEachRuntime(t, testStateMove) }

func testStateMove(t *testing.T, rt string) {
	h := startHost(t, rt)
	s := &suite{h: h, alice: h.user("alice")}
	dir := testenv.WriteFiles(t, readSource(t, filepath.Join(examplesDir, "simple-counter")))
	must := func(args ...string) string {
		t.Helper()
		out, _ := h.mustCLI(s.alice.token, args...)
		return out
	}
	src := &program{t: t, h: h, c: s.alice, name: "source", id: field(must("deploy", dir), "Program")}
	src.waitState("Ready", 3*time.Minute)
	src.waitLog(time.Time{}, "counter: 5", time.Minute, func(line string) bool { return strings.Contains(line, "counter: 5") })

	archive := filepath.Join(t.TempDir(), "state.tar.gz")
	out := must("state", "export", src.id)
	if err := os.WriteFile(archive, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	if p := src.waitState("Ready", 2*time.Minute); p.State != "Ready" {
		t.Fatalf("the exported program is %s, want it started again", p.State)
	}

	dst := &program{t: t, h: h, c: s.alice, name: "destination", id: field(must("deploy", "--no-start", dir), "Program")}
	if _, errOut, err := h.cli(s.alice.token, "state", "import", src.id, archive); err == nil || !strings.Contains(errOut, "stop it") {
		t.Errorf("an import into a running program: %v %s", err, errOut)
	}
	if got := must("state", "import", dst.id, archive); !strings.Contains(got, "/state imported") {
		t.Errorf("hershy state import said %q", got)
	}
	must("start", dst.id)
	dst.waitState("Ready", 3*time.Minute)
	// A fresh program counts from 1; this one goes on from the export (5 or more).
	if n := numberAfter(t, dst.ask("status", "status: counter is"), "counter is "); n < 5 {
		t.Errorf("the imported program's counter is %d: want it to go on from the export (at least 5)", n)
	}
}
