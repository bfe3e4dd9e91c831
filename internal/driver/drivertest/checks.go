package drivertest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// checks, in the order Run runs them.
var checks = []check{
	{"Check", checkCheck},
	{"Lifecycle", checkLifecycle},
	{"StopKillsAfterGrace", checkStopKills},
	{"RemoveRunning", checkRemoveRunning},
	{"ListByLabels", checkList},
	{"ImageLabelsStayOutOfContainers", checkImageLabels},
	{"CreateRefusesWeakSpecs", checkCreateRefusals},
	{"CreateRefusesMissingImage", checkMissingImage},
	{"CreateRefusesMissingMountSource", checkMissingMountSource},
	{"CreateRefusesNameInUse", checkNameInUse},
	{"EventsStartAndDie", checkEvents},
	{"EventsOOM", checkEventsOOM},
	{"EventsEndWithContext", checkEventsEnd},
	{"LogsAllAndSince", checkLogsSince},
	{"LogsFollowUntilExit", checkLogsFollow},
	{"LogsCloseEndsFollow", checkLogsClose},
	{"DialAndSandboxWrites", checkDial},
	{"RunJobExitCodeAndOutput", checkJob},
	{"RunJobMounts", checkJobMounts},
	{"RunJobOOM", checkJobOOM},
	{"RunJobCancelRemovesIt", checkJobCancel},
	{"RunJobRefusesWeakSpecs", checkJobRefusals},
	{"KeptJobExec", checkKeptJob},
	{"KeptJobOOM", checkKeptJobOOM},
	{"BuildImage", checkBuild},
	{"BuildImageFailure", checkBuildFailure},
	{"BuildImageRefusals", checkBuildRefusals},
	{"ImportImage", checkImportImage},
	{"ImportImageFailure", checkImportImageFailure},
	{"RemoveImageInUse", checkRemoveImage},
	{"ConcurrentUse", checkConcurrent},
	{"Stats", checkStats},
}

// checkCheck: the engine answers and has the fixture's runtime; a runtime
// it does not have is ErrRuntimeMissing (the Host's health tells the two
// apart).
func checkCheck(k *kit) {
	if err := k.d.Check(k.ctx); err != nil {
		k.t.Fatalf("Check: %v", err)
	}
	if err := k.d.Check(k.ctx, k.fx.Runtime); err != nil {
		k.t.Fatalf("Check(%s): %v", k.fx.Runtime, err)
	}
	if err := k.d.Check(k.ctx, k.fx.Runtime, "no-such-runtime"); !errors.Is(err, driver.ErrRuntimeMissing) {
		k.t.Fatalf("Check of a runtime the engine lacks: %v, want ErrRuntimeMissing", err)
	}
}

// checkLifecycle: a created container is not running and cannot be
// dialled (an error, not ErrNotFound); started, it runs, answers on its
// loopback and a second start does nothing; a stop is graceful (SIGTERM:
// exit code 0) and idempotent; a stopped container starts again with a new
// process; removal is idempotent, and after it every call that names the
// container says ErrNotFound, except stop and remove, which succeed.
func checkLifecycle(k *kit) {
	t, d, ctx := k.t, k.d, k.ctx
	spec := k.spec("life", "")
	id := k.create(spec)
	info := k.inspect(id)
	if info.ID != id || info.Name != spec.Name || info.Running || !k.pidOK(info) || !info.StartedAt.IsZero() ||
		info.Runtime != k.fx.Runtime || info.Labels[driver.LabelManaged] != "true" || info.Labels[driver.LabelProgram] != "life" || info.Image == "" {
		t.Errorf("a created container: %+v", info)
	}
	if _, err := d.DialContext(ctx, id, "127.0.0.1:8080"); err == nil || isNotFound(err) {
		t.Errorf("dial into a created container: %v, want an error other than ErrNotFound", err)
	}

	k.start(id)
	info = k.inspect(id)
	if !info.Running || !k.pidOK(info) || info.StartedAt.IsZero() || !info.FinishedAt.IsZero() {
		t.Errorf("a started container: %+v", info)
	}
	k.waitReady(k.client(id))
	if err := d.StartContainer(ctx, id); err != nil {
		t.Errorf("starting a running container: %v", err)
	}

	if err := d.StopContainer(ctx, id, 10*time.Second); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	info = k.inspect(id)
	if info.Running || info.ExitCode != 0 || !k.pidOK(info) || info.FinishedAt.IsZero() {
		t.Errorf("after a graceful stop: %+v", info)
	}
	if _, err := d.DialContext(ctx, id, "127.0.0.1:8080"); err == nil || isNotFound(err) {
		t.Errorf("dial into a stopped container: %v, want an error other than ErrNotFound", err)
	}
	if err := d.StopContainer(ctx, id, time.Second); err != nil {
		t.Errorf("stopping a stopped container: %v", err)
	}
	k.start(id)
	k.waitReady(k.client(id))

	if err := d.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	if err := d.RemoveContainer(ctx, id); err != nil {
		t.Errorf("removing a removed container: %v", err)
	}
	if err := d.StopContainer(ctx, id, time.Second); err != nil {
		t.Errorf("stopping a removed container: %v", err)
	}
	if _, err := d.InspectContainer(ctx, id); !isNotFound(err) {
		t.Errorf("inspect after remove: %v, want ErrNotFound", err)
	}
	if err := d.StartContainer(ctx, id); !isNotFound(err) {
		t.Errorf("start after remove: %v, want ErrNotFound", err)
	}
	if _, err := d.DialContext(ctx, id, "127.0.0.1:8080"); !isNotFound(err) {
		t.Errorf("dial after remove: %v, want ErrNotFound", err)
	}
	if _, err := d.Logs(ctx, id, time.Time{}, false); !isNotFound(err) {
		t.Errorf("logs after remove: %v, want ErrNotFound", err)
	}
	if cs := k.mine(nil); len(cs) != 0 {
		t.Errorf("listed after remove: %+v", cs)
	}
}

// checkStopKills: a program that ignores SIGTERM is killed when the grace
// has passed (exit code 137), and the stop returns once it is gone.
func checkStopKills(k *kit) {
	id := k.run("stubborn", "-ignore-term")
	k.waitReady(k.client(id))
	if err := k.d.StopContainer(k.ctx, id, time.Second); err != nil {
		k.t.Fatalf("StopContainer: %v", err)
	}
	if info := k.inspect(id); info.Running || info.ExitCode != 137 {
		k.t.Errorf("after the grace: %+v, want stopped with 137", info)
	}
}

// checkRemoveRunning: removing a running container kills it (a die event)
// and it is gone at once.
func checkRemoveRunning(k *kit) {
	ctx, cancel := context.WithCancel(k.ctx)
	defer cancel()
	evs, errs := k.d.Events(ctx)
	id := k.run("removed", "")
	if ev, ok := k.nextEvent(evs, errs, id); !ok || ev.Kind != driver.EventStart {
		k.t.Fatalf("first event %+v (%v), want start", ev, ok)
	}
	if err := k.d.RemoveContainer(k.ctx, id); err != nil {
		k.t.Fatalf("RemoveContainer of a running container: %v", err)
	}
	if _, err := k.d.InspectContainer(k.ctx, id); !isNotFound(err) {
		k.t.Errorf("inspect after removing it running: %v, want ErrNotFound", err)
	}
	if ev, ok := k.nextEvent(evs, errs, id); !ok || ev.Kind != driver.EventDie {
		k.t.Errorf("after the removal: %+v (%v), want a die event", ev, ok)
	}
}

// checkList: ListContainers returns the containers carrying every label
// asked for, running or not, with their current facts.
func checkList(k *kit) {
	a := k.run("list-a", "")
	b := k.create(k.spec("list-b", ""))
	byID := map[string]driver.ContainerInfo{}
	for _, c := range k.mine(nil) {
		byID[c.ID] = c
	}
	if len(byID) != 2 || !byID[a].Running || byID[b].Running || byID[a].Labels[driver.LabelProgram] != "list-a" {
		k.t.Errorf("list of both: %+v", byID)
	}
	if cs := k.mine(map[string]string{driver.LabelProgram: "list-b"}); len(cs) != 1 || cs[0].ID != b {
		k.t.Errorf("list by program label: %+v", cs)
	}
	if cs := k.mine(map[string]string{driver.LabelProgram: "nobody"}); len(cs) != 0 {
		k.t.Errorf("list of nobody: %+v", cs)
	}
}

// checkImageLabels: an image carrying the Host's labels (as every build
// does) does not hand them to its containers: a container has the Host
// labels its spec sets and no other value (reconciliation trusts them).
// The container's Image is the id BuildImage returned.
func checkImageLabels(k *kit) {
	tag, imgID := k.build("labelled", k.fx.ProbeImage, map[string]string{
		driver.LabelBuild: "kit-build", driver.LabelProgram: "victim", driver.LabelGeneration: "9",
	})
	spec := k.spec("labels", "")
	spec.Image = tag
	id := k.create(spec)
	info := k.inspect(id)
	if info.Image != imgID {
		k.t.Errorf("container image %q, want the built id %q", info.Image, imgID)
	}
	for key, v := range info.Labels {
		if strings.HasPrefix(key, driver.LabelPrefix) && v != "" && spec.Labels[key] != v && key != driver.LabelManaged {
			k.t.Errorf("label %s=%q reached the container from its image", key, v)
		}
	}
	if info.Labels[driver.LabelProgram] != "labels" {
		k.t.Errorf("program label %q, want the spec's", info.Labels[driver.LabelProgram])
	}
}

// weakSpecs are changes that make a valid spec break the contract.
func weakSpecs(rt string) map[string]func(*driver.ContainerSpec) {
	m := map[string]func(*driver.ContainerSpec){
		"no image":          func(s *driver.ContainerSpec) { s.Image = "" },
		"user root":         func(s *driver.ContainerSpec) { s.User = "root" },
		"user 0":            func(s *driver.ContainerSpec) { s.User = "0" },
		"user 0:0":          func(s *driver.ContainerSpec) { s.User = "0:0" },
		"group 0":           func(s *driver.ContainerSpec) { s.User = "1000:0" },
		"no group":          func(s *driver.ContainerSpec) { s.User = "1000" },
		"named user":        func(s *driver.ContainerSpec) { s.User = "app:app" },
		"no user":           func(s *driver.ContainerSpec) { s.User = "" },
		"other runtime":     func(s *driver.ContainerSpec) { s.Runtime = "kata" },
		"no memory limit":   func(s *driver.ContainerSpec) { s.Limits.MemoryBytes = 0 },
		"no CPU limit":      func(s *driver.ContainerSpec) { s.Limits.CPUs = 0 },
		"negative CPUs":     func(s *driver.ContainerSpec) { s.Limits.CPUs = -1 },
		"no pids limit":     func(s *driver.ContainerSpec) { s.Limits.Pids = 0 },
		"no log cap":        func(s *driver.ContainerSpec) { s.Limits.LogBytes = 0 },
		"no program label":  func(s *driver.ContainerSpec) { delete(s.Labels, driver.LabelProgram) },
		"relative source":   func(s *driver.ContainerSpec) { s.Mounts = []driver.Mount{{Source: "state", Target: "/state"}} },
		"unclean source":    func(s *driver.ContainerSpec) { s.Mounts = []driver.Mount{{Source: "/tmp/../etc", Target: "/state"}} },
		"mount over /":      func(s *driver.ContainerSpec) { s.Mounts = []driver.Mount{{Source: "/tmp", Target: "/"}} },
		"mount over /tmp":   func(s *driver.ContainerSpec) { s.Mounts = []driver.Mount{{Source: "/tmp", Target: "/tmp"}} },
		"mount below /tmp":  func(s *driver.ContainerSpec) { s.Mounts = []driver.Mount{{Source: "/tmp", Target: "/tmp/x"}} },
		"mount below /proc": func(s *driver.ContainerSpec) { s.Mounts = []driver.Mount{{Source: "/tmp", Target: "/proc/x"}} },
		"mount over resolv": func(s *driver.ContainerSpec) { s.Mounts = []driver.Mount{{Source: "/tmp", Target: "/etc/resolv.conf"}} },
		"mount target twice": func(s *driver.ContainerSpec) {
			s.Mounts = []driver.Mount{{Source: "/tmp", Target: "/a"}, {Source: "/tmp", Target: "/a"}}
		},
		"relative mount point": func(s *driver.ContainerSpec) { s.Mounts = []driver.Mount{{Source: "/tmp", Target: "state"}} },
	}
	if driver.SpecRuntime(rt) == driver.RuntimeRunsc {
		m["pids below the runsc minimum"] = func(s *driver.ContainerSpec) { s.Limits.Pids = driver.MinPidsRunsc / 2 }
	}
	return m
}

// checkCreateRefusals: a spec weaker than the sandbox contract is refused
// with driver.ErrInvalidSpec, and nothing is created.
func checkCreateRefusals(k *kit) {
	for what, weaken := range weakSpecs(k.fx.Runtime) {
		s := k.spec("weak", "")
		weaken(&s)
		id, err := k.d.CreateContainer(k.ctx, s)
		if id != "" {
			k.track(id)
		}
		if !errors.Is(err, driver.ErrInvalidSpec) {
			k.t.Errorf("%s: CreateContainer = %q, %v; want ErrInvalidSpec", what, id, err)
		}
	}
	if cs := k.mine(nil); len(cs) != 0 {
		k.t.Errorf("refused specs left containers: %+v", cs)
	}
}

// checkMissingImage: an image the engine lacks is ErrNotFound (never
// pulled), and nothing is created.
func checkMissingImage(k *kit) {
	s := k.spec("no-image", "")
	s.Image = k.tag("missing")
	if id, err := k.d.CreateContainer(k.ctx, s); !isNotFound(err) {
		if id != "" {
			k.track(id)
		}
		k.t.Errorf("CreateContainer of a missing image = %q, %v; want ErrNotFound", id, err)
	}
	if cs := k.mine(nil); len(cs) != 0 {
		k.t.Errorf("left: %+v", cs)
	}
}

// checkMissingMountSource: a mount whose source does not exist fails the
// create, leaving nothing.
func checkMissingMountSource(k *kit) {
	s := k.spec("no-source", "")
	m, _ := k.volume("/state", false)
	if m.Kind == driver.MountBind {
		m.Source = filepath.Join(k.t.TempDir(), "missing")
	} else {
		m.Source = "missing-" + fmt.Sprintf("%x", fnv(k.check))
	}
	s.Mounts = []driver.Mount{m}
	if id, err := k.d.CreateContainer(k.ctx, s); err == nil {
		k.track(id)
		k.t.Error("a create with a missing mount source succeeded")
	}
	if cs := k.mine(nil); len(cs) != 0 {
		k.t.Errorf("left: %+v", cs)
	}
}

// checkNameInUse: a container name is taken until its container is
// removed: a second create with it fails.
func checkNameInUse(k *kit) {
	s := k.spec("named", "")
	first := k.create(s)
	if id, err := k.d.CreateContainer(k.ctx, s); err == nil {
		k.track(id)
		k.t.Errorf("a second container named %s was created", s.Name)
	}
	if cs := k.mine(nil); len(cs) != 1 || cs[0].ID != first {
		k.t.Errorf("after the refused create: %+v", cs)
	}
	if err := k.d.RemoveContainer(k.ctx, first); err != nil {
		k.t.Fatal(err)
	}
	k.create(s) // the name is free again
}

// checkEvents: the stream carries a container's start, then its die with
// the exit code, its labels (no engine attributes) and the time; the
// container's facts agree afterwards.
func checkEvents(k *kit) {
	ctx, cancel := context.WithCancel(k.ctx)
	defer cancel()
	evs, errs := k.d.Events(ctx)
	before := time.Now()
	id := k.run("exit3", "-exit 3 -serve=false")
	ev, ok := k.nextEvent(evs, errs, id)
	if !ok || ev.Kind != driver.EventStart {
		k.t.Fatalf("first event %+v (%v), want start", ev, ok)
	}
	ev, ok = k.nextEvent(evs, errs, id)
	if !ok || ev.Kind != driver.EventDie || ev.ExitCode != 3 {
		k.t.Fatalf("second event %+v (%v), want die with exit code 3", ev, ok)
	}
	if ev.Labels[driver.LabelProgram] != "exit3" || ev.Labels[driver.LabelManaged] != "true" || ev.Labels[checkLabel] != k.check {
		k.t.Errorf("event labels %v", ev.Labels)
	}
	if _, engine := ev.Labels["exitCode"]; engine {
		k.t.Errorf("engine attributes among the labels: %v", ev.Labels)
	}
	// A clock check, not a duration: the event is stamped with the time.
	if ev.At.Before(before.Add(-time.Minute)) || ev.At.After(time.Now().Add(time.Minute)) {
		k.t.Errorf("event time %v, not around now (%v)", ev.At, before)
	}
	if info := k.inspect(id); info.Running || info.ExitCode != 3 || !k.pidOK(info) || info.FinishedAt.IsZero() {
		k.t.Errorf("after the exit: %+v", info)
	}
}

// checkEventsOOM: a program that exceeds its memory limit is killed: a die
// with 137, after an oom event, and OOMKilled in its facts (both unless
// the fixture says the engine may miss the oom).
func checkEventsOOM(k *kit) {
	ctx, cancel := context.WithCancel(k.ctx)
	defer cancel()
	evs, errs := k.d.Events(ctx)
	s := k.spec("oom", "-eat 200 -serve=false")
	s.Limits.MemoryBytes = 32 << 20
	id := k.create(s)
	k.start(id)
	var oom bool
	var die driver.Event
	for die.Kind == "" {
		ev, ok := k.nextEvent(evs, errs, id)
		if !ok {
			break
		}
		switch ev.Kind {
		case driver.EventOOM:
			oom = ev.OOMKilled
		case driver.EventDie:
			die = ev
		}
	}
	if die.Kind != driver.EventDie || die.ExitCode != 137 {
		k.t.Errorf("die %+v, want exit code 137", die)
	}
	info := k.inspect(id)
	if !k.fx.UnreliableOOMFlag && (!oom || !info.OOMKilled) {
		k.t.Errorf("oom event %v, OOMKilled %v: want both", oom, info.OOMKilled)
	}
}

// checkEventsEnd: cancelling the context ends the stream: the event
// channel closes and the error channel yields no error.
func checkEventsEnd(k *kit) {
	ctx, cancel := context.WithCancel(k.ctx)
	evs, errs := k.d.Events(ctx)
	cancel()
	timer := time.NewTimer(k.fx.Timeout)
	defer timer.Stop()
	for open := true; open; {
		select {
		case _, open = <-evs:
		case <-timer.C:
			k.t.Fatal("the event channel stayed open after the context ended")
		}
	}
	select {
	case err := <-errs:
		if err != nil {
			k.t.Errorf("error after the context ended: %v", err)
		}
	case <-timer.C:
		k.t.Fatal("the error channel stayed open after the context ended")
	}
}

// fourLines is what "-lines 4" prints: stdout and stderr, as plain text.
const fourLines = "line 1 out\nline 2 err\nline 3 out\nline 4 err\n"

// checkLogsSince: the logs are stdout and stderr as plain text, kept across
// runs; since selects what was written from then on; since in the future
// selects nothing.
func checkLogsSince(k *kit) {
	id := k.run("logs", "-lines 4 -every 50ms -serve=false")
	first := k.waitExit(id)
	k.start(id)
	k.waitExit(id)
	read := func(since time.Time) string {
		k.t.Helper()
		rc, err := k.d.Logs(k.ctx, id, since, false)
		if err != nil {
			k.t.Fatalf("Logs: %v", err)
		}
		defer rc.Close()
		b, err := k.readAllWithin(rc)
		if err != nil {
			k.t.Fatalf("reading the logs: %v (%q)", err, b)
		}
		return string(b)
	}
	all := fourLines + fourLines
	if k.fx.LogsPerRun {
		all = fourLines
	}
	if got := read(time.Time{}); got != all {
		k.t.Errorf("all logs:\n%q\nwant\n%q", got, all)
	}
	if got := read(first.FinishedAt); got != fourLines {
		k.t.Errorf("logs since the first run ended:\n%q\nwant\n%q", got, fourLines)
	}
	if got := read(time.Now().Add(time.Hour)); got != "" {
		k.t.Errorf("logs since the future: %q", got)
	}
}

// checkLogsFollow: a follow yields the output as it comes and ends when
// the container exits.
func checkLogsFollow(k *kit) {
	id := k.run("follow", "-lines 6 -every 50ms -serve=false")
	rc, err := k.d.Logs(k.ctx, id, time.Time{}, true)
	if err != nil {
		k.t.Fatal(err)
	}
	defer rc.Close()
	got, err := k.readAllWithin(rc)
	if want := fourLines + "line 5 out\nline 6 err\n"; err != nil || string(got) != want {
		k.t.Errorf("followed logs: %q, %v; want %q", got, err, want)
	}
}

// checkLogsClose: closing a followed stream ends it while the program
// still writes.
func checkLogsClose(k *kit) {
	id := k.run("chatty", "-lines 100000 -every 50ms")
	rc, err := k.d.Logs(k.ctx, id, time.Time{}, true)
	if err != nil {
		k.t.Fatal(err)
	}
	br := bufio.NewReader(rc)
	if line, err := br.ReadString('\n'); err != nil || line != "line 1 out\n" {
		k.t.Fatalf("first followed line %q, %v", line, err)
	}
	rc.Close()
	if _, err := k.readAllWithin(br); err != nil && strings.Contains(err.Error(), "not done within") {
		k.t.Fatal("reading a closed follow did not end")
	}
}

// probeResult is the probe's answer to /write, /uid and /ifaces.
type probeResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Value string `json:"value"`
}

// checkDial: DialContext reaches the program's loopback; one connection
// carries many requests; a port nothing listens on is refused (not hung),
// a host name is refused, a cancelled context is its error. Inside, only
// the writable mount and /tmp can be written: not the root, not a
// read-only mount. The program runs as the spec's user.
func checkDial(k *kit) {
	state, _ := k.volume("/state", false)
	config, configDir := k.volume("/config", true)
	s := k.spec("dial", "")
	s.Mounts = []driver.Mount{state, config}
	id := k.create(s)
	k.start(id)
	c := k.client(id)
	k.waitReady(c)
	c.dials.Store(0)
	c.CloseIdleConnections()
	for i := 0; i < 20; i++ {
		if got := k.get(c, "/"); got != "ok" {
			k.t.Fatalf("GET / = %q", got)
		}
	}
	if n := c.dials.Load(); n != 1 {
		k.t.Errorf("20 sequential requests used %d dialled connections, want 1", n)
	}
	probe := func(route string) probeResult {
		var r probeResult
		if err := json.Unmarshal([]byte(k.get(c, route)), &r); err != nil {
			k.t.Fatalf("GET %s: %v", route, err)
		}
		return r
	}
	if r := probe("/uid"); r.Value != s.User {
		k.t.Errorf("user inside %q, want %q", r.Value, s.User)
	}
	for path, writable := range map[string]bool{"/kit-file": false, "/state/kit-file": true, "/config/kit-file": false, "/tmp/kit-file": true} {
		if r := probe("/write?path=" + path); r.OK != writable {
			k.t.Errorf("writing %s: %+v, want ok=%v", path, r, writable)
		}
	}
	if _, err := os.Stat(filepath.Join(configDir, "kit-file")); configDir != "" && err == nil {
		k.t.Error("the program wrote into its read-only mount")
	}

	ctx := k.ctx
	if conn, err := k.d.DialContext(ctx, id, "127.0.0.1:8081"); err == nil {
		// An engine may learn of the refusal only once it tries: the
		// connection must then end at once, with an error.
		done := make(chan error, 1)
		go func() {
			conn.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			_, err := conn.Read(make([]byte, 1))
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || err == io.EOF {
				k.t.Errorf("a dial to a port nothing listens on succeeded, and its read said %v", err)
			}
		case <-time.After(k.fx.Timeout):
			k.t.Error("a dial to a port nothing listens on hung")
		}
		conn.Close()
	}
	if conn, err := k.d.DialContext(ctx, id, "probe.example:8080"); err == nil {
		conn.Close()
		k.t.Error("a dial by host name succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := k.d.DialContext(cctx, id, "127.0.0.1:8080"); !errors.Is(err, context.Canceled) {
		k.t.Errorf("dial with a cancelled context: %v, want context.Canceled", err)
	}
}

// checkJob: RunJob returns the command's exit status and streams its
// output (stdout and stderr); the job's container is gone afterwards; the
// job has no network.
func checkJob(k *kit) {
	var out syncBuffer
	spec := k.job("job-exit", "-print-ifaces", "-exit", "7")
	res, err := k.d.RunJob(k.ctx, spec, &out)
	if err != nil || res.ExitCode != 7 || res.OOMKilled {
		k.t.Fatalf("RunJob = %+v, %v (output %q)", res, err, out.String())
	}
	if !strings.Contains(out.String(), "ifaces: lo ") || !strings.Contains(out.String(), "exiting with 7") {
		k.t.Errorf("output %q", out.String())
	}
	out = syncBuffer{}
	res, err = k.d.RunJob(k.ctx, k.job("job-lines", "-lines", "6", "-every", "20ms"), &out)
	if err != nil || res.ExitCode != 0 {
		k.t.Fatalf("RunJob = %+v, %v", res, err)
	}
	for i := 1; i <= 6; i++ {
		if !strings.Contains(out.String(), fmt.Sprintf("line %d ", i)) {
			k.t.Errorf("line %d missing from %q", i, out.String())
		}
	}
	if cs := k.mine(nil); len(cs) != 0 {
		k.t.Errorf("job containers left: %+v", cs)
	}
}

// checkJobMounts: a job writes into its writable mount, and neither into a
// read-only mount nor into its root.
func checkJobMounts(k *kit) {
	in, out := k.t.TempDir(), k.tempDir()
	if err := os.WriteFile(filepath.Join(in, "in.txt"), []byte("given"), 0o644); err != nil {
		k.t.Fatal(err)
	}
	spec := k.job("job-mounts", "-copy", "/in/in.txt:/out/copy.txt", "-copy", "/in/in.txt:/in/nope.txt", "-copy", "/in/in.txt:/root.txt")
	spec.Mounts = []driver.Mount{{Source: in, Target: "/in", ReadOnly: true}, {Source: out, Target: "/out"}}
	var output syncBuffer
	if _, err := k.d.RunJob(k.ctx, spec, &output); err != nil {
		k.t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "copy.txt")); err != nil || string(b) != "given" {
		k.t.Errorf("the writable mount: %q, %v (output %q)", b, err, output.String())
	}
	if _, err := os.Stat(filepath.Join(in, "nope.txt")); err == nil {
		k.t.Error("the job wrote into its read-only mount")
	}
	if n := strings.Count(output.String(), "copy failed"); n != 2 {
		k.t.Errorf("%d refused writes, want 2 (read-only mount, read-only root): %q", n, output.String())
	}
}

// checkJobOOM: a job over its memory limit is killed (137, OOMKilled
// unless the fixture says the engine may miss it).
func checkJobOOM(k *kit) {
	res, err := k.d.RunJob(k.ctx, k.job("job-oom", "-eat", "200"), &syncBuffer{})
	if err != nil {
		k.t.Fatal(err)
	}
	if res.ExitCode != 137 || (!k.fx.UnreliableOOMFlag && !res.OOMKilled) {
		k.t.Errorf("RunJob of a job over its memory = %+v", res)
	}
}

// checkJobCancel: a job whose context ends is killed and removed, and the
// error wraps the context's.
func checkJobCancel(k *kit) {
	spec := k.job("job-cancel", "-sleep", "1h")
	ctx, cancel := context.WithTimeout(k.ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := k.d.RunJob(ctx, spec, &syncBuffer{}); !errors.Is(err, context.DeadlineExceeded) {
		k.t.Fatalf("RunJob past its deadline: %v, want DeadlineExceeded", err)
	}
	// Not a timing assertion: the job sleeps an hour, and RunJob must not
	// have waited for it to end by itself.
	if took := time.Since(start); took > 30*time.Minute {
		k.t.Errorf("RunJob returned %v after its deadline: it waited for the job instead of killing it", took)
	}
	if cs := k.mine(nil); len(cs) != 0 {
		k.t.Errorf("the cancelled job's container is left: %+v", cs)
	}
}

// checkJobRefusals: a job spec weaker than the contract is refused with
// driver.ErrInvalidSpec, and nothing runs.
func checkJobRefusals(k *kit) {
	weak := map[string]func(*driver.JobSpec){
		"no image":         func(s *driver.JobSpec) { s.Image = "" },
		"no command":       func(s *driver.JobSpec) { s.Cmd = nil },
		"root":             func(s *driver.JobSpec) { s.User = "0:0" },
		"named user":       func(s *driver.JobSpec) { s.User = "builder" },
		"other runtime":    func(s *driver.JobSpec) { s.Runtime = "kata" },
		"no memory limit":  func(s *driver.JobSpec) { s.Limits.MemoryBytes = 0 },
		"no pids limit":    func(s *driver.JobSpec) { s.Limits.Pids = 0 },
		"relative workdir": func(s *driver.JobSpec) { s.WorkDir = "src" },
		"mount over /proc": func(s *driver.JobSpec) { s.Mounts = []driver.Mount{{Source: "/tmp", Target: "/proc/x"}} },
		"relative source":  func(s *driver.JobSpec) { s.Mounts = []driver.Mount{{Source: "x", Target: "/x"}} },
		"tmpfs over limit": func(s *driver.JobSpec) { s.TmpBytes = s.Limits.MemoryBytes + 1 },
	}
	for what, weaken := range weak {
		s := k.job("job-weak")
		weaken(&s)
		var out syncBuffer
		if _, err := k.d.RunJob(k.ctx, s, &out); !errors.Is(err, driver.ErrInvalidSpec) {
			k.t.Errorf("%s: RunJob = %v, want ErrInvalidSpec", what, err)
		}
		if out.String() != "" {
			k.t.Errorf("%s: the refused job ran: %q", what, out.String())
		}
	}
	if cs := k.mine(nil); len(cs) != 0 {
		k.t.Errorf("refused jobs left containers: %+v", cs)
	}
}

// keeper returns the driver as a driver.JobKeeper, or skips the check: a
// driver need not keep jobs (the builder then runs one job per build).
func (k *kit) keeper() driver.JobKeeper {
	jk, ok := k.d.(driver.JobKeeper)
	if !ok {
		k.t.Skip("the driver does not keep jobs up (driver.JobKeeper)")
	}
	return jk
}

// startKept starts a kept job that sleeps (removed when the check ends).
func (k *kit) startKept(jk driver.JobKeeper, what string) string {
	k.t.Helper()
	id, err := jk.StartJob(k.ctx, k.job(what, "-sleep", "1h"))
	if err != nil {
		k.t.Fatalf("StartJob: %v", err)
	}
	k.track(id)
	return id
}

// checkKeptJob: a kept job stays up between commands; ExecJob returns each
// command's exit status and output, runs it without a network, refuses a
// root user, returns when its context ends, and says ErrNotFound for a
// container that is gone.
func checkKeptJob(k *kit) {
	jk := k.keeper()
	id := k.startKept(jk, "kept")
	exec := func(ctx context.Context, user string, args ...string) (driver.JobResult, string, error) {
		var out syncBuffer
		res, err := jk.ExecJob(ctx, id, driver.ExecSpec{User: user, Cmd: append([]string{"/probe", "-serve=false"}, args...), WorkDir: "/"}, &out)
		return res, out.String(), err
	}
	for round := range 2 {
		res, out, err := exec(k.ctx, "10001:10001", "-print-ifaces", "-exit", "7")
		if err != nil || res.ExitCode != 7 {
			k.t.Fatalf("round %d: ExecJob = %+v, %v (output %q)", round, res, err, out)
		}
		if !strings.Contains(out, "ifaces: lo ") || !strings.Contains(out, "exiting with 7") {
			k.t.Errorf("round %d: output %q", round, out)
		}
		if !k.inspect(id).Running {
			k.t.Fatalf("round %d: the kept job stopped after a command", round)
		}
	}
	if _, out, err := exec(k.ctx, "0:0", "-exit", "0"); !errors.Is(err, driver.ErrInvalidSpec) || out != "" {
		k.t.Errorf("ExecJob as root = %v (output %q), want ErrInvalidSpec", err, out)
	}
	for what, spec := range map[string]driver.ExecSpec{
		"no command":       {User: "10001:10001"},
		"relative workdir": {User: "10001:10001", Cmd: []string{"/probe", "-exit", "0"}, WorkDir: "in/src"},
		"not KEY=VALUE":    {User: "10001:10001", Cmd: []string{"/probe", "-exit", "0"}, Env: []string{"=x"}},
		"named user":       {User: "builder", Cmd: []string{"/probe", "-exit", "0"}},
	} {
		var out syncBuffer
		if _, err := jk.ExecJob(k.ctx, id, spec, &out); !errors.Is(err, driver.ErrInvalidSpec) || out.String() != "" {
			k.t.Errorf("%s: ExecJob = %v (output %q), want ErrInvalidSpec", what, err, out.String())
		}
	}
	ctx, cancel := context.WithTimeout(k.ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	if _, _, err := exec(ctx, "10001:10001", "-sleep", "1h"); !errors.Is(err, context.DeadlineExceeded) {
		k.t.Fatalf("ExecJob past its deadline: %v, want DeadlineExceeded", err)
	}
	// Not a timing assertion: the command sleeps an hour.
	if took := time.Since(start); took > 30*time.Minute {
		k.t.Errorf("ExecJob returned %v after its deadline", took)
	}
	if err := k.d.RemoveContainer(k.ctx, id); err != nil {
		k.t.Fatal(err)
	}
	if _, _, err := exec(k.ctx, "10001:10001", "-exit", "0"); !errors.Is(err, driver.ErrNotFound) {
		k.t.Errorf("ExecJob in a removed job: %v, want ErrNotFound", err)
	}
}

// checkKeptJobOOM: a command over the kept job's memory ends with 137 (it
// returns even when the memory kill takes the whole sandbox down), and the
// job, stopped, says it was killed for memory (unless the fixture says the
// engine may miss it).
func checkKeptJobOOM(k *kit) {
	jk := k.keeper()
	id := k.startKept(jk, "kept-oom")
	res, err := jk.ExecJob(k.ctx, id, driver.ExecSpec{User: "10001:10001", Cmd: []string{"/probe", "-serve=false", "-eat", "200"}}, &syncBuffer{})
	if err != nil || res.ExitCode != 137 {
		k.t.Fatalf("ExecJob of a command over the memory = %+v, %v", res, err)
	}
	if err := k.d.StopContainer(k.ctx, id, 0); err != nil {
		k.t.Fatal(err)
	}
	if info := k.inspect(id); !k.fx.UnreliableOOMFlag && !info.OOMKilled {
		k.t.Errorf("the stopped kept job = %+v, want OOMKilled", info)
	}
}

// checkBuild: BuildImage streams the builder's output as plain text and
// returns the image id; the image exists by id and by tag; its containers
// run what its base ran.
func checkBuild(k *kit) {
	tag := k.tag("built")
	dir := k.contextDir("FROM "+k.fx.ProbeImage+"\nCOPY motd.txt /etc/motd.txt\nLABEL hershy.drivertest.image=\""+tag+"\"\n",
		map[string]string{"motd.txt": "hello\n"})
	var out syncBuffer
	id, err := k.d.BuildImage(k.ctx, driver.ImageSpec{ContextDir: dir, Tag: tag, Labels: k.labelsImage(nil), MaxContext: 1 << 20}, &out)
	if err != nil {
		k.t.Fatalf("BuildImage: %v\n%s", err, out.String())
	}
	k.t.Cleanup(func() {
		if err := k.d.RemoveImage(context.Background(), tag); err != nil {
			k.t.Errorf("cleanup: RemoveImage(%s): %v", tag, err)
		}
	})
	if text := out.String(); !strings.Contains(text, "COPY motd.txt") || strings.Contains(text, `{"stream"`) {
		k.t.Errorf("build output, not plain text as it came:\n%s", text)
	}
	for _, ref := range []string{id, tag} {
		if ok, err := k.d.ImageExists(k.ctx, ref); !ok || err != nil {
			k.t.Errorf("ImageExists(%s) = %v, %v", ref, ok, err)
		}
	}
	s := k.spec("built", "")
	s.Image = tag
	cid := k.create(s)
	if info := k.inspect(cid); info.Image != id {
		k.t.Errorf("container of image %q, want %q", info.Image, id)
	}
	k.start(cid)
	k.waitReady(k.client(cid))
}

// checkBuildFailure: a failing build returns the builder's message and
// makes no image.
func checkBuildFailure(k *kit) {
	tag := k.tag("broken")
	dir := k.contextDir("FROM scratch\nCOPY not-there /x\n", map[string]string{})
	var out syncBuffer
	if id, err := k.d.BuildImage(k.ctx, driver.ImageSpec{ContextDir: dir, Tag: tag, Labels: k.labelsImage(nil)}, &out); err == nil || !strings.Contains(err.Error(), "not-there") {
		if err == nil {
			k.d.RemoveImage(context.Background(), id)
		}
		k.t.Fatalf("BuildImage of a COPY of a missing file: %v, want the builder's error naming it", err)
	}
	if ok, _ := k.d.ImageExists(k.ctx, tag); ok {
		k.t.Error("the failed build made an image")
	}
}

// checkBuildRefusals: before the engine builds anything (no output, no
// image), BuildImage refuses a Dockerfile the policy refuses, a base
// image the engine lacks (it never pulls), a context over its cap, a
// symlink out of the context and a Dockerfile outside it.
func checkBuildRefusals(k *kit) {
	refusals := map[string]driver.ImageSpec{
		"RUN":                  {ContextDir: k.contextDir("FROM "+k.fx.ProbeImage+"\nRUN [\"/probe\"]\n", map[string]string{})},
		"missing base":         {ContextDir: k.contextDir("FROM "+k.tag("nowhere")+"\n", map[string]string{})},
		"missing COPY --from":  {ContextDir: k.contextDir("FROM scratch\nCOPY --from="+k.tag("nowhere")+" /x /x\n", map[string]string{})},
		"context over its cap": {ContextDir: k.contextDir("FROM scratch\nCOPY big /big\n", map[string]string{"big": strings.Repeat("x", 4096)}), MaxContext: 1024},
		"Dockerfile outside":   {ContextDir: k.contextDir("FROM scratch\n", map[string]string{}), Dockerfile: "../Dockerfile"},
	}
	escaping := k.contextDir("FROM scratch\nCOPY link /x\n", map[string]string{})
	if err := os.Symlink("/etc/passwd", filepath.Join(escaping, "link")); err != nil {
		k.t.Fatal(err)
	}
	refusals["symlink out of the context"] = driver.ImageSpec{ContextDir: escaping}
	for what, spec := range refusals {
		spec.Tag = k.tag("refused")
		var out syncBuffer
		if id, err := k.d.BuildImage(k.ctx, spec, &out); err == nil {
			k.d.RemoveImage(context.Background(), id)
			k.t.Errorf("%s: the build succeeded", what)
		}
		if out.String() != "" {
			k.t.Errorf("%s: the build reached the builder:\n%s", what, out.String())
		}
		if ok, _ := k.d.ImageExists(k.ctx, spec.Tag); ok {
			k.t.Errorf("%s: an image was made", what)
		}
	}
}

// checkRemoveImage: RemoveImage refuses (ErrInUse, naming the container)
// an image a container uses, in any state, directly or through an image
// built on it; once the container is gone it removes the image; a missing
// image is no error.
func checkRemoveImage(k *kit) {
	base, _ := k.build("base", k.fx.ProbeImage, nil)
	child, childID := k.build("child", base, nil)
	s := k.spec("user", "")
	s.Image = child
	cid := k.create(s)
	inUse := []string{child, base}
	if k.fx.FlatImages {
		inUse = inUse[:1]
	}
	for _, ref := range inUse {
		err := k.d.RemoveImage(k.ctx, ref)
		if !errors.Is(err, driver.ErrInUse) || !strings.Contains(err.Error(), s.Name) {
			k.t.Errorf("RemoveImage(%s) while a container uses it: %v, want ErrInUse naming %s", ref, err, s.Name)
		}
		if ok, _ := k.d.ImageExists(k.ctx, ref); !ok {
			k.t.Errorf("%s was removed while in use", ref)
		}
	}
	if err := k.d.RemoveContainer(k.ctx, cid); err != nil {
		k.t.Fatal(err)
	}
	if err := k.d.RemoveImage(k.ctx, child); err != nil {
		k.t.Fatalf("RemoveImage(%s) unused: %v", child, err)
	}
	for _, ref := range []string{child, childID} {
		if ok, err := k.d.ImageExists(k.ctx, ref); ok || err != nil {
			k.t.Errorf("ImageExists(%s) after its removal = %v, %v", ref, ok, err)
		}
	}
	if err := k.d.RemoveImage(k.ctx, child); err != nil {
		k.t.Errorf("removing a missing image: %v", err)
	}
}

// checkConcurrent: containers are created, started, dialled, inspected,
// listed, stopped and removed from several goroutines at once, while an
// event stream reports every start and die.
func checkConcurrent(k *kit) {
	const n = 4
	ctx, cancel := context.WithCancel(k.ctx)
	defer cancel()
	evs, errs := k.d.Events(ctx)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = k.create(k.spec(fmt.Sprintf("many-%d", i), ""))
	}
	var wg sync.WaitGroup
	failures := make(chan error, 4*n)
	for _, id := range ids {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := k.d.StartContainer(ctx, id); err != nil {
				failures <- err
				return
			}
			deadline := time.Now().Add(k.fx.Timeout)
			for {
				conn, err := k.d.DialContext(ctx, id, "127.0.0.1:8080")
				if err == nil {
					conn.Close()
					break
				}
				if time.Now().After(deadline) {
					failures <- fmt.Errorf("dial %s: %w", id, err)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := k.d.StopContainer(ctx, id, 10*time.Second); err != nil {
				failures <- err
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				if _, err := k.d.InspectContainer(ctx, id); err != nil {
					failures <- err
				}
				if _, err := k.d.ListContainers(ctx, map[string]string{checkLabel: k.check}); err != nil {
					failures <- err
				}
			}
		}()
	}
	wg.Wait()
	close(failures)
	for err := range failures {
		k.t.Error(err)
	}
	seen := map[string][]driver.EventKind{}
	timer := time.NewTimer(k.fx.Timeout)
	defer timer.Stop()
	for done := 0; done < n; {
		select {
		case ev, ok := <-evs:
			if !ok {
				k.t.Fatalf("the event stream ended: %v", <-errs)
			}
			if ev.Labels[checkLabel] != k.check {
				continue
			}
			seen[ev.ContainerID] = append(seen[ev.ContainerID], ev.Kind)
			if ev.Kind == driver.EventDie {
				done++
			}
		case <-timer.C:
			k.t.Fatalf("events seen: %v, want a start and a die of each of %d containers", seen, n)
		}
	}
	for _, id := range ids {
		if got := seen[id]; len(got) != 2 || got[0] != driver.EventStart || got[1] != driver.EventDie {
			k.t.Errorf("events of %s: %v, want start then die", id, got)
		}
	}
	for _, c := range k.mine(nil) {
		if c.Running {
			k.t.Errorf("%s still running after its stop", c.ID)
		}
	}
}

// statsEat is how many MiB the stats check's probe touches.
const statsEat = 24

// checkStats: Stats of a running program shows the memory it touched (at
// least statsEat MiB in its working set) against its spec's limit, at
// least one task, and counters that never go back between two reads; a
// created or stopped container is ErrNotRunning, a removed or unknown one
// ErrNotFound.
func checkStats(k *kit) {
	t, d, ctx := k.t, k.d, k.ctx
	spec := k.spec("stats", fmt.Sprintf("-eat %d", statsEat))
	spec.Limits.MemoryBytes = 128 << 20 // room for gVisor's sandbox besides what the probe eats
	id := k.create(spec)
	if _, err := d.Stats(ctx, id); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("Stats of a created container: %v, want ErrNotRunning", err)
	}
	k.start(id)
	k.eventually("the probe eating its memory", func() bool {
		rc, err := d.Logs(ctx, id, time.Time{}, false)
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		defer rc.Close()
		b, _ := k.readAllWithin(rc)
		return strings.Contains(string(b), "ate ")
	})
	if k.fx.SampledStats {
		k.eventually("a sample of the memory the probe touched", func() bool {
			st, err := d.Stats(ctx, id)
			return err == nil && st.MemoryBytes >= statsEat<<20
		})
	}
	before := time.Now()
	first, err := d.Stats(ctx, id)
	if err != nil {
		t.Fatalf("Stats of a running container: %v", err)
	}
	lim := spec.Limits.MemoryBytes
	if first.MemoryBytes < statsEat<<20 || first.MemoryBytes > lim {
		t.Errorf("memory %d bytes, want between %d (what the probe touched) and the limit %d", first.MemoryBytes, statsEat<<20, lim)
	}
	if first.MemoryLimitBytes != lim {
		t.Errorf("memory limit %d, want the spec's %d", first.MemoryLimitBytes, lim)
	}
	if (first.Pids < 1 && !(k.fx.SampledStats && first.Pids == 0)) || first.Pids > spec.Limits.Pids {
		t.Errorf("pids %d, want between 1 and the limit %d", first.Pids, spec.Limits.Pids)
	}
	if first.CPUNanos < 0 || first.NetRxBytes != 0 || first.NetTxBytes != 0 {
		t.Errorf("cpu %d ns, network %d/%d bytes: want no negative CPU and no traffic without a network", first.CPUNanos, first.NetRxBytes, first.NetTxBytes)
	}
	if first.At.Before(before.Add(-time.Second)) || first.At.After(time.Now().Add(time.Second)) {
		t.Errorf("read at %v, want about %v", first.At, before)
	}
	second, err := d.Stats(ctx, id)
	if err != nil {
		t.Fatalf("Stats again: %v", err)
	}
	if second.CPUNanos < first.CPUNanos || second.At.Before(first.At) {
		t.Errorf("a second read went back: cpu %d -> %d ns, at %v -> %v", first.CPUNanos, second.CPUNanos, first.At, second.At)
	}

	if err := d.StopContainer(ctx, id, time.Second); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	if _, err := d.Stats(ctx, id); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("Stats of a stopped container: %v, want ErrNotRunning", err)
	}
	if err := d.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	if _, err := d.Stats(ctx, id); !isNotFound(err) {
		t.Errorf("Stats of a removed container: %v, want ErrNotFound", err)
	}
	if _, err := d.Stats(ctx, k.name("never-made")); !isNotFound(err) {
		t.Errorf("Stats of an unknown container: %v, want ErrNotFound", err)
	}
}
