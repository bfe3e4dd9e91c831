package fake

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// Program is the code a fake container runs in place of its image's
// entrypoint: from each start of the container until it returns, on a
// goroutine of its own. The container then exits with the returned code.
// ctx ends when the process is killed (a stop past its grace, a removal,
// Exit, OOMKill, Close): the program must then return promptly; what it
// returns is ignored, the kill has decided the exit code already.
type Program func(ctx context.Context, p *Process) int

// Process is a running container as its Program sees it: its spec, its
// output, its loopback network, its memory and its files.
type Process struct {
	d   *Driver
	c   *container
	ctx context.Context

	cancel context.CancelFunc
	term   chan struct{} // closed at SIGTERM
	done   chan struct{} // closed once it has exited
	termed bool          // d.mu
	exited bool          // d.mu

	mu        sync.Mutex // what follows
	listeners map[string]*listener
	conns     map[*pipeConn]struct{}
	tmp       map[string][]byte // files in the container's /tmp
	mem       int64
	usage     Usage // scripted (SetUsage) and CPU time (UseCPU), for Stats
}

// ID is the container's id.
func (p *Process) ID() string { return p.c.id }

// Name is the container's name.
func (p *Process) Name() string { return p.c.name }

// Args is a job's command (JobSpec.Cmd), or a program container's
// image's entrypoint when the image was imported (ImportImage);
// nil for a program container of another image (the fake does not read
// Dockerfiles' ENTRYPOINT).
func (p *Process) Args() []string { return append([]string(nil), p.c.args...) }

// Env is the container's environment (KEY=VALUE).
func (p *Process) Env() []string { return append([]string(nil), p.c.env...) }

// Getenv returns the value of key in the container's environment.
func (p *Process) Getenv(key string) string {
	for _, kv := range p.c.env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// Labels are the container's labels.
func (p *Process) Labels() map[string]string { return cloneMap(p.c.labels) }

// User is the container's "uid:gid".
func (p *Process) User() string { return p.c.user }

// Network reports whether the container has outbound network (then it has
// an eth0 besides lo).
func (p *Process) Network() bool { return p.c.network }

// Limits are the container's resource limits.
func (p *Process) Limits() driver.Limits { return p.c.limits }

// Stdout is the program's standard output: the container's log, or a job's
// output writer.
func (p *Process) Stdout() io.Writer { return procWriter{p} }

// Stderr is the program's standard error, interleaved with Stdout as the
// driver's demultiplexed logs are.
func (p *Process) Stderr() io.Writer { return procWriter{p} }

// Term is closed when the container is asked to stop (SIGTERM). A program
// that does not return within the stop's grace is killed (exit code 137).
func (p *Process) Term() <-chan struct{} { return p.term }

// UseMemory touches n more bytes. Past the container's memory limit the
// kernel kills it (an oom event, then die with 137) and UseMemory returns
// false: the program should return at once.
func (p *Process) UseMemory(n int64) bool {
	p.mu.Lock()
	p.mem += n
	over := p.mem > p.c.limits.MemoryBytes
	p.mu.Unlock()
	if over {
		p.d.mu.Lock()
		p.exitLocked(137, true)
		p.d.mu.Unlock()
		return false
	}
	return p.ctx.Err() == nil
}

// Serve serves h at addr (e.g. WatcherAddr) inside the container until the
// process ends: DialContext into the container reaches it.
func (p *Process) Serve(addr string, h http.Handler) error {
	l, err := p.Listen(addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Minute}
	p.d.wg.Add(2)
	go func() {
		defer p.d.wg.Done()
		srv.Serve(l)
	}()
	go func() {
		defer p.d.wg.Done()
		<-p.ctx.Done()
		srv.Close()
	}()
	return nil
}

// WriteFile writes a file inside the container: through a writable mount
// to the machine's file system, into the container's /tmp (in memory), or
// it fails as the read-only root and read-only mounts do (EROFS).
func (p *Process) WriteFile(name string, data []byte, perm fs.FileMode) error {
	where, host, err := p.resolve(name)
	if err != nil {
		return err
	}
	switch where {
	case inMount:
		return os.WriteFile(host, data, perm)
	case inTmp:
		p.mu.Lock()
		defer p.mu.Unlock()
		p.tmp[host] = append([]byte(nil), data...)
		return nil
	}
	return &fs.PathError{Op: "open", Path: name, Err: syscall.EROFS}
}

// ReadFile reads a file inside the container (through a mount, or in its
// /tmp). The image's own files are not modelled: they do not exist.
func (p *Process) ReadFile(name string) ([]byte, error) {
	where, host, err := p.resolve(name)
	if err != nil && where != inROMount {
		return nil, err
	}
	switch where {
	case inMount, inROMount:
		return os.ReadFile(host)
	case inTmp:
		p.mu.Lock()
		defer p.mu.Unlock()
		if b, ok := p.tmp[host]; ok {
			return append([]byte(nil), b...), nil
		}
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// FileInfo is what Stat reports of a file inside a container.
type FileInfo struct {
	Mode     fs.FileMode // type and permission bits
	UID, GID int
	Size     int64
}

// Stat describes a file inside the container: through a mount, the
// machine's file; in /tmp (a tmpfs, mode 1777, owned by root), what
// WriteFile wrote there (owned by the container's user); elsewhere an entry
// of its image, which the fake knows for an imported image (ImportImage),
// not a built one.
func (p *Process) Stat(name string) (FileInfo, error) {
	where, host, err := p.resolve(name)
	if err != nil && where != inROMount {
		return FileInfo{}, err
	}
	notExist := &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	switch where {
	case inMount, inROMount:
		fi, err := os.Stat(host)
		if err != nil {
			return FileInfo{}, notExist
		}
		info := FileInfo{Mode: fi.Mode(), Size: fi.Size()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			info.UID, info.GID = int(st.Uid), int(st.Gid)
		}
		return info, nil
	case inTmp:
		p.mu.Lock()
		b, ok := p.tmp[host]
		p.mu.Unlock()
		if !ok {
			return FileInfo{}, notExist
		}
		uid, gid, _ := strings.Cut(p.c.user, ":")
		info := FileInfo{Mode: 0o644, Size: int64(len(b))}
		info.UID, _ = strconv.Atoi(uid)
		info.GID, _ = strconv.Atoi(gid)
		return info, nil
	}
	switch name = path.Clean(name); name {
	case "/":
		return FileInfo{Mode: fs.ModeDir | 0o755}, nil
	case "/tmp":
		return FileInfo{Mode: fs.ModeDir | fs.ModeSticky | 0o777}, nil
	}
	if base := p.c.image.importedBase(); base != nil {
		for _, f := range base.files {
			if f.Path == name {
				return FileInfo{Mode: f.Mode, UID: f.UID, GID: f.GID, Size: f.Size}, nil
			}
		}
	}
	return FileInfo{}, notExist
}

// removeFile removes a file WriteFile wrote.
func (p *Process) removeFile(name string) {
	where, host, err := p.resolve(name)
	switch {
	case err != nil:
	case where == inMount:
		os.Remove(host)
	case where == inTmp:
		p.mu.Lock()
		delete(p.tmp, host)
		p.mu.Unlock()
	}
}

type place int

const (
	inRoot place = iota
	inMount
	inROMount
	inTmp
)

// resolve finds where a path inside the container lives: the host path of
// a mount (err EROFS for a read-only one), the /tmp key, or the root.
func (p *Process) resolve(name string) (place, string, error) {
	if !path.IsAbs(name) {
		return inRoot, "", &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	name = path.Clean(name)
	best := -1
	for i, m := range p.c.mounts {
		if (name == m.Target || strings.HasPrefix(name, m.Target+"/")) && (best < 0 || len(m.Target) > len(p.c.mounts[best].Target)) {
			best = i
		}
	}
	if best >= 0 {
		m := p.c.mounts[best]
		host := filepath.Join(m.Source, filepath.FromSlash(strings.TrimPrefix(name, m.Target)))
		if m.ReadOnly {
			return inROMount, host, &fs.PathError{Op: "open", Path: name, Err: syscall.EROFS}
		}
		return inMount, host, nil
	}
	if strings.HasPrefix(name, "/tmp/") {
		return inTmp, name, nil
	}
	return inRoot, "", nil
}

// Listen opens a TCP listener inside the container (an IP address or
// localhost, and a port; an empty or unspecified address listens on all).
// It closes when the process ends.
func (p *Process) Listen(addr string) (net.Listener, error) {
	host, port, err := splitAddr(addr, true)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: err}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: fmt.Errorf("the process has exited")}
	}
	key := net.JoinHostPort(host, port)
	for k := range p.listeners {
		if k == key || sameWildcardPort(k, key) {
			return nil, &net.OpError{Op: "listen", Net: "tcp", Err: syscall.EADDRINUSE}
		}
	}
	l := &listener{p: p, key: key, backlog: make(chan *pipeConn, 128), closed: make(chan struct{})}
	l.addr = tcpAddr(host, port)
	p.listeners[key] = l
	return l, nil
}

// procWriter is a process's stdout and stderr.
type procWriter struct{ p *Process }

func (w procWriter) Write(b []byte) (int, error) {
	p, c := w.p, w.p.c
	if c.job {
		c.outMu.Lock()
		defer c.outMu.Unlock()
		if c.out == nil {
			return len(b), nil // the job is over: its caller has gone
		}
		return c.out.Write(b)
	}
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	if p.exited {
		return len(b), nil
	}
	c.appendLog(b)
	return len(b), nil
}

// termLocked delivers SIGTERM.
func (p *Process) termLocked() {
	if !p.termed {
		p.termed = true
		close(p.term)
	}
}

// exitLocked ends the process with code (oom: killed for memory): the
// container stops, its network closes, and the events go out.
func (p *Process) exitLocked(code int, oom bool) {
	if p.exited {
		return
	}
	p.exited = true
	c := p.c
	c.proc = nil
	c.exitCode, c.oom, c.finishedAt, c.pid = code, oom, now(), 0
	p.cancel()
	p.mu.Lock()
	for _, l := range p.listeners {
		l.closeLocked()
	}
	for conn := range p.conns {
		conn.Conn.Close()
	}
	p.conns = map[*pipeConn]struct{}{}
	p.mu.Unlock()
	if oom {
		p.d.emitLocked(c, eventOOM, code)
	}
	p.d.emitLocked(c, eventDie, code)
	c.broadcast()
	close(p.done)
}

// Script describes a Program by its parts, for the usual cases; the zero
// Script is Idle. It prints Output, serves API at WatcherAddr, and runs
// until asked to stop (SIGTERM: it exits 0, unless IgnoreTerm) or, with
// Exit, until ExitAfter has passed: then it exits with ExitCode.
type Script struct {
	Output     []string     // lines written to stdout at the start
	API        http.Handler // served at WatcherAddr (nil: nothing listens, dials are refused)
	Exit       bool         // exit on its own, ExitAfter after the start
	ExitAfter  time.Duration
	ExitCode   int
	IgnoreTerm bool // SIGTERM does nothing: a stop waits out its grace, then kills (137)
}

// Program returns the Program the script describes.
func (s Script) Program() Program {
	return func(ctx context.Context, p *Process) int {
		for _, line := range s.Output {
			fmt.Fprintln(p.Stdout(), line)
		}
		if s.API != nil {
			if err := p.Serve(WatcherAddr, s.API); err != nil {
				fmt.Fprintln(p.Stderr(), err)
				return 1
			}
		}
		var exit <-chan time.Time
		if s.Exit {
			t := time.NewTimer(s.ExitAfter)
			defer t.Stop()
			exit = t.C
		}
		term := p.Term()
		for {
			select {
			case <-ctx.Done():
				return 137
			case <-exit:
				return s.ExitCode
			case <-term:
				if !s.IgnoreTerm {
					return 0
				}
				term = nil
			}
		}
	}
}

// Idle runs until it is stopped (and exits 0 then), printing and serving
// nothing: what a container runs when no Program was given.
var Idle = Script{}.Program()
