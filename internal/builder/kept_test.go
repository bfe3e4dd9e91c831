package builder

import (
	"context"
	"encoding/json"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// TestKeptSandbox: a user's builds run in one sandbox kept up between them,
// and see each build's own source; each user has a sandbox of their own,
// with only their caches mounted; a failed build ends the sandbox; an idle
// one is removed; Close removes the rest (newTestBuilder checks that none
// is left).
func TestKeptSandbox(t *testing.T) {
	for _, rt := range []string{driver.RuntimeRunc, driver.RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) {
			b, _ := newTestBuilder(t, Options{Runtime: rt})
			ctx := context.Background()
			build := func(owner, word string) (sandbox string) {
				t.Helper()
				f := helloProgram("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"" + word + "\") }\n")
				bin, log, err := compileAs(ctx, t, b, owner, f)
				if err != nil {
					t.Fatalf("%s: %v\n%s", owner, err, log)
				}
				if out, err := exec.Command(bin).Output(); err != nil || strings.TrimSpace(string(out)) != word {
					t.Fatalf("%s's program printed %q, %v; want %q (the sandbox built an old source?)", owner, out, err, word)
				}
				if !strings.Contains(log, "in your build sandbox under "+rt) {
					t.Errorf("log does not say the kept sandbox:\n%s", log)
				}
				return b.keptSandboxes()[owner]
			}
			first := build("alice", "one")
			if first == "" {
				t.Fatal("alice's sandbox was not kept up")
			}
			if again := build("alice", "two"); again != first {
				t.Fatalf("alice's second build ran in %s, not in her kept sandbox %s", again, first)
			}
			bob := build("bob", "three")
			if bob == "" || bob == first {
				t.Fatalf("bob's build ran in %q (alice's is %s)", bob, first)
			}
			// Each sandbox has its owner's caches alone, and its input
			// read-only.
			for owner, id := range map[string]string{"alice": first, "bob": bob} {
				other := map[string]string{"alice": "bob", "bob": "alice"}[owner]
				for _, m := range sandboxMounts(t, id) {
					if strings.Contains(m.Source, filepath.Join("users", other)) || strings.Contains(m.Source, filepath.Join("kept", other)) {
						t.Errorf("%s's sandbox mounts %s's folder %s", owner, other, m.Source)
					}
					if (m.Destination == sbIn || m.Destination == sbShared || m.Destination == sbGoRoot) && m.RW {
						t.Errorf("%s's sandbox has %s writable", owner, m.Destination)
					}
				}
			}
			// A failed build ends the sandbox; the next build gets a new one.
			_, log, err := compile(t, b, helloProgram("package main\n\nfunc main() { undefined() }\n"))
			if err == nil || !strings.Contains(err.Error(), "undefined") {
				t.Fatalf("a broken build: %v\n%s", err, log)
			}
			if id := b.keptSandboxes()["alice"]; id != "" {
				t.Errorf("alice's sandbox %s is still up after a failed build", id)
			}
			if containerExists(t, first) {
				t.Errorf("alice's sandbox %s still exists after a failed build", first)
			}
			if next := build("alice", "four"); next == "" || next == first {
				t.Errorf("after a failed build alice's build ran in %q", next)
			}
		})
	}
}

// TestKeptSandboxIdle: a sandbox without a build for KeepSandbox is
// removed, and the next build starts another.
func TestKeptSandboxIdle(t *testing.T) {
	b, d := newTestBuilder(t, Options{KeepSandbox: 300 * time.Millisecond})
	if _, log, err := compile(t, b, helloFiles()); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	// Not a timing assertion: the sandbox must go, however long it takes.
	deadline := time.Now().Add(time.Minute)
	for len(b.keptSandboxes()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the idle sandbox is still up: %v", b.keptSandboxes())
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.kept.wg.Wait()
	left, err := d.engine.ListContainers(context.Background(), map[string]string{driver.LabelInstance: b.opts.Instance})
	if err != nil || len(left) != 0 {
		t.Fatalf("after the idle time: %v, %v", left, err)
	}
	if _, log, err := compile(t, b, helloFiles()); err != nil || len(b.keptSandboxes()) != 1 {
		t.Fatalf("the build after: %v, kept %v\n%s", err, b.keptSandboxes(), log)
	}
}

// TestTakeKept: a user's kept sandbox serves one build at a time (a second
// build of theirs meanwhile gets a one-shot sandbox), none is kept with
// keeping off or after Close.
func TestTakeKept(t *testing.T) {
	b, err := New(t.TempDir(), &fakeDriver{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sb := b.takeKept("alice")
	if sb == nil {
		t.Fatal("no kept sandbox")
	}
	if b.takeKept("alice") != nil {
		t.Error("alice's busy sandbox was given to a second build")
	}
	if b.takeKept("bob") == nil {
		t.Error("bob got none while alice's is busy")
	}
	b.giveBack(sb)
	if again := b.takeKept("alice"); again != sb {
		t.Errorf("alice's sandbox given back, then %p, want %p", again, sb)
	}
	b.Close()
	if b.takeKept("carol") != nil {
		t.Error("a sandbox kept after Close")
	}
	off, err := New(t.TempDir(), &fakeDriver{}, Options{KeepSandbox: -1})
	if err != nil {
		t.Fatal(err)
	}
	if off.takeKept("alice") != nil {
		t.Error("a sandbox kept with keeping off")
	}
}

type mountInfo struct {
	Source, Destination string
	RW                  bool
}

func sandboxMounts(t *testing.T, id string) []mountInfo {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "-f", "{{json .Mounts}}", id).Output()
	if err != nil {
		t.Fatalf("docker inspect %s: %v", id, err)
	}
	var ms []mountInfo
	if err := json.Unmarshal(out, &ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatalf("sandbox %s has no mounts", id)
	}
	return ms
}

func containerExists(t *testing.T, id string) bool {
	t.Helper()
	return exec.Command("docker", "inspect", id).Run() == nil
}

// workLeft lists the files a build left in the work folder: none, whether
// the build ran in a one-shot sandbox or in a kept one (whose empty folders
// stay while it is up).
func workLeft(t *testing.T, b *Builder) []string {
	t.Helper()
	var left []string
	err := filepath.WalkDir(b.workDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(b.workDir, p)
		kept, _ := filepath.Match(filepath.Join("kept", "*", "*"), rel)
		switch {
		case p == b.workDir || rel == "kept":
		case d.IsDir() && (kept || filepath.Dir(rel) == "kept"):
		default:
			left = append(left, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return left
}
