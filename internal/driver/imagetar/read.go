package imagetar

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Contents is what Read found in a tarball: one image.
type Contents struct {
	// ID is the image's id: the digest of its config ("sha256:...").
	ID string
	// Tags are the manifest's, as it spells them ("name:tag").
	Tags   []string
	Config Config
	// Architecture and OS are the config's platform.
	Architecture, OS string
	// Files are the layers' entries in order, each with its path (absolute,
	// clean), mode (type and permissions), owner and size; Content is nil.
	Files []File
}

// Read's limits on what it keeps: a manifest or config larger than
// maxJSON, or a layer of more than maxFiles entries, is refused.
const (
	maxJSON  = 1 << 20
	maxFiles = 1 << 16
)

// entry is one file of the tarball, as far as Read keeps it.
type entry struct {
	digest digest.Digest
	small  []byte // the content, when at most maxJSON bytes
	files  []File // the entries of a larger one read as a layer
	err    error  // why it could not be read as a layer
}

// Read reads a tarball in the format of the engine's image load and checks
// it as the engine would before loading: a manifest.json naming one image
// with valid tags, its config (a Linux image), and each layer the config
// lists, whose digest must be the config's diff id. Layers must be
// uncompressed tars (what Write makes). Read consumes r to its end and
// holds only small entries (the manifest and the config) in memory. Errors
// about the tarball's contents wrap ErrInvalid.
func Read(r io.Reader) (*Contents, error) {
	entries := map[string]*entry{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: reading the tarball: %v", ErrInvalid, err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return nil, fmt.Errorf("%w: entry %q is outside the tarball", ErrInvalid, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("%w: entry %q is not a file or a directory", ErrInvalid, h.Name)
		}
		e, err := readEntry(tr, h.Size)
		if err != nil {
			return nil, fmt.Errorf("%w: reading %s: %v", ErrInvalid, h.Name, err)
		}
		entries[name] = e
	}
	return contents(entries)
}

// readEntry reads one file of the tarball: kept if small, else read as a
// layer, and hashed either way.
func readEntry(r io.Reader, size int64) (*entry, error) {
	sum := sha256.New()
	tee := io.TeeReader(r, sum)
	e := &entry{}
	if size <= maxJSON {
		b, err := io.ReadAll(tee)
		if err != nil {
			return nil, err
		}
		e.small = b
	} else {
		e.files, e.err = readLayer(tee)
		if _, err := io.Copy(io.Discard, tee); err != nil { // the rest, for the digest
			return nil, err
		}
	}
	e.digest = digest.NewDigestFromBytes(digest.SHA256, sum.Sum(nil))
	return e, nil
}

// contents finds the one image the manifest names and checks it.
func contents(entries map[string]*entry) (*Contents, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	m := entries[manifestName]
	if m == nil || m.small == nil {
		return nil, bad("no %s", manifestName)
	}
	var manifest []manifestEntry
	if err := json.Unmarshal(m.small, &manifest); err != nil {
		return nil, bad("%s: %v", manifestName, err)
	}
	if len(manifest) != 1 {
		return nil, bad("%s names %d images, want one", manifestName, len(manifest))
	}
	item := manifest[0]
	for _, t := range item.RepoTags {
		named, err := reference.ParseNormalizedNamed(t)
		if err != nil {
			return nil, bad("tag %q: %v", t, err)
		}
		if _, ok := named.(reference.NamedTagged); !ok {
			return nil, bad("invalid tag %q", t)
		}
	}
	c := entries[path.Clean(item.Config)]
	if c == nil || c.small == nil {
		return nil, bad("config %q is missing", item.Config)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(c.small, &cfg); err != nil {
		return nil, bad("config: %v", err)
	}
	if cfg.OS != "linux" {
		return nil, bad("cannot load a %q image on linux", cfg.OS)
	}
	if cfg.RootFS.Type != "layers" || len(cfg.RootFS.DiffIDs) != len(item.Layers) {
		return nil, bad("layers length mismatch: the manifest has %d, the config %d", len(item.Layers), len(cfg.RootFS.DiffIDs))
	}
	out := &Contents{
		ID: digest.FromBytes(c.small).String(), Tags: item.RepoTags,
		Config: Config{
			User: cfg.Config.User, Env: cfg.Config.Env, Entrypoint: cfg.Config.Entrypoint, Labels: cfg.Config.Labels,
		},
		Architecture: cfg.Architecture, OS: cfg.OS,
	}
	for i, name := range item.Layers {
		l := entries[path.Clean(name)]
		if l == nil {
			return nil, bad("layer %q is missing", name)
		}
		if want := cfg.RootFS.DiffIDs[i]; l.digest != want {
			return nil, bad("invalid diffID for layer %d: expected %q, got %q (compressed layers are not read)", i, want, l.digest)
		}
		files, err := l.files, l.err
		if l.small != nil {
			files, err = readLayer(bytes.NewReader(l.small))
		}
		if err != nil {
			return nil, bad("layer %q: %v", name, err)
		}
		out.Files = append(out.Files, files...)
	}
	return out, nil
}

// readLayer lists a layer's entries.
func readLayer(r io.Reader) ([]File, error) {
	var files []File
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if len(files) == maxFiles {
			return nil, fmt.Errorf("more than %d entries", maxFiles)
		}
		p := path.Clean("/" + h.Name)
		if rel := path.Clean(h.Name); path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
			return nil, fmt.Errorf("entry %q is outside the image's root", h.Name)
		}
		if p == "/" {
			continue
		}
		fi := h.FileInfo()
		files = append(files, File{Path: p, Mode: fi.Mode(), UID: h.Uid, GID: h.Gid, Size: h.Size})
	}
}
