// Command cacheprog is the go command's build cache inside the Host's build
// sandbox (GOCACHEPROG, see cmd/go/internal/cacheprog): it layers one
// writable cache over read-only ones.
//
// Why: the build sandbox must not let one user's build read or alter what
// another user's build compiled, so each user has a cache of their own. But
// a cold cache costs a minute under gVisor, mostly to compile the standard
// library and the framework, which are the same for everyone. The Host
// compiles those once, from its own code, into a shared layer that user
// builds mount read-only; this program answers the go command from both:
//
//	cacheprog -w /cache/user -r /cache/shared
//
// With -idle it only waits to be killed: it is what keeps a user's build
// sandbox up between builds (the go command is then run in it, docker-exec
// style).
//
// A get looks in the writable layer first, then in each read-only layer in
// order; a put always goes to the writable layer. Nothing here can write to
// a read-only layer (the mount forbids it anyway).
//
// Layout of a layer:
//
//	a/<2 hex>/<action id hex>   "<output id hex> <size> <unix nanoseconds>\n"
//	o/<2 hex>/<output id hex>   the output's bytes
//
// Files are written to a temporary name and renamed, so a crashed build
// leaves no half entry; an entry whose output is missing or of the wrong size
// is a miss. The program uses nothing but the standard library and is
// compiled by the Host with its own toolchain (package builder embeds this
// file).
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds one cache object: the go command's own objects are far
// smaller (a large package archive is tens of MiB).
const maxBody = 1 << 30

// request and response follow cmd/go/internal/cacheprog's Request and
// Response (JSON field names are the wire format).
type request struct {
	ID       int64
	Command  string
	ActionID []byte `json:",omitempty"`
	OutputID []byte `json:",omitempty"`
	BodySize int64  `json:",omitempty"`
}

type response struct {
	ID            int64
	Err           string     `json:",omitempty"`
	KnownCommands []string   `json:",omitempty"`
	Miss          bool       `json:",omitempty"`
	OutputID      []byte     `json:",omitempty"`
	Size          int64      `json:",omitempty"`
	Time          *time.Time `json:",omitempty"`
	DiskPath      string     `json:",omitempty"`
}

// layers is the cache: rw receives puts, ro are read after it.
type layers struct {
	rw string
	ro []string
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var c layers
	var ro multiFlag
	flag.StringVar(&c.rw, "w", "", "writable cache `dir` (required)")
	flag.Var(&ro, "r", "read-only cache `dir`, searched after -w (repeatable)")
	idle := flag.Bool("idle", false, "do nothing until killed: the first process of a build sandbox kept up between builds")
	flag.Parse()
	if *idle {
		for {
			time.Sleep(time.Hour)
		}
	}
	c.ro = ro
	if c.rw == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: cacheprog -w dir [-r dir]...")
		os.Exit(2)
	}
	if err := c.serve(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cacheprog:", err)
		os.Exit(1)
	}
}

// serve answers the go command's requests from in on out until a close
// request or the end of in. Errors about one object are answered to the go
// command (which then compiles instead); only a broken stream ends serve.
func (c *layers) serve(in io.Reader, out io.Writer) error {
	for _, d := range []string{"a", "o"} {
		if err := os.MkdirAll(filepath.Join(c.rw, d), 0o755); err != nil {
			return err
		}
	}
	bw := bufio.NewWriter(out)
	enc := json.NewEncoder(bw)
	send := func(r response) error {
		if err := enc.Encode(r); err != nil {
			return err
		}
		return bw.Flush()
	}
	if err := send(response{KnownCommands: []string{"get", "put", "close"}}); err != nil {
		return err
	}
	dec := json.NewDecoder(bufio.NewReaderSize(in, 64<<10))
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading a request: %w", err)
		}
		var body []byte
		if req.Command == "put" && req.BodySize > 0 {
			if req.BodySize > maxBody {
				return fmt.Errorf("request %d: body of %d bytes is too large", req.ID, req.BodySize)
			}
			// The body follows as a JSON string of base64, which the
			// decoder turns into bytes.
			if err := dec.Decode(&body); err != nil {
				return fmt.Errorf("request %d: reading the body: %w", req.ID, err)
			}
		}
		res := response{ID: req.ID}
		switch req.Command {
		case "get":
			c.get(req, &res)
		case "put":
			c.put(req, body, &res)
		case "close":
			return send(res)
		default:
			res.Err = fmt.Sprintf("unknown command %q", req.Command)
		}
		if err := send(res); err != nil {
			return err
		}
	}
}

func (c *layers) all() []string { return append([]string{c.rw}, c.ro...) }

// entryPath is where a layer keeps an action ("a") or an output ("o").
func entryPath(layer, kind string, id []byte) string {
	h := hex.EncodeToString(id)
	return filepath.Join(layer, kind, h[:2], h)
}

// validID accepts the go command's ids: sha256 sums.
func validID(id []byte) bool { return len(id) == sha256.Size }

func (c *layers) get(req request, res *response) {
	if !validID(req.ActionID) {
		res.Err = "get: bad action id"
		return
	}
	for _, layer := range c.all() {
		b, err := os.ReadFile(entryPath(layer, "a", req.ActionID))
		if err != nil {
			continue
		}
		out, size, at, ok := parseAction(b)
		if !ok {
			continue
		}
		if p, ok := c.findOutput(out, size); ok {
			t := time.Unix(0, at)
			res.OutputID, res.Size, res.Time, res.DiskPath = out, size, &t, p
			return
		}
	}
	res.Miss = true
}

// findOutput returns the first layer's file holding output id with the
// given size. An action of one layer may name an output kept by another
// (a put skips writing what a read-only layer already has).
func (c *layers) findOutput(id []byte, size int64) (string, bool) {
	for _, layer := range c.all() {
		p := entryPath(layer, "o", id)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Size() == size {
			return p, true
		}
	}
	return "", false
}

func parseAction(b []byte) (out []byte, size, at int64, ok bool) {
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return nil, 0, 0, false
	}
	out, err := hex.DecodeString(f[0])
	if err != nil || !validID(out) {
		return nil, 0, 0, false
	}
	size, err1 := strconv.ParseInt(f[1], 10, 64)
	at, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || size < 0 {
		return nil, 0, 0, false
	}
	return out, size, at, true
}

func (c *layers) put(req request, body []byte, res *response) {
	switch {
	case !validID(req.ActionID) || !validID(req.OutputID):
		res.Err = "put: bad action or output id"
		return
	case int64(len(body)) != req.BodySize:
		res.Err = fmt.Sprintf("put: body has %d bytes, BodySize says %d", len(body), req.BodySize)
		return
	}
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], req.OutputID) {
		res.Err = "put: body does not hash to its output id"
		return
	}
	size := int64(len(body))
	p, ok := c.findOutput(req.OutputID, size)
	if !ok {
		p = entryPath(c.rw, "o", req.OutputID)
		if err := writeAtomic(p, body); err != nil {
			res.Err = "put: " + err.Error()
			return
		}
	}
	rec := fmt.Sprintf("%x %d %d\n", req.OutputID, size, time.Now().UnixNano())
	if err := writeAtomic(entryPath(c.rw, "a", req.ActionID), []byte(rec)); err != nil {
		res.Err = "put: " + err.Error()
		return
	}
	res.DiskPath = p
}

// writeAtomic writes b to a temporary file beside p and renames it into
// place, so a reader never sees part of an entry.
func writeAtomic(p string, b []byte) error {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}
