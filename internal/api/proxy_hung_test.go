package api

import (
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
)

// hungAPI is a WatcherAPI whose /watcher/hang never begins its answer and
// whose /watcher/trickle sends its headers and then a byte a while, until
// release is closed; every other path answers at once (the readiness
// probe included).
type hungAPI struct {
	release chan struct{}
	waiting atomic.Int64
}

func (a *hungAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/watcher/hang":
		a.waiting.Add(1)
		defer a.waiting.Add(-1)
		select {
		case <-a.release:
		case <-r.Context().Done():
		}
	case "/watcher/trickle":
		a.waiting.Add(1)
		defer a.waiting.Add(-1)
		w.Header().Set("Content-Type", "text/plain")
		for {
			w.Write([]byte("."))
			w.(http.Flusher).Flush()
			select {
			case <-a.release:
				return
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	default:
		statusHandler().ServeHTTP(w, r)
	}
}

// TestProxyHungProgram: a program whose WatcherAPI hangs or trickles holds
// at most ProxyInFlight of the Host's requests at once; the rest are
// refused with 429 at once, not queued. A hung request ends with 504 at
// the header timeout and gives its slot back; a trickling one streams for
// as long as its caller reads. When they are over, the Host's goroutines
// are back where they were.
func TestProxyHungProgram(t *testing.T) {
	api := &hungAPI{release: make(chan struct{})}
	const inFlight = 4
	e := newFakeProxyEnv(t, fake.Script{API: api}.Program(), Options{ProxyInFlight: inFlight, ProxyHeaderTimeout: 300 * time.Millisecond})
	id := e.deploy("alice")
	get := func(path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/programs/"+id+"/proxy"+path, nil)
		req.Header.Set("Authorization", "Bearer "+e.alice)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/watcher/status"); code != http.StatusOK {
		t.Fatalf("status: %d", code)
	}
	// Idle keep-alive connections, the client's and those into the program
	// (kept for reuse, at most maxIdlePerProgram), are closed to count.
	closeIdle := func() {
		http.DefaultClient.CloseIdleConnections()
		e.api.s.upstreams.mu.Lock()
		for _, up := range e.api.s.upstreams.byID {
			up.tr.CloseIdleConnections()
		}
		e.api.s.upstreams.mu.Unlock()
	}
	closeIdle()
	time.Sleep(100 * time.Millisecond)
	baseline := runtime.NumGoroutine()

	// The header timeout: a hung request ends with 504.
	if code, body := get("/watcher/hang"); code != http.StatusGatewayTimeout {
		t.Fatalf("a hung WatcherAPI: %d %s, want 504", code, body)
	}

	// Trickling answers fill the slots; the next request is refused at once.
	var wg sync.WaitGroup
	codes := make(chan int, inFlight)
	for range inFlight {
		wg.Go(func() {
			code, _ := get("/watcher/trickle")
			codes <- code
		})
	}
	for deadline := time.Now().Add(10 * time.Second); api.waiting.Load() < inFlight; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d trickling requests reached the program", api.waiting.Load(), inFlight)
		}
	}
	t0 := time.Now()
	if code, body := get("/watcher/status"); code != http.StatusTooManyRequests {
		t.Fatalf("a request beyond %d in flight: %d %s, want 429", inFlight, code, body)
	}
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("the refusal waited %v", took)
	}
	close(api.release)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusOK {
			t.Errorf("a trickled answer ended with %d", code)
		}
	}
	if code, _ := get("/watcher/status"); code != http.StatusOK {
		t.Fatalf("after the slots are free: %d", code)
	}
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > baseline; time.Sleep(20 * time.Millisecond) {
		closeIdle()
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d, %d before the hung requests", runtime.NumGoroutine(), baseline)
		}
	}
}
