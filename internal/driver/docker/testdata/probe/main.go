// Command probe is the test program the Docker driver's tests run inside a
// sandboxed container. It serves HTTP on 127.0.0.1:8080 and reports, from
// inside the container, what the sandbox allows. With flags it instead exits
// with a code, prints log lines, eats memory, or spins on the CPU.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type result struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Value string `json:"value,omitempty"`
}

func reply(w http.ResponseWriter, err error, value string) {
	r := result{OK: err == nil, Value: value}
	if err != nil {
		r.Error = err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(r)
}

func main() {
	exitCode := flag.Int("exit", -1, "exit at once with this code")
	lines := flag.Int("lines", 0, "print this many numbered lines (alternating stdout and stderr)")
	every := flag.Duration("every", 0, "pause between printed lines")
	eat := flag.Int("eat", 0, "allocate and touch this many MiB, then sleep")
	serve := flag.Bool("serve", true, "serve HTTP on 127.0.0.1:8080 after the other actions")
	sleep := flag.Duration("sleep", 0, "sleep this long first")
	ifaces := flag.Bool("print-ifaces", false, "print the network interfaces")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	spin := flag.Bool("spin", false, "keep one goroutine busy on the CPU while serving")
	var copies copyFlags
	flag.Var(&copies, "copy", "copy file `src:dst` first, printing the outcome (repeatable)")
	// Flags also come from PROBE_FLAGS, since a container spec sets only
	// the environment.
	args := append(strings.Fields(os.Getenv("PROBE_FLAGS")), os.Args[1:]...)
	if err := flag.CommandLine.Parse(args); err != nil {
		os.Exit(2)
	}

	for _, c := range copies {
		src, dst, _ := strings.Cut(c, ":")
		b, err := os.ReadFile(src)
		if err == nil {
			err = os.WriteFile(dst, b, 0o644)
		}
		if err != nil {
			fmt.Printf("copy failed: %s: %v\n", c, err)
		} else {
			fmt.Printf("copied %s\n", c)
		}
	}
	time.Sleep(*sleep)
	if *ifaces {
		ifs, err := net.Interfaces()
		var names []string
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		fmt.Printf("ifaces: %s (err %v)\n", strings.Join(names, ","), err)
	}

	if *exitCode >= 0 {
		fmt.Println("exiting with", *exitCode)
		os.Exit(*exitCode)
	}
	for i := 1; i <= *lines; i++ {
		if i%2 == 1 {
			fmt.Fprintf(os.Stdout, "line %d out\n", i)
		} else {
			fmt.Fprintf(os.Stderr, "line %d err\n", i)
		}
		time.Sleep(*every)
	}
	if *eat > 0 {
		var keep [][]byte
		for i := 0; i < *eat; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
		}
		fmt.Println("ate", len(keep), "MiB")
		time.Sleep(time.Hour)
	}
	if !*serve {
		return
	}
	if *spin {
		go func() {
			for n := uint64(0); ; n++ {
				if n == 1<<63 {
					fmt.Println("spun")
				}
			}
		}()
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	// /write?path=/x tries to create a file.
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Query().Get("path")
		err := os.WriteFile(p, []byte("probe\n"), 0o644)
		if err == nil {
			os.Remove(p)
		}
		reply(w, err, p)
	})
	// /exec copies this binary to dir (default /tmp) and runs the copy.
	mux.HandleFunc("/exec", func(w http.ResponseWriter, r *http.Request) {
		dir := r.URL.Query().Get("dir")
		if dir == "" {
			dir = "/tmp"
		}
		self, err := os.ReadFile("/proc/self/exe")
		if err != nil {
			reply(w, fmt.Errorf("read self: %w", err), "")
			return
		}
		p := dir + "/probe-copy"
		if err := os.WriteFile(p, self, 0o755); err != nil {
			reply(w, fmt.Errorf("write copy: %w", err), "")
			return
		}
		defer os.Remove(p)
		out, err := exec.Command(p, "-exit", "0").CombinedOutput()
		reply(w, err, strings.TrimSpace(string(out)))
	})
	// /env?name=X reports a variable of the environment.
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		reply(w, nil, os.Getenv(r.URL.Query().Get("name")))
	})
	// /stat?path=/x reports a file's mode and owner ("drwx------ 1:2").
	mux.HandleFunc("/stat", func(w http.ResponseWriter, r *http.Request) {
		fi, err := os.Stat(r.URL.Query().Get("path"))
		value := ""
		if st, ok := statOwner(fi, err); ok {
			value = fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
		}
		reply(w, err, value)
	})
	mux.HandleFunc("/uid", func(w http.ResponseWriter, r *http.Request) {
		reply(w, nil, fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()))
	})
	mux.HandleFunc("/pid", func(w http.ResponseWriter, r *http.Request) {
		reply(w, nil, fmt.Sprintf("%d", os.Getpid()))
	})
	// /status returns selected fields of /proc/self/status.
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile("/proc/self/status")
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"} {
				if strings.HasPrefix(l, k+":") {
					keep = append(keep, strings.Join(strings.Fields(l), " "))
				}
			}
		}
		reply(w, err, strings.Join(keep, "\n"))
	})
	// /ifaces lists the network interfaces the program sees.
	mux.HandleFunc("/ifaces", func(w http.ResponseWriter, r *http.Request) {
		ifs, err := net.Interfaces()
		var names []string
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		reply(w, err, strings.Join(names, ","))
	})
	// /connect?addr=ip:port tries a TCP connection.
	mux.HandleFunc("/connect", func(w http.ResponseWriter, r *http.Request) {
		c, err := net.DialTimeout("tcp", r.URL.Query().Get("addr"), time.Second)
		if err == nil {
			c.Close()
		}
		reply(w, err, "")
	})
	// /conn reports the remote address of this request (to see reuse).
	mux.HandleFunc("/conn", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RemoteAddr)
	})

	ln, err := net.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Println("probe listening on", ln.Addr())
	srv := &http.Server{Handler: mux}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		for range ch {
			if *ignoreTerm {
				fmt.Println("probe: SIGTERM, ignored")
				continue
			}
			fmt.Println("probe: SIGTERM, exiting")
			os.Exit(0)
		}
	}()
	_ = srv.Serve(ln)
}

// copyFlags collects -copy flags.
type copyFlags []string

func (c *copyFlags) String() string     { return strings.Join(*c, ",") }
func (c *copyFlags) Set(v string) error { *c = append(*c, v); return nil }

// statOwner returns the owner part of a stat.
func statOwner(fi os.FileInfo, err error) (*syscall.Stat_t, bool) {
	if err != nil {
		return nil, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return st, ok
}
