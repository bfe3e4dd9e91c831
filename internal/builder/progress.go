package builder

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"time"
)

// A running go build says how far it is: to the Request's Progress every
// progressTick (the dashboard's view of a build), and in the build log
// every progressEvery, since a cold build compiles for a minute or more and
// a deploy that prints nothing for that long looks hung.
const (
	progressTick  = 2 * time.Second
	progressEvery = 10 * time.Second
)

// Progress is how far a Go build is.
type Progress struct {
	Packages int           // packages compiled so far (cached ones are not counted)
	Elapsed  time.Duration // since go build started
	Done     bool          // go build has ended (successfully; a failure ends the build)
}

// pkgCounter passes go build -v output on to next and counts the packages
// it names: -v prints one import path per line as each package is
// compiled (a cached package is not printed). Error output has spaces or
// starts with "#", so it is not counted.
type pkgCounter struct {
	next io.Writer

	mu      sync.Mutex
	partial []byte // the unfinished last line, at most maxPkgLine bytes
	long    bool   // the unfinished line was longer than that: not a package
	n       int
}

// maxPkgLine bounds what the counter keeps of one line; longer lines are
// output, not import paths.
const maxPkgLine = 512

func (c *pkgCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	for rest := p; len(rest) > 0; {
		line, after, done := bytes.Cut(rest, []byte{'\n'})
		if len(c.partial)+len(line) > maxPkgLine {
			c.long = true
		} else if !c.long {
			c.partial = append(c.partial, line...)
		}
		if !done {
			break
		}
		if !c.long && isImportPath(c.partial) {
			c.n++
		}
		c.partial, c.long = c.partial[:0], false
		rest = after
	}
	c.mu.Unlock()
	return c.next.Write(p)
}

// Packages is how many packages the build has compiled so far.
func (c *pkgCounter) Packages() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// isImportPath reports whether a line of go build -v output names a
// package: a non-empty run of characters with no space, not a "#" heading.
func isImportPath(line []byte) bool {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	return len(line) > 0 && line[0] != '#' && bytes.IndexAny(line, " \t:") < 0
}

// reportProgress tells notify (if set) that go build has started, and
// then every progressTick how many packages it has compiled; every
// progressEvery it notes the same in log. It returns when ctx ends.
func reportProgress(ctx context.Context, log *logLimiter, c *pkgCounter, notify func(Progress)) {
	if notify == nil {
		notify = func(Progress) {}
	}
	notify(Progress{})
	start := time.Now()
	t := time.NewTicker(progressTick)
	defer t.Stop()
	for ticks := 1; ; ticks++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p := Progress{Packages: c.Packages(), Elapsed: time.Since(start)}
		notify(p)
		if ticks%int(progressEvery/progressTick) == 0 {
			log.notef("building: %d packages compiled, %s elapsed", p.Packages, p.Elapsed.Round(time.Second))
		}
	}
}

// dropPackageLines leaves out of a failed build's output the lines of
// go build -v that only name a package, so the error shows the errors.
func dropPackageLines(out string) string {
	var b strings.Builder
	for line := range strings.Lines(out) {
		if !isImportPath([]byte(strings.TrimRight(line, "\n"))) {
			b.WriteString(line)
		}
	}
	return b.String()
}
