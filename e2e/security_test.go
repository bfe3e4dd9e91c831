package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/gomod/gomodtest"
)

// The security suite: each attack of issue 9, tried against a real
// `hershy serve` under runc and under runsc, as two users of one Host would
// try it. Every test here failed on the Host before the defences (the
// notes say how), and the test process itself talks only to 127.0.0.1.

// leakProgram is a Go program whose build assembles leak_amd64.s, which
// includes path: the assembler reports the first token of whatever file
// that names ("unrecognized instruction ...").
func leakProgram(path string) map[string]string {
	return map[string]string{
		"go.mod":       "module example.com/leak\n\ngo 1.25\n\nrequire github.com/hershyorg/hershy/hersh v0.0.0\n",
		"main.go":      "package main\n\nfunc leak()\n\nfunc main() { leak() }\n",
		"leak_amd64.s": "#include \"" + path + "\"\n",
		"nonce.txt":    nonce() + "\n",
	}
}

// create posts a program and returns the API's answer or error.
func create(c *user, req client.SourceRequest) (*client.CreateResponse, error) {
	return c.CreateProgram(context.Background(), req)
}

// wantStatus fails unless err is an API error with status.
func wantStatus(t *testing.T, what string, err error, status int, msgHas string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Status != status {
		t.Errorf("%s: got %v, want HTTP %d", what, err, status)
		return
	}
	if msgHas != "" && !strings.Contains(e.Message, msgHas) {
		t.Errorf("%s: message %q lacks %q", what, e.Message, msgHas)
	}
}

// TestSecurityBuilds: a Go build reads nothing of the Host. Before, `go
// build` ran on the Host as the Host's user, and an #include of the admin
// token printed the token into the build log and error_msg.
func TestSecurityBuilds(t *testing.T) { forEachRuntime(t, testSecurityBuilds) }

func testSecurityBuilds(t *testing.T, rt string) {
	// The first variable of the Host's environment is a canary: what
	// /proc/self/environ's first token would show of the Host.
	h := startHostWith(t, rt, nil, []string{"HERSHYHOSTCANARY=hostenv5b2"})
	alice, bob := h.user("alice"), h.user("bob")
	admin, err := os.ReadFile(filepath.Join(h.dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	// Bob's stored source: a file whose first token is his secret.
	victim, err := create(bob, client.SourceRequest{SrcFiles: map[string]string{
		"go.mod": "module example.com/victim\n", "main.go": "package main\n\nfunc main() {}\n", "notes.txt": "bobSecret0c1d\n",
	}})
	if err != nil {
		t.Fatal(err)
	}
	bobFile := filepath.Join(h.dataDir, "programs", victim.ProgramID, "src", "notes.txt")
	secrets := []string{strings.TrimSpace(string(admin)), "bobSecret0c1d", "HERSHYHOSTCANARY", "hostenv5b2"}
	attacks := []struct{ name, include string }{
		{"relative", "../../../admin.token"},
		{"absolute", filepath.Join(h.dataDir, "admin.token")},
		{"environ", "/proc/self/environ"},
		{"other user's source", bobFile},
		{"other user's source, relative", "../../../programs/" + victim.ProgramID + "/src/notes.txt"},
	}
	var progs []*program
	for _, a := range attacks {
		progs = append(progs, h.deploy(t, alice, a.name, client.SourceRequest{SrcFiles: leakProgram(a.include)}))
	}
	for i, p := range progs {
		pr := p.waitState("Error", 3*time.Minute)
		seen := pr.ErrorMsg + "\n" + p.buildLog()
		for _, s := range secrets {
			if strings.Contains(seen, s) {
				t.Errorf("%s: what alice sees holds %q:\n%s", attacks[i].name, s, seen)
			}
		}
		if !strings.HasPrefix(attacks[i].include, "/") || attacks[i].name == "environ" {
			if strings.Contains(seen, h.dataDir) {
				t.Errorf("%s: what alice sees shows the Host's data path:\n%s", attacks[i].name, seen)
			}
		}
		if attacks[i].name != "environ" && !strings.Contains(seen, "no such file") {
			t.Errorf("%s: want the include to find nothing:\n%s", attacks[i].name, seen)
		}
	}
}

// TestSecurityDependencies: a program's dependencies come only through the
// module proxy the operator configured, never "direct" from a host the
// user names, and only as its go.sum pins them. Before, with
// GOPROXY=<proxy>,direct the Host's go command connected to the module's
// host (loopback included) once the proxy said "not found".
func TestSecurityDependencies(t *testing.T) { forEachRuntime(t, testSecurityDependencies) }

func testSecurityDependencies(t *testing.T, rt string) {
	greet := gomodtest.NewModule(t, "example.com/greet", "v1.2.0", map[string]string{
		"greet.go": "package greet\n\nfunc Hello() string { return \"hello from a module\" }\n",
	})
	px := gomodtest.NewProxy(t, greet)
	// The module host the attacker names: 127.0.0.1 on the ports the go
	// command tries directly (https, then http for insecure modules).
	var dials atomic.Int32
	for _, port := range []string{"443", "80"} {
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Fatalf("a listener on 127.0.0.1:%s (the attacker's module host) is needed: %v", port, err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				dials.Add(1)
				c.Close()
			}
		}()
	}
	h := startHostWith(t, rt, nil, []string{"GOPROXY=" + px.URL + ",direct", "GOINSECURE=127.0.0.1", "GONOSUMDB=127.0.0.1", "GOPRIVATE="})
	alice := h.user("alice")

	// A dependency the proxy has: fetched, checked, built with no network.
	main := "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/greet\"\n)\n\nfunc main() { fmt.Println(greet.Hello()); select {} }\n"
	ok := h.deploy(t, alice, "greet", client.SourceRequest{SrcFiles: map[string]string{
		"go.mod": "module example.com/bot\n\ngo 1.25\n\nrequire example.com/greet v1.2.0\n", "go.sum": greet.GoSum(), "main.go": main, "nonce.txt": nonce(),
	}})
	ok.waitState("Starting", 3*time.Minute)
	ok.waitLogContains(time.Time{}, "hello from a module", time.Minute)

	// A go.sum that lacks the requirement: refused before anything is stored.
	_, err := create(alice, client.SourceRequest{SrcFiles: map[string]string{
		"go.mod": "module example.com/bot\n\ngo 1.25\n\nrequire example.com/greet v1.2.0\n", "main.go": main,
	}})
	wantStatus(t, "no go.sum", err, http.StatusBadRequest, "go.sum has no entry for go.mod:5: example.com/greet v1.2.0")

	// A module on the attacker's host, which the proxy does not have.
	evil := "127.0.0.1/evil"
	sum := evil + " v1.0.0 h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n" + evil + " v1.0.0/go.mod h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	p := h.deploy(t, alice, "evil", client.SourceRequest{SrcFiles: map[string]string{
		"go.mod":  "module example.com/bot\n\ngo 1.25\n\nrequire " + evil + " v1.0.0\n",
		"go.sum":  sum,
		"main.go": "package main\n\nimport _ \"" + evil + "\"\n\nfunc main() {}\n",
	}})
	pr := p.waitState("Error", 3*time.Minute)
	if !strings.Contains(pr.ErrorMsg, evil) || !strings.Contains(pr.ErrorMsg, "not available") {
		t.Errorf("error_msg %q, want the module named as not available", pr.ErrorMsg)
	}
	asked := false
	for _, r := range px.Requests() {
		asked = asked || strings.HasPrefix(r, "/127.0.0.1/evil/@v/")
	}
	if !asked {
		t.Errorf("the proxy was not asked for the module (requests %v): the test proves nothing", px.Requests())
	}
	time.Sleep(500 * time.Millisecond)
	if n := dials.Load(); n != 0 {
		t.Errorf("the module's host (127.0.0.1) saw %d connections: the Host went direct", n)
	}
}

// TestSecurityDockerfiles: Dockerfiles are read by the engine's own parser
// and anything it warns about, or the policy cannot decide, is refused.
// Before, the Host's own parser ended an instruction at an empty
// continuation line where the engine goes on, and these copied or ran
// another user's program.
func TestSecurityDockerfiles(t *testing.T) { forEachRuntime(t, testSecurityDockerfiles) }

func testSecurityDockerfiles(t *testing.T, rt string) {
	h := startHost(t, rt)
	alice, bob := h.user("alice"), h.user("bob")
	mine := h.deploy(t, alice, "alice's probe", client.SourceRequest{SrcFiles: readSource(t, "testdata/probe")})
	theirs := h.deploy(t, bob, "bob's probe", client.SourceRequest{SrcFiles: readSource(t, "testdata/probe")})
	mine.waitState("Ready", 3*time.Minute)
	theirs.waitState("Ready", 3*time.Minute)
	own, victim := imageOf(t, mine), imageOf(t, theirs)

	// A loopback service that a remote ADD would make the engine fetch.
	var fetched atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		io.WriteString(w, "secret of the Host's network\n")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	for _, tc := range []struct{ name, dockerfile, want string }{
		{"empty continuation line, COPY --from", "FROM " + own + "\nCOPY \\\n\n--from=" + victim + " /app /victim-app\n", "line"},
		{"empty continuation line, ARG", "ARG IMG=scratch \\\n\nIMG=" + victim + "\nFROM ${IMG}\n", "line"},
		{"variable in FROM", "ARG IMG=" + victim + "\nFROM ${IMG}\n", "line 2"},
		{"remote ADD", "FROM " + own + "\nADD http://" + ln.Addr().String() + "/x /x\n", "line 2"},
		{"VOLUME", "FROM " + own + "\nVOLUME /data\n", "line 2"},
		{"HEALTHCHECK", "FROM " + own + "\nHEALTHCHECK --interval=1ms CMD [\"/app\"]\n", "line 2"},
		{"COPY --from another user's image", "FROM " + own + "\nCOPY --from=" + victim + " /app /victim-app\n", "line 2"},
		{"FROM another user's image", "FROM " + victim + "\n", "line 1"},
		{"RUN", "FROM " + own + "\nRUN [\"/app\"]\n", "line 2"},
	} {
		resp, err := create(alice, client.SourceRequest{Dockerfile: tc.dockerfile, SrcFiles: map[string]string{"nonce.txt": nonce()}})
		wantStatus(t, tc.name, err, http.StatusBadRequest, tc.want)
		if err == nil {
			// What the old Host did with it: build and run.
			p := &program{t: t, h: h, c: alice, name: tc.name, id: resp.ProgramID}
			alice.Start(context.Background(), p.id)
			time.Sleep(10 * time.Second)
		}
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("the loopback service was fetched %d times by a build", n)
	}
}

// TestSecurityImageSettings: what an image carries that the Host must not
// honour (an operator-loaded base may have it even though user Dockerfiles
// cannot add it): an anonymous VOLUME (writable storage outside /state),
// a HEALTHCHECK (the engine execing into the sandbox ~7 times a second, if
// its interval is 1ms), labels in the Host's namespace.
func TestSecurityImageSettings(t *testing.T) { forEachRuntime(t, testSecurityImageSettings) }

func testSecurityImageSettings(t *testing.T, rt string) {
	base := "hershy-e2e-base-" + nonce()
	h := startHost(t, rt)
	alice := h.user("alice")
	probe := h.deploy(t, alice, "probe", client.SourceRequest{SrcFiles: readSource(t, "testdata/probe")})
	probe.waitState("Ready", 3*time.Minute)
	// Once the programs built on the base image are deleted, the image
	// (and its builder's intermediate images) can go, and then the probe's
	// image, which the Host kept while the base stood on it.
	probeImage := imageOf(t, probe)
	h.afterStop = append(h.afterStop, func() {
		exec.Command("docker", "rmi", base).Run()
		exec.Command("docker", "rmi", probeImage).Run()
	})

	// The operator loads a base image made from it, with the settings.
	ctxDir := t.TempDir()
	// Its first LABEL makes it (and the builder's intermediate images) the
	// operator's, not this Host's instance's, as the probe's image was: the
	// end's check for leftovers of the Host must not count them.
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM "+probeImage+
		"\nLABEL "+driver.LabelInstance+"=operator\nVOLUME /data\nHEALTHCHECK --interval=1s --timeout=1s CMD [\"/app\"]\nLABEL "+driver.LabelProgram+"=someone-else\n"), 0o644)
	ctx := context.Background()
	// As the operator would: with the engine's own tools, not the Host.
	build := exec.Command("docker", "build", "-q", "--network", "none", "-t", base, ctxDir)
	build.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}

	p := h.deploy(t, alice, "on the base", client.SourceRequest{Dockerfile: "FROM " + base + "\n", SrcFiles: map[string]string{"nonce.txt": nonce()}})
	pr := p.waitState("Ready", 3*time.Minute)
	ins, err := h.engine.Client().ContainerInspect(ctx, pr.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ins.Mounts {
		if m.Type == "volume" {
			t.Errorf("an anonymous volume was created: %+v", m)
		}
	}
	if hc := ins.Config.Healthcheck; hc == nil || len(hc.Test) == 0 || hc.Test[0] != "NONE" {
		t.Errorf("health check not disabled: %+v", hc)
	}
	if got := ins.Config.Labels[driver.LabelProgram]; got != p.id {
		t.Errorf("container label %s = %q, want the program's own id", driver.LabelProgram, got)
	}
	r := p.check([]string{"/data/x", "/state/x"}, nil)
	if r.Write["/data/x"] == "ok" || r.Write["/state/x"] != "ok" {
		t.Errorf("writes: %v; want /data refused, /state allowed", r.Write)
	}
}

// TestSecurityLogReads: reading a program's logs costs the Host memory
// bounded whatever the history. Before, every read loaded the whole stored
// history (about 32 MiB): 100 parallel tail=1 reads took the Host from
// 22 MB to 4.6 GB.
func TestSecurityLogReads(t *testing.T) { forEachRuntime(t, testSecurityLogReads) }

func testSecurityLogReads(t *testing.T, rt string) {
	h := startHost(t, rt)
	alice := h.user("alice")
	p := h.deploy(t, alice, "probe", client.SourceRequest{SrcFiles: readSource(t, "testdata/probe")})
	p.waitState("Ready", 3*time.Minute)
	// Tens of MiB of history (the Host keeps up to 32 MiB: 8 MiB files, 3
	// rotated and the current). The engine may drop lines while its own log
	// file rotates under such a burst (more of them on a busy machine: 48
	// MiB spewed once left 19 MiB), so the program spews more than it
	// needs and the test waits for the Host's files to fill rather than
	// for the last line. Under runsc on a loaded machine 96 MiB spewed
	// once left 20.1 MB: the program spews 128, and 16 MiB of history is
	// enough for the attack (a read of it all was the 4.6 GB).
	p.send("spew 128")
	waitLogBytes(t, filepath.Join(h.dataDir, "programs", p.id, "logs"), 16<<20, 3*time.Minute)

	pid := h.cmd.Process.Pid
	resetPeak(t, pid)
	before := peakRSS(t, pid)
	var wg sync.WaitGroup
	var failures atomic.Int32
	get := func(query string) {
		defer wg.Done()
		req, _ := http.NewRequest(http.MethodGet, h.url()+"/programs/"+p.id+"/logs?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+alice.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			failures.Add(1)
			return
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			failures.Add(1)
		}
	}
	for range 100 {
		wg.Add(1)
		go get("tail=1")
	}
	for range 10 {
		wg.Add(1)
		go get("since=" + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	}
	wg.Wait()
	after := peakRSS(t, pid)
	t.Logf("Host peak RSS: %d MiB before the reads, %d MiB during them", before>>20, after>>20)
	if failures.Load() != 0 {
		t.Errorf("%d log reads failed", failures.Load())
	}
	if grew := after - before; grew > 200<<20 {
		t.Errorf("110 parallel log reads grew the Host's peak RSS by %d MiB", grew>>20)
	}
}

// waitLogBytes waits until the files in dir hold at least n bytes.
func waitLogBytes(t *testing.T, dir string, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var total int64
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
				total += fi.Size()
			}
		}
		if total >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Host holds %d bytes of logs after %s, want %d", total, timeout, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// resetPeak resets a process's peak RSS (VmHWM) to its current RSS.
func resetPeak(t *testing.T, pid int) {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Fatalf("resetting the Host's peak RSS: %v", err)
	}
}

// peakRSS reads a process's peak resident set size (VmHWM).
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestSecurityQuotas: each quota with its clear error. Before, nothing
// capped programs per user, memory (64 GiB was accepted on a 24 GB
// machine), concurrent builds, a build's resources or /state (1 GiB landed
// in the data directory).
func TestSecurityQuotas(t *testing.T) { forEachRuntime(t, testSecurityQuotas) }

func testSecurityQuotas(t *testing.T, rt string) {
	h := startHostWith(t, rt, []string{"--max-programs", "3", "--max-program-memory", "512MiB", "--max-user-memory", "1GiB",
		"--max-builds", "1", "--state-bytes", "16MiB"}, nil)
	ctx := context.Background()
	probe := readSource(t, "testdata/probe")

	t.Run("programs per user", func(t *testing.T) {
		carol, dave := h.user("carol"), h.user("dave")
		for i := range 3 {
			if _, err := create(carol, client.SourceRequest{Dockerfile: "FROM scratch\n", SrcFiles: map[string]string{"n": strconv.Itoa(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := create(carol, client.SourceRequest{Dockerfile: "FROM scratch\n", SrcFiles: map[string]string{"n": "4"}})
		wantStatus(t, "4th program", err, http.StatusForbidden, "")
		if _, err := create(dave, client.SourceRequest{Dockerfile: "FROM scratch\n", SrcFiles: map[string]string{"n": "1"}}); err != nil {
			t.Errorf("another user is held by carol's quota: %v", err)
		}
	})

	t.Run("memory", func(t *testing.T) {
		erin := h.user("erin")
		_, err := create(erin, client.SourceRequest{SrcFiles: probe, MemoryBytes: 64 << 30})
		wantStatus(t, "64 GiB program", err, http.StatusForbidden, "")
		var ids []string
		for range 3 {
			r, err := create(erin, client.SourceRequest{SrcFiles: probe, MemoryBytes: 400 << 20})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.ProgramID)
		}
		for _, id := range ids[:2] {
			if _, err := erin.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		_, err = erin.Start(ctx, ids[2])
		wantStatus(t, "a third 400 MiB program under a 1 GiB total", err, http.StatusForbidden, "")
		for _, id := range ids[:2] {
			(&program{t: t, h: h, c: erin, name: id, id: id}).waitState("Ready", 3*time.Minute)
		}
	})

	t.Run("build queue", func(t *testing.T) {
		frank := h.user("frank")
		var ps []*program
		for i := range 2 {
			files := readSource(t, "testdata/probe")
			files["slow.go"] = bigMap("slow", 60000)
			ps = append(ps, h.deploy(t, frank, "queued "+strconv.Itoa(i), client.SourceRequest{SrcFiles: files}))
		}
		sawQueue := false
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) && !sawQueue {
			for _, p := range ps {
				pr := p.get()
				if pr.State == "Building" && pr.QueuePosition == 1 {
					sawQueue = true
					if !strings.Contains(p.buildLog(), "waiting for a build slot: 1 build(s) ahead") {
						t.Errorf("the queued build's log does not say so:\n%s", p.buildLog())
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !sawQueue {
			t.Error("two builds at once with --max-builds 1: none was seen waiting in the queue")
		}
		for _, p := range ps {
			p.waitState("Ready", 3*time.Minute)
		}
	})

	t.Run("/state", func(t *testing.T) {
		gina := h.user("gina")
		p := h.deploy(t, gina, "filler", client.SourceRequest{SrcFiles: readSource(t, "testdata/probe")})
		p.waitState("Ready", 3*time.Minute)
		p.send("fill 64")
		line := p.waitLogContains(time.Time{}, "probe-fill ", time.Minute)
		if !strings.Contains(line, "no space left on device") {
			t.Errorf("writing 64 MiB into a 16 MiB /state: %q, want ENOSPC", line)
		}
		pr := p.get()
		if pr.StateBytesLimit == nil || *pr.StateBytesLimit != 16<<20 || pr.StateBytesUsed == nil || *pr.StateBytesUsed < 8<<20 {
			t.Errorf("state usage in the view: used %v, limit %v", pr.StateBytesUsed, pr.StateBytesLimit)
		}
		metrics := h.get(t, h.admin.Token, "/metrics")
		if !strings.Contains(metrics, `hershy_program_state_bytes{program="`+p.id+`"}`) {
			t.Errorf("/metrics lacks the program's /state usage")
		}
	})
}

// bigMap is a Go file declaring a map literal of n entries: slow to
// compile, and memory-hungry.
func bigMap(name string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "package main\n\nvar %s = map[int]string{\n", name)
	for i := range n {
		fmt.Fprintf(&b, "%d: \"x%d\",\n", i, i)
	}
	b.WriteString("}\n")
	return b.String()
}

// TestSecurityBuildLimits: a build's memory and time are capped; a build
// that needs more fails with a clear error.
func TestSecurityBuildLimits(t *testing.T) { forEachRuntime(t, testSecurityBuildLimits) }

func testSecurityBuildLimits(t *testing.T, rt string) {
	// A build timeout below the test's wait: should the sandbox hang
	// rather than be killed, error_msg says so.
	h := startHostWith(t, rt, []string{"--build-memory", "256MiB", "--build-timeout", "3m"}, nil)
	alice := h.user("alice")
	files := readSource(t, "testdata/probe")
	// Six map literals of 120,000 entries: the compiler holds well over a
	// gigabyte for them.
	for i := range 6 {
		files[fmt.Sprintf("big%d.go", i)] = bigMap(fmt.Sprintf("big%d", i), 120000)
	}
	p := h.deploy(t, alice, "hungry", client.SourceRequest{SrcFiles: files})
	if pr := p.waitState("Error", 5*time.Minute); !strings.Contains(pr.ErrorMsg, "memory limit (256 MiB)") {
		t.Errorf("error_msg %q, want the build's memory limit", pr.ErrorMsg)
	}

	h2 := startHostWith(t, rt, []string{"--build-timeout", "2s"}, nil)
	bob := h2.user("bob")
	files = readSource(t, "testdata/probe")
	for i := range 3 { // seconds of compiling, on any machine
		files[fmt.Sprintf("big%d.go", i)] = bigMap(fmt.Sprintf("big%d", i), 100000)
	}
	p = h2.deploy(t, bob, "slow", client.SourceRequest{SrcFiles: files})
	if pr := p.waitState("Error", 5*time.Minute); !strings.Contains(pr.ErrorMsg, "timed out after 2s") {
		t.Errorf("error_msg %q, want the build's time limit", pr.ErrorMsg)
	}
}

// TestSecurityAccess: the per-program ports and /metrics need a token.
// Before, anything on the machine could read any program's WatcherAPI
// through its port and send it messages, and any user saw every tenant's
// counts in /metrics.
func TestSecurityAccess(t *testing.T) { forEachRuntime(t, testSecurityAccess) }

func testSecurityAccess(t *testing.T, rt string) {
	h := startHostWith(t, rt, []string{"--proxy-ports", "19200-19299"}, nil)
	alice, bob := h.user("alice"), h.user("bob")
	p := h.deploy(t, alice, "probe", client.SourceRequest{SrcFiles: readSource(t, "testdata/probe")})
	pr := p.waitState("Ready", 3*time.Minute)
	if pr.ProxyPort == 0 {
		t.Fatal("no proxy port")
	}
	port := "http://127.0.0.1:" + strconv.Itoa(pr.ProxyPort)
	for _, tc := range []struct {
		who, token string
		status     int
	}{{"nobody", "", 401}, {"a wrong token", "not-a-token", 401}, {"bob", bob.token, 404}, {"alice", alice.token, 200}, {"the admin", h.admin.Token, 200}} {
		if got := h.status(t, tc.token, port+"/watcher/status"); got != tc.status {
			t.Errorf("proxy port, %s: %d, want %d", tc.who, got, tc.status)
		}
	}
	for _, tc := range []struct {
		who, token string
		status     int
	}{{"nobody", "", 401}, {"alice", alice.token, 403}, {"the admin", h.admin.Token, 200}} {
		if got := h.status(t, tc.token, h.url()+"/metrics"); got != tc.status {
			t.Errorf("/metrics, %s: %d, want %d", tc.who, got, tc.status)
		}
	}
	for _, name := range []string{"HERSHY_PROGRAM_ID", "HERSH_STATE_DIR", "PATH"} {
		_, err := create(alice, client.SourceRequest{SrcFiles: readSource(t, "testdata/probe"), Env: map[string]string{name: "x"}})
		wantStatus(t, "env "+name, err, http.StatusBadRequest, name)
	}
}

// status sends GET url with token (none when empty) and returns the status.
func (h *host) status(t *testing.T, token, url string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// get fetches a Host path with token and returns the body.
func (h *host) get(t *testing.T, token, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url()+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}
