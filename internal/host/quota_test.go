package host

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
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

func storeRow(id string) store.Program {
	return store.Program{ID: id, UserID: "u", Program: lifecycle.Program{BuildID: "b"}}
}
