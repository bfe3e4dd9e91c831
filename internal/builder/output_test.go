package builder

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestLogLimiter(t *testing.T) {
	var buf bytes.Buffer
	l := newLogLimiter(&buf, 10)
	for _, s := range []string{"0123", "4567", "89ab", "cdef"} {
		if n, err := l.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	l.notef("done")
	got := buf.String()
	if !strings.HasPrefix(got, "0123456789\n[hershy: build output exceeded 10 bytes") || strings.Contains(got, "ab") || strings.Count(got, "exceeded") != 1 || !strings.HasSuffix(got, "==> done\n") {
		t.Fatalf("log = %q", got)
	}
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, errors.New("disk full")
}

func TestLogLimiterSwallowsErrors(t *testing.T) {
	f := &failingWriter{}
	l := newLogLimiter(f, 1<<20)
	for range 3 {
		if n, err := l.Write([]byte("x")); n != 1 || err != nil {
			t.Fatalf("Write = %d, %v; a failing log must not fail the build", n, err)
		}
	}
	if f.n != 1 {
		t.Fatalf("kept writing to a failed log: %d writes", f.n)
	}
}

func TestCapture(t *testing.T) {
	c := newCapture(nil, 16)
	c.Write([]byte("short"))
	if c.Output() != "short" {
		t.Fatalf("Output = %q", c.Output())
	}

	var next bytes.Buffer
	c = newCapture(&next, 16)
	var all strings.Builder
	for i := range 5000 {
		s := fmt.Sprintf("line %04d\n", i)
		all.WriteString(s)
		c.Write([]byte(s))
	}
	out := c.Output()
	if next.String() != all.String() {
		t.Fatal("capture did not pass everything on")
	}
	if !strings.HasPrefix(out, all.String()[:captureHead]) || !strings.HasSuffix(out, all.String()[all.Len()-16:]) {
		t.Fatalf("Output lacks the head or the tail:\n%s", out[len(out)-200:])
	}
	omitted := all.Len() - captureHead - 16
	if !strings.Contains(out, fmt.Sprintf("[... %d bytes of output omitted ...]", omitted)) {
		t.Fatalf("Output does not say what it left out")
	}
}

func TestFirstLines(t *testing.T) {
	s := "\n# example.com/x\n./main.go:3:2: undefined: a\n\n./main.go:4:2: undefined: b\n"
	if got := firstLines(s, 2, 1000); got != "# example.com/x\n./main.go:3:2: undefined: a\n..." {
		t.Fatalf("firstLines = %q", got)
	}
	if got := firstLines(s, 10, 20); got != "# example.com/x\n..." {
		t.Fatalf("firstLines by size = %q", got)
	}
	if got := firstLines("", 3, 100); got != "" {
		t.Fatalf("firstLines of nothing = %q", got)
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Step: "go build", Output: "# x\n./main.go:1:1: bad\n", Err: errors.New("exit status 1")}
	if got, want := e.Error(), "build: go build failed: exit status 1\n# x\n./main.go:1:1: bad"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
}
