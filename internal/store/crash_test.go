package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/lifecycle"
)

const crashEnv = "HERSHY_STORE_CRASH_CHILD_DB"

// steps is the sequence of states the crash child drives each program
// through; the k-th SaveTransition (k from 1) moves it to steps[k].
var steps = []lifecycle.State{lifecycle.Created, lifecycle.Building, lifecycle.Starting, lifecycle.Ready, lifecycle.Stopping, lifecycle.Stopped}

// TestCrashChild is the child half of TestCrashSafety; it does nothing unless
// started by it. It writes as fast as it can from several goroutines and
// prints "ACK program k" after each SaveTransition has returned (that is,
// after its commit), until it is killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("only run as the child of TestCrashSafety")
	}
	s, err := Open(path)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	ctx := context.Background()
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	ack := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				p, err := s.CreateProgram(ctx, Program{ID: fmt.Sprintf("c%d-%d", g, i), UserID: "u",
					Options: Options{Env: map[string]string{"PAD": strings.Repeat("x", 2000)}}})
				if err != nil {
					ack("ERR %v", err)
					return
				}
				ack("ACK %s 0", p.ID)
				for k := 1; k < len(steps); k++ {
					p.Seq = uint64(k)
					p.ErrorMsg = strings.Repeat("e", 500*k) // grow the row: more pages per commit
					if p, err = s.SaveTransition(ctx, p, steps[k-1], steps[k], fmt.Sprint(k)); err != nil {
						ack("ERR %v", err)
						return
					}
					ack("ACK %s %d", p.ID, k)
				}
			}
		}()
	}
	wg.Wait()
	os.Exit(3)
}

// TestCrashSafety kills a writing child process with SIGKILL, reopens the
// database and checks it: integrity_check passes, every write the child saw
// committed is there, and every program agrees with its transition history
// (SaveTransition was atomic).
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	for round := 0; round < 3; round++ {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "h.db")
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashEnv+"="+path)
			cmd.Stderr = os.Stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			acked := map[string]int{} // program -> highest acknowledged k
			var childErr []string
			lines := make(chan string)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			// Kill after a varying number of acknowledged writes (or a
			// deadline), while the child is in full flow.
			killAfter := 60 + 70*round
			deadline := time.After(20 * time.Second)
			n, killed := 0, false
			kill := func() {
				if !killed {
					killed = true
					_ = cmd.Process.Signal(syscall.SIGKILL)
				}
			}
		read:
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						break read
					}
					var id string
					var k int
					if _, err := fmt.Sscanf(l, "ACK %s %d", &id, &k); err == nil {
						if k >= acked[id] {
							acked[id] = k
						}
						n++
						if n >= killAfter {
							kill()
						}
					} else if strings.HasPrefix(l, "ERR") {
						childErr = append(childErr, l)
						kill()
					}
				case <-deadline:
					kill()
				}
			}
			err = cmd.Wait()
			if len(childErr) > 0 {
				t.Fatalf("child failed: %v", childErr)
			}
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("child did not die of SIGKILL: %v", err)
			}
			if n == 0 {
				t.Fatal("child acknowledged no writes")
			}

			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			if err := s.IntegrityCheck(ctx); err != nil {
				t.Fatal(err)
			}
			for id, k := range acked {
				p, err := s.GetProgram(ctx, id)
				if err != nil {
					t.Errorf("acknowledged program %s: %v", id, err)
					continue
				}
				if p.Seq < uint64(k) {
					t.Errorf("program %s: effect_seq %d, but transition %d was acknowledged", id, p.Seq, k)
				}
			}
			progs, total, err := s.ListPrograms(ctx, ProgramFilter{})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range progs {
				tr, err := s.ListTransitions(ctx, p.ID, 0)
				if err != nil {
					t.Fatal(err)
				}
				if uint64(len(tr)) != p.Seq || p.State != steps[p.Seq] ||
					(len(tr) > 0 && (tr[len(tr)-1].To != p.State || !tr[len(tr)-1].At.Equal(p.UpdatedAt))) {
					t.Errorf("program %s (state %s, effect_seq %d) disagrees with its %d transitions", p.ID, p.State, p.Seq, len(tr))
				}
			}
			t.Logf("killed after %d acknowledged writes; %d programs (%d acknowledged) consistent after reopen", n, total, len(acked))
		})
	}
}
