package api

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
)

// events reads an event stream on a goroutine, so a test can wait for an
// event with a deadline.
type events struct {
	t  *testing.T
	es *client.EventStream
	ch chan client.Event
}

func (e *env) events(tok string, opts client.EventOptions) *events {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	es, err := client.New(e.srv.URL, tok).Events(ctx, opts)
	if err != nil {
		cancel()
		e.t.Fatalf("events %+v: %v", opts, err)
	}
	ev := &events{t: e.t, es: es, ch: make(chan client.Event, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ev.ch)
		for {
			x, err := es.Next()
			if err != nil {
				return
			}
			ev.ch <- x
		}
	}()
	e.t.Cleanup(func() { cancel(); es.Close(); <-done })
	return ev
}

// next returns the next event, failing the test after d.
func (ev *events) next(d time.Duration) client.Event {
	ev.t.Helper()
	select {
	case x, ok := <-ev.ch:
		if !ok {
			ev.t.Fatal("the event stream ended")
		}
		return x
	case <-time.After(d):
		ev.t.Fatalf("no event in %s", d)
		return client.Event{}
	}
}

// snapshot reads up to "synced" and returns the program ids shown.
func (ev *events) snapshot() []string {
	ev.t.Helper()
	var ids []string
	for {
		x := ev.next(10 * time.Second)
		switch x.Kind {
		case "synced":
			return ids
		case "program":
			if x.PrevState != "" {
				ev.t.Errorf("snapshot event with prev_state %q", x.PrevState)
			}
			ids = append(ids, x.ProgramID)
		default:
			ev.t.Fatalf("event %q before synced", x.Kind)
		}
	}
}

// TestEvents: the stream shows each caller only what it may see, every
// change of a start in order with seq reaching the action's, and a delete.
func TestEvents(t *testing.T) {
	e := newEnvWith(t, Options{MaxFollows: 3})
	alice := e.events(e.tokA, client.EventOptions{})
	bob := e.events(e.tokB, client.EventOptions{})
	adminForAlice := e.events(e.admin, client.EventOptions{UserID: "alice"})
	bobAsksAlice := e.events(e.tokB, client.EventOptions{UserID: "alice"})
	for _, s := range []*events{alice, bob, adminForAlice, bobAsksAlice} {
		if ids := s.snapshot(); len(ids) != 0 {
			t.Fatalf("snapshot of an empty Host: %v", ids)
		}
	}

	body, _ := json.Marshal(map[string]any{"src_files": hosttest.SeedSource()})
	var created programView
	e.do("POST", "/programs", e.tokA, string(body), 201, &created)
	id := created.ProgramID
	for name, s := range map[string]*events{"alice": alice, "admin": adminForAlice} {
		if x := s.next(10 * time.Second); x.Kind != "program" || x.ProgramID != id || x.Program.State != "Created" || x.Program.UserID != "alice" {
			t.Fatalf("%s: first event %+v, want %s Created", name, x, id)
		}
	}
	// Bob's next event is his own program's create, not alice's.
	var bobs programView
	e.do("POST", "/programs", e.tokB, string(body), 201, &bobs)
	if x := bob.next(10 * time.Second); x.ProgramID != bobs.ProgramID {
		t.Fatalf("bob's stream showed %+v before his own program", x)
	}

	// Another user's program, by id: 404; and a fourth stream of alice's
	// (MaxFollows 3, one of them the admin's) is a 429.
	resp, b := e.req("GET", "/events?program_id="+id, e.tokB, "")
	checkError(t, "bob's stream of alice's program", resp, b, 404)
	one := e.events(e.tokA, client.EventOptions{ProgramID: id})
	if ids := one.snapshot(); len(ids) != 1 || ids[0] != id {
		t.Fatalf("snapshot of one program: %v", ids)
	}
	e.events(e.tokA, client.EventOptions{ProgramID: id})
	resp, b = e.req("GET", "/events", e.tokA, "")
	checkError(t, "alice's fourth stream", resp, b, 429)

	// A start: the changes in order, each prev_state the state before, the
	// last Ready with a seq at least the start's.
	var started struct {
		Seq uint64 `json:"seq"`
	}
	e.do("POST", "/programs/"+id+"/start", e.tokA, "{}", 200, &started)
	state := "Created"
	var builds []client.BuildProgress // the Go build's progress, while Building
	for state != "Ready" {
		x := one.next(3 * time.Minute)
		if x.Kind == "build" && x.ProgramID == id && state == "Building" {
			builds = append(builds, *x.Build)
			continue
		}
		if x.Kind != "program" || x.ProgramID != id {
			t.Fatalf("event %+v", x)
		}
		if x.PrevState != state {
			t.Errorf("event %s after %s: prev_state %s", x.Program.State, state, x.PrevState)
		}
		if x.Program.State == "Error" {
			t.Fatalf("start failed: %s", x.Program.ErrorMsg)
		}
		state = x.Program.State
		if state == "Ready" && x.Program.Seq < started.Seq {
			t.Errorf("Ready with seq %d, below the start's %d", x.Program.Seq, started.Seq)
		}
	}
	// go build's start, and its end, at least.
	if n := len(builds); n < 2 || builds[0].Done || builds[0].ElapsedMS != 0 || !builds[n-1].Done || builds[n-1].ElapsedMS < 0 || builds[n-1].BuildID != created.BuildID {
		t.Errorf("build events %+v, want go build's start and end (build %s)", builds, created.BuildID)
	}

	e.do("DELETE", "/programs/"+id, e.tokA, "", 200, nil)
	for {
		x := alice.next(time.Minute)
		if x.Kind == "deleted" {
			if x.ProgramID != id {
				t.Fatalf("deleted %q, want %s", x.ProgramID, id)
			}
			break
		}
		if (x.Kind != "program" && x.Kind != "build") || x.ProgramID != id {
			t.Fatalf("event %+v", x)
		}
	}
	select {
	case x := <-bobAsksAlice.ch:
		t.Errorf("bob's stream of alice's programs showed %+v", x)
	default:
	}
}

// TestEventStreamOverflow: a stream that holds eventBuffer changes stops
// queueing and says so, instead of blocking the Host or dropping changes
// silently.
func TestEventStreamOverflow(t *testing.T) {
	es := &eventStream{wake: make(chan struct{}, 1)}
	for i := range eventBuffer {
		es.push(streamItem{change: host.Change{ProgramID: "p"}})
		if i == 0 && len(es.wake) != 1 {
			t.Fatal("a push did not wake the stream")
		}
	}
	got, overflow := es.take(nil)
	if len(got) != eventBuffer || overflow {
		t.Fatalf("took %d changes (overflow %v), want %d and no overflow", len(got), overflow, eventBuffer)
	}
	for range eventBuffer + 1 {
		es.push(streamItem{change: host.Change{ProgramID: "p"}})
	}
	got, overflow = es.take(got)
	if !overflow || len(got) != eventBuffer {
		t.Fatalf("after %d pushes: %d changes, overflow %v", eventBuffer+1, len(got), overflow)
	}
	es.push(streamItem{change: host.Change{ProgramID: "late"}})
	if got, overflow = es.take(got); len(got) != 0 || !overflow {
		t.Fatalf("a push after the overflow was queued: %d, %v", len(got), overflow)
	}
}
