package builder

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
)

// logLimiter forwards a build's output to the caller's log writer, up to
// limit bytes; past that it drops output and says so once. It never fails:
// a log that cannot be written must not fail (or stall) the build, so after
// the first write error it stops forwarding.
type logLimiter struct {
	mu        sync.Mutex
	w         io.Writer
	limit     int64
	n         int64
	truncated bool
	err       error
}

func newLogLimiter(w io.Writer, limit int64) *logLimiter {
	return &logLimiter{w: w, limit: limit}
}

func (l *logLimiter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil || l.truncated {
		return len(p), nil
	}
	q := p
	if room := l.limit - l.n; int64(len(q)) > room {
		q = q[:room]
		l.truncated = true
	}
	if len(q) > 0 {
		n, err := l.w.Write(q)
		l.n += int64(n)
		if err != nil {
			l.err = err
			return len(p), nil
		}
	}
	if l.truncated {
		fmt.Fprintf(l.w, "\n[hershy: build output exceeded %d bytes; the rest is not logged]\n", l.limit)
	}
	return len(p), nil
}

// notef writes one of the Builder's own lines ("==> ..."). Notes are few and
// short, so they are written even past the output cap.
func (l *logLimiter) notef(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	if _, err := fmt.Fprintf(l.w, "==> "+format+"\n", a...); err != nil {
		l.err = err
	}
}

// capture keeps the first headMax and the last tailMax bytes of a command's
// output in memory (for error messages) while passing everything on to next.
type capture struct {
	mu      sync.Mutex
	next    io.Writer
	head    []byte
	tail    []byte
	headMax int
	tailMax int
	total   int64
}

const captureHead = 8 << 10

func newCapture(next io.Writer, tailMax int) *capture {
	return &capture{next: next, headMax: captureHead, tailMax: tailMax}
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += int64(len(p))
	q := p
	if room := c.headMax - len(c.head); room > 0 {
		k := min(room, len(q))
		c.head = append(c.head, q[:k]...)
		q = q[k:]
	}
	if len(q) > 0 {
		c.tail = append(c.tail, q...)
		if len(c.tail) > 2*c.tailMax {
			c.tail = append(c.tail[:0], c.tail[len(c.tail)-c.tailMax:]...)
		}
	}
	if c.next != nil {
		c.next.Write(p) // a logLimiter: never fails
	}
	return len(p), nil
}

// Output returns what was kept: all of it, or the head and the tail with a
// line saying how much was left out between them.
func (c *capture) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	tail := c.tail
	if len(tail) > c.tailMax {
		tail = tail[len(tail)-c.tailMax:]
	}
	omitted := c.total - int64(len(c.head)) - int64(len(tail))
	if omitted <= 0 {
		return string(c.head) + string(tail)
	}
	return fmt.Sprintf("%s\n[... %d bytes of output omitted ...]\n%s", c.head, omitted, tail)
}

// firstLines returns at most n non-empty lines and max bytes of s.
func firstLines(s string, n, max int) string {
	var out []string
	size := 0
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, "\r\n")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if len(out) == n || size+len(line) > max {
			out = append(out, "...")
			break
		}
		out = append(out, line)
		size += len(line) + 1
	}
	return string(bytes.TrimSpace([]byte(strings.Join(out, "\n"))))
}
