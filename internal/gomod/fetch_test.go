package gomod_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hershyorg/hershy/internal/gomod"
	"github.com/hershyorg/hershy/internal/gomod/gomodtest"
)

func proxies(t *testing.T, s string) []gomod.Proxy {
	t.Helper()
	ps, _, err := gomod.ParseProxies(s)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// plan reads the plan of a program requiring m, with sum as its go.sum.
func plan(t *testing.T, m gomodtest.Module, sum string) *gomod.Plan {
	t.Helper()
	p, err := gomod.Read([]byte("module example.com/bot\n\nrequire "+m.Path+" "+m.Version+"\n"), []byte(sum), false, gomod.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func prepare(t *testing.T, f *gomod.Fetcher, p *gomod.Plan, lim gomod.Limits) (string, error) {
	view := filepath.Join(t.TempDir(), "view")
	var log bytes.Buffer
	err := f.Prepare(context.Background(), p, view, lim, &log)
	return view, err
}

func TestPrepare(t *testing.T) {
	m := gomodtest.NewModule(t, "example.com/Greet", "v1.0.0", map[string]string{"greet.go": "package greet\n\nfunc Hello() string { return \"hi\" }\n"})
	px := gomodtest.NewProxy(t, m)
	f, err := gomod.NewFetcher(t.TempDir(), proxies(t, px.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	view := filepath.Join(t.TempDir(), "view")
	var log bytes.Buffer
	if err := f.Prepare(context.Background(), plan(t, m, m.GoSum()), view, gomod.Limits{}, &log); err != nil {
		t.Fatal(err)
	}
	// Upper case is escaped as the go command does.
	for _, name := range []string{"v1.0.0.zip", "v1.0.0.mod", "v1.0.0.info"} {
		if _, err := os.Stat(filepath.Join(view, "example.com", "!greet", "@v", name)); err != nil {
			t.Errorf("view lacks %s: %v", name, err)
		}
	}
	if !strings.Contains(log.String(), "fetched example.com/Greet v1.0.0") {
		t.Errorf("log %q", log.String())
	}
	n := len(px.Requests())
	// A second build links from the store: no download.
	if _, err := prepare(t, f, plan(t, m, m.GoSum()), gomod.Limits{}); err != nil {
		t.Fatal(err)
	}
	if len(px.Requests()) != n {
		t.Errorf("downloaded again: %v", px.Requests())
	}
}

func TestPrepareChecksumMismatch(t *testing.T) {
	m := gomodtest.NewModule(t, "example.com/greet", "v1.0.0", map[string]string{"a.go": "package greet\n"})
	px := gomodtest.NewProxy(t, m)
	f, _ := gomod.NewFetcher(t.TempDir(), proxies(t, px.URL), nil)
	bad := strings.Replace(m.GoSum(), m.ZipHash, "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 1)
	view, err := prepare(t, f, plan(t, m, bad), gomod.Limits{})
	if !errors.Is(err, gomod.ErrFetch) || !strings.Contains(err.Error(), "checksum mismatch for example.com/greet v1.0.0") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(view, "example.com", "greet", "@v", "v1.0.0.zip")); err == nil {
		t.Fatal("a module that failed its check reached the build's view")
	}
	// The right hash still works, from the store.
	if _, err := prepare(t, f, plan(t, m, m.GoSum()), gomod.Limits{}); err != nil {
		t.Fatal(err)
	}
}

func TestPrepareProxyFallback(t *testing.T) {
	m := gomodtest.NewModule(t, "example.com/greet", "v1.0.0", nil)
	empty := gomodtest.NewProxy(t)
	broken := gomodtest.NewProxy(t)
	broken.Fail(http.StatusInternalServerError)
	good := gomodtest.NewProxy(t, m)
	for _, tc := range []struct {
		list string
		ok   bool
	}{
		{empty.URL + "," + good.URL, true},   // not found: next
		{broken.URL + "," + good.URL, false}, // other errors stop after ","
		{broken.URL + "|" + good.URL, true},  // but not after "|"
		{empty.URL + ",direct", false},       // never direct
	} {
		f, _ := gomod.NewFetcher(t.TempDir(), proxies(t, tc.list), nil)
		_, err := prepare(t, f, plan(t, m, m.GoSum()), gomod.Limits{})
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.list, err)
		}
		if err != nil && !errors.Is(err, gomod.ErrFetch) {
			t.Errorf("%s: error %q", tc.list, err)
		}
	}
}

func TestPrepareLimits(t *testing.T) {
	noise := make([]byte, 64<<10)
	rand.Read(noise)
	m := gomodtest.NewModule(t, "example.com/big", "v1.0.0", map[string]string{"big.go": "package big\n", "data.txt": base64.StdEncoding.EncodeToString(noise)})
	px := gomodtest.NewProxy(t, m)
	f, _ := gomod.NewFetcher(t.TempDir(), proxies(t, px.URL), nil)
	if _, err := prepare(t, f, plan(t, m, m.GoSum()), gomod.Limits{MaxBytes: 1 << 10}); !errors.Is(err, gomod.ErrFetch) || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("err = %v", err)
	}
	f, _ = gomod.NewFetcher(t.TempDir(), nil, nil)
	if _, err := prepare(t, f, plan(t, m, m.GoSum()), gomod.Limits{}); !errors.Is(err, gomod.ErrFetch) || !strings.Contains(err.Error(), "no module proxy") {
		t.Fatalf("no proxy: err = %v", err)
	}
}

// TestPrepareRefusesBadZip: a zip whose file names the go command would
// refuse never reaches the store (the check is the go command's own).
func TestPrepareRefusesBadZip(t *testing.T) {
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("example.com/evil@v1.0.0/../../escape.go")
	w.Write([]byte("package evil\n"))
	zw.Close()
	m := gomodtest.NewModule(t, "example.com/evil", "v1.0.0", nil)
	m.Zip = zb.Bytes()
	px := gomodtest.NewProxy(t, m)
	store := t.TempDir()
	f, _ := gomod.NewFetcher(store, proxies(t, px.URL), nil)
	_, err := prepare(t, f, plan(t, m, m.GoSum()), gomod.Limits{})
	if !errors.Is(err, gomod.ErrFetch) || !strings.Contains(err.Error(), "invalid module zip") {
		t.Fatalf("err = %v", err)
	}
	filepath.WalkDir(store, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".zip") {
			t.Errorf("the invalid zip was stored: %s", p)
		}
		return nil
	})
}

func TestFileProxy(t *testing.T) {
	m := gomodtest.NewModule(t, "example.com/greet", "v1.0.0", nil)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "example.com", "greet", "@v"), 0o755)
	os.WriteFile(filepath.Join(dir, "example.com", "greet", "@v", "v1.0.0.zip"), m.Zip, 0o644)
	os.WriteFile(filepath.Join(dir, "example.com", "greet", "@v", "v1.0.0.mod"), m.Mod, 0o644)
	f, _ := gomod.NewFetcher(t.TempDir(), proxies(t, (&url.URL{Scheme: "file", Path: dir}).String()), nil)
	if _, err := prepare(t, f, plan(t, m, m.GoSum()), gomod.Limits{}); err != nil {
		t.Fatal(err)
	}
}

func TestTrim(t *testing.T) {
	var mods []gomodtest.Module
	for _, name := range []string{"a", "b", "c"} {
		noise := make([]byte, 32<<10)
		rand.Read(noise)
		mods = append(mods, gomodtest.NewModule(t, "example.com/"+name, "v1.0.0", map[string]string{"x.txt": base64.StdEncoding.EncodeToString(noise)}))
	}
	px := gomodtest.NewProxy(t, mods...)
	store := t.TempDir()
	f, _ := gomod.NewFetcher(store, proxies(t, px.URL), nil)
	for _, m := range mods {
		if _, err := prepare(t, f, plan(t, m, m.GoSum()), gomod.Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	// Use a again: b is now the least recently used.
	if _, err := prepare(t, f, plan(t, mods[0], mods[0].GoSum()), gomod.Limits{}); err != nil {
		t.Fatal(err)
	}
	size := func() (n int64, names []string) {
		filepath.WalkDir(store, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(p, ".h1") {
				return nil
			}
			fi, _ := d.Info()
			n += fi.Size()
			if strings.HasSuffix(p, ".zip") {
				names = append(names, filepath.Base(filepath.Dir(filepath.Dir(p))))
			}
			return nil
		})
		return
	}
	total, _ := size()
	if err := f.Trim(total * 3 / 4); err != nil {
		t.Fatal(err)
	}
	if _, names := size(); strings.Join(names, ",") != "a,c" {
		t.Fatalf("after the trim the store holds %v, want a and c (b was used least recently)", names)
	}
	// A trimmed module is fetched again when needed.
	if _, err := prepare(t, f, plan(t, mods[1], mods[1].GoSum()), gomod.Limits{}); err != nil {
		t.Fatal(err)
	}
}
