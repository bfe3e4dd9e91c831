package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestBulkRequestsMemoryBounded: uploads and source reads hold a whole
// source in memory, up to 32 MiB of JSON each and more once decoded; 40
// parallel uploads would take over a gigabyte from the Host, and as many
// reads as much again. A few at a time keep the Host's heap bounded
// (measured here: +247 MiB for 40 and 40 with the bound, +3 GiB without).
func TestBulkRequestsMemoryBounded(t *testing.T) {
	e := newEnv(t)
	files := map[string]string{"go.mod": "module example.com/big\n", "main.go": "package main\n\nfunc main() {}\n"}
	for i := range 3 {
		files[fmt.Sprintf("data%d.txt", i)] = strings.Repeat(fmt.Sprintf("%d", i), 4<<20-1024)
	}
	stored, _ := json.Marshal(map[string]any{"src_files": files})
	resp, b := e.req("POST", "/programs", e.tokA, string(stored))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	var created struct {
		ProgramID string `json:"program_id"`
	}
	json.Unmarshal(b, &created)
	// Alice uploading for bob: the whole body is read and decoded, then
	// refused (403).
	upload, _ := json.Marshal(map[string]any{"user_id": "bob", "src_files": files})

	do := func(method, path string, body []byte) int {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body) // the test's one copy, allocated before sampling
		}
		r, _ := http.NewRequest(method, e.srv.URL+path, rd)
		r.Header.Set("Authorization", "Bearer "+e.tokA)
		if body != nil {
			r.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	h := sampleHeap()
	var wg sync.WaitGroup
	codes := make(chan int, 40)
	for range 20 {
		wg.Go(func() { codes <- do("POST", "/programs", upload) })
		wg.Go(func() { codes <- do("GET", "/programs/"+created.ProgramID+"/source", nil) })
	}
	wg.Wait()
	h.end()
	close(codes)
	for c := range codes {
		// 503: a turn not given within a minute (a slow machine); the
		// bound held all the same.
		if c != http.StatusForbidden && c != http.StatusOK && c != http.StatusServiceUnavailable {
			t.Errorf("answer %d", c)
		}
	}
	grew := (h.peak - h.base) >> 20
	t.Logf("heap in use: %d MiB before, peak +%d MiB (Sys %d MiB)", h.base>>20, grew, h.sys>>20)
	if grew > 400 {
		t.Errorf("40 parallel uploads and source reads of a 12 MiB source grew the heap by %d MiB", grew)
	}
}
