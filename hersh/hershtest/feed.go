package hershtest

import (
	"context"
	"sync"
	"testing/synctest"

	"github.com/hershyorg/hershy/hersh"
)

// Feed sends v on ch, the channel a WatchFlow (or WatchFlowValues) of the
// watcher reads, waits until the watcher has settled and returns the runs
// that ended meanwhile: normally one, triggered by the variable; none for
// a FlowValue with SkipSignal set. The clock does not move.
//
// Feed fails the test if nothing takes v: no WatchFlow reads ch (is the
// managed function given this channel, and has a run called WatchFlow with
// it?), or ch is buffered and v stays in the buffer, or ch is closed or nil.
// Create ch inside the bubble: a goroutine blocked on a channel from
// outside it never counts as blocked, and Feed would wait for ever.
func Feed[T any](h *Watcher, ch chan<- T, v T) []hersh.EffectResult {
	h.t.Helper()
	if ch == nil {
		h.t.Fatalf("hershtest: Feed(%v): nil channel", v)
		return nil
	}
	synctest.Wait()
	mark := h.mark()
	var (
		sent    = make(chan struct{})
		abandon = make(chan struct{})
		closed  = make(chan struct{})
	)
	go func() {
		defer func() {
			if recover() != nil { // send on a closed channel
				close(closed)
			}
		}()
		select {
		case ch <- v:
			close(sent)
		case <-abandon:
		}
	}()
	synctest.Wait()
	select {
	case <-sent:
	case <-closed:
		h.t.Fatalf("hershtest: Feed(%v): the channel is closed", v)
		return nil
	default:
		close(abandon)
		synctest.Wait()
		h.t.Fatalf("hershtest: Feed(%v): nothing received the value: no WatchFlow of the running watcher reads this channel%s", v, h.endedNote())
		return nil
	}
	if n := len(ch); n > 0 {
		h.t.Fatalf("hershtest: Feed(%v): %d value(s) stay in the channel's buffer: no WatchFlow of the running watcher reads this channel%s", v, n, h.endedNote())
		return nil
	}
	return h.since(mark)
}

// Value is a value a test controls and a WatchCall polls: pass its Poll
// method as the poll function. Each poll returns the value set last and
// reports a change when Set has been called since the previous poll, so
// setting the same value twice causes two runs, as two real updates would.
// A WatchCall polls at once when it is registered and then every interval:
// after Set, Advance the clock to the next poll for the watcher to see it.
//
// The zero Value is ready to use and holds no value (polls report no
// change). It is safe for concurrent use.
type Value[T any] struct {
	mu      sync.Mutex
	v       T
	err     error
	version uint64 // Set calls
	seen    uint64 // version the last poll reported
	polls   int
}

// Set makes x the value the next poll reports as changed. It clears an
// error set with Fail.
func (v *Value[T]) Set(x T) {
	v.mu.Lock()
	v.v, v.err = x, nil
	v.version++
	v.mu.Unlock()
}

// Fail makes every poll return err, as an unreachable source does, until
// the next Set or Fail(nil). The watcher logs each failed poll as a watch
// error and keeps the last good value.
func (v *Value[T]) Fail(err error) {
	v.mu.Lock()
	v.err = err
	v.mu.Unlock()
}

// Poll is the poll function for hersh.WatchCall. It ignores ctx and prev.
func (v *Value[T]) Poll(_ context.Context, _ T) (T, bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.polls++
	if v.err != nil {
		var zero T
		return zero, false, v.err
	}
	changed := v.version != v.seen
	v.seen = v.version
	return v.v, changed, nil
}

// Polls reports how many times Poll has been called.
func (v *Value[T]) Polls() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.polls
}
