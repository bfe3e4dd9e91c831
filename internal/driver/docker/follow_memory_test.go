package docker

import (
	"context"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/hershyorg/hershy/internal/driver"
)

// TestFollowMemory: a followed container's output costs the Host about
// what the engine's HTTP stream itself costs. The Host follows every
// running program for as long as it runs, so with 1,000 programs the
// stdcopy way (a goroutine, a pipe and a 32 KiB buffer per stream) was
// about 40 MiB of live heap and stacks, 204 MiB of RSS in all. Measured
// against the bare HTTP stream of the same container in the same run.
func TestFollowMemory(t *testing.T) {
	d := newDriver(t)
	h := newHarness(t, d, driver.RuntimeRunc) // the Host's side of a stream does not depend on the runtime
	id := h.create(h.spec("follow-memory", ""))
	h.start(id)
	const n = 100

	// live follows n streams opened by open and read as the Host's capture
	// reads them (a 2 KiB buffer), and returns the live heap and stacks
	// they add, per stream.
	live := func(open func(ctx context.Context) (io.ReadCloser, error)) int64 {
		ctx, cancel := context.WithCancel(context.Background())
		before := liveBytes()
		var wg sync.WaitGroup
		streams := make([]io.ReadCloser, n)
		for i := range streams {
			rc, err := open(ctx)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			streams[i] = rc
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.CopyBuffer(io.Discard, rc, make([]byte, 2<<10))
			}()
		}
		time.Sleep(500 * time.Millisecond) // every stream set up and waiting
		after := liveBytes()
		cancel()
		for _, rc := range streams {
			rc.Close()
		}
		wg.Wait()
		return (after - before) / n
	}
	// Alternating, the smaller of two rounds each: the first streams of a
	// process pay one-time costs.
	bare, ours := int64(1<<62), int64(1<<62)
	for range 2 {
		bare = min(bare, live(func(ctx context.Context) (io.ReadCloser, error) {
			return d.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
		}))
		ours = min(ours, live(func(ctx context.Context) (io.ReadCloser, error) { return d.Logs(ctx, id, time.Time{}, true) }))
	}
	t.Logf("per followed stream: driver.Logs %d B, the engine's bare stream %d B (%.2fx)", ours, bare, float64(ours)/float64(bare))
	// The bare stream is two net/http goroutines and their buffers (7-13
	// KiB here, measured with a few KiB of noise); what the driver adds
	// must stay small. The stdcopy way added about 45 KiB.
	if ours-bare > 12<<10 {
		t.Fatalf("driver.Logs adds %d B per followed stream to the engine's own stream, want at most 12 KiB", ours-bare)
	}
}

// liveBytes is the heap in use plus goroutine stacks after a collection.
func liveBytes() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse)
}
