package host_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
)

// TestLegacyBuildIDMigrated: a program stored by a Host whose build ids
// did not include the owner gets an owner-scoped id when the Host opens,
// and builds and runs under it.
func TestLegacyBuildIDMigrated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := hosttest.NewFake(t, fake.Options{})
		dir := t.TempDir()
		ctx := context.Background()
		files := hosttest.CounterSource(0)
		h := f.Open(t, dir)
		id := createProgram(t, h, host.CreateRequest{UserID: "alice", Files: files})
		hosttest.Close(t, h)

		// What a first-generation Host would have stored.
		legacy := source.LegacyBuildID("", files)
		st, err := store.Open(filepath.Join(dir, "hershy.db"))
		if err != nil {
			t.Fatal(err)
		}
		row, err := st.GetProgram(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		row.BuildID = legacy
		if _, err := st.UpdateProgram(ctx, row); err != nil {
			t.Fatal(err)
		}
		st.Close()

		h = f.Open(t, dir)
		if got, want := stateOf(t, h, id).BuildID, source.BuildID("alice", "", files); got != want {
			t.Fatalf("build id %s after the migration, want %s (was %s)", got, want, legacy)
		}
		startProgram(t, h, id)
		settle(t, h, id, lifecycle.Ready)
		if err := h.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	})
}

// TestBuildRechecksDockerfile: a Dockerfile stored by an older Host, whose
// checks let it build on another user's image, is refused when it would be
// built (the engine's own build would have taken bob's image).
func TestBuildRechecksDockerfile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The programs here have no command to run: they exit at once.
		f := hosttest.NewFake(t, fake.Options{Program: fake.Script{Exit: true}.Program()})
		dir := t.TempDir()
		ctx := context.Background()
		h := f.Open(t, dir)
		victim, err := h.Create(ctx, host.CreateRequest{UserID: "bob", Dockerfile: "FROM scratch\nCOPY secret.txt /secret.txt\n", Files: source.Files{"secret.txt": "bob's\n"}})
		if err != nil {
			t.Fatal(err)
		}
		startProgram(t, h, victim.ID)
		settle(t, h, victim.ID, lifecycle.Stopped)
		if !imageExists(t, f, host.ImageTag(victim.BuildID)) {
			t.Fatal("bob's image was not built")
		}
		p, err := h.Create(ctx, host.CreateRequest{UserID: "alice", Dockerfile: "FROM scratch\n", Files: source.Files{"a.txt": "a\n"}})
		if err != nil {
			t.Fatal(err)
		}
		hosttest.Close(t, h)

		// What the older Host stored for alice: bob's image as her base.
		stolen := "FROM " + host.ImageTag(victim.BuildID) + "\n"
		files := source.Files{"a.txt": "a\n"}
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

		h = f.Open(t, dir)
		startProgram(t, h, p.ID)
		if got := settle(t, h, p.ID, lifecycle.Error); !strings.Contains(got.ErrorMsg, "no program of yours") {
			t.Fatalf("error_msg %q, want the ownership rule's refusal", got.ErrorMsg)
		}
		if imageExists(t, f, host.ImageTag(row.BuildID)) {
			t.Fatal("alice's image was built on bob's")
		}
		for _, id := range []string{p.ID, victim.ID} {
			if err := h.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestSecretsCapped: a program keeps at most MaxSecrets secrets; without
// the cap a user could fill the Host's disk 32 KiB at a time.
func TestSecretsCapped(t *testing.T) {
	h, _ := hosttest.OpenFake(t)
	ctx := context.Background()
	id := createProgram(t, h, host.CreateRequest{UserID: "alice", Dockerfile: "FROM scratch\n", Files: source.Files{"a": "a"}})
	for i := range host.MaxSecrets {
		if _, err := h.SetSecret(ctx, id, "s"+strconv.Itoa(i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.SetSecret(ctx, id, "one-more", []byte("x")); !errors.Is(err, host.ErrQuota) {
		t.Fatalf("secret %d: %v, want ErrQuota", host.MaxSecrets+1, err)
	}
	if _, err := h.SetSecret(ctx, id, "s0", []byte("new value")); err != nil {
		t.Fatalf("replacing a secret at the cap: %v", err)
	}
	if err := h.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
}
