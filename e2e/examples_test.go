package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/hershyorg/hershy/internal/driver"
	hershyhost "github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/testenv"
)

const examplesDir = "../examples"

// TestExamples is the seed's whole story, once per runtime: a user hands a
// real Host (`hershy serve`) the three example programs and a Dockerfile
// variant, the Host builds and sandboxes them, and the user watches and
// steers them through the WatcherAPI proxy; their /state survives every
// kind of restart and an upgrade; deleting them leaves nothing behind.
func TestExamples(t *testing.T) { forEachRuntime(t, testExamples) }

// suite is the programs of one TestExamples run.
type suite struct {
	h                *host
	alice, bob       *user
	counter, server  *program
	trading, dockerV *program
}

func testExamples(t *testing.T, rt string) {
	began := time.Now()
	phase := func(name string) { t.Logf("%7.1fs %s", time.Since(began).Seconds(), name) }
	h := startHost(t, rt)
	s := &suite{h: h, alice: h.user("alice"), bob: h.user("bob")}

	all := s.deployExamples(t, phase)
	phase("the sandbox contract (engine view) and every WatcherAPI route through the proxy")
	for _, p := range all {
		testenv.CheckContract(t, h.engine, p.get().ContainerID, testenv.Contract{
			Runtime: rt, StateDir: filepath.Join(h.dataDir, "programs", p.id, "state"), Limits: hershyhost.DefaultLimits})
		checkRoutes(t, p)
	}
	phase("each program only through its own route")
	s.checkIsolation(t)

	phase("messages steer the programs")
	s.checkMessages(t)
	s.checkDurablePhases(t, phase, all, func(p *program) string { return p.get().ContainerID }, nil)

	phase("delete leaves nothing behind")
	// The base first: its image stays while the variant runs on an image
	// built on it, and goes with the variant.
	base := imageOf(t, s.counter)
	checkDelete(t, s.counter, false)
	checkDelete(t, s.server, true)
	checkDelete(t, s.trading, true)
	checkDelete(t, s.dockerV, true)
	if _, err := h.engine.Client().ImageInspect(context.Background(), base); err == nil {
		t.Errorf("simple-counter's image %s outlived the Dockerfile variant built on it", base)
	}
	h.checkNothingLeft()
	phase("done")
}

// deployExamples deploys the examples: simple-counter and trading-long
// through the API, watcher-server through hershy deploy, then the
// Dockerfile variant of simple-counter on the image the Host built. It
// returns them once Ready.
func (s *suite) deployExamples(t *testing.T, phase func(string)) []*program {
	t.Helper()
	phase("deploy: simple-counter, trading-long through the API, watcher-server through hershy deploy")
	s.counter = s.h.deploy(t, s.alice, "simple-counter", client.SourceRequest{SrcFiles: readSource(t, filepath.Join(examplesDir, "simple-counter"))})
	s.trading = s.h.deploy(t, s.alice, "trading-long", client.SourceRequest{
		SrcFiles: readSource(t, filepath.Join(examplesDir, "trading-long")),
		Env:      map[string]string{"TRADING_FEED_INTERVAL": "200ms", "TRADING_STATS_INTERVAL": "3s"},
	})
	s.server = s.cliDeploy(t, filepath.Join(examplesDir, "watcher-server"))
	for _, p := range []*program{s.counter, s.trading, s.server} {
		p.waitState("Ready", 3*time.Minute)
	}
	phase("deploy: the Dockerfile variant of simple-counter, layered on the image the Host built")
	s.dockerV = s.deployDockerVariant(t)
	return []*program{s.counter, s.server, s.trading, s.dockerV}
}

// checkDurablePhases checks /state across stop and start, restart, a Host
// restart and a source upgrade. identity names what serves a program (a
// container, a Pod): the Host restart must re-adopt it, not replace it.
// stopped, if set, checks each program once stopped.
func (s *suite) checkDurablePhases(t *testing.T, phase func(string), all []*program, identity func(*program) string, stopped func(*program)) {
	t.Helper()
	phase("/state across stop and start")
	s.checkDurable(t, func() {
		for _, p := range all {
			p.action("stop", "Stopped")
			if stopped != nil {
				stopped(p)
			}
		}
		for _, p := range all {
			p.action("start", "Ready")
		}
	})
	restartAll := func() {
		for _, p := range all {
			p.action("restart", "Ready")
		}
	}
	phase("/state across restart")
	s.checkDurable(t, restartAll)
	phase("/state across a Host restart")
	was := map[string]string{}
	for _, p := range all {
		was[p.id] = identity(p)
	}
	s.h.restart()
	for _, p := range all {
		p.waitState("Ready", 2*time.Minute)
		// Re-adopted, not restarted: the same container is still serving.
		if got := identity(p); got != was[p.id] {
			t.Errorf("%s: %s serves after the Host restart, %s did before", p.name, got, was[p.id])
		}
	}
	s.checkDurable(t, restartAll)
	phase("/state across a source upgrade")
	s.checkUpgrade(t)
}

// cliDeploy deploys dir with `hershy deploy`, as the README shows.
func (s *suite) cliDeploy(t *testing.T, dir string) *program {
	t.Helper()
	tmp := testenv.WriteFiles(t, readSource(t, dir)) // with the nonce
	out, errOut, err := s.h.cli(s.alice.token, "deploy", tmp)
	if err != nil {
		t.Fatalf("hershy deploy: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	id := field(out, "Program")
	if id == "" || field(out, "State") != "Ready" {
		t.Fatalf("hershy deploy: no program id or not Ready:\n%s\n%s", out, errOut)
	}
	return &program{t: t, h: s.h, c: s.alice, name: filepath.Base(dir), id: id}
}

// field returns the value of a "Key: value" line.
func field(out, key string) string {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// deployDockerVariant deploys examples/simple-counter-docker with its FROM
// line naming the image of this suite's simple-counter build, as its README
// tells a user to.
func (s *suite) deployDockerVariant(t *testing.T) *program {
	t.Helper()
	buildID := s.counter.get().BuildID
	files := readSource(t, filepath.Join(examplesDir, "simple-counter-docker"))
	df, ok := files["Dockerfile"]
	if !ok || !strings.Contains(df, "BUILD_ID") {
		t.Fatalf("examples/simple-counter-docker/Dockerfile lacks the BUILD_ID placeholder:\n%s", df)
	}
	files["Dockerfile"] = strings.ReplaceAll(df, "BUILD_ID", buildID)

	// Another user may not build on alice's image.
	if _, err := s.bob.CreateProgram(context.Background(), client.SourceRequest{SrcFiles: files}); !client.IsStatus(err, http.StatusBadRequest) {
		t.Errorf("bob building FROM alice's image: %v, want 400", err)
	}
	p := s.h.deploy(t, s.alice, "simple-counter-docker", client.SourceRequest{SrcFiles: files})
	p.waitState("Ready", 3*time.Minute)
	return p
}

// checkRoutes checks every WatcherAPI route through the proxy: each answers
// JSON of the documented shape, and malformed requests get JSON errors.
func checkRoutes(t *testing.T, p *program) {
	t.Helper()
	code, st := p.watcher(http.MethodGet, "/watcher/status", nil)
	if code != 200 || st["state"] == "" || st["isRunning"] == nil || st["uptime"] == nil || st["lastUpdate"] == nil {
		t.Errorf("%s: status: %d %v", p.name, code, st)
	}
	if code, m := p.watcher(http.MethodGet, "/watcher/ready", nil); code != 200 {
		t.Errorf("%s: ready: %d %v", p.name, code, m)
	}
	code, logs := p.watcher(http.MethodGet, "/watcher/logs?type=all&limit=50", nil)
	for _, k := range []string{"effectLogs", "reduceLogs", "watchErrorLogs", "contextLogs", "stateFaultLogs", "effectResults"} {
		if _, ok := logs[k].([]any); code != 200 || !ok {
			t.Errorf("%s: logs: %d, %s is %T", p.name, code, k, logs[k])
		}
	}
	if r, _ := logs["reduceLogs"].([]any); len(r) == 0 {
		t.Errorf("%s: logs: no reduce log entries: %v", p.name, logs)
	}
	if code, m := p.watcher(http.MethodGet, "/watcher/logs?type=effect&limit=1", nil); code != 200 || len(asSlice(m["effectLogs"])) > 1 {
		t.Errorf("%s: logs?type=effect&limit=1: %d %v", p.name, code, m)
	}
	code, sig := p.watcher(http.MethodGet, "/watcher/signals", nil)
	for _, k := range []string{"varSigCount", "userSigCount", "watcherSigCount", "totalPending"} {
		if _, ok := sig[k].(float64); code != 200 || !ok {
			t.Errorf("%s: signals: %d, %s is %T", p.name, code, k, sig[k])
		}
	}
	if _, ok := sig["recentSignals"].([]any); !ok || sig["timestamp"] == nil {
		t.Errorf("%s: signals: %v", p.name, sig)
	}
	code, w := p.watcher(http.MethodGet, "/watcher/watching", nil)
	if vars := asSlice(w["watchedVars"]); code != 200 || len(vars) == 0 || w["count"] != float64(len(vars)) {
		t.Errorf("%s: watching: %d %v", p.name, code, w)
	}
	code, mc := p.watcher(http.MethodGet, "/watcher/memoCache", nil)
	if e, ok := mc["entries"].(map[string]any); code != 200 || !ok || mc["count"] != float64(len(e)) {
		t.Errorf("%s: memoCache: %d %v", p.name, code, mc)
	}
	code, vs := p.watcher(http.MethodGet, "/watcher/varState", nil)
	if v, ok := vs["variables"].(map[string]any); code != 200 || !ok || vs["count"] != float64(len(v)) {
		t.Errorf("%s: varState: %d %v", p.name, code, vs)
	}
	code, cfg := p.watcher(http.MethodGet, "/watcher/config", nil)
	if c, ok := cfg["config"].(map[string]any); code != 200 || !ok || c["serverPort"] == nil || c["signalChanCapacity"] == nil || c["maxLogEntries"] == nil || c["maxMemoEntries"] == nil {
		t.Errorf("%s: config: %d %v", p.name, code, cfg)
	}
	// Errors are JSON too, from the program itself, through the proxy.
	if code, m := p.watcher(http.MethodPost, "/watcher/message", map[string]string{"content": ""}); code != 400 || m["error"] == nil {
		t.Errorf("%s: empty message: %d %v", p.name, code, m)
	}
	if code, m := p.watcher(http.MethodGet, "/watcher/message", nil); code != 405 {
		t.Errorf("%s: GET message: %d %v", p.name, code, m)
	}
	if code, m := p.watcher(http.MethodGet, "/watcher/nope", nil); code != 404 {
		t.Errorf("%s: unknown route: %d %v", p.name, code, m)
	}
	// watcher-server uses every feature: every route has real content.
	if p.name == "watcher-server" {
		if e := mc["entries"].(map[string]any); len(e) == 0 {
			t.Errorf("watcher-server: memoCache empty")
		}
		if v := vs["variables"].(map[string]any); len(v) < 2 {
			t.Errorf("watcher-server: varState has %d variables: %v", len(v), v)
		}
		// Its first context change may come a moment after Ready (a fast
		// deploy under runc checks within a second of it): ask again.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if len(asSlice(logs["effectResults"])) > 0 && len(asSlice(logs["contextLogs"])) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("watcher-server: logs: effectResults %v, contextLogs %v: want both", logs["effectResults"], logs["contextLogs"])
				break
			}
			_, logs = p.watcher(http.MethodGet, "/watcher/logs?type=all&limit=50", nil)
		}
	}
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// watched returns the sorted names of the variables a program watches.
func watched(t *testing.T, p *program) []string {
	t.Helper()
	_, w := p.watcher(http.MethodGet, "/watcher/watching", nil)
	var names []string
	for _, v := range asSlice(w["watchedVars"]) {
		if s, ok := v.(string); ok {
			names = append(names, s)
		}
	}
	slices.Sort(names)
	return names
}

// checkIsolation: with all four running, each program's route reaches that
// program (told apart by what it watches and how it counts), another
// user's token reaches none of them, and an unknown id is a 404.
func (s *suite) checkIsolation(t *testing.T) {
	t.Helper()
	want := map[*program][]string{
		s.counter: {"tick"},
		s.dockerV: {"tick"},
		s.server:  {"events", "sensor", "tick"},
		s.trading: {"prices", "rebalance", "stats"},
	}
	for p, w := range want {
		if got := watched(t, p); !slices.Equal(got, w) {
			t.Errorf("%s through its route watches %v, want %v", p.name, got, w)
		}
	}
	// The Dockerfile variant counts in steps of 10 (its ENV), the Go build in 1s.
	s.dockerV.waitLog(time.Time{}, "counter: 20", time.Minute, func(l string) bool { return strings.HasSuffix(l, "counter: 20") })
	s.counter.waitLog(time.Time{}, "counter: 2", time.Minute, func(l string) bool { return strings.HasSuffix(l, "counter: 2") })

	for p := range want {
		bobs := &program{t: t, h: s.h, c: s.bob, name: p.name + " as bob", id: p.id}
		if code, m := bobs.watcher(http.MethodGet, "/watcher/status", nil); code != 404 {
			t.Errorf("bob reached %s's WatcherAPI: %d %v", p.name, code, m)
		}
		if code, m := bobs.watcher(http.MethodPost, "/watcher/message", map[string]string{"content": "reset"}); code != 404 {
			t.Errorf("bob sent %s a message: %d %v", p.name, code, m)
		}
	}
	ghost := &program{t: t, h: s.h, c: s.alice, name: "ghost", id: "alice-build-000000000000-00000000"}
	if code, m := ghost.watcher(http.MethodGet, "/watcher/status", nil); code != 404 {
		t.Errorf("unknown program's proxy: %d %v", code, m)
	}
}

// checkMessages: messages change what each program does.
func (s *suite) checkMessages(t *testing.T) {
	t.Helper()
	// simple-counter: reset sets the counter to 0 ("counter: 0" is only
	// ever logged by a reset), and counting goes on from there.
	s.counter.waitLogContains(time.Time{}, "counter: 3", time.Minute)
	sent := time.Now()
	s.counter.send("reset")
	s.counter.waitLog(sent, "counter: 0", 30*time.Second, func(l string) bool { return strings.HasSuffix(l, "counter: 0") })
	line := s.counter.ask("status", "status: counter is")
	if n := numberAfter(t, line, "counter is "); n > 5 {
		t.Errorf("simple-counter: after reset, status says %d", n)
	}
	// watcher-server: reset and help.
	s.server.ask("reset", "reset: counter is 0")
	s.server.ask("help", "help: messages are")
	// trading-long: pause, status shows it, resume, portfolio.
	s.trading.ask("pause", "trading paused")
	s.trading.ask("status", "status: paused")
	s.trading.ask("resume", "trading resumed")
	s.trading.ask("portfolio", "portfolio: cash $")
	s.trading.ask("status", "status: trading")
}

// numberAfter returns the integer that follows prefix in line.
func numberAfter(t *testing.T, line, prefix string) int {
	t.Helper()
	_, rest, ok := strings.Cut(line, prefix)
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(rest[:end])
	if !ok || err != nil {
		t.Fatalf("no number after %q in %q", prefix, line)
	}
	return n
}

// checkDurable records how far each program got, runs disrupt, and checks
// that each one resumed from its /state rather than from scratch.
func (s *suite) checkDurable(t *testing.T, disrupt func()) {
	t.Helper()
	before := map[*program]int{}
	for _, p := range []*program{s.counter, s.dockerV, s.server} {
		before[p] = numberAfter(t, p.ask("status", "status: counter is"), "counter is ")
	}
	mark := time.Now()
	disrupt()
	for p, n := range before {
		// "counter starts at N" is logged by the new session, from /state.
		line := p.waitLogContains(mark, "counter starts at", time.Minute)
		if got := numberAfter(t, line, "starts at "); got < n {
			t.Errorf("%s: started at %d after the disruption, had counted to %d", p.name, got, n)
		}
	}
	s.trading.waitLogContains(mark, "portfolio restored", time.Minute)
}

// checkUpgrade replaces each program's source and restarts it (a running
// program keeps its version until its next start): simple-counter gets a
// new version, trading-long and watcher-server the same code under a new
// nonce, and the Dockerfile variant is rebuilt on simple-counter's new
// image with a new step. Each rebuilds and resumes from /state.
func (s *suite) checkUpgrade(t *testing.T) {
	t.Helper()
	n := numberAfter(t, s.counter.ask("status", "status: counter is"), "counter is ")
	files := readSource(t, filepath.Join(examplesDir, "simple-counter"))
	files["main.go"] = strings.Replace(files["main.go"], `"counter starts at %d"`, `"counter v2 starts at %d"`, 1)
	if !strings.Contains(files["main.go"], "counter v2 starts at") {
		t.Fatal(`simple-counter's main.go no longer logs "counter starts at"; update this test`)
	}
	oldBuild := s.counter.get().BuildID
	resp, err := s.alice.UpdateSource(context.Background(), s.counter.id, client.SourceRequest{SrcFiles: files})
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if resp.BuildID == oldBuild {
		t.Errorf("upgrade kept build id %s", oldBuild)
	}
	// The running version goes on until the next start: restart now.
	s.counter.action("restart", "Ready")
	line := s.counter.waitLogContains(time.Time{}, "counter v2 starts at", 3*time.Minute)
	if got := numberAfter(t, line, "starts at "); got < n {
		t.Errorf("simple-counter v2 started at %d, v1 had counted to %d", got, n)
	}
	if p := s.counter.waitState("Ready", time.Minute); p.BuildID != resp.BuildID {
		t.Errorf("after the upgrade the build is %s, want %s", p.BuildID, resp.BuildID)
	}
	// The Source route gives the new source back.
	src, err := s.alice.GetSource(context.Background(), s.counter.id)
	if err != nil || !strings.Contains(src.Files["main.go"], "counter v2 starts at") {
		t.Errorf("source after upgrade: %v", err)
	}

	mark := time.Now()
	files = readSource(t, filepath.Join(examplesDir, "trading-long"))
	if _, err := s.alice.UpdateSource(context.Background(), s.trading.id, client.SourceRequest{SrcFiles: files}); err != nil {
		t.Fatalf("upgrade trading-long: %v", err)
	}
	s.trading.action("restart", "Ready")
	s.trading.waitLogContains(mark, "portfolio restored", 3*time.Minute)
	s.trading.waitState("Ready", time.Minute)

	// watcher-server: the same code under a new nonce.
	n = numberAfter(t, s.server.ask("status", "status: counter is"), "counter is ")
	mark = time.Now()
	if _, err := s.alice.UpdateSource(context.Background(), s.server.id, client.SourceRequest{SrcFiles: readSource(t, filepath.Join(examplesDir, "watcher-server"))}); err != nil {
		t.Fatalf("upgrade watcher-server: %v", err)
	}
	s.server.action("restart", "Ready")
	if got := numberAfter(t, s.server.waitLogContains(mark, "counter starts at", time.Minute), "starts at "); got < n {
		t.Errorf("watcher-server upgraded started at %d, had counted to %d", got, n)
	}

	// The Dockerfile variant: rebuilt on simple-counter's new image, and
	// counting in hundreds now.
	n = numberAfter(t, s.dockerV.ask("status", "status: counter is"), "counter is ")
	files = readSource(t, filepath.Join(examplesDir, "simple-counter-docker"))
	df := strings.ReplaceAll(files["Dockerfile"], "BUILD_ID", resp.BuildID)
	files["Dockerfile"] = strings.Replace(df, "ENV COUNTER_STEP=10", "ENV COUNTER_STEP=100", 1)
	if files["Dockerfile"] == df {
		t.Fatal(`simple-counter-docker's Dockerfile no longer sets "ENV COUNTER_STEP=10"; update this test`)
	}
	mark = time.Now()
	if _, err := s.alice.UpdateSource(context.Background(), s.dockerV.id, client.SourceRequest{SrcFiles: files}); err != nil {
		t.Fatalf("upgrade the Dockerfile variant: %v", err)
	}
	s.dockerV.action("restart", "Ready")
	start := numberAfter(t, s.dockerV.waitLogContains(mark, "counter v2 starts at", time.Minute), "starts at ")
	if start < n {
		t.Errorf("the Dockerfile variant upgraded started at %d, had counted to %d", start, n)
	}
	want := fmt.Sprintf("counter: %d", start+100)
	s.dockerV.waitLog(mark, want, time.Minute, func(l string) bool { return strings.HasSuffix(l, want) })
}

// imageOf is the image tag of the program's current build.
func imageOf(t *testing.T, p *program) string { return "hersh-program-" + p.get().BuildID }

// checkDelete deletes a program and checks that nothing of it is left:
// not its record, its route, its container, its files, nor (when
// imageGone: no running program's image is built on it) its image.
func checkDelete(t *testing.T, p *program, imageGone bool) {
	t.Helper()
	ctx := context.Background()
	last := p.get()
	if err := p.c.DeleteProgram(ctx, p.id); err != nil {
		t.Fatalf("%s: delete: %v", p.name, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := p.c.GetProgram(ctx, p.id)
		if client.IsStatus(err, http.StatusNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still there a minute after delete: %v", p.name, err)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if code, m := p.watcher(http.MethodGet, "/watcher/status", nil); code != 404 {
		t.Errorf("%s: proxy after delete: %d %v", p.name, code, m)
	}
	cs, err := p.h.engine.ListContainers(ctx, map[string]string{driver.LabelProgram: p.id})
	if err != nil || len(cs) != 0 {
		t.Errorf("%s: containers after delete: %v %v", p.name, cs, err)
	}
	if _, err := p.h.engine.Client().ImageInspect(ctx, "hersh-program-"+last.BuildID); imageGone && err == nil {
		t.Errorf("%s: image hersh-program-%s still there after delete", p.name, last.BuildID)
	}
	_ = filepath.WalkDir(p.h.dataDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), p.id) {
			t.Errorf("%s: %s still there after delete", p.name, path)
		}
		return nil
	})
}
