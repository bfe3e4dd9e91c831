package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/image"

	"github.com/hershyorg/hershy/internal/driver"
)

// maxImportAnswer caps what is read of the engine's answer to an import:
// one line.
const maxImportAnswer = 1 << 20

// ImportImage imports rootfs as an image with the engine's image import
// (`docker import`), which stores the layer straight from the request: no
// build, no intermediate container, and (unlike an image load) no
// unpacking of a whole tarball into a temporary folder first. The tag is
// the import's repository; the settings go as changes, which the engine
// reads as Dockerfile instructions (importChanges quotes them).
//
// The engine answers with JSON messages: the image id, or an error met
// while importing, in the stream once the answer has begun. The answer is
// read whole; an error in it is the import's, and it must name exactly
// one image id. A layer that is not a tar, or that ends inside a file, is
// the engine's error; one whose reader fails aborts the request, and the
// engine makes no image of it.
func (d *Driver) ImportImage(ctx context.Context, spec driver.ImportSpec, rootfs io.Reader) (string, error) {
	if err := spec.Check(); err != nil {
		return "", fmt.Errorf("docker: %w", err)
	}
	if rootfs == nil {
		return "", errors.New("docker: import image: no layer")
	}
	rc, err := d.cli.ImageImport(ctx, image.ImportSource{Source: rootfs, SourceName: "-"}, spec.Tag,
		image.ImportOptions{Changes: importChanges(spec)})
	if err != nil {
		return "", fmt.Errorf("docker: import image %s: %w", spec.Tag, ctxErr(ctx, err))
	}
	defer rc.Close()
	id, err := decodeImport(io.LimitReader(rc, maxImportAnswer))
	if err != nil {
		return "", fmt.Errorf("docker: import image %s: %w", spec.Tag, ctxErr(ctx, err))
	}
	return id, nil
}

// importChanges writes spec's settings as the Dockerfile instructions an
// import takes. spec has passed Check: names are plain, and no value holds
// a control character, so each instruction stays one line. Values are
// double-quoted with the quote, the escape character and "$" escaped: the
// engine expands variables in ENV and LABEL, and would split words at
// spaces. The entrypoint is JSON (the exec form), which is not expanded.
func importChanges(spec driver.ImportSpec) []string {
	changes := []string{"USER " + spec.User}
	if len(spec.Env) > 0 {
		env := make([]string, len(spec.Env))
		for i, kv := range spec.Env {
			k, v, _ := strings.Cut(kv, "=")
			env[i] = k + "=" + dockerfileQuote(v)
		}
		changes = append(changes, "ENV "+strings.Join(env, " "))
	}
	entrypoint, _ := json.Marshal(spec.Entrypoint) // strings only: no error
	changes = append(changes, "ENTRYPOINT "+string(entrypoint))
	if len(spec.Labels) > 0 {
		var labels []string
		for _, k := range slices.Sorted(maps.Keys(spec.Labels)) {
			labels = append(labels, k+"="+dockerfileQuote(spec.Labels[k]))
		}
		changes = append(changes, "LABEL "+strings.Join(labels, " "))
	}
	return changes
}

// dockerfileQuoter escapes what the engine's lexer reads specially inside
// double quotes: the quote, the escape character, and "$" (a variable).
var dockerfileQuoter = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`)

// dockerfileQuote double-quotes s as one Dockerfile word.
func dockerfileQuote(s string) string { return `"` + dockerfileQuoter.Replace(s) + `"` }

// imageID is what an import answers with.
var imageID = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// decodeImport reads the engine's answer to an import and returns the
// image id it names.
func decodeImport(body io.Reader) (string, error) {
	dec := json.NewDecoder(body)
	var ids []string
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
		if s := strings.TrimSpace(m.Status); s != "" {
			ids = append(ids, s)
		}
	}
	if len(ids) != 1 || !imageID.MatchString(ids[0]) {
		return "", fmt.Errorf("the engine's answer names no single image id: %q", ids)
	}
	return ids[0], nil
}
