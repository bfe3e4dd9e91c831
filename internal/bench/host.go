package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hershyorg/hershy/internal/client"
)

// hostProc is a `hershy serve` process the run started, on a loopback
// port and its own data directory.
type hostProc struct {
	o       Options
	rt      string
	dataDir string
	addr    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	admin   *client.Client
}

// startHost starts a Host for runtime rt in a new data directory under
// o.WorkDir, and waits until it answers.
func startHost(ctx context.Context, o Options, rt, name string) (*hostProc, error) {
	dir, err := os.MkdirTemp(o.WorkDir, "host-"+rt+"-"+name+"-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	h := &hostProc{o: o, rt: rt, dataDir: filepath.Join(dir, "data"), addr: addr, logPath: filepath.Join(dir, "serve.log")}
	if err := h.start(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *hostProc) url() string { return "http://" + h.addr }

// start runs `hershy serve` on the data directory and waits for /healthz.
func (h *hostProc) start(ctx context.Context) error {
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	args := []string{"serve", "--data", h.dataDir, "--listen", h.addr, "--runtime", h.rt,
		// Scale programs belong to a few users (see scaleUsers); each may
		// hold that many, each reserving little memory.
		"--max-programs", strconv.Itoa(programsPerUser + 10)}
	if h.o.SharedCache != "" {
		args = append(args, "--go-shared-cache", h.o.SharedCache)
	}
	h.cmd = exec.Command(h.o.Hershy, args...)
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	h.cmd.Env = append(os.Environ(), "HERSHY_CONFIG="+filepath.Join(h.dataDir, "no-cli-config.json"))
	if err := h.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	h.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}(h.cmd, h.exited)
	if err := h.awaitHealthy(ctx, 2*time.Minute); err != nil {
		return err
	}
	tok, err := os.ReadFile(filepath.Join(h.dataDir, "admin.token"))
	if err != nil {
		return fmt.Errorf("the admin token: %w", err)
	}
	h.admin = client.New(h.url(), strings.TrimSpace(string(tok)))
	return nil
}

// awaitHealthy waits until the Host answers /healthz.
func (h *hostProc) awaitHealthy(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url()+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-h.exited:
			return fmt.Errorf("hershy serve exited during start-up:\n%s", h.logTail(30))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("hershy serve: no /healthz after %s:\n%s", limit, h.logTail(30))
		}
	}
}

// kill ends the Host with SIGKILL, as a crash would, leaving its programs
// running.
func (h *hostProc) kill() error {
	if err := h.cmd.Process.Kill(); err != nil {
		return err
	}
	<-h.exited
	return nil
}

// close deletes every program the Host has (so no container outlives the
// run) and stops it with SIGTERM.
func (h *hostProc) close() error {
	select {
	case <-h.exited:
		return nil
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	err := deleteAll(ctx, h.admin)
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(2 * time.Minute):
		_ = h.cmd.Process.Kill()
		<-h.exited
		err = errors.Join(err, errors.New("hershy serve did not stop within 2 minutes of SIGTERM"))
	}
	return err
}

// deleteAll deletes every program and waits until they are gone.
func deleteAll(ctx context.Context, c *client.Client) error {
	for {
		l, err := c.ListPrograms(ctx, client.ListOptions{Limit: 1000})
		if err != nil {
			return err
		}
		if len(l.Programs) == 0 {
			return nil
		}
		err = parallel(ctx, len(l.Programs), 16, func(ctx context.Context, i int) error {
			err := c.DeleteProgram(ctx, l.Programs[i].ProgramID)
			if client.IsStatus(err, http.StatusNotFound) {
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
	}
}

// rss is the Host process's resident memory, in bytes.
func (h *hostProc) rss() (int64, error) {
	return readKB(fmt.Sprintf("/proc/%d/status", h.cmd.Process.Pid), "VmRSS:")
}

// readKB reads a "Field: N kB" line of a /proc file, in bytes.
func readKB(path, field string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s %q: %w", field, v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in %s", field, path)
}

// logTail returns the last n lines of the Host's log.
func (h *hostProc) logTail(n int) string {
	b, _ := os.ReadFile(h.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
