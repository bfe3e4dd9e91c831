package docker

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/hershyorg/hershy/internal/dockerfile"
	"github.com/hershyorg/hershy/internal/driver"
)

// BuildImage builds spec.ContextDir with the engine's legacy builder.
//
// Before anything is sent to the engine the context is checked: only regular
// files, directories and symlinks that resolve inside the context; the sum of
// file sizes within spec.MaxContext. The Dockerfile must pass the policy of
// package dockerfile (read with the engine's own parser: no RUN, ADD,
// VOLUME, HEALTHCHECK, variables in FROM, ...), so a source stored before a
// rule existed cannot build either. Its base images (FROM, and COPY --from
// naming an image) must already exist locally: the legacy builder pulls a
// missing base image on its own even without the pull option, so the driver
// refuses such a build itself, and never pulls. A FROM image carrying ONBUILD
// triggers is refused too: the builder would run them in this build, where
// no policy saw them.
//
// The build has network "none"; intermediate containers are removed even on
// failure. The builder's output is written to out as plain text as it
// arrives; an error reported by the builder is returned with its message.
func (d *Driver) BuildImage(ctx context.Context, spec driver.ImageSpec, out io.Writer) (string, error) {
	if out == nil {
		out = io.Discard
	}
	if spec.ContextDir == "" {
		return "", errors.New("docker: build: no context directory")
	}
	dfPath := spec.Dockerfile
	if dfPath == "" {
		dfPath = "Dockerfile"
	}
	dfPath = filepath.ToSlash(filepath.Clean(dfPath))
	if filepath.IsAbs(dfPath) || dfPath == ".." || strings.HasPrefix(dfPath, "../") {
		return "", fmt.Errorf("docker: build: Dockerfile %q is not inside the context", spec.Dockerfile)
	}

	entries, root, err := scanContext(spec.ContextDir, spec.MaxContext)
	if err != nil {
		return "", err
	}
	df, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(dfPath)))
	if err != nil {
		return "", fmt.Errorf("docker: build: read Dockerfile: %w", err)
	}
	checked, err := dockerfile.Check(string(df))
	if err != nil {
		return "", fmt.Errorf("docker: build: %s: %w", dfPath, err)
	}
	if err := d.checkBases(ctx, checked.Bases); err != nil {
		return "", err
	}

	pr, pw := io.Pipe()
	tarDone := make(chan error, 1)
	go func() {
		err := writeTar(pw, root, entries)
		pw.CloseWithError(err)
		tarDone <- err
	}()
	// Whatever happens below, stop the tar writer and wait for it.
	defer func() {
		pr.Close()
		<-tarDone
	}()

	opts := build.ImageBuildOptions{
		Dockerfile:  dfPath,
		Remove:      true,
		ForceRemove: true,
		PullParent:  false,
		NetworkMode: "none",
		Labels:      spec.Labels,
		Version:     build.BuilderV1,
	}
	if spec.Tag != "" {
		opts.Tags = []string{spec.Tag}
	}
	resp, err := d.cli.ImageBuild(ctx, pr, opts)
	if err != nil {
		return "", fmt.Errorf("docker: build: %w", ctxErr(ctx, err))
	}
	defer resp.Body.Close()

	id, err := decodeBuild(resp.Body, out)
	if err != nil {
		return "", fmt.Errorf("docker: build: %w", ctxErr(ctx, err))
	}
	if id == "" && spec.Tag != "" {
		// Old engines did not send the id as aux data: ask for the tag.
		ins, err := d.cli.ImageInspect(ctx, spec.Tag)
		if err != nil {
			return "", fmt.Errorf("docker: build: inspect %s: %w", spec.Tag, err)
		}
		id = ins.ID
	}
	if id == "" {
		return "", errors.New("docker: build: the builder reported no image id")
	}
	return id, nil
}

// checkBases refuses a build whose base images are not all on the engine
// (it would pull them), or whose FROM image carries ONBUILD triggers.
func (d *Driver) checkBases(ctx context.Context, bases []dockerfile.Base) error {
	for _, b := range bases {
		ins, err := d.cli.ImageInspect(ctx, b.Ref)
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("docker: build: line %d: base image %q is not present on this engine, and images are never pulled: build it first or use FROM scratch", b.Line, b.Ref)
		}
		if err != nil {
			return fmt.Errorf("docker: build: check base image %s: %w", b.Ref, ctxErr(ctx, err))
		}
		if !b.Copy && ins.Config != nil && len(ins.Config.OnBuild) > 0 {
			return fmt.Errorf("docker: build: line %d: base image %q has ONBUILD triggers (%q), which would run in this build unchecked", b.Line, b.Ref, ins.Config.OnBuild)
		}
	}
	return nil
}

// buildMessage is one message of the builder's JSON stream.
type buildMessage struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	ID          string `json:"id"`
	Progress    string `json:"progress"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Error string          `json:"error"`
	Aux   json.RawMessage `json:"aux"`
}

// decodeBuild copies the builder's stream to out as plain text and returns
// the built image id, or the builder's error.
func decodeBuild(body io.Reader, out io.Writer) (string, error) {
	dec := json.NewDecoder(body)
	var id string
	for {
		var m buildMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return id, nil
			}
			return "", fmt.Errorf("reading build output: %w", err)
		}
		switch {
		case m.ErrorDetail != nil && m.ErrorDetail.Message != "":
			fmt.Fprintln(out, m.ErrorDetail.Message)
			return "", fmt.Errorf("builder: %s", strings.TrimSpace(m.ErrorDetail.Message))
		case m.Error != "":
			fmt.Fprintln(out, m.Error)
			return "", fmt.Errorf("builder: %s", strings.TrimSpace(m.Error))
		case m.Stream != "":
			io.WriteString(out, m.Stream)
		case m.Status != "":
			line := m.Status
			if m.ID != "" {
				line = m.ID + ": " + line
			}
			if m.Progress != "" {
				line += " " + m.Progress
			}
			fmt.Fprintln(out, line)
		}
		if len(m.Aux) > 0 {
			var r build.Result
			if json.Unmarshal(m.Aux, &r) == nil && r.ID != "" {
				id = r.ID
			}
		}
	}
}

// ctxEntry is one file system object of a build context.
type ctxEntry struct {
	rel  string // slash-separated path relative to the context root
	info fs.FileInfo
	link string // symlink target
}

// scanContext walks the context, refusing what cannot be sent safely, and
// returns its entries in a stable order and the resolved root.
func scanContext(dir string, max int64) ([]ctxEntry, string, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, "", fmt.Errorf("docker: build context: %w", err)
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return nil, "", fmt.Errorf("docker: build context: %w", err)
	}
	var entries []ctxEntry
	var total int64
	err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		e := ctxEntry{rel: filepath.ToSlash(rel), info: info}
		switch mode := info.Mode(); {
		case mode.IsDir():
		case mode.IsRegular():
			total += info.Size()
			if max > 0 && total > max {
				return fmt.Errorf("build context is over the cap of %d bytes (reached at %s)", max, e.rel)
			}
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			lexical := filepath.Join(filepath.Dir(rel), target)
			if filepath.IsAbs(target) || lexical == ".." || strings.HasPrefix(lexical, ".."+string(filepath.Separator)) {
				return fmt.Errorf("symlink %s -> %s points outside the context", e.rel, target)
			}
			resolved, err := filepath.EvalSymlinks(p)
			if err != nil {
				return fmt.Errorf("symlink %s -> %s does not resolve: %w", e.rel, target, err)
			}
			if r, err := filepath.Rel(root, resolved); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
				return fmt.Errorf("symlink %s -> %s points outside the context", e.rel, target)
			}
			e.link = target
		default:
			return fmt.Errorf("%s is not a regular file, directory or symlink (%s)", e.rel, mode.Type())
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("docker: build context: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].rel < entries[j].rel })
	return entries, root, nil
}

// writeTar writes the scanned entries as a tar stream. A file that changed
// size since the scan makes it fail rather than send something else.
func writeTar(w io.Writer, root string, entries []ctxEntry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		hdr, err := tar.FileInfoHeader(e.info, e.link)
		if err != nil {
			return err
		}
		hdr.Name = e.rel
		if e.info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !e.info.Mode().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(root, filepath.FromSlash(e.rel)))
		if err != nil {
			return err
		}
		n, err := io.Copy(tw, io.LimitReader(f, hdr.Size))
		f.Close()
		if err != nil {
			return err
		}
		if n != hdr.Size {
			return fmt.Errorf("docker: build context: %s changed while being sent", e.rel)
		}
	}
	return tw.Close()
}

// ImageExists reports whether ref (an id or a tag) exists on the engine.
func (d *Driver) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := d.cli.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("docker: inspect image %s: %w", ref, err)
	}
}

// RemoveImage removes ref. A missing image is not an error; an image that a
// container (running or not) still uses is not removed: the error wraps
// ErrImageInUse and names the containers. Removing a tag of an image that
// has other tags only removes that tag.
func (d *Driver) RemoveImage(ctx context.Context, ref string) error {
	ins, err := d.cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("docker: inspect image %s: %w", ref, err)
	}
	users, err := d.cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("ancestor", ins.ID)),
	})
	if err != nil {
		return fmt.Errorf("docker: list containers of image %s: %w", ref, err)
	}
	if len(users) > 0 {
		var names []string
		for _, c := range users {
			name := c.ID[:12]
			if len(c.Names) > 0 {
				name = strings.TrimPrefix(c.Names[0], "/")
			}
			names = append(names, name)
		}
		return fmt.Errorf("docker: remove image %s: %w by container(s) %s", ref, ErrImageInUse, strings.Join(names, ", "))
	}
	_, err = d.cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: false, PruneChildren: true})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("docker: remove image %s: %w: %w", ref, ErrImageInUse, err)
	default:
		return fmt.Errorf("docker: remove image %s: %w", ref, err)
	}
}
