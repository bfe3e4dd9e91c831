package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/testenv"
)

// TestReleases takes simple-counter through releases with the CLI, as a
// user does: deploying the source it runs again restarts nothing (and says
// so) unless --force; a changed source is release 2; `hershy rollback`
// puts it back on release 1's build as release 3, and the counter goes on
// from /state.
func TestReleases(t *testing.T) { forEachRuntime(t, testReleases) }

func testReleases(t *testing.T, rt string) {
	h := startHost(t, rt)
	s := &suite{h: h, alice: h.user("alice")}
	dir := testenv.WriteFiles(t, readSource(t, filepath.Join(examplesDir, "simple-counter")))
	cli := func(args ...string) (string, string) {
		t.Helper()
		return h.mustCLI(s.alice.token, args...)
	}
	out, _ := cli("deploy", dir)
	p := &program{t: t, h: h, c: s.alice, name: "simple-counter", id: field(out, "Program")}
	first := p.waitState("Ready", 3*time.Minute)
	counter := func() int {
		t.Helper()
		return numberAfter(t, p.ask("status", "status: counter is"), "counter is ")
	}

	_, errOut := cli("deploy", "--program", p.id, dir)
	if !strings.Contains(errOut, "Unchanged") {
		t.Errorf("deploying the running source again said:\n%s", errOut)
	}
	if got := p.get(); got.ContainerID != first.ContainerID || got.RestartCount != first.RestartCount {
		t.Errorf("deploying the running source again restarted it: container %s -> %s", first.ContainerID, got.ContainerID)
	}
	cli("deploy", "--force", "--program", p.id, dir)
	if got := p.waitState("Ready", 2*time.Minute); got.ContainerID == first.ContainerID {
		t.Error("--force did not restart the program")
	}

	main := filepath.Join(dir, "main.go")
	b, err := os.ReadFile(main)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(main, append(b, []byte("\n// release 2\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	cli("deploy", "--program", p.id, dir)
	second := p.waitState("Ready", 3*time.Minute)
	if second.BuildID == first.BuildID {
		t.Fatal("a changed source kept its build")
	}
	before := counter()

	out, _ = cli("releases", p.id)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "2 *") || !strings.Contains(lines[1], second.BuildID) ||
		!strings.HasPrefix(lines[2], "1 ") || !strings.Contains(lines[2], first.BuildID) || !strings.Contains(lines[2], "alice") {
		t.Fatalf("hershy releases:\n%s", out)
	}
	out, _ = cli("rollback", p.id)
	if !strings.Contains(out, "release 3 (rollback to 1)") || !strings.Contains(out, first.BuildID) {
		t.Errorf("hershy rollback said: %s", out)
	}
	if got := p.waitState("Ready", 2*time.Minute); got.BuildID != first.BuildID {
		t.Errorf("after the rollback the build is %s, want release 1's %s", got.BuildID, first.BuildID)
	}
	if after := counter(); after < before {
		t.Errorf("the counter went back from %d to %d across the rollback: /state was not kept", before, after)
	}
}
