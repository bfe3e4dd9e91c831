package source

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// ignoreRule is one line of a .hershignore or .dockerignore file.
type ignoreRule struct {
	pattern string // slash-separated, no leading or trailing slash
	negate  bool   // "!pattern" re-includes
	dirOnly bool   // "pattern/" matches directories only
	anchor  bool   // contains a slash: matched against the whole path
}

// readIgnore parses dir/name; a missing file is no rules.
func readIgnore(dir, name string) ([]ignoreRule, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rules []ignoreRule
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var r ignoreRule
		if strings.HasPrefix(line, "!") {
			r.negate = true
			line = strings.TrimSpace(line[1:])
		}
		line = filepath.ToSlash(line)
		if strings.HasSuffix(line, "/") {
			r.dirOnly = true
		}
		line = strings.Trim(line, "/")
		line = strings.TrimPrefix(line, "./")
		if line == "" {
			continue
		}
		if _, err := path.Match(strings.ReplaceAll(line, "**", "*"), ""); err != nil {
			return nil, fmt.Errorf("%s: bad pattern %q: %w", name, line, err)
		}
		r.pattern = line
		r.anchor = strings.Contains(line, "/")
		rules = append(rules, r)
	}
	return rules, sc.Err()
}

// matchGlob matches a slash path against a pattern where "**" spans any
// number of path elements.
func matchGlob(pattern, name string) bool {
	if !strings.Contains(pattern, "**") {
		ok, _ := path.Match(pattern, name)
		return ok
	}
	pp := strings.Split(pattern, "/")
	np := strings.Split(name, "/")
	var rec func(i, j int) bool
	rec = func(i, j int) bool {
		if i == len(pp) {
			return j == len(np)
		}
		if pp[i] == "**" {
			for k := j; k <= len(np); k++ {
				if rec(i+1, k) {
					return true
				}
			}
			return false
		}
		if j == len(np) {
			return false
		}
		ok, _ := path.Match(pp[i], np[j])
		return ok && rec(i+1, j+1)
	}
	return rec(0, 0)
}

func (r ignoreRule) matches(rel string, isDir bool) bool {
	if r.dirOnly && !isDir {
		return false
	}
	if r.anchor {
		return matchGlob(r.pattern, rel)
	}
	// A pattern without a slash matches the base name at any depth, and
	// also the whole path (as .dockerignore does for top-level entries).
	return matchGlob(r.pattern, path.Base(rel)) || matchGlob(r.pattern, rel)
}

// ignored applies rules in order; the last matching rule wins.
func ignored(rules []ignoreRule, rel string, isDir bool) bool {
	out := false
	for _, r := range rules {
		if r.matches(rel, isDir) {
			out = !r.negate
		}
	}
	return out
}

// Collected is a deployable directory, as `hershy deploy` sends it.
type Collected struct {
	Dockerfile string   // contents of DIR/Dockerfile, if present
	Files      Files    // slash paths relative to DIR
	Skipped    []string // files left out (binary, symlinks), for a warning
}

// Collect reads the files of dir honouring .hershignore and .dockerignore.
// .git is always left out, and a top-level Dockerfile is returned apart.
// Symlinks and files that are not UTF-8 text are left out and listed in
// Skipped.
func Collect(dir string) (*Collected, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	var rules []ignoreRule
	for _, name := range []string{".dockerignore", ".hershignore"} {
		r, err := readIgnore(dir, name)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r...)
	}
	out := &Collected{Files: Files{}}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if d.Name() == ".git" || ignored(rules, rel, true) {
				return filepath.SkipDir
			}
			return nil
		}
		if ignored(rules, rel, false) {
			return nil
		}
		if !d.Type().IsRegular() {
			out.Skipped = append(out.Skipped, rel)
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !utf8.Valid(data) {
			out.Skipped = append(out.Skipped, rel)
			return nil
		}
		if rel == "Dockerfile" {
			out.Dockerfile = string(data)
			return nil
		}
		out.Files[rel] = string(data)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out.Files) == 0 {
		return nil, fmt.Errorf("no files to deploy in %s", dir)
	}
	return out, nil
}
