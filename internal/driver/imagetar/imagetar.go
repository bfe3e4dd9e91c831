// Package imagetar writes and reads the tar stream of an image's layer: the
// rootfs the engine imports as an image in one call
// (driver.Driver.ImportImage), instead of a Dockerfile build of several
// steps and intermediate containers.
//
// WriteLayer streams: each file's content is copied once from its reader
// into the output, so a program binary of any size goes from its file to
// the engine without being held in memory. Its headers are plain tar
// (USTAR, no extensions), stamped with a fixed time, so identical files
// make an identical layer. ReadLayer and ReadSaved are the other
// direction, for engines that are not one (the fake driver) and for tests
// of what an engine stored.
package imagetar

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"
)

// File is a directory or a regular file of a layer.
type File struct {
	// Path is absolute and clean ("/etc/passwd"), never "/".
	Path string
	// Mode is fs.ModeDir for a directory (WriteLayer allows no other
	// type), the permission bits and the sticky bit; never setuid or
	// setgid. ReadLayer reports any type.
	Mode     fs.FileMode
	UID, GID int
	// Size is a regular file's length, and Content its bytes: exactly Size
	// of them, or WriteLayer fails (a file that grew or shrank since it
	// was measured is not sent as something else). ReadLayer leaves
	// Content nil.
	Size    int64
	Content io.Reader
}

// FileTime stamps every file WriteLayer writes: a fixed time, so identical
// files make an identical layer, which the engine stores once.
var FileTime = time.Unix(0, 0).UTC()

// maxID is the largest uid or gid a plain tar header holds (7 octal digits).
const maxID = 1<<21 - 1

// ErrInvalid is wrapped by WriteLayer for files it refuses, and by the
// readers for a stream that is not what they read.
var ErrInvalid = errors.New("imagetar: invalid layer")

// WriteLayer writes files to w as a layer's tar stream, in order. The
// files are checked before anything is written (errors wrap ErrInvalid):
// paths absolute and clean, each listed once and after its directory,
// only directories and regular files, no setuid or setgid bits, owners a
// plain tar header holds. An error while writing (a file's content, w)
// leaves a truncated stream, which the engine refuses.
func WriteLayer(w io.Writer, files []File) error {
	hdrs, err := headers(files)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for i, f := range files {
		if err := tw.WriteHeader(hdrs[i]); err != nil {
			return fmt.Errorf("imagetar: %s: %w", f.Path, err)
		}
		if hdrs[i].Typeflag == tar.TypeReg {
			if err := copyExactly(tw, f); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// headers checks the files and returns their tar headers.
func headers(files []File) ([]*tar.Header, error) {
	seen := map[string]bool{} // path -> is a directory
	hdrs := make([]*tar.Header, len(files))
	for i, f := range files {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: file %q: %s", ErrInvalid, f.Path, fmt.Sprintf(format, args...))
		}
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" || strings.ContainsRune(f.Path, 0) {
			return nil, bad("the path must be absolute, clean and not the root")
		}
		if _, dup := seen[f.Path]; dup {
			return nil, bad("listed twice")
		}
		if parent := path.Dir(f.Path); parent != "/" && !seen[parent] {
			return nil, bad("its directory %s is not listed before it", parent)
		}
		if f.Mode&^(fs.ModeDir|fs.ModePerm|fs.ModeSticky) != 0 {
			return nil, bad("mode %v: only directories and regular files, without setuid or setgid", f.Mode)
		}
		if f.UID < 0 || f.GID < 0 || f.UID > maxID || f.GID > maxID {
			return nil, bad("owner %d:%d is out of range", f.UID, f.GID)
		}
		h := &tar.Header{
			Name: strings.TrimPrefix(f.Path, "/"), Mode: int64(f.Mode.Perm()),
			Uid: f.UID, Gid: f.GID, ModTime: FileTime, Format: tar.FormatUSTAR,
		}
		if f.Mode&fs.ModeSticky != 0 {
			h.Mode |= 0o1000 // tar's ISVTX
		}
		if f.Mode.IsDir() {
			if f.Size != 0 || f.Content != nil {
				return nil, bad("a directory has no content")
			}
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else {
			if f.Size < 0 || (f.Size > 0 && f.Content == nil) {
				return nil, bad("size %d without its content", f.Size)
			}
			h.Typeflag, h.Size = tar.TypeReg, f.Size
		}
		// A plain header or a refusal, before anything is written.
		if err := tar.NewWriter(io.Discard).WriteHeader(h); err != nil {
			return nil, bad("%v", err)
		}
		seen[f.Path] = f.Mode.IsDir()
		hdrs[i] = h
	}
	return hdrs, nil
}

// copyExactly copies f's content into the layer: Size bytes, and then
// none left.
func copyExactly(w io.Writer, f File) error {
	n, err := io.CopyN(w, f.Content, f.Size)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("imagetar: %s: its content ended after %d of %d bytes", f.Path, n, f.Size)
	}
	if err != nil {
		return fmt.Errorf("imagetar: %s: %w", f.Path, err)
	}
	var one [1]byte
	if m, _ := io.ReadFull(f.Content, one[:]); m > 0 {
		return fmt.Errorf("imagetar: %s: its content is longer than %d bytes", f.Path, f.Size)
	}
	return nil
}
