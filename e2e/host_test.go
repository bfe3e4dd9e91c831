package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/docker"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/testenv"
)

// forEachRuntime runs test as a subtest per runtime, runc first (the
// quicker one to fail), then runsc (the default).
func forEachRuntime(t *testing.T, test func(t *testing.T, rt string)) {
	for _, rt := range []string{"runc", "runsc"} {
		t.Run(rt, func(t *testing.T) { test(t, rt) })
	}
}

// host is a `hershy serve` process on a temporary data directory, serving
// its API on a loopback port that stays the same across restarts.
type host struct {
	t       testing.TB
	rt      string
	engine  *docker.Driver
	dataDir string
	addr    string // 127.0.0.1:port
	logPath string

	args []string // extra hershy serve flags
	env  []string // extra environment of hershy serve (before the test's own)
	// afterStop runs once the Host has deleted its programs and stopped,
	// before the check that nothing of it is left: for what a test made
	// on the engine itself on top of the Host's images.
	afterStop []func()

	cmd    *exec.Cmd
	exited chan struct{}
	admin  *client.Client
}

// startHost starts a Host with runtime rt. The engine must have rt (in CI
// its absence fails the test; elsewhere it skips). The Host's program
// builds share the go command's caches, so no test pays a cold compile of
// the standard library.
func startHost(t testing.TB, rt string) *host {
	t.Helper()
	return startHostWith(t, rt, nil, nil)
}

// startHostWith starts a Host with extra serve flags and environment.
func startHostWith(t testing.TB, rt string, args, env []string) *host {
	t.Helper()
	h := newHost(t, rt, args, env)
	h.start()
	return h
}

// newHost prepares a Host (its data directory and address) without
// starting it.
func newHost(t testing.TB, rt string, args, env []string) *host {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	h := &host{t: t, rt: rt, engine: testenv.Engine(t, rt), dataDir: t.TempDir(), args: args, env: env}
	h.logPath = filepath.Join(t.TempDir(), "serve.log")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	ln.Close()
	t.Cleanup(h.cleanup)
	return h
}

func (h *host) url() string { return "http://" + h.addr }

// start runs `hershy serve` and waits until /healthz answers.
func (h *host) start() {
	h.t.Helper()
	h.launch()
	h.awaitHealthy()
}

// launch runs `hershy serve`.
func (h *host) launch() {
	h.t.Helper()
	caches := testenv.GoCaches(h.t)
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	fmt.Fprintf(logf, "---- hershy serve (%s)\n", time.Now().Format(time.RFC3339Nano))
	args := append([]string{"serve", "--data", h.dataDir, "--listen", h.addr, "--runtime", h.rt,
		"--log-level", "debug", "--go-shared-cache", caches.SharedCacheDir}, h.args...)
	h.cmd = exec.Command(hershyBin, args...)
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	h.cmd.Env = append(append(append([]string(nil), h.env...), os.Environ()...), "HERSHY_CONFIG="+filepath.Join(h.dataDir, "no-cli-config.json"))
	if err := h.cmd.Start(); err != nil {
		logf.Close()
		h.t.Fatal(err)
	}
	h.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}(h.cmd, h.exited)
}

// awaitHealthy waits until the launched Host's /healthz answers 200, and
// reads the admin token.
func (h *host) awaitHealthy() {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(h.url() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-h.exited:
			h.t.Fatalf("hershy serve exited during start-up:\n%s", h.logTail(40))
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("hershy serve: no /healthz after 60s:\n%s", h.logTail(40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(h.dataDir, "admin.token"))
	if err != nil {
		h.t.Fatalf("admin token: %v", err)
	}
	h.admin = client.New(h.url(), strings.TrimSpace(string(tok)))
}

// stop ends the Host with SIGTERM, as an operator would, and waits for it.
func (h *host) stop() {
	h.t.Helper()
	if h.cmd == nil {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(60 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.exited
		h.t.Errorf("hershy serve did not stop within 60s of SIGTERM:\n%s", h.logTail(40))
	}
	if code := h.cmd.ProcessState.ExitCode(); code != 0 {
		h.t.Errorf("hershy serve exited %d after SIGTERM:\n%s", code, h.logTail(40))
	}
	h.cmd = nil
}

// restart stops the Host process and starts a new one on the same data
// directory and address.
func (h *host) restart() {
	h.t.Helper()
	h.stop()
	h.start()
}

// cleanup deletes what the test left (so no container outlives it), stops
// the Host, checks that nothing of it is left on the engine, and shows the
// Host's log when the test failed.
func (h *host) cleanup() {
	deleted := h.cmd != nil && h.admin != nil
	if deleted {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if l, err := h.admin.ListPrograms(ctx, client.ListOptions{Limit: 1000}); err == nil {
			for _, p := range l.Programs {
				if err := h.admin.DeleteProgram(ctx, p.ProgramID); err != nil {
					h.t.Logf("cleanup: delete %s: %v", p.ProgramID, err)
				}
			}
			for _, p := range l.Programs {
				for ctx.Err() == nil {
					if _, err := h.admin.GetProgram(ctx, p.ProgramID); client.IsStatus(err, http.StatusNotFound) {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}
		cancel()
	}
	if h.cmd != nil {
		h.stop()
	}
	// Every program was deleted through the Host and the Host has
	// stopped: a container or image of it still on the engine is a leak
	// (say, a container created by a start the stop cut short).
	for _, fn := range h.afterStop {
		fn()
	}
	if deleted && !h.t.Failed() {
		h.checkNothingLeft()
	}
	if h.t.Failed() {
		h.t.Logf("hershy serve log (%s, last lines):\n%s", h.rt, h.logTail(150))
	}
}

// instance is the Host's instance id (the label on everything it creates),
// from its log.
func (h *host) instance() string {
	h.t.Helper()
	b, _ := os.ReadFile(h.logPath)
	m := regexp.MustCompile(`instance=([0-9a-f]+)`).FindSubmatch(b)
	if m == nil {
		h.t.Fatal("no instance id in the Host's log")
	}
	return string(m[1])
}

// checkNothingLeft fails unless the engine holds no container and no image
// of this Host. While the Host runs, its build sandboxes may be up (each
// user's stays up a while after their last build); once it has stopped,
// none may be left.
func (h *host) checkNothingLeft() {
	h.t.Helper()
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", driver.LabelInstance+"="+h.instance()))
	cs, err := h.engine.Client().ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		h.t.Error(err)
	}
	for _, c := range cs {
		if h.cmd != nil && c.Labels[driver.LabelJob] == "build" {
			continue
		}
		h.t.Errorf("a container of this Host is left: %v %s", c.Names, c.Status)
	}
	is, err := h.engine.Client().ImageList(ctx, image.ListOptions{All: true, Filters: f})
	if err != nil || len(is) != 0 {
		for _, i := range is {
			h.t.Logf("image left: %v %s", i.RepoTags, i.ID)
		}
		h.t.Errorf("images of this Host left: %d (%v)", len(is), err)
	}
}

// logTail returns the last n lines of the Host's log.
func (h *host) logTail(n int) string {
	b, _ := os.ReadFile(h.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// user is an API client with the token it was made with.
type user struct {
	*client.Client
	name, token string
}

// user returns a client with a new token for userID.
func (h *host) user(userID string) *user {
	h.t.Helper()
	tok, err := h.admin.CreateToken(context.Background(), userID)
	if err != nil {
		h.t.Fatalf("token for %s: %v", userID, err)
	}
	return &user{Client: client.New(h.url(), tok.Token), name: userID, token: tok.Token}
}

// cli runs the hershy command against this Host with token.
// mustCLI runs the hershy CLI as cli does, failing the test if it fails.
func (h *host) mustCLI(token string, args ...string) (stdout, stderr string) {
	h.t.Helper()
	out, errOut, err := h.cli(token, args...)
	if err != nil {
		h.t.Fatalf("hershy %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out, errOut
}

func (h *host) cli(token string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, hershyBin, append([]string{"--url", h.url(), "--token", token}, args...)...)
	cmd.Env = append(os.Environ(), "HERSHY_CONFIG="+filepath.Join(h.dataDir, "no-cli-config.json"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// readSource reads a program's directory exactly as `hershy deploy` sends
// it (source.Collect: ignore files honoured, a top-level Dockerfile
// included as the root file "Dockerfile"). A file e2e-nonce.txt with a
// random line is added, so this test's build id (and image) is its own and
// no other test on the same engine shares it.
func readSource(t testing.TB, dir string) map[string]string {
	t.Helper()
	c, err := source.Collect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Skipped) > 0 {
		t.Fatalf("%s: files deploy would leave out: %v", dir, c.Skipped)
	}
	files := map[string]string(c.Files)
	if c.Dockerfile != "" {
		files[source.DockerfileName] = c.Dockerfile
	}
	files["e2e-nonce.txt"] = nonce() + "\n"
	return files
}

func nonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// program is one deployed program as its owner sees it.
type program struct {
	t    testing.TB
	h    *host
	c    *user // the owner
	name string
	id   string
}

// deploy creates a program through POST /programs and starts it (POST
// /programs/{id}/start), returning at once.
func (h *host) deploy(t testing.TB, c *user, name string, req client.SourceRequest) *program {
	t.Helper()
	resp, err := c.CreateProgram(context.Background(), req)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if resp.ProgramID == "" || resp.BuildID == "" || resp.ProxyURL == "" {
		t.Fatalf("create %s: answer lacks fields: %+v", name, resp)
	}
	if resp.State != "Created" {
		t.Errorf("create %s: state %q, want Created", name, resp.State)
	}
	if _, err := c.Start(context.Background(), resp.ProgramID); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return &program{t: t, h: h, c: c, name: name, id: resp.ProgramID}
}

func (p *program) get() *client.Program {
	p.t.Helper()
	pr, err := p.c.GetProgram(context.Background(), p.id)
	if err != nil {
		p.t.Fatalf("%s: get: %v", p.name, err)
	}
	return pr
}

// waitState polls the program until it is in want; Error (unless wanted)
// fails at once with the program's error message.
func (p *program) waitState(want string, timeout time.Duration) *client.Program {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pr := p.get()
		if pr.State == want {
			return pr
		}
		if pr.State == "Error" && want != "Error" {
			p.t.Fatalf("%s (%s) is in Error, want %s: %s\nbuild log:\n%s", p.name, p.id, want, pr.ErrorMsg, p.buildLog())
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s (%s): state %s after %s, want %s", p.name, p.id, pr.State, timeout, want)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

func (p *program) buildLog() string {
	rc, err := p.c.BuildLog(context.Background(), p.id, false)
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 1<<20))
	return string(b)
}

// action runs start, stop or restart and waits for the state it leads to.
func (p *program) action(verb, want string) {
	p.t.Helper()
	ctx := context.Background()
	var err error
	switch verb {
	case "start":
		_, err = p.c.Start(ctx, p.id)
	case "stop":
		_, err = p.c.Stop(ctx, p.id)
	case "restart":
		_, err = p.c.Restart(ctx, p.id)
	}
	if err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, verb, err)
	}
	p.waitState(want, 2*time.Minute)
}

// watcher sends method path to the program's WatcherAPI through the Host's
// proxy and returns the status code and the decoded JSON object.
func (p *program) watcher(method, path string, body any) (int, map[string]any) {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.h.url()+"/programs/"+p.id+"/proxy"+path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.do(req)
}

func (p *program) do(req *http.Request) (int, map[string]any) {
	p.t.Helper()
	if req.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+p.token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s: %s %s: %v", p.name, req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		p.t.Fatalf("%s: %s %s: %d, not a JSON object: %v\n%s", p.name, req.Method, req.URL.Path, resp.StatusCode, err, b)
	}
	return resp.StatusCode, m
}

func (p *program) token() string { return p.c.token }

// send posts a user message through the proxy.
func (p *program) send(content string) {
	p.t.Helper()
	code, m := p.watcher(http.MethodPost, "/watcher/message", map[string]string{"content": content})
	if code != http.StatusOK || m["status"] != "message sent" {
		p.t.Fatalf("%s: message %q: %d %v", p.name, content, code, m)
	}
}

// logs returns the program's container logs (the last lines) captured at
// or after since (the Host's capture time; zero: all).
func (p *program) logs(since time.Time) string {
	p.t.Helper()
	opts := client.LogOptions{Tail: 2000}
	if !since.IsZero() {
		opts.Since = since.UTC().Format(time.RFC3339Nano)
	}
	l, err := p.c.Logs(context.Background(), p.id, opts)
	if err != nil {
		p.t.Fatalf("%s: logs: %v", p.name, err)
	}
	return l.Logs
}

// waitLog polls the program's logs captured since then until match finds
// a line, and returns that line (the last such line).
func (p *program) waitLog(since time.Time, what string, timeout time.Duration, match func(line string) bool) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		logs := p.logs(since)
		var found string
		sc := bufio.NewScanner(strings.NewReader(logs))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if match(sc.Text()) {
				found = sc.Text()
			}
		}
		if found != "" {
			return found
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: no log line %s after %s; last lines:\n%s", p.name, what, timeout, lastLines(logs, 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ask sends a message and waits for a log line, written after it was
// sent, containing want.
func (p *program) ask(content, want string) string {
	p.t.Helper()
	since := time.Now()
	p.send(content)
	return p.waitLogContains(since, want, 30*time.Second)
}

// waitLogContains waits for a line containing s captured since then.
func (p *program) waitLogContains(since time.Time, s string, timeout time.Duration) string {
	p.t.Helper()
	return p.waitLog(since, fmt.Sprintf("containing %q", s), timeout, func(l string) bool { return strings.Contains(l, s) })
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
