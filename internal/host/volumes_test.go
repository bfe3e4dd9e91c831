package host_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

// TestEngineVolumes: on an engine that keeps volumes (Kubernetes), a
// program's /state is the engine's volume of its state_bytes and its
// secrets the engine's secret, written at each start; no Host folder is
// mounted; state_bytes grows the volume and may not shrink it; delete
// removes both.
func TestEngineVolumes(t *testing.T) {
	synctest.Test(t, testEngineVolumes)
}

func testEngineVolumes(t *testing.T) {
	f := hosttest.NewFake(t, fake.Options{})
	h, v := f.OpenVolumes(t, t.TempDir())
	ctx := context.Background()
	id := createProgram(t, h, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(0), Options: host.ProgramOptions{StateBytes: 20 << 20}})
	if _, err := h.SetSecret(ctx, id, "api_key", []byte("one")); err != nil {
		t.Fatal(err)
	}
	startProgram(t, h, id)
	settle(t, h, id, lifecycle.Ready)

	state, secrets := "hersh-state-"+id, "hersh-secrets-"+id
	if vol, ok := v.Volume(state); !ok || vol.Bytes != 20<<20 || vol.Labels[driver.LabelProgram] != id {
		t.Errorf("volume %s: %+v %v, want 20 MiB labelled with the program", state, vol, ok)
	}
	if files, ok := v.Secret(secrets); !ok || string(files["api_key"]) != "one" || len(files) != 1 {
		t.Errorf("secret %s: %v %v", secrets, files, ok)
	}
	spec, _ := f.Spec(id)
	kinds := map[string]driver.Mount{}
	for _, m := range spec.Mounts {
		kinds[m.Target] = m
	}
	if m := kinds["/state"]; m.Kind != driver.MountClaim || m.Source != state {
		t.Errorf("/state mounted as %+v", m)
	}
	if m := kinds[host.SecretsMountPath]; m.Kind != driver.MountSecret || m.Source != secrets || !m.ReadOnly {
		t.Errorf("secrets mounted as %+v", m)
	}
	if len(spec.Mounts) != 2 {
		t.Errorf("mounts %+v: a Host folder besides the volumes", spec.Mounts)
	}

	// A secret changed is in the engine's secret at the next start.
	if _, err := h.SetSecret(ctx, id, "api_key", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Restart(ctx, id); err != nil {
		t.Fatal(err)
	}
	settle(t, h, id, lifecycle.Ready)
	if files, _ := v.Secret(secrets); string(files["api_key"]) != "two" {
		t.Errorf("after a restart the secret holds %q", files["api_key"])
	}

	if _, err := h.SetStateBytes(ctx, id, 32<<20); err != nil {
		t.Fatal(err)
	}
	if vol, _ := v.Volume(state); vol.Bytes != 32<<20 {
		t.Errorf("after growing: %d bytes", vol.Bytes)
	}
	if _, err := h.SetStateBytes(ctx, id, 24<<20); !errors.Is(err, host.ErrInvalid) {
		t.Errorf("shrinking a volume: %v, want ErrInvalid", err)
	}
	if got := stateOf(t, h, id).Options.StateBytes; got != 32<<20 {
		t.Errorf("the record says %d bytes after a refused shrink", got)
	}

	if err := h.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n, m := v.Count(); n != 0 || m != 0 {
		t.Errorf("after delete: %d volumes, %d secrets left", n, m)
	}

	// Kept on request: the volume stays, the secret goes.
	kept := createProgram(t, h, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(0)})
	if err := h.DeleteWith(ctx, kept, host.DeleteOptions{KeepState: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Volume("hersh-state-" + kept); !ok {
		t.Error("the volume kept on request is gone")
	}
	if _, ok := v.Secret("hersh-secrets-" + kept); ok {
		t.Error("the secret of a program deleted keeping its state is still there")
	}
}

// On the Host's own disk /state goes with the program: keeping it is
// refused, and the program is not deleted.
func TestKeepStateNeedsEngineVolumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := hosttest.OpenFake(t)
		id := createProgram(t, h, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(0)})
		if err := h.DeleteWith(context.Background(), id, host.DeleteOptions{KeepState: true}); !errors.Is(err, host.ErrInvalid) {
			t.Fatalf("keep_state on the Host's disk: %v, want ErrInvalid", err)
		}
		stateOf(t, h, id) // still there
	})
}
