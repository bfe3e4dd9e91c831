package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// storedHistory writes a program's container log as the Host keeps it at
// its defaults (the current file and three 8 MiB generations, 32 MiB),
// directly: line i is "line <i>" padded to about 100 bytes, stamped
// t0+i*10ms. The last line holds characters JSON escapes. It returns the
// number of lines and t0.
func storedHistory(t *testing.T, dir, id string) (int, time.Time) {
	t.Helper()
	logs := filepath.Join(dir, "programs", id, "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)
	pad := strings.Repeat("p", 80)
	i := 0
	for g := 3; g >= 0; g-- {
		name := filepath.Join(logs, "container.log")
		if g > 0 {
			name += fmt.Sprint(".", g)
		}
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(f)
		for n := 0; n < 8<<20-200; i++ {
			k, _ := fmt.Fprintf(w, "%s line %07d %s\n", t0.Add(time.Duration(i)*10*time.Millisecond).Format(time.RFC3339Nano), i, pad)
			n += k
		}
		if g == 0 {
			fmt.Fprintf(w, "%s line %07d <\"quoted\" & \\ tab\t é \u2028>\n", t0.Add(time.Duration(i)*10*time.Millisecond).Format(time.RFC3339Nano), i)
			i++
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return i, t0
}

// heapSampler records the peak heap in use while it runs.
type heapSampler struct {
	stop            chan struct{}
	done            chan struct{}
	base, peak, sys uint64
}

func sampleHeap() *heapSampler {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{}), base: ms.HeapInuse, peak: ms.HeapInuse}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			h.peak, h.sys = max(h.peak, ms.HeapInuse), ms.Sys
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) end() {
	close(h.stop)
	<-h.done
}

// escapedNewlines counts the \n escapes of a JSON body (the lines of its
// logs string) as it streams past, holding nothing of it but the first
// and last bytes.
type escapedNewlines struct {
	n          int
	backslash  bool
	head, tail []byte
}

func (c *escapedNewlines) Write(p []byte) (int, error) {
	if len(c.head) < 256 {
		c.head = append(c.head, p[:min(len(p), 256-len(c.head))]...)
	}
	c.tail = append(c.tail, p...)
	if len(c.tail) > 512 {
		c.tail = append(c.tail[:0], c.tail[len(c.tail)-256:]...)
	}
	for _, b := range p {
		switch {
		case c.backslash:
			if b == 'n' {
				c.n++
			}
			c.backslash = false
		case b == '\\':
			c.backslash = true
		}
	}
	return len(p), nil
}

// TestLogReadsMemoryBounded is the attack of issue 9 item 3: 100 parallel
// ?tail=1 reads and parallel since reads of a program whose stored history
// is 32 MiB. Each read used to load the whole history (over 200 MB
// allocated per read); now the heap stays within a few tens of MB.
func TestLogReadsMemoryBounded(t *testing.T) {
	e := newEnv(t)
	var created map[string]any
	e.do("POST", "/programs", e.tokA, goModule, 201, &created)
	id := created["program_id"].(string)
	n, t0 := storedHistory(t, e.dir, id)
	P := "/programs/" + id + "/logs"
	lastText := fmt.Sprintf("line %07d <\"quoted\" & \\ tab\t é \u2028>\n", n-1)

	// The streamed answer is what writeJSON gives for the same object.
	resp, body := e.req("GET", P+"?tail=1", e.tokA, "")
	var got struct {
		ProgramID   string    `json:"program_id"`
		ContainerID string    `json:"container_id"`
		Logs        string    `json:"logs"`
		Timestamp   time.Time `json:"timestamp"`
	}
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("tail=1: %d %v: %s", resp.StatusCode, err, body)
	}
	if got.Logs != lastText || got.ProgramID != id {
		t.Fatalf("tail=1: %+v", got)
	}
	rec := httptest.NewRecorder()
	writeJSON(rec, 200, map[string]any{"program_id": got.ProgramID, "container_id": got.ContainerID, "logs": got.Logs, "timestamp": got.Timestamp})
	if !bytes.Equal(rec.Body.Bytes(), body) || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("the streamed answer differs from writeJSON's:\n%s\n%s", body, rec.Body.Bytes())
	}
	e.do("GET", P+"?tail=0&since="+time.Now().Add(time.Hour).Format(time.RFC3339), e.tokA, "", 200, &got)
	if got.Logs != "" {
		t.Errorf("since the future: %q", got.Logs)
	}

	const tails, sinces = 100, 10
	sinceLines := 40000 // about 4 MiB of the newest file
	since := t0.Add(time.Duration(n-sinceLines) * 10 * time.Millisecond).Format(time.RFC3339Nano)
	heap := sampleHeap()
	var wg sync.WaitGroup
	errs := make(chan error, tails+sinces)
	get := func(path string, out io.Writer) error {
		r, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		r.Header.Set("Authorization", "Bearer "+e.tokA)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		_, err = io.Copy(out, resp.Body)
		return err
	}
	for range tails {
		wg.Go(func() {
			var b bytes.Buffer
			if err := get(P+"?tail=1", &b); err != nil {
				errs <- err
				return
			}
			var got struct{ Logs string }
			if err := json.Unmarshal(b.Bytes(), &got); err != nil || got.Logs != lastText {
				errs <- fmt.Errorf("tail=1: %v %.200q", err, b.String())
			}
		})
	}
	for range sinces {
		wg.Go(func() {
			var c escapedNewlines
			if err := get(P+"?since="+since, &c); err != nil {
				errs <- err
				return
			}
			first := fmt.Sprintf(`"logs":"line %07d `, n-sinceLines)
			if c.n != sinceLines || !bytes.Contains(c.head, []byte(first)) || !bytes.Contains(c.tail, []byte(`"program_id":"`+id+`"`)) {
				errs <- fmt.Errorf("since: %d lines, want %d; starts %q, ends %q", c.n, sinceLines, c.head, c.tail)
			}
		})
	}
	wg.Wait()
	heap.end()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	grew := heap.peak - heap.base
	t.Logf("heap in use: %d MiB before, peak %d MiB during %d tail=1 and %d since reads (+%d MiB); Sys %d MiB",
		heap.base>>20, heap.peak>>20, tails, sinces, grew>>20, heap.sys>>20)
	const bound = 48 << 20
	if grew > bound {
		t.Errorf("the heap grew by %d MiB during the reads (bound %d MiB): reads hold the history", grew>>20, bound>>20)
	}
}

// follow opens a log stream as tok and returns its status, error body and
// a function closing it (closed at the latest when the test ends).
func (e *env) follow(path, tok string) (int, []byte, func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return resp.StatusCode, b, func() {}
	}
	stop := func() {
		cancel()
		resp.Body.Close()
	}
	// An open stream would keep the server's Close waiting forever if the
	// test ends early.
	e.t.Cleanup(stop)
	return 200, nil, stop
}

// waitNoGoroutines waits until no goroutine runs any of the functions
// named (the log streams' handlers and readers), failing after a minute.
func waitNoGoroutines(t *testing.T, funcs ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		buf := make([]byte, 4<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		var left []string
		for _, g := range strings.Split(stacks, "\n\n") {
			for _, f := range funcs {
				if strings.Contains(g, f) {
					left = append(left, g)
					break
				}
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutine(s) of closed log streams left:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFollowCap: a user may hold DefaultMaxFollows log streams (logs and
// build-log follows together); the next is a 429 with the JSON error body,
// other users and the admin are unaffected, and a closed stream gives its
// slot back and leaves no goroutine behind.
func TestFollowCap(t *testing.T) {
	e := newEnv(t)
	var a, b map[string]any
	e.do("POST", "/programs", e.tokA, goModule, 201, &a)
	e.do("POST", "/programs", e.tokB, `{"src_files":{"go.mod":"module b\n","main.go":"package main\nfunc main(){}\n"}}`, 201, &b)
	PA, PB := "/programs/"+a["program_id"].(string), "/programs/"+b["program_id"].(string)

	var closers []func()
	for i := range DefaultMaxFollows {
		code, body, stop := e.follow(PA+"/logs?follow=1", e.tokA)
		if code != 200 {
			t.Fatalf("follow %d: %d %s", i+1, code, body)
		}
		closers = append(closers, stop)
	}
	for _, p := range []string{PA + "/logs?follow=1&tail=5", PA + "/build-log?follow=1"} {
		code, body, stop := e.follow(p, e.tokA)
		stop()
		if code != http.StatusTooManyRequests {
			t.Fatalf("a follow beyond the cap: %s: %d", p, code)
		}
		var eb errorBody
		if err := json.Unmarshal(body, &eb); err != nil || eb.Code != 429 || eb.Error != "Too Many Requests" || !strings.Contains(eb.Message, "at most 8") {
			t.Errorf("the 429 body: %s (%v)", body, err)
		}
	}
	e.do("GET", PA+"/logs?tail=5", e.tokA, "", 200, nil) // reads that do not follow go on
	code, body, stopB := e.follow(PB+"/logs?follow=1", e.tokB)
	if code != 200 {
		t.Errorf("bob is held by alice's follows: %d %s", code, body)
	}
	code, body, stopAdmin := e.follow(PA+"/logs?follow=1", e.admin)
	if code != 200 {
		t.Errorf("the admin is held by alice's follows: %d %s", code, body)
	}
	stopB()
	stopAdmin()

	// A closed stream frees its slot (once the server sees it close).
	closers[0]()
	deadline := time.Now().Add(time.Minute)
	for {
		code, body, stop := e.follow(PA+"/logs?follow=1", e.tokA)
		if code == 200 {
			closers[0] = stop
			break
		}
		if code != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("after closing a stream: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, stop := range closers {
		stop()
	}
	waitNoGoroutines(t, "api.(*server).logs", "logstore.(*File).Read", "logstore.(*File).follow", "api.(*server).buildLog")
	// Every slot is back.
	for i := range DefaultMaxFollows {
		code, body, stop := e.follow(PA+"/logs?follow=1", e.tokA)
		if code != 200 {
			t.Fatalf("follow %d after all closed: %d %s", i+1, code, body)
		}
		defer stop()
	}
}
