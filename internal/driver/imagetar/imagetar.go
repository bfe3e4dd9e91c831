// Package imagetar writes and reads an image as one tarball in the format
// the engine's image load takes (docker save's: a manifest.json naming the
// image's config and its layers, each layer an uncompressed tar), so an
// image whose files and settings the Host knows is made in one engine call
// (driver.Driver.LoadImage) instead of a Dockerfile build of several steps.
//
// Write streams: each file's content is copied once from its reader into
// the output, and nothing is held in memory but headers and the config. It
// can do so because the engine unpacks the whole tarball before it reads
// the manifest, so the layer goes first (its digest is known when it ends)
// and the config and the manifest that name it follow.
//
// The config JSON uses the OCI image-spec types, which the engine reads as
// its own. Read is the other direction, for engines that are not one (the
// fake driver) and for tests: it checks a tarball as the engine does and
// reports the image's tag, config and files.
package imagetar

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"strings"
	"time"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is an image of one layer.
type Image struct {
	// Tag names the image: a name, with or without a tag (":latest" is
	// added, as the engine does); no digest.
	Tag string
	// Config is how the image's containers run.
	Config Config
	// Files are the layer's contents, a directory before what it holds.
	Files []File
	// Created is the image's creation time (the config's; files are
	// stamped with FileTime). Zero: FileTime.
	Created time.Time
	// History, when set, is the layer's line in docker history.
	History string
	// Architecture and OS are the platform (default runtime.GOARCH, linux).
	Architecture, OS string
}

// Config is the part of an image's config the Host sets.
type Config struct {
	User       string            // "uid:gid"
	Env        []string          // KEY=VALUE
	Entrypoint []string          // the program and its first arguments
	Labels     map[string]string // the image's labels
}

// File is a directory or a regular file of the layer.
type File struct {
	// Path is absolute and clean ("/etc/passwd"), never "/".
	Path string
	// Mode is fs.ModeDir for a directory (no other type is allowed), the
	// permission bits and the sticky bit; never setuid or setgid.
	Mode     fs.FileMode
	UID, GID int
	// Size is a regular file's length, and Content its bytes: exactly Size
	// of them, or Write fails (a file that grew or shrank since it was
	// measured is not sent as something else). Read leaves Content nil.
	Size    int64
	Content io.Reader
}

// FileTime stamps every file Write puts in a layer: a fixed time, so
// identical files make an identical layer, which the engine stores once
// (and need not unpack again when it has it).
var FileTime = time.Unix(0, 0).UTC()

// Names of the tarball's entries. The layer's name is fixed because Write
// does not know its digest when it starts it (the manifest names it).
const (
	manifestName = "manifest.json"
	layerName    = "layer.tar"
)

// maxID is the largest uid or gid a plain tar header holds (7 octal digits).
const maxID = 1<<21 - 1

// manifestEntry is one image of manifest.json (docker save's format).
type manifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// ErrInvalid is wrapped by Write for an Image it refuses, and by Read for
// a tarball that is not one image the engine would load.
var ErrInvalid = errors.New("imagetar: invalid image")

// NormalizeTag returns tag as a tarball names it ("name:tag"): ":latest"
// added when tag has none. A tag with a digest, or not a valid reference,
// is refused.
func NormalizeTag(tag string) (string, error) {
	named, err := reference.ParseNormalizedNamed(tag)
	if err != nil {
		return "", fmt.Errorf("%w: tag %q: %v", ErrInvalid, tag, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return "", fmt.Errorf("%w: tag %q names a digest", ErrInvalid, tag)
	}
	tagged, ok := reference.TagNameOnly(named).(reference.NamedTagged)
	if !ok {
		return "", fmt.Errorf("%w: tag %q", ErrInvalid, tag)
	}
	return reference.FamiliarString(tagged), nil
}

// Write writes img to w as a tarball the engine's image load takes, and
// returns the image's id: the digest of its config, as the engine names
// the image it loads from it. The image is checked before anything is
// written (errors wrap ErrInvalid); an error while writing (a file's
// content, w) leaves a truncated tarball, which the engine refuses.
func Write(w io.Writer, img Image) (id string, err error) {
	tag, err := NormalizeTag(img.Tag)
	if err != nil {
		return "", err
	}
	hdrs, layerSize, err := layerHeaders(img.Files)
	if err != nil {
		return "", err
	}

	out := tar.NewWriter(w)
	if err := out.WriteHeader(entryHeader(layerName, layerSize)); err != nil {
		return "", err
	}
	sum := sha256.New()
	written := &counter{}
	layer := tar.NewWriter(io.MultiWriter(out, sum, written))
	for i, f := range img.Files {
		if err := layer.WriteHeader(hdrs[i]); err != nil {
			return "", fmt.Errorf("imagetar: %s: %w", f.Path, err)
		}
		if hdrs[i].Typeflag == tar.TypeReg {
			if err := copyExactly(layer, f); err != nil {
				return "", err
			}
		}
	}
	if err := layer.Close(); err != nil {
		return "", err
	}
	if written.n != layerSize { // a bug here, not bad input: fail rather than send it
		return "", fmt.Errorf("imagetar: the layer has %d bytes, %d were announced", written.n, layerSize)
	}
	diffID := digest.NewDigestFromBytes(digest.SHA256, sum.Sum(nil))

	config, err := configJSON(img, diffID)
	if err != nil {
		return "", err
	}
	configDigest := digest.FromBytes(config)
	configName := configDigest.Encoded() + ".json"
	manifest, err := json.Marshal([]manifestEntry{{Config: configName, RepoTags: []string{tag}, Layers: []string{layerName}}})
	if err != nil {
		return "", err
	}
	for _, e := range []struct {
		name    string
		content []byte
	}{{configName, config}, {manifestName, manifest}} {
		if err := out.WriteHeader(entryHeader(e.name, int64(len(e.content)))); err != nil {
			return "", err
		}
		if _, err := out.Write(e.content); err != nil {
			return "", err
		}
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return configDigest.String(), nil
}

// layerHeaders checks the files and returns their tar headers and the
// size of the layer they make.
func layerHeaders(files []File) ([]*tar.Header, int64, error) {
	seen := map[string]bool{} // path -> is a directory
	hdrs := make([]*tar.Header, len(files))
	size := int64(2 * 512) // the end-of-archive blocks
	for i, f := range files {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: file %q: %s", ErrInvalid, f.Path, fmt.Sprintf(format, args...))
		}
		switch {
		case !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" || strings.ContainsRune(f.Path, 0):
			return nil, 0, bad("the path must be absolute, clean and not the root")
		}
		if _, dup := seen[f.Path]; dup {
			return nil, 0, bad("listed twice")
		}
		if parent := path.Dir(f.Path); parent != "/" && !seen[parent] {
			return nil, 0, bad("its directory %s is not listed before it", parent)
		}
		if f.Mode&^(fs.ModeDir|fs.ModePerm|fs.ModeSticky) != 0 {
			return nil, 0, bad("mode %v: only directories and regular files, without setuid or setgid", f.Mode)
		}
		if f.UID < 0 || f.GID < 0 || f.UID > maxID || f.GID > maxID {
			return nil, 0, bad("owner %d:%d is out of range", f.UID, f.GID)
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
				return nil, 0, bad("a directory has no content")
			}
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else {
			if f.Size < 0 || (f.Size > 0 && f.Content == nil) {
				return nil, 0, bad("size %d without its content", f.Size)
			}
			h.Typeflag, h.Size = tar.TypeReg, f.Size
		}
		// A plain header (512 bytes, no PAX records) or a refusal: the
		// layer's size is announced before the layer is written.
		if err := tar.NewWriter(io.Discard).WriteHeader(h); err != nil {
			return nil, 0, bad("%v", err)
		}
		seen[f.Path] = f.Mode.IsDir()
		hdrs[i] = h
		size += 512 + (h.Size+511)/512*512
	}
	return hdrs, size, nil
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

// configJSON is the image's config (OCI image-spec, which the engine reads
// as its own image JSON).
func configJSON(img Image, diffID digest.Digest) ([]byte, error) {
	for _, kv := range img.Config.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("%w: environment entry %q is not KEY=VALUE", ErrInvalid, kv)
		}
	}
	created := img.Created
	if created.IsZero() {
		created = FileTime
	}
	created = created.UTC()
	c := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{Architecture: img.Architecture, OS: img.OS},
		Config: ocispec.ImageConfig{
			User: img.Config.User, Env: img.Config.Env, Entrypoint: img.Config.Entrypoint, Labels: img.Config.Labels,
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	}
	if c.Architecture == "" {
		c.Architecture = runtime.GOARCH
	}
	if c.OS == "" {
		c.OS = "linux"
	}
	if img.History != "" {
		c.History = []ocispec.History{{Created: &created, CreatedBy: img.History}}
	}
	return json.Marshal(c)
}

// entryHeader is the header of one entry of the outer tarball.
func entryHeader(name string, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: FileTime, Format: tar.FormatUSTAR}
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
