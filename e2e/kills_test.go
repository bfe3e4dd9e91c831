package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/store"
)

// TestHostKills SIGKILLs the Host at random points of a seeded script of
// creates, starts, stops, restarts, upgrades, secret changes and deletes
// over the programs of two users: in the middle of an API call, or while
// the builds and starts it set off run behind it. After each kill the
// database passes an integrity check. After each restart:
//
//   - no program is lost, and each converges to what was last asked of it
//     (an action the kill cut short may have happened or not: the program
//     must settle either way);
//   - no container, image or source folder is left without its program, and
//     no build sandbox of the killed process survives;
//   - every running counter resumed from its /state: it never goes back.
//
// The seed is printed; HERSHY_KILL_SEED=N replays a run and
// HERSHY_KILL_ROUNDS=N sets the number of kills (default 8 per runtime).
func TestHostKills(t *testing.T) { forEachRuntime(t, testHostKills) }

func testHostKills(t *testing.T, rt string) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("HERSHY_KILL_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("HERSHY_KILL_SEED: %v", err)
		}
		seed = n
	}
	rounds := 8
	if s := os.Getenv("HERSHY_KILL_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("HERSHY_KILL_ROUNDS=%q", s)
		}
		rounds = n
	}
	t.Logf("seed %d (replay: HERSHY_KILL_SEED=%d HERSHY_KILL_ROUNDS=%d go test ./e2e -run 'TestHostKills/%s')", seed, seed, rounds, rt)

	h := startHost(t, rt)
	k := &killRun{t: t, h: h, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), progs: map[string]*killProg{}}
	k.users = []*user{h.user("alice"), h.user("bob")}
	src := readSource(t, filepath.Join(examplesDir, "simple-counter"))
	// Two versions of the source per user, so an upgrade builds anew and
	// most creates reuse an image.
	for _, v := range []string{"a", "b"} {
		files := make(map[string]string, len(src))
		for name, content := range src {
			files[name] = content
		}
		files["e2e-nonce.txt"] = files["e2e-nonce.txt"] + v + "\n"
		k.sources = append(k.sources, files)
	}
	for round := 1; round <= rounds; round++ {
		k.round = round
		k.runUntilKill()
		k.checkDatabase()
		oldBuilds := k.buildSandboxes()
		h.start()
		k.settle()
		k.checkOwned(oldBuilds)
		k.checkCounters()
	}
}

// killRun is the script's state: what the client knows of each program.
type killRun struct {
	t       *testing.T
	h       *host
	rng     *rand.Rand
	users   []*user
	sources []map[string]string
	progs   map[string]*killProg
	// cutCreates counts creates the kill cut short, by user: such a
	// program may exist.
	cutCreates map[string]int
	round      int
	step       int
	picked     pending // the action running now
}

// killProg is one program as the script knows it.
type killProg struct {
	p       *program
	want    string // "run" (Ready) or "rest" (Created or Stopped); "" unknown (an action the kill cut short)
	gone    bool   // deleted
	settled bool   // deleted, and found gone
	maybe   bool   // a delete the kill cut short
	counter int    // the highest count seen
	source  int    // the source version it was created or upgraded with
}

// kill ends the Host with SIGKILL and waits for the process to go.
func (h *host) kill() {
	h.t.Helper()
	if h.cmd == nil {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGKILL)
	<-h.exited
	h.cmd = nil
}

// runUntilKill runs random actions until one is cut by a SIGKILL (at most
// six actions a round; the last always is).
func (k *killRun) runUntilKill() {
	n := 1 + k.rng.IntN(6)
	for i := 1; i <= n; i++ {
		k.step++
		name, act := k.pick()
		killNow := i == n
		done := make(chan error, 1)
		go func() { done <- act() }()
		if killNow {
			// During the call (they take milliseconds), or after it,
			// while the work it set off runs.
			within := []int{15, 300, 2000}[k.rng.IntN(3)]
			time.Sleep(time.Duration(k.rng.IntN(within)) * time.Millisecond)
			k.h.kill()
		}
		err := <-done
		cut := err != nil && !isAnswer(err)
		k.t.Logf("round %d step %d: %s: %v%s", k.round, k.step, name, errOrOK(err), map[bool]string{true: " (cut by the kill)"}[cut])
		k.settleAction(name, err, cut)
		if !killNow {
			time.Sleep(time.Duration(k.rng.IntN(800)) * time.Millisecond)
		}
	}
}

func errOrOK(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// isAnswer tells an error the Host answered (a refusal) from one where
// no answer came (the kill).
func isAnswer(err error) bool {
	var e *client.Error
	return errors.As(err, &e)
}

// pending is the outcome of the last picked action, applied by
// settleAction once its call returned.
type pending struct {
	kp    *killProg
	owner *user
	apply func(kp *killProg) // what a success means
	cut   func(kp *killProg) // what a cut call means
}

// pick chooses the next action: a create when there are few programs,
// else an action on a random program.
func (k *killRun) pick() (string, func() error) {
	ctx := context.Background()
	live := k.live()
	if len(live) < 2 || (len(live) < 5 && k.rng.IntN(4) == 0) {
		u := k.users[k.rng.IntN(len(k.users))]
		v := k.rng.IntN(len(k.sources))
		var created *client.CreateResponse
		k.picked = pending{owner: u,
			apply: func(*killProg) {
				kp := &killProg{p: &program{t: k.t, h: k.h, c: u, name: "counter-" + created.ProgramID, id: created.ProgramID}, want: "rest", source: v}
				k.progs[created.ProgramID] = kp
			},
			cut: func(*killProg) {
				if k.cutCreates == nil {
					k.cutCreates = map[string]int{}
				}
				k.cutCreates[u.name]++
			}}
		return "create for " + u.name, func() error {
			var err error
			created, err = u.CreateProgram(ctx, client.SourceRequest{SrcFiles: k.sources[v]})
			return err
		}
	}
	kp := live[k.rng.IntN(len(live))]
	c, id := kp.p.c, kp.p.id
	unknown := func(kp *killProg) { kp.want = "" }
	k.picked = pending{kp: kp, cut: unknown}
	switch r := k.rng.IntN(10); {
	case r < 3:
		k.picked.apply = func(kp *killProg) { kp.want = "run" }
		return "start " + id, func() error { _, err := c.Start(ctx, id); return err }
	case r < 5:
		k.picked.apply = func(kp *killProg) { kp.want = "rest" }
		return "stop " + id, func() error { _, err := c.Stop(ctx, id); return err }
	case r < 6:
		k.picked.apply = func(kp *killProg) { kp.want = "run" }
		return "restart " + id, func() error { _, err := c.Restart(ctx, id); return err }
	case r < 7:
		v := 1 - kp.source
		k.picked.apply = func(kp *killProg) { kp.source = v }
		k.picked.cut = func(*killProg) {} // either source: the program runs on
		return "upgrade " + id, func() error {
			_, err := c.UpdateSource(ctx, id, client.SourceRequest{SrcFiles: k.sources[v]})
			return err
		}
	case r < 9:
		name := fmt.Sprintf("KEY_%d", k.rng.IntN(3))
		value := strconv.Itoa(k.rng.IntN(1000))
		k.picked.apply, k.picked.cut = func(*killProg) {}, func(*killProg) {}
		return "secret " + name + " of " + id, func() error { return putSecret(ctx, k.h, c, id, name, value) }
	default:
		k.picked.apply = func(kp *killProg) { kp.gone = true }
		k.picked.cut = func(kp *killProg) { kp.maybe = true }
		return "delete " + id, func() error { return c.DeleteProgram(ctx, id) }
	}
}

// settleAction applies what the picked action's outcome means.
func (k *killRun) settleAction(name string, err error, cut bool) {
	pk := k.picked
	switch {
	case cut:
		pk.cut(pk.kp)
	case err == nil:
		pk.apply(pk.kp)
	case client.IsStatus(err, http.StatusConflict), client.IsStatus(err, http.StatusNotFound),
		client.IsStatus(err, http.StatusServiceUnavailable), client.IsStatus(err, http.StatusTooManyRequests):
		// Refused as it stood (a program being deleted, a state the
		// action does not apply to): nothing changed.
	default:
		k.t.Fatalf("round %d: %s: %v", k.round, name, err)
	}
}

// putSecret sets a program's secret through the API.
func putSecret(ctx context.Context, h *host, c *user, id, name, value string) error {
	body := strings.NewReader(fmt.Sprintf(`{"value":%q}`, value))
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, h.url()+"/programs/"+id+"/secrets/"+name, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return &client.Error{Status: resp.StatusCode, Code: resp.StatusCode, Err: resp.Status}
	}
	return nil
}

func (k *killRun) live() []*killProg {
	var ps []*killProg
	for _, kp := range k.progs {
		if !kp.gone {
			ps = append(ps, kp)
		}
	}
	slices.SortFunc(ps, func(a, b *killProg) int { return strings.Compare(a.p.id, b.p.id) })
	return ps
}

// checkDatabase opens the killed Host's database, as the next Host will,
// and runs SQLite's integrity check on it.
func (k *killRun) checkDatabase() {
	k.t.Helper()
	s, err := store.Open(filepath.Join(k.h.dataDir, "hershy.db"))
	if err != nil {
		k.t.Fatalf("round %d: opening the killed Host's database: %v", k.round, err)
	}
	defer s.Close()
	if err := s.Check(context.Background()); err != nil {
		k.t.Fatalf("round %d: the database after the kill: %v", k.round, err)
	}
}

// buildSandboxes lists this Host's containers that belong to no program
// (its build sandboxes).
func (k *killRun) buildSandboxes() []string {
	var ids []string
	for _, c := range k.containers() {
		if c.Labels[driver.LabelProgram] == "" {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

func (k *killRun) containers() []container.Summary {
	k.t.Helper()
	f := filters.NewArgs(filters.Arg("label", driver.LabelInstance+"="+k.h.instance()))
	cs, err := k.h.engine.Client().ContainerList(context.Background(), container.ListOptions{All: true, Filters: f})
	if err != nil {
		k.t.Fatal(err)
	}
	return cs
}

// settle learns what the kill left undecided, then waits for every
// program to reach the state asked of it (or, undecided, a state at rest).
func (k *killRun) settle() {
	k.t.Helper()
	ctx := context.Background()
	for _, u := range k.users {
		if k.cutCreates[u.name] == 0 {
			continue
		}
		l, err := u.ListPrograms(ctx, client.ListOptions{Limit: 1000})
		if err != nil {
			k.t.Fatal(err)
		}
		for _, p := range l.Programs {
			if k.progs[p.ProgramID] == nil {
				k.t.Logf("round %d: a cut create of %s made %s", k.round, u.name, p.ProgramID)
				k.progs[p.ProgramID] = &killProg{p: &program{t: k.t, h: k.h, c: u, name: "counter-" + p.ProgramID, id: p.ProgramID}, source: -1}
			}
		}
	}
	k.cutCreates = nil
	// Nothing the client knows of is lost.
	for _, u := range k.users {
		l, err := u.ListPrograms(ctx, client.ListOptions{Limit: 1000})
		if err != nil {
			k.t.Fatal(err)
		}
		listed := map[string]bool{}
		for _, p := range l.Programs {
			listed[p.ProgramID] = true
		}
		for id, kp := range k.progs {
			if kp.p.c == u && !kp.gone && !kp.maybe && !listed[id] {
				k.t.Fatalf("round %d: program %s of %s is lost after the restart", k.round, id, u.name)
			}
		}
	}
	deadline := time.Now().Add(4 * time.Minute)
	for _, kp := range k.progs {
		if !kp.gone || kp.settled {
			continue
		}
		for {
			_, err := kp.p.c.GetProgram(ctx, kp.p.id)
			if client.IsStatus(err, http.StatusNotFound) {
				kp.settled = true
				break
			}
			if err != nil {
				k.t.Fatal(err)
			}
			if time.Now().After(deadline) {
				k.t.Fatalf("round %d: deleted program %s is still there", k.round, kp.p.id)
			}
			time.Sleep(150 * time.Millisecond)
		}
	}
	for _, kp := range k.live() {
		for {
			pr, err := kp.p.c.GetProgram(ctx, kp.p.id)
			if client.IsStatus(err, http.StatusNotFound) {
				if !kp.maybe {
					k.t.Fatalf("round %d: program %s vanished", k.round, kp.p.id)
				}
				kp.gone, kp.settled = true, true
				break
			}
			if err != nil {
				k.t.Fatal(err)
			}
			rest := pr.State == "Created" || pr.State == "Stopped"
			at := (kp.want == "run" && pr.State == "Ready") || (kp.want == "rest" && rest)
			if kp.want == "" || kp.maybe {
				at = rest || pr.State == "Ready"
			}
			if pr.State == "Error" {
				k.t.Fatalf("round %d: %s is in Error: %s\nbuild log:\n%s", k.round, kp.p.id, pr.ErrorMsg, kp.p.buildLog())
			}
			if at {
				if kp.want == "" || kp.maybe {
					kp.want, kp.maybe = map[bool]string{true: "rest", false: "run"}[rest], false
				}
				break
			}
			if time.Now().After(deadline) {
				k.t.Fatalf("round %d: %s is %s, want %q", k.round, kp.p.id, pr.State, kp.want)
			}
			time.Sleep(150 * time.Millisecond)
		}
	}
}

// checkOwned: every container, image and source folder of this Host
// belongs to a program it lists; the killed process's build sandboxes are
// gone.
func (k *killRun) checkOwned(oldBuilds []string) {
	k.t.Helper()
	live := map[string]*killProg{}
	builds := map[string]bool{}
	for _, kp := range k.live() {
		live[kp.p.id] = kp
		if pr, err := kp.p.c.GetProgram(context.Background(), kp.p.id); err == nil {
			builds[pr.BuildID] = true
		}
		// A kept release keeps its build's image, for a rollback.
		if rs, err := kp.p.c.Releases(context.Background(), kp.p.id); err == nil {
			for _, r := range rs {
				builds[r.BuildID] = true
			}
		}
	}
	perProgram := map[string]int{}
	for _, c := range k.containers() {
		pid := c.Labels[driver.LabelProgram]
		switch {
		case pid == "":
			if slices.Contains(oldBuilds, c.ID) {
				k.t.Errorf("round %d: a build sandbox of the killed Host is left: %s %v", k.round, c.ID, c.Names)
			}
		case live[pid] == nil:
			k.t.Errorf("round %d: container %s of program %s, which the Host does not list", k.round, c.ID, pid)
		default:
			perProgram[pid]++
			builds[c.Labels[driver.LabelBuild]] = true // its image stays while it exists
		}
	}
	for pid, n := range perProgram {
		if n > 1 {
			k.t.Errorf("round %d: program %s has %d containers", k.round, pid, n)
		}
	}
	f := filters.NewArgs(filters.Arg("label", driver.LabelInstance+"="+k.h.instance()))
	imgs, err := k.h.engine.Client().ImageList(context.Background(), image.ListOptions{All: true, Filters: f})
	if err != nil {
		k.t.Fatal(err)
	}
	for _, img := range imgs {
		if b := img.Labels[driver.LabelBuild]; !builds[b] {
			k.t.Errorf("round %d: image %v (build %s) belongs to no program", k.round, img.RepoTags, b)
		}
	}
	dirs, err := os.ReadDir(filepath.Join(k.h.dataDir, "programs"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		k.t.Fatal(err)
	}
	for _, d := range dirs {
		if live[d.Name()] == nil {
			k.t.Errorf("round %d: source folder programs/%s belongs to no program", k.round, d.Name())
		}
	}
}

// checkCounters: each running program's counter did not go back.
func (k *killRun) checkCounters() {
	k.t.Helper()
	for _, kp := range k.live() {
		if kp.want != "run" {
			continue
		}
		n := numberAfter(k.t, kp.p.ask("status", "status: counter is"), "counter is ")
		if n < kp.counter {
			k.t.Errorf("round %d: %s counts %d, had counted to %d: its /state was lost", k.round, kp.p.id, n, kp.counter)
		}
		kp.counter = n
	}
}
