package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
	"github.com/hershyorg/hershy/internal/testenv"
)

// TestLegacyBuildIDMigrated: a program stored by a Host whose build ids
// did not include the owner gets an owner-scoped id when the Host opens,
// and builds and runs under it.
func TestLegacyBuildIDMigrated(t *testing.T) {
	d := testenv.Engine(t, driver.RuntimeRunc)
	dir := t.TempDir()
	ctx := context.Background()
	files := counterProgram(t)
	h := openHost(t, dir, driver.RuntimeRunc, d)
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

	h = openHost(t, dir, driver.RuntimeRunc, d)
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
// checks let it build on another user's image, is refused when it would be
// built (the engine's own build would have taken bob's image).
func TestBuildRechecksDockerfile(t *testing.T) {
	d := testenv.Engine(t, driver.RuntimeRunc)
	dir := t.TempDir()
	ctx := context.Background()
	h := openHost(t, dir, driver.RuntimeRunc, d)
	// Nonces: images are named by build id on the whole engine, and an
	// image left by an earlier run would be reused.
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	victim, err := h.Create(ctx, CreateRequest{UserID: "bob", Dockerfile: "FROM scratch\nCOPY secret.txt /secret.txt\n", Files: source.Files{"secret.txt": "bob's\n", "nonce": nonce}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Start(ctx, victim.ID); err != nil {
		t.Fatal(err)
	}
	// Bob's image is built (the program itself has no command to run).
	waitState(t, h, victim.ID, lifecycle.Error, time.Minute)
	if ok, _ := d.ImageExists(ctx, imageTag(victim.BuildID)); !ok {
		t.Fatal("bob's image was not built")
	}
	p, err := h.Create(ctx, CreateRequest{UserID: "alice", Dockerfile: "FROM scratch\n", Files: source.Files{"a.txt": "a\n", "nonce": nonce}})
	if err != nil {
		t.Fatal(err)
	}
	h.Close()

	// What the older Host stored for alice: bob's image as her base.
	stolen := "FROM " + imageTag(victim.BuildID) + "\n"
	files := source.Files{"a.txt": "a\n", "nonce": nonce}
	src := filepath.Join(dir, "programs", p.ID, "src")
	if err := os.WriteFile(filepath.Join(src, source.DockerfileName), []byte(stolen), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "hershy.db"))
	if err != nil {
		t.Fatal(err)
	}
	row, _ := st.GetProgram(ctx, p.ID)
	row.BuildID = source.BuildID("alice", stolen, files)
	if _, err := st.UpdateProgram(ctx, row); err != nil {
		t.Fatal(err)
	}
	st.Close()

	h = openHost(t, dir, driver.RuntimeRunc, d)
	defer h.Close()
	if _, err := h.Start(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	got := waitState(t, h, p.ID, lifecycle.Error, time.Minute)
	if !strings.Contains(got.ErrorMsg, "no program of yours") {
		t.Fatalf("error_msg %q, want the ownership rule's refusal", got.ErrorMsg)
	}
	if ok, _ := d.ImageExists(ctx, imageTag(row.BuildID)); ok {
		t.Fatal("alice's image was built on bob's")
	}
	for _, id := range []string{p.ID, victim.ID} {
		if err := h.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSecretsCapped: a program keeps at most MaxSecrets secrets; without
// the cap a user could fill the Host's disk 32 KiB at a time.
func TestSecretsCapped(t *testing.T) {
	d := testenv.Engine(t, driver.RuntimeRunc)
	ctx := context.Background()
	h := openHost(t, t.TempDir(), driver.RuntimeRunc, d)
	defer h.Close()
	p, err := h.Create(ctx, CreateRequest{UserID: "alice", Dockerfile: "FROM scratch\n", Files: source.Files{"a": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxSecrets {
		if _, err := h.SetSecret(ctx, p.ID, "s"+strconv.Itoa(i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.SetSecret(ctx, p.ID, "one-more", []byte("x")); !errors.Is(err, ErrQuota) {
		t.Fatalf("secret %d: %v, want ErrQuota", MaxSecrets+1, err)
	}
	if _, err := h.SetSecret(ctx, p.ID, "s0", []byte("new value")); err != nil {
		t.Fatalf("replacing a secret at the cap: %v", err)
	}
	if err := h.Delete(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
}
