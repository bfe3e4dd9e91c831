package builder

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
)

func TestQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(1)
		ctx := context.Background()
		first, err := q.wait(ctx, "a", func(int) { t.Error("the first build waited") })
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		reports := map[string][]int{}
		var order []string
		released := map[string]func(){}
		var wg sync.WaitGroup
		for _, key := range []string{"b", "c", "d"} {
			wg.Go(func() {
				rel, err := q.wait(ctx, key, func(ahead int) {
					mu.Lock()
					reports[key] = append(reports[key], ahead)
					mu.Unlock()
				})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				order = append(order, key)
				released[key] = rel
				mu.Unlock()
			})
			synctest.Wait() // arrive in this order
		}
		if p := q.position("c"); p != 2 {
			t.Fatalf("position of c = %d, want 2", p)
		}
		if p := q.position("a"); p != 0 {
			t.Fatalf("position of the running build = %d", p)
		}

		// A waiter that gives up leaves the queue; those behind move up.
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := q.wait(cctx, "e", func(int) {})
			errc <- err
		}()
		synctest.Wait()
		if p := q.position("e"); p != 4 {
			t.Fatalf("position of e = %d", p)
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait = %v", err)
		}
		if p := q.position("e"); p != 0 {
			t.Fatalf("e still queued at %d", p)
		}

		first()
		first() // twice is harmless
		synctest.Wait()
		for _, key := range []string{"b", "c"} {
			mu.Lock()
			rel := released[key]
			mu.Unlock()
			if rel == nil {
				t.Fatalf("%s did not get its slot", key)
			}
			rel()
			synctest.Wait()
		}
		wg.Wait()
		released["d"]()
		if got := order; len(got) != 3 || got[0] != "b" || got[1] != "c" || got[2] != "d" {
			t.Fatalf("order %v, want arrival order", got)
		}
		// Each waiter heard its place, and each move.
		if got := reports["d"]; len(got) < 3 || got[0] != 3 || got[len(got)-1] != 1 {
			t.Errorf("d heard %v, want 3 ... 1", got)
		}
		// All slots are back: a new build runs at once.
		rel, err := q.wait(ctx, "f", func(int) { t.Error("waited on an idle queue") })
		if err != nil {
			t.Fatal(err)
		}
		rel()
	})
}
