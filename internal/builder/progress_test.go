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

// TestReportProgress: a running build notes its progress every
// progressEvery, with the packages compiled by then, and stops when told.
func TestReportProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log bytes.Buffer
		l := newLogLimiter(&log, 1<<20)
		c := &pkgCounter{next: l}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			reportProgress(ctx, l, c)
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
	})
}
