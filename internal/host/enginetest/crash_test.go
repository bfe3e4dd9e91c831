package enginetest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/docker"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
	"github.com/hershyorg/hershy/internal/testenv"
)

// The Host must survive SIGKILL at any moment: a child process runs a Host
// and is killed in the middle of builds, starts and stops; a new Host on
// the same data directory must re-adopt running containers without
// restarting them, resume what was interrupted, and leave no orphan.

const childEnv = "HERSHY_TEST_HOST_CHILD" // "<data dir>|<runtime>|<command>"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

// runChild is the Host process that gets killed. Commands:
//
//	create:N   create N programs (distinct sources) and start them all
//	restart:ID restart a program
//	stop:ID    stop a program
//
// It prints "ok <ids>" once the commands are issued, then waits for death.
func runChild(spec string) int {
	parts := strings.SplitN(spec, "|", 3)
	d, err := docker.New()
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	bo := builder.Options{SharedCacheDir: os.Getenv("HERSHY_TEST_GOCACHES")}
	h, err := host.Open(context.Background(), host.Options{DataDir: parts[0], Runtime: parts[1], StopGrace: 5 * time.Second, Build: bo}, d)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	ctx := context.Background()
	var ids []string
	for _, cmd := range strings.Split(parts[2], ",") {
		verb, arg, _ := strings.Cut(cmd, ":")
		switch verb {
		case "create":
			var n int
			fmt.Sscan(arg, &n)
			for i := 0; i < n; i++ {
				p, err := h.Create(ctx, host.CreateRequest{UserID: "kill", Files: hosttest.CounterSource(i + 1)})
				if err == nil {
					_, err = h.Start(ctx, p.ID)
				}
				if err != nil {
					fmt.Println("error", err)
					return 1
				}
				ids = append(ids, p.ID)
			}
		case "restart":
			_, err = h.Restart(ctx, arg)
		case "stop":
			_, err = h.Stop(ctx, arg)
		}
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
	}
	fmt.Println("ok", strings.Join(ids, " "))
	select {}
}

// killChild runs a child Host with commands, waits until it reports them
// issued, lets it work for a while, and SIGKILLs it.
func killChild(t *testing.T, dir, rt, cmds string, after time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	bo := testenv.GoCaches(t)
	cmd.Env = append(os.Environ(), childEnv+"="+dir+"|"+rt+"|"+cmds, "HERSHY_TEST_GOCACHES="+bo.SharedCacheDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ok") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child Host: %q %v", line, err)
	}
	time.Sleep(after)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	return strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "ok"))
}

// noOrphans checks that the engine holds exactly the containers the
// programs record, and nothing else with this Host's labels.
func noOrphans(t *testing.T, h *host.Host, d driver.Driver) {
	t.Helper()
	cs, err := d.ListContainers(context.Background(), map[string]string{driver.LabelInstance: h.Instance()})
	if err != nil {
		t.Fatal(err)
	}
	rows, _, err := h.List(context.Background(), store.ProgramFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, r := range rows {
		if r.ContainerID != "" {
			want[r.ContainerID] = r.ID
		}
	}
	for _, c := range cs {
		if c.Labels[driver.LabelJob] == "build" {
			// The open Host's build sandbox, kept up between a user's
			// builds (e2e TestHostKills checks that a killed Host's go).
			continue
		}
		if _, ok := want[c.ID]; !ok {
			t.Errorf("orphan container %s (program %s)", c.ID, c.Labels[driver.LabelProgram])
		}
		delete(want, c.ID)
	}
	for cid, pid := range want {
		t.Errorf("program %s records container %s, which does not exist", pid, cid)
	}
}

func TestSIGKILLLosesNothing(t *testing.T) {
	for _, rt := range []string{driver.RuntimeRunc, driver.RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) {
			d := testenv.Engine(t, rt)
			dir := t.TempDir()
			ctx := context.Background()

			// Round 1: killed while three programs build and start.
			ids := killChild(t, dir, rt, "create:3", 1500*time.Millisecond)
			h := hosttest.Open(t, dir, rt, d)
			ready := map[string]string{}
			for _, id := range ids {
				ready[id] = hosttest.WaitState(t, h, id, lifecycle.Ready, 3*time.Minute).ContainerID
			}
			noOrphans(t, h, d)
			hosttest.Close(t, h)

			// Round 2: killed during a restart and a stop. The third program,
			// untouched, must be re-adopted without a restart.
			killChild(t, dir, rt, "restart:"+ids[0]+",stop:"+ids[1], 300*time.Millisecond)
			h = hosttest.Open(t, dir, rt, d)
			p0 := hosttest.WaitState(t, h, ids[0], lifecycle.Ready, 2*time.Minute)
			if p0.ContainerID == ready[ids[0]] {
				t.Errorf("the restart interrupted by SIGKILL did not happen")
			}
			hosttest.WaitState(t, h, ids[1], lifecycle.Stopped, 2*time.Minute)
			if p2, _ := h.Get(ctx, ids[2]); p2.State != "Ready" || p2.ContainerID != ready[ids[2]] {
				t.Errorf("untouched program was not re-adopted as it was: %+v (container was %s)", p2, ready[ids[2]])
			}
			noOrphans(t, h, d)
			// It still answers through the WatcherAPI after re-adoption.
			if st := hosttest.WatcherGet(t, h, ids[2], "/watcher/status"); st["isRunning"] != true {
				t.Errorf("re-adopted program status %v", st)
			}
			for _, id := range ids {
				if err := h.Delete(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			noOrphans(t, h, d)
		})
	}
}
