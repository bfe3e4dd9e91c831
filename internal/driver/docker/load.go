package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/docker/docker/client"
)

// maxLoadAnswer caps what is read of the engine's answer to a load: a few
// lines for one image.
const maxLoadAnswer = 1 << 20

// LoadImage loads the tarball r with the engine's image load (quiet: no
// progress bars) and returns the loaded image's id.
//
// The engine answers with a stream of JSON messages even when the load
// fails after it began (the HTTP status is then still 200): every message
// is read, an error message is the load's error, and the answer must name
// exactly one image ("Loaded image: <tag>" for a tagged one, "Loaded image
// ID: <id>" for one without a tag); the id of a tagged one is then asked
// for, as the answer does not carry it.
func (d *Driver) LoadImage(ctx context.Context, r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("docker: load image: no tarball")
	}
	resp, err := d.cli.ImageLoad(ctx, r, client.ImageLoadWithQuiet(true))
	if err != nil {
		return "", fmt.Errorf("docker: load image: %w", ctxErr(ctx, err))
	}
	defer resp.Body.Close()
	ref, err := decodeLoad(io.LimitReader(resp.Body, maxLoadAnswer))
	if err != nil {
		return "", fmt.Errorf("docker: load image: %w", ctxErr(ctx, err))
	}
	if strings.HasPrefix(ref, "sha256:") {
		return ref, nil
	}
	ins, err := d.cli.ImageInspect(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("docker: load image: inspect the loaded %s: %w", ref, ctxErr(ctx, err))
	}
	return ins.ID, nil
}

// decodeLoad reads the engine's answer to a load and returns the one image
// it names: its tag, or its id if it has no tag.
func decodeLoad(body io.Reader) (string, error) {
	dec := json.NewDecoder(body)
	var text strings.Builder
	for {
		var m buildMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "", fmt.Errorf("reading the engine's answer: %w", err)
		}
		switch {
		case m.ErrorDetail != nil && m.ErrorDetail.Message != "":
			return "", fmt.Errorf("engine: %s", strings.TrimSpace(m.ErrorDetail.Message))
		case m.Error != "":
			return "", fmt.Errorf("engine: %s", strings.TrimSpace(m.Error))
		}
		text.WriteString(m.Stream)
	}
	var tags, ids []string
	for line := range strings.Lines(text.String()) {
		line = strings.TrimSpace(line)
		if id, ok := strings.CutPrefix(line, "Loaded image ID: "); ok {
			ids = append(ids, id)
		} else if tag, ok := strings.CutPrefix(line, "Loaded image: "); ok {
			tags = append(tags, tag)
		}
	}
	// A tagged image is reported by its tags only.
	images := tags
	if len(images) == 0 {
		images = ids
	}
	images = slices.Compact(slices.Sorted(slices.Values(images)))
	if len(images) != 1 || images[0] == "" {
		return "", fmt.Errorf("the engine's answer names %d images (%q), want one: %q", len(images), images, strings.TrimSpace(text.String()))
	}
	return images[0], nil
}
