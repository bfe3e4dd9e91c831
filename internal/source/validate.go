package source

import (
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Files maps slash-separated paths relative to the source root (subfolders
// allowed, e.g. "cmd/app/main.go") to file contents.
type Files map[string]string

// MaxPathLen is the longest file path accepted, in bytes.
const MaxPathLen = 255

// Limits bound a source. A zero field takes its default (field by field).
type Limits struct {
	MaxFiles int   // number of files; default 1000
	MaxFile  int64 // bytes in one file (the Dockerfile included); default 4 MiB
	MaxTotal int64 // bytes in all files plus the Dockerfile; default 16 MiB
}

// Default limits.
const (
	DefaultMaxFiles = 1000
	DefaultMaxFile  = 4 << 20
	DefaultMaxTotal = 16 << 20
)

// DefaultLimits returns the limits a zero Limits stands for.
func DefaultLimits() Limits {
	return Limits{MaxFiles: DefaultMaxFiles, MaxFile: DefaultMaxFile, MaxTotal: DefaultMaxTotal}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxFiles <= 0 {
		l.MaxFiles = d.MaxFiles
	}
	if l.MaxFile <= 0 {
		l.MaxFile = d.MaxFile
	}
	if l.MaxTotal <= 0 {
		l.MaxTotal = d.MaxTotal
	}
	return l
}

// ValidationError reports user input the Host refuses.
type ValidationError struct {
	// Field is the input at fault: "user_id", "dockerfile", "src_files",
	// "build_id" or "program_id".
	Field string
	// Path is the offending file path, when one file is at fault (shortened
	// when very long).
	Path string
	// Reason says what is wrong, in words meant for the user.
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("invalid %s path %s: %s", e.Field, quoteShort(e.Path), e.Reason)
	}
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason)
}

// quoteShort quotes s for an error message, shortening very long input.
func quoteShort(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q…", strings.ToValidUTF8(s[:max], ""))
	}
	return fmt.Sprintf("%q", s)
}

// ValidateSource checks a Dockerfile (empty: none) and source files:
//   - every path is relative and clean: no leading "/", no "." or ".."
//     segment, no empty segment ("a//b", trailing "/"), no backslash, no NUL
//     or other control character, valid UTF-8, at most MaxPathLen bytes;
//   - no two paths name the same file once cleaned, and no path is both a
//     file and a folder ("a" and "a/b");
//   - a root "Dockerfile" file is not empty and is not given together with
//     the dockerfile argument;
//   - the number of files, each file's size (the Dockerfile's too) and the
//     total size are within limits.
//
// The first problem found (in path order) is returned as a *ValidationError.
func ValidateSource(dockerfile string, files Files, limits Limits) error {
	return validate(dockerfile, files, limits.withDefaults(), true)
}

// validate checks structure always and sizes when checkSize is set.
func validate(dockerfile string, files Files, lim Limits, checkSize bool) error {
	srcErr := func(p, format string, a ...any) error {
		return &ValidationError{Field: "src_files", Path: p, Reason: fmt.Sprintf(format, a...)}
	}
	if checkSize && len(files) > lim.MaxFiles {
		return &ValidationError{Field: "src_files", Reason: fmt.Sprintf("%d files; at most %d are allowed", len(files), lim.MaxFiles)}
	}
	paths := files.Paths()

	// Duplicates once cleaned ("a/b" and "a//b", "./a" and "a"): name the
	// one that is not clean.
	cleaned := make(map[string]string, len(paths))
	for _, p := range paths {
		c := path.Clean(p)
		if other, ok := cleaned[c]; ok {
			if p == c {
				p, other = other, p
			}
			return srcErr(p, "names the same file as %s", quoteShort(other))
		}
		cleaned[c] = p
	}

	var total int64
	for _, p := range paths {
		if reason := checkPath(p); reason != "" {
			return srcErr(p, "%s", reason)
		}
		size := int64(len(files[p]))
		if checkSize && size > lim.MaxFile {
			return srcErr(p, "file is %d bytes; at most %d are allowed", size, lim.MaxFile)
		}
		total += size
	}

	// A path must not pass through a file: "a" and "a/b" cannot both exist.
	isFile := func(p string) bool {
		_, ok := files[p]
		return ok || (p == DockerfileName && dockerfile != "")
	}
	for _, p := range paths {
		for i := strings.IndexByte(p, '/'); i >= 0; i = next(p, i) {
			if dir := p[:i]; isFile(dir) {
				return srcErr(p, "%s is a file, so it cannot also be a folder", quoteShort(dir))
			}
		}
	}

	if df, ok := files[DockerfileName]; ok {
		if dockerfile != "" {
			return &ValidationError{Field: "dockerfile", Reason: `given twice: as the dockerfile and as the file "Dockerfile"`}
		}
		if df == "" {
			return srcErr(DockerfileName, "the Dockerfile is empty")
		}
	}
	if checkSize {
		if size := int64(len(dockerfile)); size > lim.MaxFile {
			return &ValidationError{Field: "dockerfile", Reason: fmt.Sprintf("%d bytes; at most %d are allowed", size, lim.MaxFile)}
		}
		total += int64(len(dockerfile))
		if total > lim.MaxTotal {
			return &ValidationError{Field: "src_files", Reason: fmt.Sprintf("the files and the Dockerfile total %d bytes; at most %d are allowed", total, lim.MaxTotal)}
		}
	}
	return nil
}

// next returns the index of the '/' after index i in p, or -1.
func next(p string, i int) int {
	j := strings.IndexByte(p[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// checkPath returns why p is not an acceptable file path, or "".
func checkPath(p string) string {
	switch {
	case p == "":
		return "the path is empty"
	case len(p) > MaxPathLen:
		return fmt.Sprintf("the path is %d bytes long; at most %d are allowed", len(p), MaxPathLen)
	case !utf8.ValidString(p):
		return "the path is not valid UTF-8"
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return fmt.Sprintf("the path contains the control character %q", r)
		}
	}
	switch {
	case strings.Contains(p, `\`):
		return `backslashes are not allowed; separate folders with "/"`
	case p[0] == '/':
		return "absolute paths are not allowed; paths are relative to the source folder"
	}
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "":
			return `empty path segment ("//" or a "/" at the end)`
		case ".":
			return `"." segments are not allowed`
		case "..":
			return `".." segments are not allowed; paths must stay inside the source folder`
		}
	}
	return ""
}
