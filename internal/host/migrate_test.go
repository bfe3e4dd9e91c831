package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/runtime"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
	"github.com/hershyorg/hershy/internal/testenv"
)

// TestLegacyBuildIDMigrated: a program stored by a Host whose build ids
// did not include the owner gets an owner-scoped id when the Host opens,
// and builds and runs under it.
func TestLegacyBuildIDMigrated(t *testing.T) {
	d := testenv.Engine(t, runtime.RuntimeRunc)
	dir := t.TempDir()
	ctx := context.Background()
	files := counterProgram(t)
	h := openHost(t, dir, runtime.RuntimeRunc, d)
	p, err := h.Create(ctx, CreateRequest{UserID: "alice", Files: files})
	if err != nil {
		t.Fatal(err)
	}
	h.Close()

	// What a first-generation Host would have stored.
	legacy := source.LegacyBuildID("", files)
	st, err := store.Open(filepath.Join(dir, "hershy.db"))
	if err != nil {
		t.Fatal(err)
	}
	row, err := st.GetProgram(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	row.BuildID = legacy
	if _, err := st.UpdateProgram(ctx, row); err != nil {
		t.Fatal(err)
	}
	st.Close()

	h = openHost(t, dir, runtime.RuntimeRunc, d)
	defer h.Close()
	got, err := h.Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := source.BuildID("alice", "", files); got.BuildID != want {
		t.Fatalf("build id %s after the migration, want %s (was %s)", got.BuildID, want, legacy)
	}
	if _, err := h.Start(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, h, p.ID, lifecycle.Ready, 3*time.Minute)
	if err := h.Delete(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
}

// TestBuildRechecksDockerfile: a Dockerfile stored by an older Host, whose
// checks let the blank-line bypass through, is refused when it would be
// built, not built.
func TestBuildRechecksDockerfile(t *testing.T) {
	d := testenv.Engine(t, runtime.RuntimeRunc)
	dir := t.TempDir()
	ctx := context.Background()
	h := openHost(t, dir, runtime.RuntimeRunc, d)
	p, err := h.Create(ctx, CreateRequest{UserID: "alice", Dockerfile: "FROM scratch\n", Files: source.Files{"a.txt": "a\n"}})
	if err != nil {
		t.Fatal(err)
	}
	h.Close()

	// What the older Host stored: the bypass, with its build id.
	bypass := "FROM scratch\nCOPY \\\n\n--from=hersh-program-build-0123456789ab0123456789ab /app /victim-app\n"
	files := source.Files{"a.txt": "a\n"}
	src := filepath.Join(dir, "programs", p.ID, "src")
	if err := os.WriteFile(filepath.Join(src, source.DockerfileName), []byte(bypass), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "hershy.db"))
	if err != nil {
		t.Fatal(err)
	}
	row, _ := st.GetProgram(ctx, p.ID)
	row.BuildID = source.BuildID("alice", bypass, files)
	if _, err := st.UpdateProgram(ctx, row); err != nil {
		t.Fatal(err)
	}
	st.Close()

	h = openHost(t, dir, runtime.RuntimeRunc, d)
	defer h.Close()
	if _, err := h.Start(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	got := waitState(t, h, p.ID, lifecycle.Error, time.Minute)
	if !strings.Contains(got.ErrorMsg, "line 2") || !strings.Contains(got.ErrorMsg, "empty line") {
		t.Fatalf("error_msg %q, want the policy's refusal of line 2", got.ErrorMsg)
	}
	if err := h.Delete(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
}
