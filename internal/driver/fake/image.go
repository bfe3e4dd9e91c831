package fake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/hershyorg/hershy/internal/dockerfile"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/imagetar"
)

// image is an image of the fake engine. What its containers do is their
// Program; an image made by ImportImage also knows its settings and its
// files' names, owners and modes (not their bytes).
type image struct {
	id     string
	tags   []string // normalised
	labels map[string]string
	parent *image // the image its last stage was built FROM (nil: scratch, added or imported)
	gone   bool   // removed (a child may still point at it)

	imported *imported // nil unless made by ImportImage
}

// imported is what an imported image holds.
type imported struct {
	spec  driver.ImportSpec
	files []imagetar.File
}

// importedBase is the nearest imported image among img and the images it
// was built on, or nil.
func (img *image) importedBase() *imported {
	for i := img; i != nil; i = i.parent {
		if i.imported != nil {
			return i.imported
		}
	}
	return nil
}

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// normalizeRef turns a reference into the key the engine files it under:
// an id keeps its "sha256:" form, and a name without a tag gets ":latest",
// as Docker does ("hersh-program-x" is "hersh-program-x:latest").
func normalizeRef(ref string) string {
	if strings.HasPrefix(ref, "sha256:") {
		return ref
	}
	if hexID.MatchString(ref) {
		return "sha256:" + ref
	}
	name := ref
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		name = ref[i+1:]
	}
	if !strings.Contains(name, ":") && !strings.Contains(name, "@") {
		return ref + ":latest"
	}
	return ref
}

// image finds an image by id or tag.
func (d *Driver) image(ref string) *image {
	key := normalizeRef(ref)
	if img, ok := d.images[key]; ok {
		return img
	}
	return d.tags[key]
}

// tag points ref at img, taking it from any image that had it (which
// stays, untagged, as the engine keeps a dangling image).
func (d *Driver) tag(img *image, ref string) {
	key := normalizeRef(ref)
	if old := d.tags[key]; old != nil {
		old.tags = remove(old.tags, key)
	}
	d.tags[key] = img
	img.tags = append(img.tags, key)
}

func remove(list []string, s string) []string {
	out := list[:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// programOf is what a container of img runs: the program set for the
// image or an image it was built on (by id or tag), else def.
func (d *Driver) programOf(img *image, def Program) Program {
	for i := img; i != nil; i = i.parent {
		if p, ok := d.programs[i.id]; ok {
			return p
		}
		for _, t := range i.tags {
			if p, ok := d.programs[t]; ok {
				return p
			}
		}
	}
	return def
}

// descends reports whether img is anc or was built on it.
func descends(img, anc *image) bool {
	for i := img; i != nil; i = i.parent {
		if i == anc {
			return true
		}
	}
	return false
}

// BuildImage builds an image from spec.ContextDir as the Docker driver
// does, checking the same things before anything is made: the context
// (only regular files, directories and symlinks that stay inside it, at
// most spec.MaxContext bytes of files), the Dockerfile's policy (package
// dockerfile), base images present (never pulled), and every COPY source
// present in the context. The output is the legacy builder's "Step i/n"
// lines; Hooks.Build may add output, take time or fail the build. The image
// carries the labels of its base image, of its LABEL instructions and of
// spec.Labels; its containers run the base image's Program (SetProgram).
func (d *Driver) BuildImage(ctx context.Context, spec driver.ImageSpec, out io.Writer) (string, error) {
	call := Call{Method: "BuildImage", Ref: spec.Tag, Spec: spec}
	h, err := d.begin(ctx, call)
	if err != nil {
		return "", err
	}
	id, err := d.build(ctx, h, spec, out)
	return id, end(ctx, h, call, err)
}

func (d *Driver) build(ctx context.Context, h Hooks, spec driver.ImageSpec, out io.Writer) (string, error) {
	if out == nil {
		out = io.Discard
	}
	if spec.ContextDir == "" {
		return "", errors.New("fake: build: no context directory")
	}
	dfPath := spec.Dockerfile
	if dfPath == "" {
		dfPath = "Dockerfile"
	}
	dfPath = filepath.ToSlash(filepath.Clean(dfPath))
	if filepath.IsAbs(dfPath) || dfPath == ".." || strings.HasPrefix(dfPath, "../") {
		return "", fmt.Errorf("fake: build: Dockerfile %q is not inside the context", spec.Dockerfile)
	}
	root, err := checkContext(spec.ContextDir, spec.MaxContext)
	if err != nil {
		return "", fmt.Errorf("fake: build context: %w", err)
	}
	df, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(dfPath)))
	if err != nil {
		return "", fmt.Errorf("fake: build: read Dockerfile: %w", err)
	}
	checked, err := dockerfile.Check(string(df))
	if err != nil {
		return "", fmt.Errorf("fake: build: %s: %w", dfPath, err)
	}
	d.mu.Lock()
	for _, b := range checked.Bases {
		if d.image(b.Ref) == nil {
			d.mu.Unlock()
			return "", fmt.Errorf("fake: build: line %d: base image %q is not present on this engine, and images are never pulled: build it first or use FROM scratch", b.Line, b.Ref)
		}
	}
	d.mu.Unlock()
	parsed, err := parser.Parse(strings.NewReader(string(df)))
	if err != nil {
		return "", fmt.Errorf("fake: build: %w", err)
	}
	stages, _, err := instructions.Parse(parsed.AST)
	if err != nil || len(stages) == 0 {
		return "", fmt.Errorf("fake: build: %v", err)
	}

	// The steps, as the legacy builder shows them.
	steps := 0
	for _, st := range stages {
		steps += 1 + len(st.Commands)
	}
	step := 0
	show := func(code string) {
		step++
		fmt.Fprintf(out, "Step %d/%d : %s\n", step, steps, code)
	}
	labels := map[string]string{}
	for _, st := range stages {
		show(st.SourceCode)
		for _, cmd := range st.Commands {
			show(fmt.Sprint(cmd))
			switch c := cmd.(type) {
			case *instructions.CopyCommand:
				if c.From != "" {
					continue
				}
				for _, src := range c.Sources() {
					if err := copySource(root, src); err != nil {
						fmt.Fprintln(out, err)
						return "", fmt.Errorf("fake: build: builder: %w", err)
					}
				}
			case *instructions.LabelCommand:
				for _, kv := range c.Labels {
					labels[kv.Key] = kv.Value
				}
			}
		}
	}
	if h.Build != nil {
		if err := h.Build(ctx, spec, out); err != nil {
			return "", fmt.Errorf("fake: build: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("fake: build: %w", err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usableLocked("BuildImage"); err != nil {
		return "", err
	}
	img := &image{id: d.newImageID(), labels: map[string]string{}}
	img.parent, err = d.baseOf(stages, len(stages)-1)
	if err != nil {
		return "", err
	}
	if img.parent != nil {
		for k, v := range img.parent.labels {
			img.labels[k] = v
		}
	}
	for k, v := range labels {
		img.labels[k] = v
	}
	for k, v := range spec.Labels {
		img.labels[k] = v
	}
	d.images[img.id] = img
	fmt.Fprintf(out, "Successfully built %s\n", img.id[len("sha256:"):][:12])
	if spec.Tag != "" {
		d.tag(img, spec.Tag)
		fmt.Fprintf(out, "Successfully tagged %s\n", normalizeRef(spec.Tag))
	}
	return img.id, nil
}

// baseOf is the image stage i is built on: nil for scratch, the base of an
// earlier stage it names, or an image of the engine.
func (d *Driver) baseOf(stages []instructions.Stage, i int) (*image, error) {
	for depth := 0; depth <= len(stages); depth++ {
		base := stages[i].BaseName
		if strings.EqualFold(base, "scratch") {
			return nil, nil
		}
		if j, ok := instructions.HasStage(stages[:i], base); ok {
			i = j
			continue
		}
		img := d.image(base)
		if img == nil {
			return nil, fmt.Errorf("fake: build: base image %q is gone", base)
		}
		return img, nil
	}
	return nil, errors.New("fake: build: stages refer to each other in a loop")
}

// copySource fails as the builder does when a COPY source matches nothing
// in the context.
func copySource(root, src string) error {
	rel := filepath.Clean("/" + filepath.FromSlash(src))
	matches, err := filepath.Glob(filepath.Join(root, rel))
	if err != nil || len(matches) == 0 {
		return fmt.Errorf("COPY failed: file not found in build context or excluded by .dockerignore: stat %s: file does not exist", strings.TrimPrefix(filepath.ToSlash(rel), "/"))
	}
	return nil
}

// checkContext refuses a context that could not be sent safely: anything
// but regular files, directories and symlinks resolving inside it, or more
// than max bytes of files (0: no cap). It returns the resolved root.
func checkContext(dir string, max int64) (string, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	if root, err = filepath.Abs(root); err != nil {
		return "", err
	}
	inside := func(p string) bool {
		r, err := filepath.Rel(root, p)
		return err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator))
	}
	var total int64
	err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := de.Info()
		if err != nil {
			return err
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
		case mode.IsRegular():
			if total += info.Size(); max > 0 && total > max {
				return fmt.Errorf("build context is over the cap of %d bytes (reached at %s)", max, rel)
			}
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			resolved, rerr := filepath.EvalSymlinks(p)
			if filepath.IsAbs(target) || !inside(filepath.Join(filepath.Dir(p), target)) || rerr != nil || !inside(resolved) {
				return fmt.Errorf("symlink %s -> %s points outside the context", rel, target)
			}
		default:
			return fmt.Errorf("%s is not a regular file, directory or symlink (%s)", rel, mode.Type())
		}
		return nil
	})
	return root, err
}

// ImportImage makes an image from rootfs, a layer's tar stream, as the
// engine's import does, after spec.Check (driver.ErrInvalidSpec): the
// stream is read to its end and listed first (imagetar.ReadLayer), so one
// that is not a tar, or that fails or ends inside an entry, makes no
// image. The image has a new id and spec's labels, and takes spec.Tag from
// any image that had it. Its containers run the Program set for its tag or
// id (SetProgram), else the default one, with its entrypoint as Args and
// its environment under the spec's; their Process.Stat sees its files.
func (d *Driver) ImportImage(ctx context.Context, spec driver.ImportSpec, rootfs io.Reader) (string, error) {
	call := Call{Method: "ImportImage", Ref: spec.Tag, Spec: spec}
	h, err := d.begin(ctx, call)
	if err != nil {
		return "", err
	}
	id, err := d.importImage(ctx, spec, rootfs)
	return id, end(ctx, h, call, err)
}

func (d *Driver) importImage(ctx context.Context, spec driver.ImportSpec, rootfs io.Reader) (string, error) {
	if err := spec.Check(); err != nil {
		return "", fmt.Errorf("fake: %w", err)
	}
	if rootfs == nil {
		return "", errors.New("fake: import image: no layer")
	}
	files, err := imagetar.ReadLayerKeeping(ctxReader{ctx, rootfs}, keepImageFile)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return "", fmt.Errorf("fake: import image %s: %w", spec.Tag, cerr)
		}
		return "", fmt.Errorf("fake: import image %s: Error processing tar file: %w", spec.Tag, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usableLocked("ImportImage"); err != nil {
		return "", err
	}
	spec.Env, spec.Entrypoint, spec.Labels = slices.Clone(spec.Env), slices.Clone(spec.Entrypoint), cloneMap(spec.Labels)
	img := &image{id: d.newImageID(), labels: cloneMap(spec.Labels), imported: &imported{spec: spec, files: files}}
	d.images[img.id] = img
	d.tag(img, spec.Tag)
	return img.id, nil
}

// keepImageFile is the size up to which an imported image keeps a file's
// bytes (ImageFile): enough for the placeholder binaries and small files
// of tests, without holding a real binary in memory.
const keepImageFile = 64 << 10

// ImageFile returns the bytes of a file of the image ref (a tag or an id)
// made by ImportImage, if it kept them (files of at most 64 KiB).
func (d *Driver) ImageFile(ref, path string) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	img := d.image(ref)
	if img == nil || img.imported == nil {
		return nil, false
	}
	for _, f := range img.imported.files {
		if f.Path == path {
			if br, ok := f.Content.(*bytes.Reader); ok {
				b := make([]byte, br.Size())
				br.ReadAt(b, 0)
				return b, true
			}
		}
	}
	return nil, false
}

// ctxReader ends a read when ctx does, as the engine drops a request
// whose client has gone.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ImageExists reports whether ref (an id or a tag) exists.
func (d *Driver) ImageExists(ctx context.Context, ref string) (bool, error) {
	call := Call{Method: "ImageExists", Ref: ref}
	h, err := d.begin(ctx, call)
	if err != nil {
		return false, err
	}
	d.mu.Lock()
	ok := d.image(ref) != nil
	d.mu.Unlock()
	return ok, end(ctx, h, call, nil)
}

// RemoveImage removes ref as the Docker driver does: a missing image is
// fine; an image a container (in any state) uses, itself or through an
// image built on it, is refused with driver.ErrInUse naming the
// containers; a tag of an image with other tags, or of an image other
// images were built on, only loses the tag.
func (d *Driver) RemoveImage(ctx context.Context, ref string) error {
	call := Call{Method: "RemoveImage", Ref: ref}
	h, err := d.begin(ctx, call)
	if err != nil {
		return err
	}
	return end(ctx, h, call, d.removeImage(ref))
}

func (d *Driver) removeImage(ref string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	img := d.image(ref)
	if img == nil {
		return nil
	}
	var users []string
	for _, c := range d.containers {
		if descends(c.image, img) {
			users = append(users, c.name)
		}
	}
	if len(users) > 0 {
		sort.Strings(users)
		return fmt.Errorf("fake: remove image %s: %w by container(s) %s", ref, driver.ErrInUse, strings.Join(users, ", "))
	}
	children := false
	for _, i := range d.images {
		children = children || i.parent == img
	}
	key := normalizeRef(ref)
	if d.tags[key] == img { // by tag
		delete(d.tags, key)
		img.tags = remove(img.tags, key)
		if len(img.tags) > 0 || children {
			return nil // the image stays, under its other tags or for its children
		}
	} else if children || len(img.tags) > 1 {
		return fmt.Errorf("fake: remove image %s: %w: it has dependent child images or several tags", ref, driver.ErrInUse)
	}
	d.dropImage(img)
	// As with the engine's prune of parents: the untagged images it was
	// built on go too, unless something else needs them.
	for p := img.parent; p != nil && !p.gone && len(p.tags) == 0 && !d.needed(p); p = p.parent {
		d.dropImage(p)
	}
	return nil
}

func (d *Driver) dropImage(img *image) {
	for _, t := range img.tags {
		delete(d.tags, t)
	}
	img.tags, img.gone = nil, true
	delete(d.images, img.id)
}

// needed reports whether a container or another image is built on img.
func (d *Driver) needed(img *image) bool {
	for _, c := range d.containers {
		if descends(c.image, img) {
			return true
		}
	}
	for _, i := range d.images {
		if i.parent == img {
			return true
		}
	}
	return false
}
