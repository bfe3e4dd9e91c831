// Package statearchive is a program's /state as an archive: a gzip'd tar
// of its regular files and folders, names relative to /state. It is how a
// program's state moves between Hosts, whatever keeps it: the Host reads
// and writes a /state on its own disk with it, and on a cluster the state
// helper (RunHelper, `hershy state-helper`) does the same inside a
// sandboxed Pod that mounts the program's volume. Both sides apply the
// same checks, from this one place.
//
// An archive is hostile until checked: Extract and Check refuse, with an
// error wrapping ErrRefused, any entry that is not a regular file or a
// folder, a name that is not clean and relative (no "..", no leading
// "/", no control characters or backslashes, at most MaxName bytes), more
// than MaxEntries entries, and more file bytes in all than the /state
// cap. Extract writes only below its folder, creates each file anew
// without following a link, and gives what it writes to the program's
// user.
package statearchive

import (
	"archive/tar"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Limits of an archive, besides the /state cap.
const (
	MaxEntries = 100_000
	MaxName    = 1024
)

// entryLimit is MaxEntries, lowered by tests.
var entryLimit = MaxEntries

// TempPrefix starts the name of the folder an import writes into, inside
// /state, before the swap. Export leaves such folders out (an import cut
// short), and the next swap removes them.
const TempPrefix = ".hershy-import-"

// ErrRefused is wrapped by every error about an archive's content: the
// archive is refused and nothing was changed.
var ErrRefused = errors.New("statearchive: archive refused")

// Result says what an import wrote (or a check read).
type Result struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// Write writes the regular files and folders below dir to w as a gzip'd
// tar, names relative to dir. Links, devices and other special files are
// left out and counted in skipped; so are the filesystem's lost+found and
// an import's unfinished folder. Files are opened without following a
// link. The caller makes sure nothing writes dir meanwhile.
func Write(w io.Writer, dir string) (skipped int, err error) {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case rel == ".":
			return nil
		case rel == "lost+found" && d.IsDir(), strings.HasPrefix(rel, TempPrefix):
			return filepath.SkipDir // the filesystem's own; an import cut short
		}
		name := filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o700, ModTime: modTime(d)})
		case d.Type().IsRegular():
			return writeFile(tw, p, name)
		default:
			skipped++
			return nil
		}
	})
	if err != nil {
		return skipped, err
	}
	if err := tw.Close(); err != nil {
		return skipped, err
	}
	return skipped, zw.Close()
}

func modTime(d fs.DirEntry) time.Time {
	if info, err := d.Info(); err == nil {
		return info.ModTime()
	}
	return time.Time{}
}

// writeFile adds one regular file, opened without following a link (the
// program is stopped, but its files are still its own).
func writeFile(tw *tar.Writer, p, name string) error {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(info.Mode().Perm() & 0o700), Size: info.Size(), ModTime: info.ModTime()}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, info.Size())
	return err
}

// refused wraps an error about the archive's content in ErrRefused.
func refused(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrRefused}, args...)...)
}

// Check reads the gzip'd tar r to its end and applies Extract's checks
// without writing anything: a Host checks an archive this way while it
// sends it to where it is extracted.
func Check(r io.Reader, limit int64) (Result, error) {
	return walk(r, limit, func(*tar.Header, string, io.Reader) error { return nil })
}

// Extract writes the gzip'd tar r's entries below dir, an empty folder
// nothing else writes, after checking each one (errors about the archive
// wrap ErrRefused): regular files and folders only, clean relative names,
// at most MaxEntries entries, and no more than limit bytes of files in
// all. Files are created anew (O_EXCL, O_NOFOLLOW), 0600 at most and
// owned by uid:gid (a process that may not give files away keeps them,
// as the program's own user does).
func Extract(r io.Reader, dir string, limit int64, uid, gid int) (Result, error) {
	return walk(r, limit, func(hdr *tar.Header, name string, content io.Reader) error {
		target := filepath.Join(dir, filepath.FromSlash(name))
		if hdr.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			return chown(target, uid, gid)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, os.FileMode(hdr.Mode)&0o700|0o600)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		_, err = io.Copy(f, content)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return chown(target, uid, gid)
	})
}

func chown(p string, uid, gid int) error {
	if err := os.Lchown(p, uid, gid); err != nil && !errors.Is(err, os.ErrPermission) {
		return err
	}
	return nil
}

// walk reads the archive entry by entry, checks each and hands it to put
// with its clean name and (for a file) its content, exactly hdr.Size
// bytes.
func walk(r io.Reader, limit int64, put func(hdr *tar.Header, name string, content io.Reader) error) (Result, error) {
	var res Result
	zr, err := gzip.NewReader(r)
	if err != nil {
		return res, refused("not a gzip stream: %v", err)
	}
	tr := tar.NewReader(zr)
	entries := 0
	seen := names{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// The gzip trailer is read too: a stream cut short is refused.
			if _, err := io.Copy(io.Discard, zr); err != nil {
				return res, refused("reading the archive: %v", err)
			}
			return res, nil
		}
		if err != nil {
			return res, refused("reading the archive: %v", err)
		}
		if entries++; entries > entryLimit {
			return res, refused("more than %d entries", entryLimit)
		}
		name, err := EntryName(hdr.Name)
		if err != nil {
			return res, err
		}
		if err := seen.add(name, hdr.Typeflag == tar.TypeDir); err != nil {
			return res, err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := put(hdr, name, nil); err != nil {
				return res, refused("%v", err)
			}
		case tar.TypeReg:
			if hdr.Size < 0 || res.Bytes+hdr.Size > limit {
				return res, refused("%s: the archive holds more than the /state cap of %d bytes", name, limit)
			}
			cr := &countReader{r: io.LimitReader(tr, hdr.Size)}
			if err := put(hdr, name, cr); err != nil {
				return res, refused("%v", err)
			}
			if _, err := io.Copy(io.Discard, cr); err != nil {
				return res, refused("%s: %v", name, err)
			}
			if cr.n != hdr.Size {
				return res, refused("%s: the archive ends inside the file", name)
			}
			res.Files++
			res.Bytes += cr.n
		default:
			return res, refused("%s: only regular files and folders may be imported (type %q)", name, hdr.Typeflag)
		}
	}
}

// names are an archive's names so far (hashed: 100,000 names of 1 KiB
// would hold 100 MB), each a folder or not, so that the check refuses
// what Extract could not write: a file given twice, or a name used as a
// file and as a folder.
type names map[[sha256.Size]byte]bool

func (n names) add(name string, dir bool) error {
	for i := range len(name) {
		if name[i] == '/' {
			if isDir, ok := n[sha256.Sum256([]byte(name[:i]))]; ok && !isDir {
				return refused("%s: %s is a file", name, name[:i])
			}
		}
	}
	key := sha256.Sum256([]byte(name))
	if isDir, ok := n[key]; ok && !(isDir && dir) {
		return refused("%s: given twice", name)
	}
	n[key] = dir
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// EntryName checks an entry's name and returns it clean: relative, clean
// once a folder's trailing slash is dropped, no "..", no control
// characters or backslashes, 1 to MaxName bytes. The error wraps
// ErrRefused.
func EntryName(n string) (string, error) {
	name := strings.TrimSuffix(n, "/")
	switch {
	case name == "" || len(name) > MaxName:
		return "", refused("entry %q: a name of 1 to %d bytes is required", n, MaxName)
	case strings.HasPrefix(name, "/") || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../"):
		return "", refused("entry %q: a clean relative name inside /state is required", n)
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }):
		return "", refused("entry %q: control characters and backslashes are not allowed", n)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." || part == "." {
			return "", refused("entry %q: a clean relative name inside /state is required", n)
		}
	}
	return name, nil
}

// NewToken is a random name for an import's folder (TempPrefix + token).
func NewToken() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ValidToken reports whether s is a token NewToken could have made.
func ValidToken(s string) bool {
	if len(s) != 12 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Swap replaces what dir holds with the entries of its folder tmp (an
// import's, extracted there): the old entries go, lost+found and tmp
// excepted (a link among them is removed, not followed; an import cut
// short before is removed with the rest), and tmp's entries move in by
// rename. tmp is then empty.
func Swap(dir, tmp string) error {
	old, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range old {
		if e.Name() == filepath.Base(tmp) || e.Name() == "lost+found" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("clearing the old state: %w", err)
		}
	}
	fresh, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range fresh {
		if err := os.Rename(filepath.Join(tmp, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
