package fake

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Probe is the fake's rendering of the Docker driver's test program
// (internal/driver/docker/testdata/probe), which package drivertest runs in
// every driver: its flags come from PROBE_FLAGS in the environment and
// from a job's arguments after the command. In order: -copy src:dst
// (repeatable) copies files and prints the outcome, -sleep waits, -exit N
// prints "exiting with N" and exits with N, -lines N prints "line i out" or
// "line i err" (alternately) every -every, -eat N touches N MiB (over the
// limit: OOM killed) and waits an hour; then, unless -serve=false, it
// serves HTTP on 127.0.0.1:8080 ("/" answers ok; /conn the caller's
// address; /uid the user; /env?name= a variable of its environment;
// /stat?path= a file's mode and owner; /write?path= writes a file; /ifaces
// the interfaces) until SIGTERM, which it ignores with -ignore-term. Before it
// serves, SIGTERM ends it with 143, as the signal's default action does.
var Probe Program = probe

type probeResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Value string `json:"value,omitempty"`
}

func probe(ctx context.Context, p *Process) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	exitCode := fs.Int("exit", -1, "")
	lines := fs.Int("lines", 0, "")
	every := fs.Duration("every", 0, "")
	eat := fs.Int("eat", 0, "")
	serve := fs.Bool("serve", true, "")
	sleep := fs.Duration("sleep", 0, "")
	ifaces := fs.Bool("print-ifaces", false, "")
	ignoreTerm := fs.Bool("ignore-term", false, "")
	var copies []string
	fs.Func("copy", "", func(v string) error { copies = append(copies, v); return nil })
	args := strings.Fields(p.Getenv("PROBE_FLAGS"))
	if a := p.Args(); len(a) > 1 {
		args = append(args, a[1:]...)
	}
	if err := fs.Parse(args); err != nil {
		fmt.Fprintln(p.Stderr(), err)
		return 2
	}
	out := p.Stdout()
	// wait waits d, or returns false when a signal ended the process.
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-p.Term():
			return false
		case <-ctx.Done():
			return false
		}
	}
	const killedByTerm = 143

	for _, c := range copies {
		src, dst, _ := strings.Cut(c, ":")
		b, err := p.ReadFile(src)
		if err == nil {
			err = p.WriteFile(dst, b, 0o644)
		}
		if err != nil {
			fmt.Fprintf(out, "copy failed: %s: %v\n", c, err)
		} else {
			fmt.Fprintf(out, "copied %s\n", c)
		}
	}
	if *sleep > 0 && !wait(*sleep) {
		return killedByTerm
	}
	if *ifaces {
		fmt.Fprintf(out, "ifaces: %s (err <nil>)\n", probeIfaces(p))
	}
	if *exitCode >= 0 {
		fmt.Fprintln(out, "exiting with", *exitCode)
		return *exitCode
	}
	for i := 1; i <= *lines; i++ {
		if i%2 == 1 {
			fmt.Fprintf(p.Stdout(), "line %d out\n", i)
		} else {
			fmt.Fprintf(p.Stderr(), "line %d err\n", i)
		}
		if *every > 0 && !wait(*every) {
			return killedByTerm
		}
	}
	if *eat > 0 {
		for i := 0; i < *eat; i++ {
			if !p.UseMemory(1 << 20) {
				return 137
			}
		}
		fmt.Fprintln(out, "ate", *eat, "MiB")
		if !wait(time.Hour) {
			return killedByTerm
		}
	}
	if !*serve {
		return 0
	}
	if err := p.Serve(WatcherAddr, probeMux(p)); err != nil {
		fmt.Fprintln(p.Stderr(), "listen:", err)
		return 1
	}
	fmt.Fprintln(out, "probe listening on", WatcherAddr)
	term := p.Term()
	for {
		select {
		case <-ctx.Done():
			return 137
		case <-term:
			if !*ignoreTerm {
				fmt.Fprintln(out, "probe: SIGTERM, exiting")
				return 0
			}
			fmt.Fprintln(out, "probe: SIGTERM, ignored")
			term = nil
		}
	}
}

func probeIfaces(p *Process) string {
	if p.Network() {
		return "lo,eth0"
	}
	return "lo"
}

func probeMux(p *Process) http.Handler {
	reply := func(w http.ResponseWriter, err error, value string) {
		r := probeResult{OK: err == nil, Value: value}
		if err != nil {
			r.Error = err.Error()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(r)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/conn", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RemoteAddr) })
	mux.HandleFunc("/uid", func(w http.ResponseWriter, r *http.Request) { reply(w, nil, p.User()) })
	mux.HandleFunc("/ifaces", func(w http.ResponseWriter, r *http.Request) { reply(w, nil, probeIfaces(p)) })
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) { reply(w, nil, p.Getenv(r.URL.Query().Get("name"))) })
	mux.HandleFunc("/stat", func(w http.ResponseWriter, r *http.Request) {
		fi, err := p.Stat(r.URL.Query().Get("path"))
		value := ""
		if err == nil {
			value = fmt.Sprintf("%v %d:%d", fi.Mode, fi.UID, fi.GID)
		}
		reply(w, err, value)
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Query().Get("path")
		err := p.WriteFile(path, []byte("probe\n"), 0o644)
		if err == nil {
			p.removeFile(path)
		}
		reply(w, err, path)
	})
	return mux
}
