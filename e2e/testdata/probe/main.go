// Command probe is the end-to-end suite's program: a hersh watcher that
// reports, from inside its sandbox, what the sandbox lets it do. The suite
// sends it messages through the Host's proxy and reads the answers from the
// program's logs:
//
//	check ID {"write":[paths],"dial":[host:port]}   logs "probe-result ID {json}"
//	listen PORT                                      accepts TCP on all interfaces
//	exit N                                           exits with code N
//	fill MIB                                         writes up to MIB MiB to /state/fill.bin, logs "probe-fill <bytes> <error>"
//	spew MIB                                         prints MIB MiB of log lines, then "probe-spewed"
//	eat MIB                                          takes and touches MIB MiB of memory, and keeps it
//
// A counter of runs is kept in durable context state and in /state/runs.txt,
// so the suite can tell that state survived a restart.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hershyorg/hershy/hersh"
)

// starts counts the sessions this program has begun, across restarts.
var starts = hersh.NewKey[int]("starts")

// eaten holds what "eat" took, so it stays taken.
var eaten [][]byte

func main() {
	w, err := hersh.New(hersh.Config{}, step)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := hersh.ExitCode(w.Run(ctx))
	stop()
	os.Exit(code)
}

func step(c *hersh.Context) error {
	switch c.Trigger().Kind {
	case hersh.TriggerStart:
		n, err := starts.Update(c, func(n int) (int, error) { return n + 1, nil })
		if err != nil {
			return err
		}
		dir := c.Watcher().Config().StateDir
		if err := os.WriteFile(filepath.Join(dir, "runs.txt"), []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
			return err
		}
		log.Printf("probe-start %d", n)
	case hersh.TriggerMessage:
		cmd, arg, _ := strings.Cut(c.Message().Content, " ")
		switch cmd {
		case "check":
			id, spec, _ := strings.Cut(arg, " ")
			log.Printf("probe-result %s %s", id, check(spec))
		case "listen":
			ln, err := net.Listen("tcp", ":"+arg)
			if err != nil {
				log.Printf("probe-listen %s: %v", arg, err)
				return nil
			}
			go func() {
				for {
					conn, err := ln.Accept()
					if err != nil {
						return
					}
					conn.Close()
				}
			}()
			log.Printf("probe-listen %s: ok", arg)
		case "fill":
			mib, err := strconv.Atoi(arg)
			if err != nil {
				return fmt.Errorf("fill: %w", err)
			}
			n, err := fill(filepath.Join(c.Watcher().Config().StateDir, "fill.bin"), mib)
			log.Printf("probe-fill %d %v", n, err)
		case "spew":
			mib, err := strconv.Atoi(arg)
			if err != nil {
				return fmt.Errorf("spew: %w", err)
			}
			line := strings.Repeat("x", 1000)
			for i := 0; i < mib*1024; i++ {
				fmt.Printf("spew %07d %s\n", i, line)
			}
			log.Printf("probe-spewed")
		case "eat":
			mib, err := strconv.Atoi(arg)
			if err != nil {
				return fmt.Errorf("eat: %w", err)
			}
			for range mib {
				b := make([]byte, 1<<20)
				for i := range b {
					b[i] = 1
				}
				eaten = append(eaten, b)
			}
			log.Printf("probe-ate %d", mib)
		case "exit":
			code, err := strconv.Atoi(arg)
			if err != nil {
				return fmt.Errorf("exit: %w", err)
			}
			log.Printf("probe-exit %d", code)
			go func() {
				time.Sleep(200 * time.Millisecond) // let the message's answer go out first
				os.Exit(code)
			}()
		default:
			log.Printf("probe: unknown message %q", c.Message().Content)
		}
	}
	return nil
}

// spec is what a check message asks for.
type spec struct {
	Write []string `json:"write"`
	Dial  []string `json:"dial"`
}

// report is what a check found: "ok" or the error, per path and address.
type report struct {
	Write        map[string]string `json:"write"`
	Dial         map[string]string `json:"dial"`
	Interfaces   []string          `json:"interfaces"`
	DefaultRoute bool              `json:"default_route"`
	UID          int               `json:"uid"`
	Error        string            `json:"error,omitempty"`
}

func check(s string) string {
	var sp spec
	r := report{Write: map[string]string{}, Dial: map[string]string{}, UID: os.Getuid()}
	if err := json.Unmarshal([]byte(s), &sp); err != nil {
		r.Error = err.Error()
	}
	for _, p := range sp.Write {
		r.Write[p] = result(os.WriteFile(p, []byte("probe\n"), 0o644))
	}
	for _, a := range sp.Dial {
		conn, err := net.DialTimeout("tcp", a, 2*time.Second)
		if err == nil {
			conn.Close()
		}
		r.Dial[a] = result(err)
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		r.Interfaces = append(r.Interfaces, i.Name)
	}
	r.DefaultRoute = hasDefaultRoute()
	b, _ := json.Marshal(r)
	return string(b)
}

func result(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// hasDefaultRoute reads the kernel's IPv4 routing table, as seen from the
// container's network namespace.
func hasDefaultRoute() bool {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == "00000000" {
			return true
		}
	}
	return false
}

// fill writes up to mib MiB to path, syncing, and reports how much it wrote
// and the error that stopped it (ENOSPC past the /state cap).
func fill(path string, mib int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for i := 0; i < mib; i++ {
		k, err := f.Write(buf)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, f.Sync()
}
