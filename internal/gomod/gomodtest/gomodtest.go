// Package gomodtest serves Go modules for tests: modules made in memory,
// and a module proxy on a loopback port that records what it was asked.
// It lets the Host's dependency handling be tested without the network.
package gomodtest

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

// Module is a module as a proxy serves it.
type Module struct {
	Path, Version string
	Mod, Zip      []byte
	// ZipHash and ModHash are its go.sum hashes.
	ZipHash, ModHash string
}

// GoSum returns the module's two go.sum lines.
func (m Module) GoSum() string {
	return fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", m.Path, m.Version, m.ZipHash, m.Path, m.Version, m.ModHash)
}

// NewModule makes a module of files (a go.mod is added when missing).
func NewModule(t testing.TB, modPath, version string, files map[string]string) Module {
	t.Helper()
	all := map[string]string{"go.mod": "module " + modPath + "\n\ngo 1.22\n"}
	for n, d := range files {
		all[n] = d
	}
	var names []string
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	var zfs []modzip.File
	for _, n := range names {
		zfs = append(zfs, memFile{n, all[n]})
	}
	var zb bytes.Buffer
	if err := modzip.Create(&zb, module.Version{Path: modPath, Version: version}, zfs); err != nil {
		t.Fatalf("gomodtest: %v", err)
	}
	m := Module{Path: modPath, Version: version, Mod: []byte(all["go.mod"]), Zip: zb.Bytes()}
	zf, err := os.CreateTemp("", "gomodtest-*.zip")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(zf.Name())
	zf.Write(m.Zip)
	zf.Close()
	if m.ZipHash, err = dirhash.HashZip(zf.Name(), dirhash.Hash1); err != nil {
		t.Fatal(err)
	}
	m.ModHash, _ = dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(m.Mod)), nil
	})
	return m
}

type memFile struct{ name, data string }

func (f memFile) Path() string { return f.name }
func (f memFile) Lstat() (fs.FileInfo, error) {
	return fileInfo{path.Base(f.name), int64(len(f.data))}, nil
}
func (f memFile) Open() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(f.data)), nil }

type fileInfo struct {
	name string
	size int64
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return 0o644 }
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }

// Proxy is a module proxy on 127.0.0.1 serving the given modules (GOPROXY
// protocol: <path>/@v/<version>.mod, .zip, .info).
type Proxy struct {
	*httptest.Server

	mu       sync.Mutex
	requests []string
	files    map[string][]byte
	status   int
}

// NewProxy starts a proxy; it stops when the test ends.
func NewProxy(t testing.TB, mods ...Module) *Proxy {
	p := &Proxy{files: map[string][]byte{}}
	for _, m := range mods {
		p.Add(m)
	}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

// Add serves one more module.
func (p *Proxy) Add(m Module) {
	ep, _ := module.EscapePath(m.Path)
	ev, _ := module.EscapeVersion(m.Version)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files["/"+ep+"/@v/"+ev+".mod"] = m.Mod
	p.files["/"+ep+"/@v/"+ev+".zip"] = m.Zip
	p.files["/"+ep+"/@v/"+ev+".info"] = []byte(`{"Version":"` + m.Version + `"}`)
}

// Fail makes every answer the given HTTP status (0: serve normally).
func (p *Proxy) Fail(status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status = status
}

// Requests lists the paths asked for so far.
func (p *Proxy) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.requests = append(p.requests, r.URL.Path)
	status := p.status
	b, ok := p.files[r.URL.Path]
	p.mu.Unlock()
	switch {
	case status != 0:
		w.WriteHeader(status)
	case !ok:
		http.NotFound(w, r)
	default:
		w.Write(b)
	}
}
