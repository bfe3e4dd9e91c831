package builder

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestPkgCounter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   int
	}{
		{"none", nil, 0},
		{"lines", []string{"internal/abi\nruntime\nfmt\n"}, 3},
		{"split across writes", []string{"intern", "al/abi\nrun", "time\n", "fm", "t"}, 2}, // fmt is unfinished
		{"errors are not packages", []string{"# example.com/bot\n./main.go:3:2: undefined: x\nnote: module requires Go 1.99\n"}, 0},
		{"blank lines", []string{"\n\n\r\n"}, 0},
		{"crlf", []string{"fmt\r\n"}, 1},
		{"a long line is output", []string{strings.Repeat("a", maxPkgLine+1) + "\n", "os\n"}, 1},
		{"a long line across writes", []string{strings.Repeat("a", maxPkgLine), "b", "c\nos\n"}, 1},
		{"mixed", []string{"example.com/bot/lib\n# example.com/bot\n", "./x.go:1: bad\nexample.com/bot\n"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			c := &pkgCounter{next: &out}
			for _, w := range tc.writes {
				if n, err := c.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := c.Packages(); got != tc.want {
				t.Errorf("Packages() = %d, want %d", got, tc.want)
			}
			if out.String() != strings.Join(tc.writes, "") {
				t.Errorf("passed on %q", out.String())
			}
		})
	}
}

func TestDropPackageLines(t *testing.T) {
	in := "internal/abi\nexample.com/bot\n# example.com/bot\n./main.go:3:2: undefined: x\n"
	if got, want := dropPackageLines(in), "# example.com/bot\n./main.go:3:2: undefined: x\n"; got != want {
		t.Fatalf("dropPackageLines = %q, want %q", got, want)
	}
}

// TestReportProgress: a running build tells its listener at the start and
// every progressTick, notes its progress in the log every progressEvery,
// with the packages compiled by then, and stops when told.
func TestReportProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log bytes.Buffer
		l := newLogLimiter(&log, 1<<20)
		c := &pkgCounter{next: l}
		var heard []Progress
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			reportProgress(ctx, l, c, func(p Progress) { heard = append(heard, p) })
		}()
		c.Write([]byte("runtime\nfmt\n"))
		time.Sleep(progressEvery + time.Second)
		c.Write([]byte("example.com/bot\n"))
		time.Sleep(progressEvery)
		cancel()
		<-done
		time.Sleep(3 * progressEvery) // nothing after the stop
		want := "runtime\nfmt\n" +
			"==> building: 2 packages compiled, 10s elapsed\n" +
			"example.com/bot\n" +
			"==> building: 3 packages compiled, 20s elapsed\n"
		if log.String() != want {
			t.Fatalf("log:\n%s\nwant:\n%s", log.String(), want)
		}
		if len(heard) != 11 || heard[0] != (Progress{}) {
			t.Fatalf("heard %d reports (%+v), want the start and 10 ticks", len(heard), heard)
		}
		for i, p := range heard[1:] {
			wantPkgs := 2
			if i >= 5 {
				wantPkgs = 3
			}
			if p.Elapsed != time.Duration(i+1)*progressTick || p.Packages != wantPkgs || p.Done {
				t.Errorf("report %d: %+v, want %d packages after %v", i+1, p, wantPkgs, time.Duration(i+1)*progressTick)
			}
		}
	})
}

// TestReportProgressWithoutListener: no listener, only the log.
func TestReportProgressWithoutListener(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log bytes.Buffer
		l := newLogLimiter(&log, 1<<20)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			reportProgress(ctx, l, &pkgCounter{next: l}, nil)
		}()
		time.Sleep(progressEvery + time.Second)
		cancel()
		<-done
		if want := "==> building: 0 packages compiled, 10s elapsed\n"; log.String() != want {
			t.Fatalf("log %q, want %q", log.String(), want)
		}
	})
}
