package source

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Permissions of a written tree: only the Host's user can read it.
const (
	dirPerm  = 0o700
	filePerm = 0o600
)

// ErrSymlink is returned (wrapped) by ReadTree for a symbolic link.
var ErrSymlink = errors.New("symbolic links are not allowed")

// WriteTree creates the folder dst holding files (and dockerfile, when not
// empty, as the root file "Dockerfile"), atomically: everything is written
// into a temporary sibling folder (folders 0700, files 0600) and synced to
// disk, then that folder is renamed to dst. On any failure nothing is left
// behind. dst's parent folder must exist; dst must not (an existing dst is
// never overwritten, and the error then wraps fs.ErrExist).
//
// The paths are checked as ValidateSource does, but not the sizes: check
// those with ValidateSource first.
func WriteTree(dst, dockerfile string, files Files) error {
	return treeWriter{}.write(dst, dockerfile, files)
}

// treeWriter writes trees; beforeWrite, when set, runs before each file is
// written and can fail the write (tests inject failures with it).
type treeWriter struct {
	beforeWrite func(rel string) error
}

func (tw treeWriter) write(dst, dockerfile string, files Files) (err error) {
	if err := validate(dockerfile, files, Limits{}, false); err != nil {
		return err
	}
	all := files
	if dockerfile != "" {
		all = make(Files, len(files)+1)
		for p, c := range files {
			all[p] = c
		}
		all[DockerfileName] = dockerfile
	}

	dst = filepath.Clean(dst)
	parent := filepath.Dir(dst)
	if fi, err := os.Stat(parent); err != nil {
		return fmt.Errorf("source: write tree %s: parent folder: %w", dst, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("source: write tree %s: parent %s is not a folder", dst, parent)
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("source: write tree %s: %w", dst, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("source: write tree: %w", err)
	}

	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		return fmt.Errorf("source: write tree %s: %w", dst, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, dirPerm); err != nil {
		return fmt.Errorf("source: write tree %s: %w", dst, err)
	}

	dirs := []string{"."}
	made := map[string]bool{".": true}
	for _, rel := range all.Paths() {
		// Create the file's folders, outermost first.
		var chain []string
		for d := path.Dir(rel); !made[d]; d = path.Dir(d) {
			chain = append(chain, d)
			made[d] = true
		}
		for i := len(chain) - 1; i >= 0; i-- {
			if err := os.Mkdir(filepath.Join(tmp, filepath.FromSlash(chain[i])), dirPerm); err != nil {
				return fmt.Errorf("source: write tree %s: %w", dst, err)
			}
			dirs = append(dirs, chain[i])
		}
		if tw.beforeWrite != nil {
			if err := tw.beforeWrite(rel); err != nil {
				return fmt.Errorf("source: write tree %s: %s: %w", dst, rel, err)
			}
		}
		if err := writeFileSync(filepath.Join(tmp, filepath.FromSlash(rel)), all[rel]); err != nil {
			return fmt.Errorf("source: write tree %s: %s: %w", dst, rel, err)
		}
	}
	// Sync the folders, innermost first, so every entry is durable before
	// the rename publishes the tree.
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		if err := syncPath(filepath.Join(tmp, filepath.FromSlash(d))); err != nil {
			return fmt.Errorf("source: write tree %s: %w", dst, err)
		}
	}
	if err := renameNoReplace(tmp, dst); err != nil {
		return fmt.Errorf("source: write tree %s: %w", dst, err)
	}
	if err := syncPath(parent); err != nil {
		// The tree is in place; only the parent's durability failed.
		// Undo, so a failure still leaves nothing behind.
		os.RemoveAll(dst)
		return fmt.Errorf("source: write tree %s: sync parent: %w", dst, err)
	}
	return nil
}

func writeFileSync(name, content string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncPath(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// ReadTree reads a tree written by WriteTree: every regular file under dir,
// keyed by its slash-separated relative path, with the root "Dockerfile"
// returned apart as dockerfile (and left out of files). Empty folders are
// ignored. It refuses symbolic links (wrapping ErrSymlink) and any other
// non-regular file, and paths ValidateSource would refuse.
func ReadTree(dir string) (files Files, dockerfile string, err error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, "", fmt.Errorf("source: read tree: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, "", fmt.Errorf("source: read tree %s: %w", dir, ErrSymlink)
	}
	if !fi.IsDir() {
		return nil, "", fmt.Errorf("source: read tree %s: not a folder", dir)
	}
	files = Files{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if reason := checkPath(rel); reason != "" {
			return fmt.Errorf("%s: %s", quoteShort(rel), reason)
		}
		switch t := d.Type(); {
		case t&fs.ModeSymlink != 0:
			return fmt.Errorf("%s: %w", quoteShort(rel), ErrSymlink)
		case t.IsDir():
			return nil
		case !t.IsRegular():
			return fmt.Errorf("%s: not a regular file (%s)", quoteShort(rel), t.Type())
		}
		content, err := readNoFollow(p)
		if err != nil {
			return fmt.Errorf("%s: %w", quoteShort(rel), err)
		}
		files[rel] = content
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("source: read tree %s: %w", dir, err)
	}
	if df, ok := files[DockerfileName]; ok {
		delete(files, DockerfileName)
		dockerfile = df
	}
	return files, dockerfile, nil
}

// readNoFollow reads a regular file, refusing a symbolic link even if one
// replaced the file after the walk saw it.
func readNoFollow(name string) (string, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return "", ErrSymlink
		}
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	var b strings.Builder
	if _, err := io.Copy(&b, f); err != nil {
		return "", err
	}
	return b.String(), nil
}
