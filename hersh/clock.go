package hersh

import (
	"sync/atomic"
	"time"
)

// engineClock is the engine's clock. The engine reads it once per run (the
// end of one run is the start of the next while it works through a
// backlog), so its cost is paid millions of times a second under load.
//
// A reading is nanoseconds since the session started, taken from the
// monotonic clock alone; wall-clock times for the logs add an offset from
// the last full reading (time.Now), retaken at most clockRebase apart.
// time.Now reads both clocks, each a vDSO call of ~25 ns here, and turning
// a reading into a time.Time and back costs as much again; the engine
// needs plain numbers (start, duration, deadline). A change of the system's
// wall clock shows in the logs within clockRebase; durations and run
// deadlines follow the monotonic clock, as time.Time's would.
//
// Engine goroutine only, except epoch, which never changes.
type engineClock struct {
	epoch   time.Time // the session's start, with its monotonic reading
	now     int64     // the latest reading, ns since epoch
	fresh   bool      // now is current (the engine has not blocked since)
	wallAt0 int64     // unix ns at epoch, as of the last full reading
	rebased int64     // when the last full reading was taken, ns since epoch
}

const clockRebase = 100 * time.Millisecond

func newEngineClock(epoch time.Time) engineClock {
	return engineClock{epoch: epoch, wallAt0: epoch.UnixNano()}
}

// read returns the engine's current time, reading the clock only if the
// engine has blocked (or run) since the last reading.
func (c *engineClock) read() int64 {
	if !c.fresh {
		c.now = int64(time.Since(c.epoch))
		if d := c.now - c.rebased; d < 0 || d >= int64(clockRebase) {
			t := time.Now()
			c.now = int64(t.Sub(c.epoch))
			c.wallAt0 = t.UnixNano() - c.now
			c.rebased = c.now
		}
		c.fresh = true
	}
	return c.now
}

// stale marks the last reading out of date (the engine ran or blocked).
func (c *engineClock) stale() { c.fresh = false }

// unixNano converts a reading to unix nanoseconds.
func (c *engineClock) unixNano(at int64) int64 { return c.wallAt0 + at }

// time converts a reading to a wall-clock time for the logs.
func (c *engineClock) time(at int64) time.Time { return time.Unix(0, c.wallAt0+at) }

// wallClock gives the producers' timestamps (a message's ReceivedAt, the
// recent-signals list) as unix nanoseconds: the monotonic clock plus an
// offset from the last full reading, retaken at most clockRebase apart, as
// the engine's clock does, but safe for any number of goroutines and free
// of locks and allocations. Send reads it once per message, so it halves
// the cost of the one clock reading on the producer's path.
type wallClock struct {
	epoch   time.Time    // never changes
	offset  atomic.Int64 // unix ns at epoch, as of the last full reading
	rebased atomic.Int64 // when the last full reading was taken, ns since epoch
}

func newWallClock(epoch time.Time) *wallClock {
	c := &wallClock{epoch: epoch}
	c.offset.Store(epoch.UnixNano())
	return c
}

// unixNano returns the current time. Two goroutines that retake the full
// reading at once store readings a few nanoseconds apart; either is right.
func (c *wallClock) unixNano() int64 {
	mono := int64(time.Since(c.epoch))
	if d := mono - c.rebased.Load(); d >= 0 && d < int64(clockRebase) {
		return c.offset.Load() + mono
	}
	t := time.Now()
	mono = int64(t.Sub(c.epoch))
	off := t.UnixNano() - mono
	c.offset.Store(off)
	c.rebased.Store(mono)
	return off + mono
}
