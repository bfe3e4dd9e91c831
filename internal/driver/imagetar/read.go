package imagetar

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// maxFiles caps the entries ReadLayer lists; maxManifest the manifest
// ReadSaved reads.
const (
	maxFiles    = 1 << 16
	maxManifest = 1 << 20
)

// ReadLayer reads a layer's tar stream to its end and lists its entries:
// path (absolute, clean), mode (type and permissions), owner and size;
// Content is nil. An entry whose path leaves the root, or more than
// maxFiles entries, is an error wrapping ErrInvalid, as is a stream that
// is not a tar.
func ReadLayer(r io.Reader) ([]File, error) { return ReadLayerKeeping(r, 0) }

// ReadLayerKeeping is ReadLayer, and keeps as Content the bytes of each
// regular file of at most keep bytes (an in-memory engine's image files).
func ReadLayerKeeping(r io.Reader, keep int64) ([]File, error) {
	var files []File
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// The rest of the stream (the end blocks), as an engine reads it.
			_, err := io.Copy(io.Discard, r)
			return files, err
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if len(files) == maxFiles {
			return nil, fmt.Errorf("%w: more than %d entries", ErrInvalid, maxFiles)
		}
		rel := path.Clean(h.Name)
		if path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
			return nil, fmt.Errorf("%w: entry %q is outside the root", ErrInvalid, h.Name)
		}
		if rel == "." {
			continue
		}
		f := File{Path: "/" + rel, Mode: h.FileInfo().Mode(), UID: h.Uid, GID: h.Gid, Size: h.Size}
		if h.Typeflag == tar.TypeReg && h.Size <= keep {
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
			}
			f.Content = bytes.NewReader(b)
		}
		files = append(files, f)
	}
}

// ReadSaved reads an image as the engine's save writes it (docker save:
// a manifest.json naming one image's layers, each a tar of its own) and
// lists the files of its layers in order, to check what an engine stored.
func ReadSaved(r io.Reader) ([]File, error) {
	layers := map[string][]File{}
	var manifest []struct{ Layers []string }
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		switch name := path.Clean(h.Name); {
		case name == "manifest.json":
			if err := json.NewDecoder(io.LimitReader(tr, maxManifest)).Decode(&manifest); err != nil {
				return nil, fmt.Errorf("%w: manifest.json: %v", ErrInvalid, err)
			}
		case strings.HasSuffix(name, ".tar") && h.Typeflag == tar.TypeReg:
			if layers[name], err = ReadLayer(tr); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	if len(manifest) != 1 {
		return nil, fmt.Errorf("%w: the manifest names %d images, want one", ErrInvalid, len(manifest))
	}
	var files []File
	for _, l := range manifest[0].Layers {
		fs, ok := layers[path.Clean(l)]
		if !ok {
			return nil, fmt.Errorf("%w: layer %s is missing", ErrInvalid, l)
		}
		files = append(files, fs...)
	}
	return files, nil
}
