package hersh_test

// Speed and memory benchmarks (issues 2 and 10). Each benchmark measures the
// hersh engine and, in the same run, a bare hand-written select loop doing
// the same work, and reports both with their ratio through b.ReportMetric.
// The benchmark timer (ns/op, allocs/op) covers only the hersh part; the
// bare part runs with the timer stopped.
//
// Benchmarks are not tests: nothing here asserts a timing. Every watcher is
// stopped and the goroutine-leak check runs after each benchmark call.
//
// Run (see BENCHMARKS.md for the numbers and the exact commands):
//
//	GOWORK=off go test -run '^$' -bench 'Throughput|Latency|FlowBurst|IdlePolledVars' -count=7
//	GOWORK=off go test -run '^$' -bench MessageBurst -benchtime=20x -count=7
//	GOWORK=off go test -run '^$' -bench IdleHeap -benchtime=1x -count=3

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hershyorg/hershy/hersh"
	"github.com/hershyorg/hershy/hersh/internal/leaktest"
)

// benchConfig is the configuration every benchmark watcher uses: defaults,
// no network listener.
func benchConfig() hersh.Config { return hersh.Config{DisableAPIServer: true} }

// startBench creates and starts a watcher and waits for its initial run to
// finish, so the measured part sees a Ready engine.
func startBench(b *testing.B, managed func(c *hersh.Context) error) *hersh.Watcher {
	b.Helper()
	started := make(chan struct{})
	var once atomic.Bool
	w, err := hersh.New(benchConfig(), func(c *hersh.Context) error {
		err := managed(c)
		if c.Trigger().Kind == hersh.TriggerStart && once.CompareAndSwap(false, true) {
			close(started)
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		stopBench(b, w)
		b.Fatal("initial run did not happen")
	}
	return w
}

func stopBench(b *testing.B, w *hersh.Watcher) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	if err := w.Err(); err != nil {
		b.Fatalf("watcher ended with %v", err)
	}
}

// bareMsg is what the bare loops carry: what a hand-written program would
// put on its channel.
type bareMsg struct {
	id      uint64
	content string
}

// ---------------------------------------------------------------------------
// 1. Message -> run throughput.

// BenchmarkMessageThroughput: a producer goroutine sends b.N messages with
// Send; the managed function counts message-triggered runs; the clock stops
// when all b.N have run. Baseline: a goroutine draining a buffered channel of
// the same capacity (SignalCapacity) in a select loop, calling the same
// counting function.
func BenchmarkMessageThroughput(b *testing.B) {
	leaktest.Check(b)
	b.ReportAllocs()
	n := b.N

	// hersh.
	var runs int // touched only by the engine goroutine (runs never overlap)
	done := make(chan struct{})
	count := func() {
		runs++
		if runs == n {
			close(done)
		}
	}
	w := startBench(b, func(c *hersh.Context) error {
		if c.Message() != nil {
			count()
		}
		return nil
	})
	capacity := w.Config().SignalCapacity
	sendErr := make(chan error, 1)
	b.ResetTimer()
	t0 := time.Now()
	go func() {
		ctx := context.Background()
		for range n {
			if err := w.Send(ctx, "m"); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	<-done
	hershDur := time.Since(t0)
	b.StopTimer()
	if err := <-sendErr; err != nil {
		b.Fatal(err)
	}
	stopBench(b, w)

	// Bare select loop.
	bareRuns := 0
	bareDone := make(chan struct{})
	bareCount := func() {
		bareRuns++
		if bareRuns == n {
			close(bareDone)
		}
	}
	msgs := make(chan bareMsg, capacity)
	quit := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-quit:
				return
			case m := <-msgs:
				_ = m
				bareCount()
			}
		}
	}()
	t0 = time.Now()
	go func() {
		for i := range n {
			msgs <- bareMsg{id: uint64(i + 1), content: "m"}
		}
	}()
	<-bareDone
	bareDur := time.Since(t0)
	close(quit)
	<-exited

	rate := float64(n) / hershDur.Seconds()
	bareRate := float64(n) / bareDur.Seconds()
	b.ReportMetric(rate, "runs/s")
	b.ReportMetric(bareRate, "bare-runs/s")
	b.ReportMetric(rate/bareRate, "ratio-vs-bare")
}

// ---------------------------------------------------------------------------
// 2. Message -> run latency, unloaded.

// BenchmarkMessageLatency: one message at a time; the sender records
// time.Now() before Send, the managed function records time.Now() when its
// run starts and acknowledges; the next message is sent after the
// acknowledgement, so the queue never holds more than one message.
//
//	pingpong: the next message follows the acknowledgement at once.
//	idle:     the sender sleeps ~200µs first, so both the engine goroutine
//	          and the scheduler are parked when the message arrives (the
//	          case of a quiet program receiving a message).
func BenchmarkMessageLatency(b *testing.B) {
	for _, mode := range []struct {
		name string
		gap  time.Duration
	}{{"pingpong", 0}, {"idle", 200 * time.Microsecond}} {
		b.Run(mode.name, func(b *testing.B) { benchLatency(b, mode.gap) })
	}
}

func benchLatency(b *testing.B, gap time.Duration) {
	leaktest.Check(b)
	b.ReportAllocs()
	n := b.N
	lat := make([]time.Duration, n)
	bareLat := make([]time.Duration, n)

	// hersh.
	var runStart time.Time
	ack := make(chan struct{}, 1)
	w := startBench(b, func(c *hersh.Context) error {
		if c.Message() != nil {
			runStart = time.Now()
			ack <- struct{}{}
		}
		return nil
	})
	ctx := context.Background()
	b.ResetTimer()
	for i := range n {
		if gap > 0 {
			time.Sleep(gap)
		}
		t0 := time.Now()
		if err := w.Send(ctx, "m"); err != nil {
			b.Fatal(err)
		}
		<-ack
		lat[i] = runStart.Sub(t0)
	}
	b.StopTimer()
	stopBench(b, w)

	// Bare select loop.
	msgs := make(chan bareMsg, w.Config().SignalCapacity)
	quit := make(chan struct{})
	exited := make(chan struct{})
	var bareStart time.Time
	go func() {
		defer close(exited)
		for {
			select {
			case <-quit:
				return
			case m := <-msgs:
				_ = m
				bareStart = time.Now()
				ack <- struct{}{}
			}
		}
	}()
	for i := range n {
		if gap > 0 {
			time.Sleep(gap)
		}
		t0 := time.Now()
		msgs <- bareMsg{id: uint64(i + 1), content: "m"}
		<-ack
		bareLat[i] = bareStart.Sub(t0)
	}
	close(quit)
	<-exited

	p50, p99 := percentiles(lat)
	bp50, bp99 := percentiles(bareLat)
	b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(bp50.Nanoseconds()), "bare-p50-ns")
	b.ReportMetric(float64(bp99.Nanoseconds()), "bare-p99-ns")
	b.ReportMetric(float64(p99)/float64(max(bp99, 1)), "p99-ratio-vs-bare")
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[int(q*float64(len(s)-1))] }
	return at(0.50), at(0.99)
}

// ---------------------------------------------------------------------------
// 3. A burst of channel values coalescing into runs (WatchFlow).

const (
	burstValues  = 1000 // K: values pushed per burst
	burstChanCap = 128  // capacity of the watched channel (same for bare)
)

// BenchmarkFlowBurst: each op pushes K=1000 values into a buffered channel
// as fast as the consumer lets it, then waits until a run sees the last
// value. Reported: runs per burst (coalescing), values/s while pushing, and
// time-to-latest (from the last push to the run that sees it). Baseline: a
// select loop that receives a value, drains the channel keeping the latest,
// and calls the same function once per drain.
func BenchmarkFlowBurst(b *testing.B) {
	leaktest.Check(b)
	b.ReportAllocs()
	n := b.N
	isLast := func(v int) bool { return v%burstValues == burstValues-1 }

	// hersh.
	ch := make(chan int, burstChanCap)
	seen := make(chan time.Time, 1)
	var runs atomic.Int64
	w := startBench(b, func(c *hersh.Context) error {
		v, ok := hersh.WatchFlow(c, "feed", ch)
		if c.Trigger().Kind == hersh.TriggerVars {
			runs.Add(1)
			if ok && isLast(v) {
				seen <- time.Now()
			}
		}
		return nil
	})
	b.ResetTimer()
	var push, toLatest, total time.Duration
	for i := range n {
		t0 := time.Now()
		for j := range burstValues {
			ch <- i*burstValues + j
		}
		pushed := time.Now()
		at := <-seen
		push += pushed.Sub(t0)
		toLatest += at.Sub(pushed)
		total += at.Sub(t0)
	}
	b.StopTimer()
	stopBench(b, w)
	hershRuns := runs.Load()

	// Bare select loop.
	bch := make(chan int, burstChanCap)
	quit := make(chan struct{})
	exited := make(chan struct{})
	var bareRuns int64
	work := func(v int) {
		bareRuns++
		if isLast(v) {
			seen <- time.Now()
		}
	}
	go func() {
		defer close(exited)
		for {
			select {
			case <-quit:
				return
			case v := <-bch:
				latest := v
			drain:
				for {
					select {
					case v = <-bch:
						latest = v
					default:
						break drain
					}
				}
				work(latest)
			}
		}
	}()
	var bPush, bToLatest, bTotal time.Duration
	for i := range n {
		t0 := time.Now()
		for j := range burstValues {
			bch <- i*burstValues + j
		}
		pushed := time.Now()
		at := <-seen
		bPush += pushed.Sub(t0)
		bToLatest += at.Sub(pushed)
		bTotal += at.Sub(t0)
	}
	close(quit)
	<-exited

	values := float64(n * burstValues)
	b.ReportMetric(float64(hershRuns)/float64(n), "runs/burst")
	b.ReportMetric(float64(bareRuns)/float64(n), "bare-runs/burst")
	b.ReportMetric(values/push.Seconds(), "values/s")
	b.ReportMetric(values/bPush.Seconds(), "bare-values/s")
	b.ReportMetric(bPush.Seconds()/push.Seconds(), "values-ratio-vs-bare")
	b.ReportMetric(float64(toLatest.Nanoseconds())/float64(n), "latest-ns")
	b.ReportMetric(float64(bToLatest.Nanoseconds())/float64(n), "bare-latest-ns")
	b.ReportMetric(float64(total.Nanoseconds())/float64(n), "burst-ns")
	b.ReportMetric(float64(bTotal.Nanoseconds())/float64(n), "bare-burst-ns")
}

// ---------------------------------------------------------------------------
// 4. Idle cost of 1,000 polled variables (WatchCall).

const (
	idleVars     = 1000
	idleInterval = 10 * time.Millisecond
	idleWarmup   = 300 * time.Millisecond
	idleWindow   = time.Second
)

// BenchmarkIdlePolledVars: 1,000 WatchCall variables polled every 10ms whose
// poll always reports no change; process CPU time (getrusage, user+sys) is
// measured over a fixed 1s wall window. Baseline: one goroutine with one
// 10ms ticker calling 1,000 poll functions of the same shape.
//
// floor-cpu-ms/s is the same window with nothing running (measurement
// noise). The window is fixed, so one measurement is made whatever b.N is (b.N
// stays 1 with a time -benchtime since one call takes over 2s).
func BenchmarkIdlePolledVars(b *testing.B) {
	leaktest.Check(b)
	names := make([]string, idleVars)
	for i := range names {
		names[i] = fmt.Sprintf("var%04d", i)
	}
	var polls atomic.Int64
	poll := func(ctx context.Context, prev int) (int, bool, error) {
		polls.Add(1)
		return prev, false, nil
	}

	// Noise floor: the process with nothing of ours running.
	debug.FreeOSMemory() // GC and return memory now, so the background scavenger stays quiet in the window
	floorCPU, floorWall := measureCPU(idleWindow)

	// hersh.
	w := startBench(b, func(c *hersh.Context) error {
		for _, name := range names {
			hersh.WatchCall(c, name, idleInterval, poll)
		}
		return nil
	})
	debug.FreeOSMemory() // GC and return memory now, so the background scavenger stays quiet in the window
	time.Sleep(idleWarmup)
	p0 := polls.Load()
	cpu, wall := measureCPU(idleWindow)
	hershPolls := polls.Load() - p0
	stopBench(b, w)

	// Bare: one ticker, 1,000 poll functions.
	polls.Store(0)
	fns := make([]func(context.Context, int) (int, bool, error), idleVars)
	for i := range fns {
		fns[i] = poll
	}
	quit := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		state := make([]int, idleVars)
		t := time.NewTicker(idleInterval)
		defer t.Stop()
		tick := func() {
			for i, fn := range fns {
				if next, changed, err := fn(ctx, state[i]); err == nil && changed {
					state[i] = next
				}
			}
		}
		tick()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				tick()
			}
		}
	}()
	debug.FreeOSMemory() // GC and return memory now, so the background scavenger stays quiet in the window
	time.Sleep(idleWarmup)
	p0 = polls.Load()
	bareCPU, bareWall := measureCPU(idleWindow)
	barePolls := polls.Load() - p0
	close(quit)
	<-exited

	perSec := float64(cpu.Microseconds()) / 1e3 / wall.Seconds()
	barePerSec := float64(bareCPU.Microseconds()) / 1e3 / bareWall.Seconds()
	b.ReportMetric(float64(floorCPU.Microseconds())/1e3/floorWall.Seconds(), "floor-cpu-ms/s")
	b.ReportMetric(perSec, "cpu-ms/s")
	b.ReportMetric(barePerSec, "bare-cpu-ms/s")
	b.ReportMetric(perSec/max(barePerSec, 1e-3), "cpu-ratio-vs-bare")
	b.ReportMetric(float64(hershPolls)/wall.Seconds(), "polls/s")
	b.ReportMetric(float64(barePolls)/bareWall.Seconds(), "bare-polls/s")
}

// measureCPU sleeps for window and returns the process CPU time (user+sys)
// spent meanwhile and the wall time that actually passed.
func measureCPU(window time.Duration) (cpu, wall time.Duration) {
	c0 := processCPU()
	t0 := time.Now()
	time.Sleep(window)
	return processCPU() - c0, time.Since(t0)
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ---------------------------------------------------------------------------
// 5. A burst of messages into a just-started and into a warmed watcher.

// burstMessages is the size of one burst: the default SignalCapacity, so a
// burst fills the queue at most and Send never waits.
const burstMessages = hersh.DefaultSignalCapacity

// BenchmarkMessageBurst: one op is a burst of 50,000 messages sent by one
// producer goroutine as fast as Send returns, timed until the last one has
// run.
//
//	fresh: every burst goes into a watcher started just before (New, Start,
//	       initial run done), as when a program starts under load. The bare
//	       loop makes a new channel of the same capacity for every burst.
//	warm:  every burst goes into the same watcher, which has already taken
//	       one burst before the timer starts; the bare loop keeps its channel.
//
// The timer covers the hersh bursts only; the bare bursts are interleaved
// with them (one each per op) so both see the same machine.
func BenchmarkMessageBurst(b *testing.B) {
	b.Run("fresh", func(b *testing.B) { benchBurst(b, false) })
	b.Run("warm", func(b *testing.B) { benchBurst(b, true) })
}

func benchBurst(b *testing.B, warm bool) {
	leaktest.Check(b)
	b.ReportAllocs()
	var hershDur, bareDur time.Duration
	done := make(chan struct{}, 1)
	runs := 0 // touched only by the engine goroutine of the one running watcher
	newWatcher := func() *hersh.Watcher {
		runs = 0
		return startBench(b, func(c *hersh.Context) error {
			if c.Message() != nil {
				if runs++; runs%burstMessages == 0 {
					done <- struct{}{}
				}
			}
			return nil
		})
	}
	var w *hersh.Watcher
	var bare *bareLoop
	if warm {
		w = newWatcher()
		sendBurst(b, w, done)
		bare = startBare(burstMessages)
		bare.burst(burstMessages)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if !warm {
			w = newWatcher()
		}
		b.StartTimer()
		hershDur += sendBurst(b, w, done)
		b.StopTimer()
		if !warm {
			stopBench(b, w)
			bare = startBare(burstMessages)
		}
		bareDur += bare.burst(burstMessages)
		if !warm {
			bare.stop()
		}
		b.StartTimer()
	}
	b.StopTimer()
	if warm {
		stopBench(b, w)
		bare.stop()
	}
	rate := float64(b.N*burstMessages) / hershDur.Seconds()
	bareRate := float64(b.N*burstMessages) / bareDur.Seconds()
	b.ReportMetric(rate, "runs/s")
	b.ReportMetric(bareRate, "bare-runs/s")
	b.ReportMetric(rate/bareRate, "ratio-vs-bare")
}

// sendBurst sends burstMessages messages from one goroutine and returns the
// time until the last has run (done receives once per burst).
func sendBurst(b *testing.B, w *hersh.Watcher, done <-chan struct{}) time.Duration {
	b.Helper()
	sent := make(chan error, 1)
	t0 := time.Now()
	go func() {
		ctx := context.Background()
		for range burstMessages {
			if err := w.Send(ctx, "m"); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for finished := false; ; {
		select {
		case <-done:
			d := time.Since(t0)
			if !finished {
				if err := <-sent; err != nil {
					b.Fatal(err)
				}
			}
			return d
		case err := <-sent:
			if err != nil {
				b.Fatal(err)
			}
			finished = true
		}
	}
}

// bareLoop is the baseline program: a goroutine taking messages from a
// buffered channel in a select loop.
type bareLoop struct {
	msgs   chan bareMsg
	quit   chan struct{}
	exited chan struct{}
	done   chan struct{} // one receive per completed burst
	burstN int           // set before a burst, read by the loop
}

func startBare(capacity int) *bareLoop {
	l := &bareLoop{
		msgs:   make(chan bareMsg, capacity),
		quit:   make(chan struct{}),
		exited: make(chan struct{}),
		done:   make(chan struct{}, 1),
	}
	go func() {
		defer close(l.exited)
		runs := 0
		for {
			select {
			case <-l.quit:
				return
			case m := <-l.msgs:
				_ = m
				if runs++; l.burstN > 0 && runs%l.burstN == 0 {
					l.done <- struct{}{}
				}
			}
		}
	}()
	return l
}

// burst sends n messages from one goroutine and returns the time until the
// loop has taken the last. Every burst of one loop must have the same n.
func (l *bareLoop) burst(n int) time.Duration {
	l.burstN = n // the loop reads it only after receiving a message sent below
	t0 := time.Now()
	go func() {
		for i := range n {
			l.msgs <- bareMsg{id: uint64(i + 1), content: "m"}
		}
	}()
	<-l.done
	return time.Since(t0)
}

func (l *bareLoop) stop() {
	close(l.quit)
	<-l.exited
}

// ---------------------------------------------------------------------------
// 6. Heap of idle watchers.

// BenchmarkIdleHeap: the live heap (runtime.MemStats.HeapAlloc after two
// GCs) that n idle started watchers add, each with the default Config (its
// WatcherAPI listening on a loopback port) after its initial run. Baseline:
// n bare loops, each a goroutine blocked on a channel of the default
// SignalCapacity. Goroutine stacks are not heap; they are reported apart.
//
// The measurement is made once per call whatever b.N is: run it with
// -benchtime=1x.
func BenchmarkIdleHeap(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("watchers=%d", n), func(b *testing.B) { benchIdleHeap(b, n) })
	}
}

func benchIdleHeap(b *testing.B, n int) {
	leaktest.Check(b)
	heap0, stack0 := liveMemory()
	ws := make([]*hersh.Watcher, n)
	for i := range ws {
		ws[i] = startIdle(b)
	}
	heap1, stack1 := liveMemory()
	for _, w := range ws {
		stopBench(b, w)
	}
	clear(ws)

	bare0, bareStack0 := liveMemory()
	loops := make([]*bareLoop, n)
	for i := range loops {
		loops[i] = startBare(hersh.DefaultSignalCapacity)
	}
	bare1, bareStack1 := liveMemory()
	for _, l := range loops {
		l.stop()
	}

	heap, bareHeap := float64(heap1)-float64(heap0), float64(bare1)-float64(bare0)
	b.ReportMetric(heap/float64(n), "heap-B/watcher")
	b.ReportMetric(heap/(1<<20), "heap-MiB")
	b.ReportMetric((float64(stack1)-float64(stack0))/float64(n), "stack-B/watcher")
	b.ReportMetric(bareHeap/float64(n), "bare-heap-B/loop")
	b.ReportMetric((float64(bareStack1)-float64(bareStack0))/float64(n), "bare-stack-B/loop")
	b.ReportMetric(heap/max(bareHeap, 1), "heap-ratio-vs-bare")
}

// startIdle starts a watcher with the default Config (its WatcherAPI on a
// free loopback port) whose managed function does nothing, and waits for
// its initial run.
func startIdle(b *testing.B) *hersh.Watcher {
	b.Helper()
	started := make(chan struct{}, 1)
	w, err := hersh.New(hersh.Config{APIAddr: "127.0.0.1:0"}, func(c *hersh.Context) error {
		if c.Trigger().Kind == hersh.TriggerStart {
			started <- struct{}{}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	<-started
	for w.State() != hersh.StateReady { // the run's result is settled just after it returns
		time.Sleep(time.Millisecond)
	}
	return w
}

// liveMemory collects garbage and reports the live heap and the stack
// memory in use.
func liveMemory() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.StackInuse
}
