package api

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/source"
)

// FuzzCreateRequest: POST /programs with any body is a 201 with a program
// whose source reads back as sent, or a 4xx with a JSON error: never a 5xx
// and never a panic. The fuzzer writes the body; the seeds are a valid
// request and near misses.
func FuzzCreateRequest(f *testing.F) {
	for _, s := range []string{
		`{"src_files":{"main.go":"package main\n","go.mod":"module x\n\ngo 1.25\n"}}`,
		`{"dockerfile":"FROM scratch\nCOPY app /app\n","src_files":{"app":"x"},"memory_bytes":67108864,"cpus":0.5}`,
		`{"src_files":{"../x":"y"}}`,
		`{"src_files":{"a":"x","a/b":"y"},"restart_policy":"sometimes"}`,
		`{"src_files":{"main.go":"x"},"env":{"A B":"1"},"state_bytes":-1}`,
		`{"src_files":{"main.go":"x"},"user_id":"bob"}`,
		`{"src_files":{"main.go":"x"}} trailing`,
		`{"dockerfile":"FROM scratch\nRUN rm -rf /\n","src_files":{}}`,
		`[]`, `null`, ``,
	} {
		f.Add(s)
	}
	d := hosttest.NewFake(f, fake.Options{})
	dir := f.TempDir()
	h := d.Open(f, dir)
	tok, _, err := h.Tokens().Create(context.Background(), "alice")
	if err != nil {
		f.Fatal(err)
	}
	srv, err := New(h, Options{DataDir: dir, Version: "test"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/programs", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		switch code := rec.Code; {
		case code == http.StatusCreated:
			var out struct {
				ProgramID string `json:"program_id"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.ProgramID == "" {
				t.Fatalf("201 without a program id: %s", rec.Body)
			}
			var sent programBody
			json.Unmarshal([]byte(body), &sent)
			want := maps.Clone(sent.SrcFiles)
			if sent.Dockerfile != "" {
				want[source.DockerfileName] = sent.Dockerfile // Source gives it back as a file
			}
			files, err := h.Source(context.Background(), out.ProgramID)
			if err != nil || len(files) != len(want) {
				t.Fatalf("the stored source: %d files (%v), sent %d", len(files), err, len(want))
			}
			for n, c := range want {
				if files[n] != c {
					t.Fatalf("file %q stored as %q, sent %q", n, files[n], c)
				}
			}
			if err := h.Delete(context.Background(), out.ProgramID); err != nil {
				t.Fatal(err)
			}
		case code >= 400 && code < 500:
			var eb errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == "" {
				t.Fatalf("%d without a JSON error: %s", code, rec.Body)
			}
		default:
			t.Fatalf("%d: %s", code, rec.Body)
		}
	})
}
