package hershtest_test

// Pattern: a crash and backoff. The bot pulls a balance from an exchange
// at start and on "sync". A failed pull fails the run, and hersh retries it
// after a backoff (1s, 2s, 4s, ... with NoJitter); revoked credentials are
// not worth retrying, so the bot crashes on purpose. The test scripts the
// exchange's failures and walks the fake clock through the backoffs.

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/hersh"
	"github.com/hershyorg/hershy/hersh/hershtest"
)

var balance = hersh.NewKey[int]("balance")

var errRevoked = errors.New("credentials revoked")

// exchange is a scripted stand-in: each call takes the next scripted
// error, nil once the script is exhausted.
type exchange struct{ script []error }

func (e *exchange) pull() (int, error) {
	if len(e.script) > 0 {
		err := e.script[0]
		e.script = e.script[1:]
		return 0, err
	}
	return 1_000, nil
}

func syncer(ex *exchange) hersh.ManagedFunc {
	return func(c *hersh.Context) error {
		if m := c.Message(); m != nil && m.Content != "sync" {
			return nil
		}
		n, err := ex.pull()
		switch {
		case errors.Is(err, errRevoked):
			return hersh.Crash("cannot sync", err)
		case err != nil:
			return fmt.Errorf("pulling the balance: %w", err)
		}
		return balance.Set(c, n)
	}
}

func TestCrashAndBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := errors.New("exchange down")
		ex := &exchange{script: []error{down, down}}
		cfg := hersh.Config{Recovery: hersh.RecoveryConfig{Base: time.Second, MaxFailures: 5, Jitter: hersh.NoJitter}}
		h := hershtest.Start(t, cfg, syncer(ex))

		// The start run failed: a recovery run is due in 1s, then 2s.
		h.WantState(hersh.StateWaitRecover)
		if runs := h.Advance(999 * time.Millisecond); len(runs) != 0 {
			t.Fatalf("a retry came early: %q", hershtest.Triggers(runs))
		}
		h.Advance(time.Millisecond) // the first retry fails too
		h.Advance(2 * time.Second)  // the second succeeds
		h.WantState(hersh.StateReady)
		if n, _ := balance.Get(h.W); n != 1_000 {
			t.Errorf("balance %d after recovery", n)
		}
		if got, want := hershtest.Triggers(h.Runs()), []string{"start", "recovery", "recovery"}; !slices.Equal(got, want) {
			t.Errorf("runs %q, want %q", got, want)
		}

		// A message sent during a backoff waits for the recovery run.
		ex.script = []error{down}
		if r := h.Send("sync"); r.Success {
			t.Fatal("the sync did not fail")
		}
		h.Queue("sync")
		runs := h.Advance(time.Second)
		if got, want := hershtest.Triggers(runs), []string{"recovery", "message:sync"}; !slices.Equal(got, want) {
			t.Errorf("after the backoff: %q, want %q", got, want)
		}

		// Revoked credentials: no retry, the watcher crashes at once.
		ex.script = []error{errRevoked}
		h.Send("sync")
		h.WantState(hersh.StateCrashed)
		var crash *hersh.CrashError
		if err := h.W.Err(); !errors.As(err, &crash) || !errors.Is(err, errRevoked) {
			t.Errorf("ended with %v, want a crash caused by revoked credentials", err)
		}
		if code := hersh.ExitCode(h.W.Err()); code != 1 {
			t.Errorf("exit code %d, want 1 (crashed)", code)
		}
	})
}
