package host

import (
	"path/filepath"
	"regexp"
	"strings"
)

// Messages users see (API errors, a program's error_msg and history) must
// not show where the Host keeps its data: the absolute data directory tells
// an attacker the Host's layout and user, and is what an include or open
// of a host file would need. Errors from the file system, the builder and
// the engine name absolute paths, so every such message passes through
// RelPaths on its way out: paths inside a program's folder (or a build's
// or create's working folder, which mirror it) become relative to that
// folder ("src/main.go", "state"), and any other path under the data
// directory starts with $HERSHY_DATA instead (the variable hershy reads
// the data directory from).

// DataDirVar stands for the data directory in messages.
const DataDirVar = "$HERSHY_DATA"

// pathScrubber rewrites absolute data paths; see RelPaths.
type pathScrubber struct {
	roots []*regexp.Regexp // the data directory as given, and its real path
}

func newPathScrubber(dataDir string) pathScrubber {
	dirs := []string{filepath.Clean(dataDir)}
	if real, err := filepath.EvalSymlinks(dataDir); err == nil && real != dirs[0] {
		dirs = append(dirs, real)
	}
	// The longer first, so a root inside the other is not half replaced.
	if len(dirs) == 2 && len(dirs[1]) > len(dirs[0]) {
		dirs[0], dirs[1] = dirs[1], dirs[0]
	}
	var ps pathScrubber
	for _, d := range dirs {
		if d == "/" || d == "." {
			continue // nothing sensible to hide
		}
		// Group 1: the folder of one program, create or build
		// (programs/<id>, tmp/<name>, work/<name>); group 2: a slash after it.
		ps.roots = append(ps.roots, regexp.MustCompile(regexp.QuoteMeta(d)+`(/(?:programs|tmp|work)/[A-Za-z0-9._-]+)?(/)?`))
	}
	return ps
}

// scrub rewrites the data paths in s. A match that continues as a longer
// name ("/data2" for the data directory "/data") is left alone.
func (ps pathScrubber) scrub(s string) string {
	for _, re := range ps.roots {
		var b strings.Builder
		last := 0
		for _, m := range re.FindAllStringSubmatchIndex(s, -1) {
			end := m[1]
			if m[4] < 0 && end < len(s) && isNameByte(s[end]) {
				continue // a sibling whose name starts like the data directory
			}
			b.WriteString(s[last:m[0]])
			switch {
			case m[2] >= 0 && m[4] >= 0:
				// "<data>/programs/<id>/src/x" -> "src/x"
			case m[2] >= 0:
				b.WriteString(".") // the folder itself
			default:
				b.WriteString(DataDirVar)
				if m[4] >= 0 {
					b.WriteString("/")
				}
			}
			last = end
		}
		if last > 0 {
			b.WriteString(s[last:])
			s = b.String()
		}
	}
	return s
}

func isNameByte(c byte) bool {
	return c == '.' || c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// RelPaths rewrites the Host's absolute data paths in msg: relative to the
// program for a program's files, $HERSHY_DATA/... for the rest. The API
// applies it to every message it sends.
func (h *Host) RelPaths(msg string) string { return h.paths.scrub(msg) }

// relErr returns err with its message passed through RelPaths; errors.Is
// and errors.As still see the original.
func (h *Host) relErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if rel := h.paths.scrub(msg); rel != msg {
		return &relError{msg: rel, err: err}
	}
	return err
}

type relError struct {
	msg string
	err error
}

func (e *relError) Error() string { return e.msg }
func (e *relError) Unwrap() error { return e.err }
