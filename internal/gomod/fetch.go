package gomod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

// Size limits of what a proxy may send, as the go command has them.
const (
	MaxGoModBytes = modzip.MaxGoMod
	MaxZipBytes   = modzip.MaxZipFile
)

// ErrFetch marks a dependency that could not be had: not on the proxy, a
// proxy failure, a checksum mismatch, a limit. The message says which.
var ErrFetch = errors.New("fetching dependencies")

// Proxy is one entry of the operator's GOPROXY list.
type Proxy struct {
	URL *url.URL // http, https or file
	// OnAnyError: the entry was followed by "|", so the next one is tried
	// after any failure; after "," only after "not found" (404, 410).
	OnAnyError bool
}

// ParseProxies reads a GOPROXY value. "direct" is dropped (the Host never
// fetches from a version-control host the user names) and so is anything
// after "off". It returns the proxies and the entries it dropped, for the
// operator's log; an empty list means dependencies cannot be fetched.
func ParseProxies(s string) (proxies []Proxy, dropped []string, err error) {
	for s != "" {
		i := strings.IndexAny(s, ",|")
		entry, sep := s, byte(0)
		if i >= 0 {
			entry, sep, s = s[:i], s[i], s[i+1:]
		} else {
			s = ""
		}
		entry = strings.TrimSpace(entry)
		switch entry {
		case "":
			continue
		case "direct":
			dropped = append(dropped, entry)
			continue
		case "off":
			if s != "" {
				dropped = append(dropped, "off,"+s)
			}
			return proxies, dropped, nil
		}
		u, err := url.Parse(entry)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "file") || (u.Scheme != "file" && u.Host == "") {
			return nil, nil, fmt.Errorf("gomod: module proxy %q: want an http, https or file URL", entry)
		}
		u.Path = strings.TrimRight(u.Path, "/")
		proxies = append(proxies, Proxy{URL: u, OnAnyError: sep == '|'})
	}
	return proxies, dropped, nil
}

// Fetcher downloads modules through the configured proxies into a store
// that only the Host writes. It is safe for concurrent use.
type Fetcher struct {
	proxies []Proxy
	store   string
	client  *http.Client

	mu    sync.Mutex
	locks map[string]*sync.Mutex // one download per file at a time
}

// NewFetcher keeps downloads under store (created if missing). client may
// be nil (a client with timeouts that honours HTTPS_PROXY).
func NewFetcher(store string, proxies []Proxy, client *http.Client) (*Fetcher, error) {
	if err := os.MkdirAll(store, 0o700); err != nil {
		return nil, fmt.Errorf("gomod: %w", err)
	}
	if client == nil {
		client = &http.Client{
			Timeout:   10 * time.Minute,
			Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: time.Minute, TLSHandshakeTimeout: 30 * time.Second},
		}
	}
	return &Fetcher{proxies: proxies, store: store, client: client, locks: map[string]*sync.Mutex{}}, nil
}

// Limits bound one build's downloads.
type Limits struct {
	MaxBytes int64 // total bytes downloaded for one build (0: 1 GiB)
}

// Prepare makes dir a GOPROXY folder (GOPROXY=file://<dir as the build
// sees it>) holding exactly the modules plan lists: each go.mod and zip is
// fetched into the store if missing, checked against its go.sum hash, and
// linked into dir. Progress goes to log. Errors wrap ErrFetch and name the
// module, never a path of the Host.
func (f *Fetcher) Prepare(ctx context.Context, plan *Plan, dir string, lim Limits, log io.Writer) error {
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = 1 << 30
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if len(plan.Sums) == 0 {
		return nil
	}
	if len(f.proxies) == 0 {
		return fmt.Errorf("%w: the program depends on %s, but the Host has no module proxy configured (GOPROXY)", ErrFetch, plan.Sums[0])
	}
	budget := lim.MaxBytes
	for _, s := range plan.Sums {
		if err := ctx.Err(); err != nil {
			return err
		}
		kind := ".zip"
		if s.GoMod {
			kind = ".mod"
		}
		p, fetched, err := f.get(ctx, s.Path, s.Version, kind, &budget)
		if err != nil {
			return err
		}
		got, err := f.hashOf(p, kind)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrFetch, s, err)
		}
		if got != s.Hash {
			return fmt.Errorf("%w: checksum mismatch for %s: go.sum has %s, the module proxy serves %s; the go.sum entry is wrong, or the module was altered (SECURITY)", ErrFetch, s, s.Hash, got)
		}
		if fetched {
			fmt.Fprintf(log, "fetched %s\n", s)
		} else {
			now := time.Now() // last use, for Trim
			os.Chtimes(p, now, now)
		}
		if err := link(p, f.viewPath(dir, s.Path, s.Version, kind)); err != nil {
			return err
		}
		// The go command asks a file proxy for .info too; it holds nothing
		// but the version here.
		info, _ := json.Marshal(struct{ Version string }{s.Version})
		if err := os.WriteFile(f.viewPath(dir, s.Path, s.Version, ".info"), info, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// storePath is where the store keeps a module file; escaped as the go
// command escapes them (upper case letters become !lower), so distinct
// modules never share a file name on any file system.
func (f *Fetcher) storePath(mod, ver, kind string) string { return f.viewPath(f.store, mod, ver, kind) }

func (f *Fetcher) viewPath(root, mod, ver, kind string) string {
	ep, _ := module.EscapePath(mod)
	ev, _ := module.EscapeVersion(ver)
	return filepath.Join(root, filepath.FromSlash(ep), "@v", ev+kind)
}

// get returns the store's copy of a module file, downloading it when
// missing (fetched then says so).
func (f *Fetcher) get(ctx context.Context, mod, ver, kind string, budget *int64) (p string, fetched bool, err error) {
	p = f.storePath(mod, ver, kind)
	lock := f.lock(p)
	lock.Lock()
	defer lock.Unlock()
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
		return p, false, nil
	}
	limit := int64(MaxGoModBytes)
	if kind == ".zip" {
		limit = MaxZipBytes
	}
	if limit > *budget {
		limit = *budget
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".download-")
	if err != nil {
		return "", false, err
	}
	defer os.Remove(tmp.Name()) // gone after the rename, or on failure
	n, err := f.download(ctx, mod, ver, kind, tmp, limit)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", false, err
	}
	*budget -= n
	if kind == ".zip" {
		// The go command's own checks of a module zip (file names, sizes),
		// before anything hashes or extracts it.
		if _, err := modzip.CheckZip(module.Version{Path: mod, Version: ver}, tmp.Name()); err != nil {
			return "", false, fmt.Errorf("%w: %s %s: the module proxy sent an invalid module zip: %v", ErrFetch, mod, ver, err)
		}
	}
	// Readable by the build's user through the view's links; never writable.
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return "", false, err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", false, err
	}
	return p, true, nil
}

func (f *Fetcher) lock(key string) *sync.Mutex {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.locks[key]
	if l == nil {
		l = &sync.Mutex{}
		f.locks[key] = l
	}
	return l
}

// errNotFound is a proxy's "no such module or version" (404 or 410).
var errNotFound = errors.New("not found")

// download copies one module file from the first proxy that has it into
// w, at most limit bytes.
func (f *Fetcher) download(ctx context.Context, mod, ver, kind string, w io.Writer, limit int64) (int64, error) {
	ep, err := module.EscapePath(mod)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrFetch, mod, err)
	}
	ev, err := module.EscapeVersion(ver)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %s: %v", ErrFetch, mod, ver, err)
	}
	rel := ep + "/@v/" + ev + kind
	var errs []string
	for _, px := range f.proxies {
		n, err := f.fetchOne(ctx, px.URL, rel, w, limit)
		if err == nil {
			return n, nil
		}
		if n > 0 {
			// Part of the file reached w: no other proxy can complete it.
			return 0, fmt.Errorf("%w: %s %s%s from %s: %v", ErrFetch, mod, ver, kind, redact(px.URL), err)
		}
		errs = append(errs, fmt.Sprintf("%s: %v", redact(px.URL), err))
		if !errors.Is(err, errNotFound) && !px.OnAnyError {
			break
		}
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	return 0, fmt.Errorf("%w: %s %s (%s) is not available: %s", ErrFetch, mod, ver, strings.TrimPrefix(kind, "."), strings.Join(errs, "; "))
}

func (f *Fetcher) fetchOne(ctx context.Context, base *url.URL, rel string, w io.Writer, limit int64) (int64, error) {
	var body io.ReadCloser
	if base.Scheme == "file" {
		fh, err := os.Open(filepath.Join(filepath.FromSlash(base.Path), filepath.FromSlash(rel)))
		if errors.Is(err, os.ErrNotExist) {
			return 0, errNotFound
		}
		if err != nil {
			return 0, errors.New("unreadable")
		}
		body = fh
	} else {
		u := *base
		u.Path += "/" + rel
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return 0, err
		}
		resp, err := f.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, errors.New("unreachable")
		}
		switch {
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
			resp.Body.Close()
			return 0, errNotFound
		case resp.StatusCode != http.StatusOK:
			resp.Body.Close()
			return 0, fmt.Errorf("HTTP status %d", resp.StatusCode)
		case resp.ContentLength > limit:
			resp.Body.Close()
			return 0, fmt.Errorf("%d bytes, over the limit of %d", resp.ContentLength, limit)
		}
		body = resp.Body
	}
	defer body.Close()
	n, err := io.Copy(w, io.LimitReader(body, limit+1))
	switch {
	case err != nil:
		return n, err
	case n > limit:
		return n, fmt.Errorf("more than %d bytes", limit)
	}
	return n, nil
}

// redact shows a proxy URL without credentials, for errors and logs.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.Redacted()
}

// hashOf returns the h1 hash of a stored file: of a module zip (its
// files), or of a go.mod file alone, as go.sum records them. A sidecar
// ".h1" file keeps the result (the store is the Host's alone), so a zip is
// hashed once.
func (f *Fetcher) hashOf(p, kind string) (string, error) {
	side := p + ".h1"
	if b, err := os.ReadFile(side); err == nil && strings.HasPrefix(string(b), "h1:") {
		return strings.TrimSpace(string(b)), nil
	}
	var h string
	var err error
	if kind == ".zip" {
		h, err = dirhash.HashZip(p, dirhash.Hash1)
	} else {
		h, err = dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return os.Open(p) })
	}
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(side, []byte(h+"\n"), 0o600); err != nil {
		return "", err
	}
	return h, nil
}

// link puts a store file into a build's view: a hard link (the view is
// mounted read-only, so the build cannot write through it), or a copy where
// links are not possible.
func link(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Link(src, dst); err == nil || errors.Is(err, os.ErrExist) {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

// Trim removes the least recently used module files until the store holds
// at most max bytes: every user's builds add to it, so without a bound one
// user could fill the Host's disk with public modules. A build that has
// linked a file into its view keeps it (the link holds the data).
func (f *Fetcher) Trim(max int64) error {
	type entry struct {
		path string
		size int64
		used time.Time
	}
	var files []entry
	var total int64
	err := filepath.WalkDir(f.store, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || strings.HasSuffix(p, ".h1") || strings.Contains(filepath.Base(p), ".download-") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		files = append(files, entry{p, fi.Size(), fi.ModTime()})
		total += fi.Size()
		return nil
	})
	if err != nil || total <= max {
		return err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].used.Before(files[j].used) })
	for _, e := range files {
		if total <= max {
			break
		}
		lock := f.lock(e.path)
		lock.Lock()
		if err := os.Remove(e.path); err == nil {
			os.Remove(e.path + ".h1")
			total -= e.size
		}
		lock.Unlock()
	}
	return nil
}
