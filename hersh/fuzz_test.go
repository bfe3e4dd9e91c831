package hersh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// FuzzStateFile: whatever the durable-state file holds (a torn write, a
// hand edit, another version), loading it never fails a writable
// directory and never loses it: a file that is read stays where it is, and
// one that is not is moved aside byte for byte, with a fault saying where.
// The values it restores load as any type without panicking.
func FuzzStateFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"values":{"k":1,"s":"x","m":{"a":[1,2]}}}`))
	f.Add([]byte(`{"version":1,"values":{}}`))
	f.Add([]byte(`{"version":2,"values":{"k":1}}`))
	f.Add([]byte(`{"version":1,"values":{"k":1}`))
	f.Add([]byte(`{"version":1,"values":null}`))
	f.Add([]byte(""))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, content []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, DefaultStateFileName)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		l := newLogs(8)
		st := newStateStore(dir, l)
		if err := st.load(); err != nil {
			t.Fatalf("load: %v", err)
		}
		aside, _ := filepath.Glob(path + ".corrupt-*")
		kept, err := os.ReadFile(path)
		switch {
		case err == nil && len(aside) == 0:
			if string(kept) != string(content) {
				t.Fatal("the state file changed on load")
			}
			if faults := l.faults.Last(8); len(faults) != 0 {
				t.Fatalf("a file that was read raised faults: %+v", faults)
			}
		case os.IsNotExist(err) && len(aside) == 1:
			moved, err := os.ReadFile(aside[0])
			if err != nil || string(moved) != string(content) {
				t.Fatalf("the file moved aside is not the file: %v", err)
			}
			if faults := l.faults.Last(8); len(faults) != 1 {
				t.Fatalf("a file moved aside raised %d faults", len(faults))
			}
		default:
			t.Fatalf("after load: state file %v, moved aside %v", err, aside)
		}
		for k := range st.entries {
			load[any](st, k)
			load[int](st, k)
			load[map[string][]float64](st, k)
		}
	})
}

// FuzzAPIMessage: POST /watcher/message with any body answers one JSON
// object: 200 exactly when the body is one JSON object {"content": s} with
// a non-empty string s and nothing else (then s is the message sent), 400
// or 413 otherwise, 503 when the queue is full; never a 500 or a panic.
func FuzzAPIMessage(f *testing.F) {
	for _, s := range []string{
		`{"content":"hello"}`, ` {"content" : "\u00e9"} `, `{"content":""}`, `{"content":null}`,
		`{"content":"a","extra":1}`, `{"content":"a"}{}`, `{"content":1}`, `[]`, ``, `{`, "\xff",
	} {
		f.Add(s)
	}
	got := make(chan string, 1024)
	w := apiNew(f, Config{DisableAPIServer: true}, func(c *Context) error {
		if m := c.Message(); m != nil {
			select {
			case got <- m.Content:
			default:
			}
		}
		return nil
	})
	apiStart(f, w)
	f.Cleanup(func() { apiStop(f, w) })
	h := w.Handler()
	f.Fuzz(func(t *testing.T, body string) {
		r := apiServe(t, h, http.MethodPost, "/watcher/message", body)
		content, valid := strictMessage(body)
		valid = valid && len(body) <= maxMessageBody
		switch r.code {
		case http.StatusOK:
			if !valid {
				t.Fatalf("accepted %q", body)
			}
			select {
			case m := <-got:
				if m != content {
					t.Fatalf("sent %q, the program got %q", content, m)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("sent %q, the program never got it", content)
			}
		case http.StatusBadRequest:
			if valid {
				t.Fatalf("refused %q: %s", body, r.raw)
			}
		case http.StatusRequestEntityTooLarge:
			if len(body) <= maxMessageBody {
				t.Fatalf("%d bytes called too large", len(body))
			}
		case http.StatusServiceUnavailable:
		default:
			t.Fatalf("%d for %q: %s", r.code, body, r.raw)
		}
	})
}

// strictMessage decodes body the way the route documents, independently
// of it, walking the tokens: exactly one object whose keys all name
// "content" (encoding/json matches field names without regard to case;
// the last one counts, and null unsets it), a string that ends non-empty.
func strictMessage(body string) (string, bool) {
	dec := json.NewDecoder(strings.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", false
	}
	var content *string
	for dec.More() {
		key, err := dec.Token()
		if k, ok := key.(string); err != nil || !ok || !strings.EqualFold(k, "content") {
			return "", false
		}
		var raw json.RawMessage
		if dec.Decode(&raw) != nil {
			return "", false
		}
		if string(raw) == "null" {
			content = nil
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		content = &s
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return "", false
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", false
	}
	if content == nil || *content == "" {
		return "", false
	}
	return *content, true
}

// FuzzEngineSignals drives a running watcher with a random interleaving of
// messages, channel values, ticks and time passing (in a synctest bubble,
// so the interleaving is the input's alone), then stops it, and checks:
// runs never overlap; every message accepted is seen by exactly one run,
// in the order sent; the last channel value is the one the last run that
// read it saw; Stop ends the session with no goroutine left (the bubble
// fails the test otherwise).
func FuzzEngineSignals(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 3, 0, 1, 1, 3})
	f.Add([]byte{1, 1, 1, 1, 0, 2, 2, 2, 0, 3})
	f.Add([]byte{2, 0, 4, 0, 4, 1, 3, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 200 {
			ops = ops[:200]
		}
		synctest.Test(t, func(t *testing.T) {
			ch := make(chan int, 1)
			var (
				mu       sync.Mutex
				inRun    bool
				overlap  bool
				messages []string
				lastFlow = -1
			)
			fn := func(c *Context) error {
				mu.Lock()
				if inRun {
					overlap = true
				}
				inRun = true
				mu.Unlock()
				v, ok := WatchFlow(c, "flow", ch)
				WatchTick(c, "tick", 7*time.Millisecond)
				if c.Trigger().Kind == TriggerMessage {
					time.Sleep(time.Millisecond) // a run that takes time: signals queue up
				}
				mu.Lock()
				if m := c.Message(); m != nil {
					messages = append(messages, m.Content)
				}
				if ok {
					lastFlow = v
				}
				inRun = false
				mu.Unlock()
				return nil
			}
			w, err := New(Config{DisableAPIServer: true, SignalCapacity: 8}, fn)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Start(); err != nil {
				t.Fatal(err)
			}
			var sent []string
			flow := -1
			for i, op := range ops {
				switch op % 5 {
				case 0:
					m := fmt.Sprintf("m%d", i)
					if err := w.TrySend(m); err == nil {
						sent = append(sent, m)
					} else if !errors.Is(err, ErrQueueFull) {
						t.Fatalf("TrySend: %v", err)
					}
				case 1:
					select {
					case ch <- i:
						flow = i
					default:
					}
				case 2:
					time.Sleep(time.Duration(op) * time.Millisecond / 16)
				case 3:
					synctest.Wait()
				case 4:
					runtime.Gosched()
				}
			}
			// Let every queued signal be handled (runs sleep, so Wait alone
			// returns while one is under way), then stop.
			time.Sleep(time.Second)
			synctest.Wait()
			if err := w.Stop(context.Background()); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if overlap {
				t.Fatal("two runs at once")
			}
			if !slices.Equal(messages, sent) {
				t.Fatalf("messages seen %v, sent %v", messages, sent)
			}
			if flow >= 0 && lastFlow != flow {
				t.Fatalf("the last value sent on the channel was %d, the runs saw %d last", flow, lastFlow)
			}
		})
	})
}
