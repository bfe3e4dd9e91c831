package lifecycle

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

var m = Machine{Backoff: Backoff{Base: time.Second, Max: 5 * time.Minute, HealthyReset: 10 * time.Minute}}

// fixture returns a representative program in state s. Where an effect is
// in flight its id is 5.
func fixture(s State) Program {
	p := Program{State: s, BuildID: "b1", ImageID: "img1", Policy: RestartOnFailure, Desired: DesiredRunning, Seq: 5}
	switch s {
	case Created:
		p.ImageID, p.Desired = "", DesiredStopped
	case Building:
		p.ImageID, p.Waiting = "", 5
	case Starting:
		p.ContainerID, p.Waiting = "c1", 5
	case Ready:
		p.ContainerID, p.HealthySince = "c1", t0.Add(-time.Minute)
	case Stopping:
		p.ContainerID, p.Waiting, p.Desired = "c1", 5, DesiredStopped
	case Stopped:
		p.Desired = DesiredStopped
	case Error:
		p.ContainerID, p.Waiting, p.ErrorMsg = "c1", 5, "exited with code 1"
		p.RestartCount, p.NextRestartAt = 2, t0.Add(4*time.Second)
	case Deleting:
		p.Waiting = 5
	}
	return p
}

// events under test, by name. Results carry the in-flight id 5; "stale"
// ones carry 4.
var events = []struct {
	name string
	ev   Event
}{
	{"Start", Start{}},
	{"Stop", Stop{}},
	{"Restart", Restart{}},
	{"Delete", Delete{}},
	{"SetSource", SetSource{BuildID: "b2"}},
	{"SetPolicy", SetPolicy{Policy: RestartNever}},
	{"Built", Built{Effect: 5, ImageID: "img2"}},
	{"BuiltErr", Built{Effect: 5, Err: "no go.mod"}},
	{"BuiltStale", Built{Effect: 4, ImageID: "img2"}},
	{"Launched", Launched{Effect: 5, ContainerID: "c2"}},
	{"LaunchedErr", Launched{Effect: 5, Err: "no such runtime"}},
	{"Probed", Probed{Effect: 5}},
	{"ProbedErr", Probed{Effect: 5, Err: "timeout"}},
	{"ProbedStale", Probed{Effect: 4}},
	{"Halted", Halted{Effect: 5}},
	{"HaltedErr", Halted{Effect: 5, Err: "engine down"}},
	{"HaltedStale", Halted{Effect: 4}},
	{"RestartDue", RestartDue{Effect: 5}},
	{"RestartDueStale", RestartDue{Effect: 4}},
	{"Purged", Purged{Effect: 5}},
	{"PurgedErr", Purged{Effect: 5, Err: "busy"}},
	{"ExitedFail", Exited{ContainerID: "c1", ExitCode: 2, At: t0}},
	{"ExitedClean", Exited{ContainerID: "c1", ExitCode: 0, At: t0}},
	{"ExitedOOM", Exited{ContainerID: "c1", ExitCode: 137, OOMKilled: true, At: t0}},
	{"ExitedOther", Exited{ContainerID: "old", ExitCode: 1, At: t0}},
	{"RecoverRunning", Recover{ContainerID: "c1", Running: true}},
	{"RecoverGone", Recover{ContainerID: "c1", Running: false}},
	{"RecoverNone", Recover{}},
}

// want[state][event] = "NextState [effects]". "=" means ignored: the
// program comes back unchanged and there are no effects. "409" means
// refused: unchanged, no effects, and an error wrapping ErrConflict.
var want = map[State]map[string]string{
	Created: {
		"Start": "Building DoBuild", "Stop": "=", "Restart": "Building DoBuild", "Delete": "Deleting DoPurge",
		"SetSource": "Created", "Built": "=", "BuiltErr": "=", "BuiltStale": "=", "Launched": "=", "LaunchedErr": "=",
		"Probed": "=", "ProbedErr": "=", "ProbedStale": "=", "Halted": "=", "HaltedErr": "=", "HaltedStale": "=",
		"RestartDue": "=", "RestartDueStale": "=", "Purged": "=", "PurgedErr": "=", "ExitedFail": "=", "ExitedClean": "=",
		"ExitedOOM": "=", "ExitedOther": "=", "RecoverRunning": "Stopping DoHalt", "RecoverGone": "Stopping DoHalt", "RecoverNone": "=", "SetPolicy": "Created",
	},
	Building: {
		"Start": "409", "Stop": "Stopping Cancel DoHalt", "Restart": "Stopping Cancel DoHalt", "Delete": "Deleting Cancel DoPurge",
		"SetSource": "Building Cancel DoBuild", "Built": "Starting DoLaunch", "BuiltErr": "Error", "BuiltStale": "=",
		"Launched": "=", "LaunchedErr": "=", "Probed": "=", "ProbedErr": "=", "ProbedStale": "=", "Halted": "=",
		"HaltedErr": "=", "HaltedStale": "=", "RestartDue": "=", "RestartDueStale": "=", "Purged": "=", "PurgedErr": "=",
		"ExitedFail": "=", "ExitedClean": "=", "ExitedOOM": "=", "ExitedOther": "=",
		"RecoverRunning": "Building DoBuild", "RecoverGone": "Building DoBuild", "RecoverNone": "Building DoBuild", "SetPolicy": "Building",
	},
	Starting: {
		"Start": "409", "Stop": "Stopping Cancel DoHalt", "Restart": "Stopping Cancel DoHalt", "Delete": "Deleting Cancel DoPurge",
		"SetSource": "Starting", "Built": "=", "BuiltErr": "=", "BuiltStale": "=", "Launched": "Starting DoProbe",
		"LaunchedErr": "Error DoTimer", "Probed": "Ready", "ProbedErr": "Error DoHalt", "ProbedStale": "=", "Halted": "=",
		"HaltedErr": "=", "HaltedStale": "=", "RestartDue": "=", "RestartDueStale": "=", "Purged": "=", "PurgedErr": "=",
		"ExitedFail": "Error Cancel DoTimer", "ExitedClean": "Stopping Cancel DoHalt", "ExitedOOM": "Error Cancel DoTimer",
		"ExitedOther": "=", "RecoverRunning": "Starting DoProbe", "RecoverGone": "Starting DoLaunch", "RecoverNone": "Starting DoLaunch", "SetPolicy": "Starting",
	},
	Ready: {
		"Start": "409", "Stop": "Stopping DoHalt", "Restart": "Stopping DoHalt", "Delete": "Deleting DoPurge",
		"SetSource": "Ready", "Built": "=", "BuiltErr": "=", "BuiltStale": "=", "Launched": "=", "LaunchedErr": "=",
		"Probed": "=", "ProbedErr": "=", "ProbedStale": "=", "Halted": "=", "HaltedErr": "=", "HaltedStale": "=",
		"RestartDue": "=", "RestartDueStale": "=", "Purged": "=", "PurgedErr": "=", "ExitedFail": "Error DoTimer",
		"ExitedClean": "Stopping DoHalt", "ExitedOOM": "Error DoTimer", "ExitedOther": "=", "RecoverRunning": "=",
		"RecoverGone": "Error DoTimer", "RecoverNone": "Error DoTimer", "SetPolicy": "Ready",
	},
	Stopping: {
		"Start": "Stopping", "Stop": "=", "Restart": "Stopping", "Delete": "Deleting Cancel DoPurge",
		"SetSource": "Stopping", "Built": "=", "BuiltErr": "=", "BuiltStale": "=", "Launched": "=", "LaunchedErr": "=",
		"Probed": "=", "ProbedErr": "=", "ProbedStale": "=", "Halted": "Stopped", "HaltedErr": "Error", "HaltedStale": "=",
		"RestartDue": "=", "RestartDueStale": "=", "Purged": "=", "PurgedErr": "=", "ExitedFail": "Stopping",
		"ExitedClean": "Stopping", "ExitedOOM": "Stopping", "ExitedOther": "=", "RecoverRunning": "Stopping DoHalt",
		"RecoverGone": "Stopping DoHalt", "RecoverNone": "Stopping DoHalt", "SetPolicy": "Stopping",
	},
	Stopped: {
		"Start": "Starting DoLaunch", "Stop": "=", "Restart": "Starting DoLaunch", "Delete": "Deleting DoPurge",
		"SetSource": "Stopped", "Built": "=", "BuiltErr": "=", "BuiltStale": "=", "Launched": "=", "LaunchedErr": "=",
		"Probed": "=", "ProbedErr": "=", "ProbedStale": "=", "Halted": "=", "HaltedErr": "=", "HaltedStale": "=",
		"RestartDue": "=", "RestartDueStale": "=", "Purged": "=", "PurgedErr": "=", "ExitedFail": "=", "ExitedClean": "=",
		"ExitedOOM": "=", "ExitedOther": "=", "RecoverRunning": "Stopping DoHalt", "RecoverGone": "Stopping DoHalt", "RecoverNone": "=", "SetPolicy": "Stopped",
	},
	Error: {
		"Start": "Starting Cancel DoLaunch", "Stop": "Stopping Cancel DoHalt", "Restart": "Starting Cancel DoLaunch",
		"Delete": "Deleting Cancel DoPurge", "SetSource": "Error", "Built": "=", "BuiltErr": "=", "BuiltStale": "=",
		"Launched": "=", "LaunchedErr": "=", "Probed": "=", "ProbedErr": "=", "ProbedStale": "=", "Halted": "Error DoTimer",
		"HaltedErr": "Error DoTimer", "HaltedStale": "=", "RestartDue": "Starting DoLaunch", "RestartDueStale": "=", "Purged": "=",
		"PurgedErr": "=", "ExitedFail": "Error", "ExitedClean": "Error", "ExitedOOM": "Error", "ExitedOther": "=",
		"RecoverRunning": "Error DoHalt", "RecoverGone": "Error DoTimer", "RecoverNone": "Error DoTimer", "SetPolicy": "Error",
	},
	Deleting: {
		"Start": "409", "Stop": "409", "Restart": "409", "Delete": "=", "SetSource": "409", "Built": "=", "BuiltErr": "=",
		"BuiltStale": "=", "Launched": "=", "LaunchedErr": "=", "Probed": "=", "ProbedErr": "=", "ProbedStale": "=",
		"Halted": "=", "HaltedErr": "=", "HaltedStale": "=", "RestartDue": "=", "RestartDueStale": "=", "Purged": "Deleting",
		"PurgedErr": "Error", "ExitedFail": "=", "ExitedClean": "=", "ExitedOOM": "=", "ExitedOther": "=",
		"RecoverRunning": "Deleting DoPurge", "RecoverGone": "Deleting DoPurge", "RecoverNone": "Deleting DoPurge", "SetPolicy": "409",
	},
}

func describe(p Program, fx []Effect) string {
	parts := []string{string(p.State)}
	for _, e := range fx {
		parts = append(parts, strings.TrimPrefix(fmt.Sprintf("%T", e), "lifecycle."))
	}
	return strings.Join(parts, " ")
}

// TestEveryStateEveryEvent covers the whole state × event matrix,
// including the pairs the reducer ignores.
func TestEveryStateEveryEvent(t *testing.T) {
	for _, s := range States {
		if len(want[s]) != len(events) {
			t.Fatalf("table for %s has %d entries, want %d", s, len(want[s]), len(events))
		}
		for _, e := range events {
			t.Run(string(s)+"/"+e.name, func(t *testing.T) {
				in := fixture(s)
				out, fx, err := m.Reduce(in, e.ev, t0, 0)
				w, ok := want[s][e.name]
				if !ok {
					t.Fatalf("no expectation for %s × %s", s, e.name)
				}
				if w == "409" || err != nil {
					if w != "409" || !errors.Is(err, ErrConflict) || !reflect.DeepEqual(out, in) || len(fx) != 0 {
						t.Fatalf("want %s, got %s, err %v", w, describe(out, fx), err)
					}
					return
				}
				if w == "=" {
					if !reflect.DeepEqual(out, in) || len(fx) != 0 {
						t.Fatalf("want ignored, got %s (%+v)", describe(out, fx), out)
					}
					return
				}
				if got := describe(out, fx); got != w {
					t.Fatalf("got %q, want %q", got, w)
				}
				checkInvariants(t, in, out, fx)
			})
		}
	}
}

// checkInvariants holds for every transition.
func checkInvariants(t *testing.T, in, out Program, fx []Effect) {
	t.Helper()
	if out.Seq < in.Seq {
		t.Fatalf("effect ids went backwards: %d -> %d", in.Seq, out.Seq)
	}
	issued := 0
	for _, e := range fx {
		switch e := e.(type) {
		case Cancel:
			if e.ID != in.Waiting || e.ID == 0 {
				t.Fatalf("cancelled %d, but %d was in flight", e.ID, in.Waiting)
			}
		case DoBuild:
			issued++
			if e.ID != out.Waiting || e.BuildID != out.BuildID {
				t.Fatalf("%+v does not match %+v", e, out)
			}
		case DoLaunch:
			issued++
			if e.ID != out.Waiting || e.ImageID != out.ImageID || e.ImageID == "" {
				t.Fatalf("%+v does not match %+v", e, out)
			}
		case DoProbe:
			issued++
			if e.ID != out.Waiting || e.ContainerID != out.ContainerID {
				t.Fatalf("%+v does not match %+v", e, out)
			}
		case DoHalt:
			issued++
			if e.ID != out.Waiting {
				t.Fatalf("%+v not awaited", e)
			}
		case DoTimer:
			issued++
			if e.ID != out.Waiting || !e.At.Equal(out.NextRestartAt) || !e.At.After(t0) {
				t.Fatalf("%+v does not match %+v", e, out)
			}
		case DoPurge:
			issued++
			if e.ID != out.Waiting {
				t.Fatalf("%+v not awaited", e)
			}
		}
	}
	if issued > 1 {
		t.Fatalf("%d effects awaited at once: %v", issued, fx)
	}
	if issued == 0 && out.Waiting != 0 && out.Waiting != in.Waiting {
		t.Fatalf("waiting for %d with no effect issued", out.Waiting)
	}
	if out.State == Ready && (out.ContainerID == "" || out.Waiting != 0) {
		t.Fatalf("Ready without a container or with work in flight: %+v", out)
	}
	if out.State == Error && out.ErrorMsg == "" {
		t.Fatalf("Error without a reason: %+v", out)
	}
}

func TestStopDuringBuildDropsTheBuild(t *testing.T) {
	p := Program{State: Created, BuildID: "b1", Policy: RestartOnFailure}
	p, fx := m.reduce(p, Start{}, t0, 0)
	build := fx[0].(DoBuild)
	p, fx = m.reduce(p, Stop{}, t0, 0)
	if got := describe(p, fx); got != "Stopping Cancel DoHalt" || fx[0].(Cancel).ID != build.ID {
		t.Fatalf("stop during build: %s %v", got, fx)
	}
	// The build finishes anyway (its result raced the cancel): dropped.
	p2, fx := m.reduce(p, Built{Effect: build.ID, ImageID: "img"}, t0, 0)
	if !reflect.DeepEqual(p2, p) || len(fx) != 0 {
		t.Fatalf("stale build result applied: %+v %v", p2, fx)
	}
	p, _ = m.reduce(p, Halted{Effect: p.Waiting}, t0, 0)
	if p.State != Stopped || p.ImageID != "" {
		t.Fatalf("after halt: %+v", p)
	}
}

func TestRestartStopsThenStartsWithoutRebuild(t *testing.T) {
	p := fixture(Ready)
	p, fx := m.reduce(p, Restart{}, t0, 0)
	if describe(p, fx) != "Stopping DoHalt" {
		t.Fatal(describe(p, fx))
	}
	p, fx = m.reduce(p, Halted{Effect: p.Waiting}, t0, 0)
	if got := describe(p, fx); got != "Starting DoLaunch" || fx[0].(DoLaunch).ImageID != "img1" {
		t.Fatalf("after halt: %s", got)
	}
}

func TestNewSourceRebuildsAtNextStart(t *testing.T) {
	p := fixture(Ready)
	p, _ = m.reduce(p, SetSource{BuildID: "b2"}, t0, 0)
	if p.State != Ready || p.ImageID != "" || p.BuildID != "b2" {
		t.Fatalf("%+v", p)
	}
	p, _ = m.reduce(p, Restart{}, t0, 0)
	p, fx := m.reduce(p, Halted{Effect: p.Waiting}, t0, 0)
	if got := describe(p, fx); got != "Building DoBuild" || fx[0].(DoBuild).BuildID != "b2" {
		t.Fatalf("%s %+v", got, fx)
	}
}

// TestCrashLoopBacksOff drives a program that crashes as soon as it is
// ready, and checks the growing delays, the cap, the reset after a healthy
// period and the reset by a manual start.
func TestCrashLoopBacksOff(t *testing.T) {
	now := t0
	p := fixture(Ready)
	p.HealthySince = now
	var delays []time.Duration
	for i := 0; i < 12; i++ {
		var fx []Effect
		p, fx = m.reduce(p, Exited{ContainerID: p.ContainerID, ExitCode: 1, At: now}, now, 0)
		timer := fx[len(fx)-1].(DoTimer)
		delays = append(delays, timer.At.Sub(now))
		now = timer.At
		p, fx = m.reduce(p, RestartDue{Effect: timer.ID}, now, 0)
		launch := fx[0].(DoLaunch)
		p, fx = m.reduce(p, Launched{Effect: launch.ID, ContainerID: fmt.Sprintf("c%d", i+2)}, now, 0)
		p, _ = m.reduce(p, Probed{Effect: fx[0].(DoProbe).ID}, now, 0)
		if p.State != Ready || p.RestartCount != i+1 {
			t.Fatalf("round %d: %+v", i, p)
		}
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300}
	for i := range want {
		want[i] *= time.Second
	}
	if !reflect.DeepEqual(delays, want) {
		t.Fatalf("delays %v, want %v", delays, want)
	}
	// Healthy for 10 minutes: the next crash starts the schedule again.
	now = now.Add(10 * time.Minute)
	p, fx := m.reduce(p, Exited{ContainerID: p.ContainerID, ExitCode: 1, At: now}, now, 0)
	if d := fx[0].(DoTimer).At.Sub(now); d != time.Second || p.RestartCount != 1 {
		t.Fatalf("after a healthy period: delay %s count %d", d, p.RestartCount)
	}
	// A manual start resets the backoff and cancels the timer.
	p, fx = m.reduce(p, Start{}, now, 0)
	if got := describe(p, fx); got != "Starting Cancel DoLaunch" || p.RestartCount != 0 || !p.NextRestartAt.IsZero() {
		t.Fatalf("manual start: %s %+v", got, p)
	}
}

// TestOldContainerExitDuringRelaunch: an exit of the container a launch
// replaces (reported late, say by the Host's re-check after an engine
// outage) does not end the new start.
func TestOldContainerExitDuringRelaunch(t *testing.T) {
	p := fixture(Error) // c1 failed; restart timer 5 is due
	p, fx := m.reduce(p, RestartDue{Effect: 5}, t0, 0)
	launch, ok := fx[0].(DoLaunch)
	if !ok || p.State != Starting {
		t.Fatalf("restart: %s", describe(p, fx))
	}
	p, fx = m.reduce(p, Exited{ContainerID: "c1", ExitCode: 0, At: t0}, t0, 0)
	if p.State != Starting || p.Desired != DesiredRunning || len(fx) != 0 || p.Waiting != launch.ID {
		t.Fatalf("the old container's exit changed the start: %s %+v", describe(p, fx), p)
	}
	p, fx = m.reduce(p, Launched{Effect: launch.ID, ContainerID: "c2"}, t0, 0)
	if p.State != Starting || p.ContainerID != "c2" || len(fx) != 1 {
		t.Fatalf("launched: %s", describe(p, fx))
	}
}

func TestRestartPolicies(t *testing.T) {
	tests := []struct {
		policy RestartPolicy
		code   int
		oom    bool
		want   string
	}{
		{RestartOnFailure, 1, false, "Error DoTimer"},
		{RestartOnFailure, 0, false, "Stopping DoHalt"},
		{RestartOnFailure, 137, true, "Error DoTimer"},
		{RestartAlways, 0, false, "Error DoTimer"},
		{RestartAlways, 3, false, "Error DoTimer"},
		{RestartNever, 3, false, "Error"},
		{RestartNever, 0, false, "Stopping DoHalt"},
	}
	for _, tt := range tests {
		p := fixture(Ready)
		p.Policy = tt.policy
		out, fx := m.reduce(p, Exited{ContainerID: "c1", ExitCode: tt.code, OOMKilled: tt.oom, At: t0}, t0, 0)
		if got := describe(out, fx); got != tt.want {
			t.Errorf("%s exit %d oom %v: got %q want %q", tt.policy, tt.code, tt.oom, got, tt.want)
		}
		if *out.LastExitCode != tt.code || out.LastOOM != tt.oom || !out.LastExitAt.Equal(t0) {
			t.Errorf("exit not recorded: %+v", out)
		}
		if tt.oom && !strings.Contains(out.ErrorMsg, "memory") {
			t.Errorf("OOM not explained: %q", out.ErrorMsg)
		}
	}
	if _, err := ParseRestartPolicy("sometimes"); err == nil {
		t.Error("bad policy accepted")
	}
	if p, _ := ParseRestartPolicy(""); p != RestartOnFailure {
		t.Errorf("default policy %q", p)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := DefaultBackoff
	if d := b.Delay(1, 0); d != time.Second {
		t.Fatal(d)
	}
	if d := b.Delay(1, 0.5); d != 900*time.Millisecond {
		t.Fatal(d)
	}
	if d := b.Delay(100, 0.999); d > 5*time.Minute || d < 4*time.Minute {
		t.Fatal(d)
	}
}

// TestReduceIsPure: the same inputs always give the same outputs, and the
// input program is never modified.
func TestReduceIsPure(t *testing.T) {
	for _, s := range States {
		for _, e := range events {
			in := fixture(s)
			a, fa, erra := m.Reduce(in, e.ev, t0, 0.3)
			b, fb, errb := m.Reduce(in, e.ev, t0, 0.3)
			if (erra == nil) != (errb == nil) {
				t.Fatalf("%s × %s: admission is not deterministic", s, e.name)
			}
			if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(fa, fb) || !reflect.DeepEqual(in, fixture(s)) {
				t.Fatalf("%s × %s is not deterministic", s, e.name)
			}
		}
	}
}

// TestRecoverAfterClockJump: a restart scheduled before the Host went down
// is timed again on recovery from the stored NextRestartAt; a clock set
// back meanwhile would push it out by the jump (hours), so a back-off is
// never more than Backoff.Max from the recovery. A clock set forward makes
// it due at once.
func TestRecoverAfterClockJump(t *testing.T) {
	for _, tc := range []struct {
		name      string
		scheduled time.Duration // NextRestartAt, from the recovery's now
		want      time.Duration // the timer's wait
	}{
		{"as scheduled", 30 * time.Second, 30 * time.Second},
		{"clock set back three hours", 3*time.Hour + 30*time.Second, m.Backoff.Max},
		{"clock set forward", -time.Hour, -time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			p := fixture(Error)
			p.Desired, p.ContainerID, p.RestartCount = DesiredRunning, "", 3
			p.NextRestartAt = now.Add(tc.scheduled)
			p, fx := m.reduce(p, Recover{}, now, 0)
			timer, ok := fx[len(fx)-1].(DoTimer)
			if !ok {
				t.Fatalf("effects %+v", fx)
			}
			if got := timer.At.Sub(now); got != tc.want || !p.NextRestartAt.Equal(timer.At) {
				t.Fatalf("timer in %v (NextRestartAt %v), want %v", got, p.NextRestartAt.Sub(now), tc.want)
			}
		})
	}
}
