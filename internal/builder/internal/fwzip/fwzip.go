// Package fwzip packs the hersh framework's source into the archive the
// Host embeds (internal/build/hershsrc.zip), and unpacks it. The generator
// (internal/build/genframework) and the staleness test share Collect, so
// they agree on what belongs in the archive.
package fwzip

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hershyorg/hershy/internal/source"
)

// Collect reads the files a build of the module in dir needs: go.mod, go.sum
// and every non-test .go file, in dir and its subfolders. It skips testdata,
// vendor, hidden and "_"-prefixed folders and nested modules, as the go
// command does. Keys are slash-separated paths relative to dir.
func Collect(dir string) (source.Files, error) {
	files := source.Files{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		name := d.Name()
		if d.IsDir() {
			if rel == "." {
				return nil
			}
			if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return fs.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return fs.SkipDir // a nested module
			}
			return nil
		}
		keep := rel == "go.mod" || rel == "go.sum" ||
			strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") && !strings.HasPrefix(name, ".") && !strings.HasPrefix(name, "_")
		if !keep {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[rel] = string(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fwzip: collect %s: %w", dir, err)
	}
	if _, ok := files["go.mod"]; !ok {
		return nil, fmt.Errorf("fwzip: collect %s: no go.mod", dir)
	}
	return files, nil
}

// Zip packs files into a zip archive that depends only on the files:
// entries sorted by path, stored uncompressed, with no timestamps, so the
// same files always give the same bytes, whatever the Go version.
func Zip(files source.Files) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, p := range files.Paths() {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: p, Method: zip.Store})
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(w, files[p]); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Unzip reads an archive made by Zip, refusing entries whose names are not
// clean relative paths.
func Unzip(data []byte) (source.Files, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("fwzip: %w", err)
	}
	files := source.Files{}
	for _, f := range zr.File {
		if f.Name == "" || path.Clean(f.Name) != f.Name || path.IsAbs(f.Name) || f.Name == ".." || strings.HasPrefix(f.Name, "../") || f.FileInfo().IsDir() {
			return nil, fmt.Errorf("fwzip: bad entry %q", f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("fwzip: %s: %w", f.Name, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("fwzip: %s: %w", f.Name, err)
		}
		if _, dup := files[f.Name]; dup {
			return nil, fmt.Errorf("fwzip: duplicate entry %q", f.Name)
		}
		files[f.Name] = string(b)
	}
	return files, nil
}

// Hash identifies a set of files: the first 16 hex digits of a sha256 over
// the sorted, length-prefixed paths and contents.
func Hash(files source.Files) string {
	h := sha256.New()
	put := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put("hershy/framework/v1")
	for _, p := range files.Paths() {
		put(p)
		put(files[p])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Diff lists the paths whose presence or content differs between want and
// got, sorted.
func Diff(want, got source.Files) []string {
	var out []string
	for p, c := range want {
		if g, ok := got[p]; !ok {
			out = append(out, p+" (missing)")
		} else if g != c {
			out = append(out, p+" (differs)")
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			out = append(out, p+" (extra)")
		}
	}
	sort.Strings(out)
	return out
}
