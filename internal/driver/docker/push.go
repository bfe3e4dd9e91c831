package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/docker/docker/api/types/image"
)

// PushImage tags the image ref as remote ("host/repo:tag"), pushes it to
// remote's registry and drops the tag again, returning the manifest's
// digest. The engine reaches the registry itself: one on a loopback
// address is spoken to over plain HTTP, any other needs TLS (or the
// engine's insecure-registries). No credentials are sent.
func (d *Driver) PushImage(ctx context.Context, ref, remote string) (string, error) {
	if err := d.cli.ImageTag(ctx, ref, remote); err != nil {
		return "", notFound(ctxErr(ctx, err), "push: tag image", ref)
	}
	defer d.cli.ImageRemove(context.WithoutCancel(ctx), remote, image.RemoveOptions{})
	// The engine wants an auth header even for none: "{}".
	rc, err := d.cli.ImagePush(ctx, remote, image.PushOptions{RegistryAuth: "e30="})
	if err != nil {
		return "", fmt.Errorf("docker: push %s: %w", remote, ctxErr(ctx, err))
	}
	defer rc.Close()
	var digest string
	dec := json.NewDecoder(io.LimitReader(rc, 64<<20))
	for {
		var m struct {
			Error string `json:"error"`
			Aux   struct {
				Digest string `json:"Digest"`
			} `json:"aux"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("docker: push %s: %w", remote, ctxErr(ctx, err))
		}
		if m.Error != "" {
			return "", fmt.Errorf("docker: push %s: %s", remote, m.Error)
		}
		if m.Aux.Digest != "" {
			digest = m.Aux.Digest
		}
	}
	if digest == "" {
		return "", fmt.Errorf("docker: push %s: the engine did not say the digest", remote)
	}
	return digest, nil
}
