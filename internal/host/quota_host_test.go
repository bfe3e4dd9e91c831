package host_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/source"
)

// TestQuotas drives the quotas through the Host's methods (nothing needs
// to run: the programs started here are stopped while they start):
//   - the program quota, with eight creates racing for the last place;
//   - the per-program memory limit (the operator's, and 64 GiB);
//   - the per-user memory quota at start and restart, with two starts
//     racing for room for one, and room coming back with a stop.
func TestQuotas(t *testing.T) {
	synctest.Test(t, testQuotas)
}

func testQuotas(t *testing.T) {
	h, _ := hosttest.OpenFake(t, func(o *host.Options) {
		o.StopGrace = 2 * time.Second
		o.Quotas = host.Quotas{MaxPrograms: 4, MaxProgramMemory: 512 << 20, MaxUserMemory: 768 << 20}
	})
	ctx := context.Background()
	files := source.Files{"go.mod": "module example.com/q\n\ngo 1.25\n", "main.go": "package main\n\nfunc main() { select {} }\n"}
	create := func(user string, mem int64) (string, error) {
		p, err := h.Create(ctx, host.CreateRequest{UserID: user, Files: files, Options: host.ProgramOptions{MemoryBytes: mem}})
		return p.ID, err
	}
	mustCreate := func(user string, mem int64) string {
		t.Helper()
		id, err := create(user, mem)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	isQuota := func(what string, err error, want string) {
		t.Helper()
		if !errors.Is(err, host.ErrQuota) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v, want host.ErrQuota mentioning %q", what, err, want)
		}
	}

	// Memory per program: the operator's limit, and far above the machine.
	_, err := create("alice", 1<<30)
	isQuota("1 GiB with a 512 MiB limit", err, "512 MiB per program")
	_, err = create("alice", 64<<30)
	isQuota("64 GiB", err, "per program")

	// Programs per user: two, then eight creates race for the last two
	// places.
	a1 := mustCreate("alice", 0)
	a2 := mustCreate("alice", 512<<20)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	ids := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := create("alice", 0)
			if err != nil {
				errs <- err
				return
			}
			ids <- id
		}()
	}
	wg.Wait()
	close(errs)
	close(ids)
	var won []string
	for id := range ids {
		won = append(won, id)
	}
	if len(won) != 2 {
		t.Fatalf("%d of 8 racing creates passed a quota with room for 2", len(won))
	}
	for err := range errs {
		isQuota("a racing create", err, "alice has 4 programs")
	}
	_, err = create("alice", 0)
	isQuota("a fifth program", err, "alice has 4 programs")
	if _, total, _ := h.List(ctx, allPrograms()); total != 4 {
		t.Fatalf("%d programs recorded, want 4", total)
	}
	b1 := mustCreate("bob", 0) // another user still can

	// Memory per user (768 MiB): a2 (512 MiB) runs; a1 and won[0]
	// (256 MiB each) race for the 256 MiB left.
	if _, err := h.Start(ctx, a2); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Restart(ctx, a2); err != nil { // it reserves already: nothing more to check
		t.Fatalf("restart of a running program: %v", err)
	}
	started := make(chan string, 2)
	refused := make(chan error, 2)
	for _, id := range []string{a1, won[0]} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.Start(ctx, id); err != nil {
				refused <- err
				return
			}
			started <- id
		}()
	}
	wg.Wait()
	close(started)
	close(refused)
	if len(started) != 1 || len(refused) != 1 {
		t.Fatalf("%d of 2 racing starts passed a quota with room for 1", len(started))
	}
	isQuota("the second racing start", <-refused, "already reserve 768 MiB of 768 MiB")
	first := <-started
	other := a1
	if first == a1 {
		other = won[0]
	}
	_, err = h.Restart(ctx, other) // a restart of a stopped program is a start
	isQuota("restart of a created program", err, "stop one first")
	if _, err := h.Start(ctx, b1); err != nil { // bob's quota is his own
		t.Fatalf("bob's start: %v", err)
	}
	// A stop gives the room back at once.
	if _, err := h.Stop(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Start(ctx, other); err != nil {
		t.Fatalf("start after a stop freed the room: %v", err)
	}
	// A start while the program is already starting is still a 409, not
	// a quota error.
	if _, err := h.Start(ctx, other); !errors.Is(err, host.ErrConflict) {
		t.Fatalf("second start: %v, want host.ErrConflict", err)
	}
	for _, id := range []string{a2, other, b1} {
		if _, err := h.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range append([]string{a1, a2, b1}, won...) {
		if err := h.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}
