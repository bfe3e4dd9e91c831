package host

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
	"github.com/hershyorg/hershy/internal/testenv"
)

// TestReserves: which programs count against their user's memory quota.
func TestReserves(t *testing.T) {
	run, stop := lifecycle.DesiredRunning, lifecycle.DesiredStopped
	later := time.Now().Add(time.Minute)
	for _, c := range []struct {
		name string
		p    lifecycle.Program
		want bool
	}{
		{"created", lifecycle.Program{State: lifecycle.Created, Desired: stop}, false},
		{"building", lifecycle.Program{State: lifecycle.Building, Desired: run, Waiting: 1}, true},
		{"starting", lifecycle.Program{State: lifecycle.Starting, Desired: run, Waiting: 2}, true},
		{"ready", lifecycle.Program{State: lifecycle.Ready, Desired: run}, true},
		{"restarting", lifecycle.Program{State: lifecycle.Stopping, Desired: run, StartAfterStop: true, Waiting: 3}, true},
		{"stopping for good", lifecycle.Program{State: lifecycle.Stopping, Desired: stop, Waiting: 3}, false},
		{"stopped", lifecycle.Program{State: lifecycle.Stopped, Desired: stop}, false},
		{"error, restart pending", lifecycle.Program{State: lifecycle.Error, Desired: run, NextRestartAt: later, Waiting: 4}, true},
		{"error, halting after a failed probe", lifecycle.Program{State: lifecycle.Error, Desired: run, Waiting: 5}, true},
		{"error, no restart (build failed, or policy never)", lifecycle.Program{State: lifecycle.Error, Desired: run}, false},
		{"error after a stop", lifecycle.Program{State: lifecycle.Error, Desired: stop}, false},
		{"deleting", lifecycle.Program{State: lifecycle.Deleting, Desired: run, Waiting: 6}, false},
	} {
		if got := reserves(c.p); got != c.want {
			t.Errorf("%s: reserves = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestQuotaDefaults(t *testing.T) {
	phys := physicalMemory()
	if phys <= 0 {
		t.Fatal("physical memory unknown")
	}
	q, err := Quotas{}.withDefaults(DefaultLimits.MemoryBytes)
	if err != nil {
		t.Fatal(err)
	}
	if q.MaxPrograms != DefaultMaxPrograms || q.MaxProgramMemory != min(DefaultMaxProgramMemory, phys) ||
		q.MaxUserMemory != min(DefaultMaxUserMemory, phys) {
		t.Fatalf("defaults %+v (physical memory %d)", q, phys)
	}
	for _, c := range []struct {
		name string
		q    Quotas
		def  int64
		want string
	}{
		{"per program above the machine", Quotas{MaxProgramMemory: phys + 1}, 0, "physical memory"},
		{"per user above the machine", Quotas{MaxUserMemory: phys + 1}, 0, "physical memory"},
		{"negative programs", Quotas{MaxPrograms: -1}, 0, "negative"},
		{"negative memory", Quotas{MaxUserMemory: -1}, 0, "negative"},
		{"default memory above the per-program limit", Quotas{MaxProgramMemory: 128 << 20}, 256 << 20, "default program memory"},
		{"default memory above the per-user quota", Quotas{MaxUserMemory: 128 << 20}, 256 << 20, "default program memory"},
	} {
		if _, err := c.q.withDefaults(c.def); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %q", c.name, err, c.want)
		}
	}
	// Options carry them: a Host refuses to open with a limit the machine
	// cannot honour.
	if _, err := (Options{DataDir: t.TempDir(), Quotas: Quotas{MaxProgramMemory: 64 << 40}}).withDefaults(); err == nil {
		t.Error("64 TiB per program accepted")
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 256 << 20: "256 MiB",
		3 << 29: "1.5 GiB", 64 << 30: "64 GiB", 5 << 40: "5 TiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestReservedEnv: every name the Host sets in a program's environment,
// PATH, and the HERSH_/HERSHY_ prefixes in any case are refused; other
// names pass.
func TestReservedEnv(t *testing.T) {
	h := &Host{opts: Options{DataDir: t.TempDir(), Runtime: driver.RuntimeRunc, Limits: DefaultLimits}}
	os.MkdirAll(h.programDir("p"), 0o700)
	names := []string{"PATH", "HERSHY_X", "hershy_token", "HERSH_ANYTHING", "Hersh_State_Dir"}
	for _, kv := range h.spec(storeRow("p"), "img").Env {
		name, _, _ := strings.Cut(kv, "=")
		names = append(names, name)
	}
	for _, name := range names {
		err := ProgramOptions{Env: map[string]string{name: "x"}}.validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("env %s: %v, want refused as reserved", name, err)
		}
	}
	for _, name := range []string{"HOME", "API_KEY", "HERSHEY", "MY_PATH", "PATH_EXTRA", "GOMAXPROCS"} {
		if err := (ProgramOptions{Env: map[string]string{name: "x"}}).validate(); err != nil {
			t.Errorf("env %s refused: %v", name, err)
		}
	}
}

// TestQuotasAgainstTheEngine drives the quotas through the Host's methods
// (the engine is needed to open a Host; the programs started here are
// stopped while they build, nothing needs to run):
//   - the program quota, with eight creates racing for the last place;
//   - the per-program memory limit (the operator's, and 64 GiB);
//   - the per-user memory quota at start and restart, with two starts
//     racing for room for one, and room coming back with a stop.
func TestQuotasAgainstTheEngine(t *testing.T) {
	d := testenv.Engine(t, driver.RuntimeRunc)
	h := openHost(t, t.TempDir(), driver.RuntimeRunc, d, func(o *Options) {
		o.StopGrace = 2 * time.Second
		o.Quotas = Quotas{MaxPrograms: 4, MaxProgramMemory: 512 << 20, MaxUserMemory: 768 << 20}
	})
	defer h.Close()
	ctx := context.Background()
	files := source.Files{"go.mod": "module example.com/q\n\ngo 1.25\n", "main.go": "package main\n\nfunc main() { select {} }\n"}
	create := func(user string, mem int64) (string, error) {
		p, err := h.Create(ctx, CreateRequest{UserID: user, Files: files, Options: ProgramOptions{MemoryBytes: mem}})
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
		if !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v, want ErrQuota mentioning %q", what, err, want)
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
	if _, total, _ := h.List(ctx, storeFilterAll()); total != 4 {
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
	if _, err := h.Start(ctx, other); !errors.Is(err, ErrConflict) {
		t.Fatalf("second start: %v, want ErrConflict", err)
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

func storeRow(id string) store.Program {
	return store.Program{ID: id, UserID: "u", Program: lifecycle.Program{BuildID: "b"}}
}
