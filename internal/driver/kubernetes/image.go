package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/hershyorg/hershy/internal/driver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Images are built and imported on the Host by the Builder, then pushed
// to the registry; the id the driver returns is the pushed image's full
// reference, "REGISTRY/NAME:TAG@sha256:...", which Pods name and nodes
// pull by digest. The tag keeps the local image's name so RemoveImage can
// remove both copies.

// BuildImage builds on the Builder and pushes the result.
func (d *Driver) BuildImage(ctx context.Context, spec driver.ImageSpec, out io.Writer) (string, error) {
	id, err := d.builder.BuildImage(ctx, spec, out)
	if err != nil {
		return "", err
	}
	return d.push(ctx, id, spec.Tag)
}

// ImportImage imports on the Builder and pushes the result.
func (d *Driver) ImportImage(ctx context.Context, spec driver.ImportSpec, rootfs io.Reader) (string, error) {
	id, err := d.builder.ImportImage(ctx, spec, rootfs)
	if err != nil {
		return "", err
	}
	return d.push(ctx, id, spec.Tag)
}

func (d *Driver) push(ctx context.Context, id, tag string) (string, error) {
	remote, err := d.reg.remote(tag)
	if err != nil {
		return "", err
	}
	digest, err := d.pusher.PushImage(ctx, id, remote)
	if err != nil {
		return "", fmt.Errorf("kubernetes: push: %w", err)
	}
	return remote + "@" + digest, nil
}

// ImageExists asks the registry whether it has the image.
func (d *Driver) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := d.reg.resolve(ctx, ref)
	if errors.Is(err, driver.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// RemoveImage deletes the image's manifest from the registry, and the
// Builder's copy. A Pod that names the image keeps it: ErrInUse. (A
// registry does not know which images were built on which, so an image
// another is built on can be removed; builds here never start from a
// program's image.)
func (d *Driver) RemoveImage(ctx context.Context, ref string) error {
	pinned, err := d.reg.resolve(ctx, ref)
	if errors.Is(err, driver.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	pods, err := d.cs.CoreV1().Pods(d.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("kubernetes: remove image: %w", err)
	}
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			if sameImage(c.Image, pinned) {
				return fmt.Errorf("kubernetes: remove image %s: %w: Pod %s uses it", ref, driver.ErrInUse, p.Name)
			}
		}
	}
	if err := d.reg.delete(ctx, pinned); err != nil {
		return err
	}
	if local := d.reg.localTag(ref); local != "" {
		if err := d.builder.RemoveImage(ctx, local); err != nil && !errors.Is(err, driver.ErrInUse) {
			return err
		}
	}
	return nil
}

// registry speaks the registry's HTTP API (distribution's v2) for what
// the driver needs: does an image exist, and delete one.
type registry struct {
	host   string // "127.0.0.1:5000"
	prefix string // repository path prefix, "hershy" (may be empty)
	scheme string // http for a loopback registry, else https
	client *http.Client
}

func newRegistry(r string) (*registry, error) {
	host, prefix, _ := strings.Cut(strings.TrimSuffix(r, "/"), "/")
	if host == "" || !strings.ContainsAny(host, ".:") && host != "localhost" {
		return nil, fmt.Errorf("kubernetes: registry %q: a host (with a port or a dot) is required, e.g. 127.0.0.1:5000/hershy", r)
	}
	reg := &registry{host: host, prefix: prefix, scheme: "https",
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}}
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	if ip, err := netip.ParseAddr(h); h == "localhost" || err == nil && ip.IsLoopback() {
		reg.scheme = "http" // as containerd and dockerd do for a loopback registry
	}
	return reg, nil
}

// remote is where a local tag "NAME[:TAG]" goes in the registry.
func (r *registry) remote(tag string) (string, error) {
	named, err := reference.ParseNormalizedNamed(tag)
	if err != nil {
		return "", fmt.Errorf("kubernetes: %w: tag %q: %v", driver.ErrInvalidSpec, tag, err)
	}
	name := reference.Path(named)
	if reference.Domain(named) != "docker.io" {
		name = reference.Domain(named) + "/" + name
	}
	name = strings.TrimPrefix(name, "library/")
	t := "latest"
	if tagged, ok := named.(reference.Tagged); ok {
		t = tagged.Tag()
	}
	repo := r.host + "/" + name
	if r.prefix != "" {
		repo = r.host + "/" + r.prefix + "/" + name
	}
	return repo + ":" + t, nil
}

// localTag is the Builder's tag of an image the driver pushed ("" for
// another reference).
func (r *registry) localTag(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ""
	}
	if reference.Domain(named) != r.host {
		if _, ok := named.(reference.Digested); ok {
			return ""
		}
		return ref // the Builder's own tag
	}
	tagged, ok := named.(reference.Tagged)
	if !ok {
		return ""
	}
	name := strings.TrimPrefix(reference.Path(named), r.prefix+"/")
	return name + ":" + tagged.Tag()
}

// split returns a reference's repository path and the tag or digest to
// ask for; the reference must be in this registry.
func (r *registry) split(ref string) (repo, which string, err error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", "", fmt.Errorf("kubernetes: image %q: %w", ref, err)
	}
	if reference.Domain(named) != r.host {
		// A tag of the Builder's: where the driver pushes it.
		if _, ok := named.(reference.Digested); ok {
			return "", "", fmt.Errorf("kubernetes: image %q: %w: not in the registry %s", ref, driver.ErrNotFound, r.host)
		}
		remote, err := r.remote(ref)
		if err != nil {
			return "", "", err
		}
		if named, err = reference.ParseNormalizedNamed(remote); err != nil {
			return "", "", fmt.Errorf("kubernetes: image %q: %w", ref, err)
		}
	}
	repo = reference.Path(named)
	switch v := named.(type) {
	case reference.Digested:
		which = v.Digest().String()
	case reference.Tagged:
		which = v.Tag()
	default:
		which = "latest"
	}
	return repo, which, nil
}

// manifestTypes are the manifest formats a push makes.
var manifestTypes = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

// resolve asks the registry for ref and returns it pinned to its digest
// ("REPO:TAG@sha256:..."). A missing one is ErrNotFound.
func (r *registry) resolve(ctx context.Context, ref string) (string, error) {
	repo, which, err := r.split(ref)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, r.scheme+"://"+r.host+"/v2/"+repo+"/manifests/"+which, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", manifestTypes)
	resp, err := r.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("kubernetes: registry: %w", err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return "", fmt.Errorf("kubernetes: image %s: %w", ref, driver.ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("kubernetes: registry: %s for %s", resp.Status, ref)
	}
	digest := resp.Header.Get("Docker-Content-Digest")
	if digest == "" {
		return "", fmt.Errorf("kubernetes: registry: no digest for %s", ref)
	}
	if which == digest {
		return r.host + "/" + repo + "@" + digest, nil
	}
	return r.host + "/" + repo + ":" + which + "@" + digest, nil
}

// delete removes a pinned reference's manifest.
func (r *registry) delete(ctx context.Context, pinned string) error {
	repo, which, err := r.split(pinned)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, r.scheme+"://"+r.host+"/v2/"+repo+"/manifests/"+which, nil)
	if err != nil {
		return err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("kubernetes: registry: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("kubernetes: registry: delete %s: %s", pinned, resp.Status)
	}
	return nil
}

// sameImage reports whether two pinned references name one image: the same
// repository and digest, whatever the tag.
func sameImage(a, b string) bool {
	na, err1 := reference.ParseNormalizedNamed(a)
	nb, err2 := reference.ParseNormalizedNamed(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	da, ok1 := na.(reference.Digested)
	db, ok2 := nb.(reference.Digested)
	return ok1 && ok2 && na.Name() == nb.Name() && da.Digest() == db.Digest()
}

// labels reads an image's labels from its configuration in the registry
// (a Docker or OCI manifest; an index is refused: the Builder pushes one
// platform).
func (r *registry) labels(ctx context.Context, pinned string) (map[string]string, error) {
	repo, which, err := r.split(pinned)
	if err != nil {
		return nil, err
	}
	var manifest struct {
		MediaType string `json:"mediaType"`
		Config    struct {
			Digest string `json:"digest"`
		} `json:"config"`
	}
	if err := r.getJSON(ctx, "/v2/"+repo+"/manifests/"+which, &manifest); err != nil {
		return nil, err
	}
	if manifest.Config.Digest == "" {
		return nil, fmt.Errorf("kubernetes: image %s: a manifest of one image is required (got %q)", pinned, manifest.MediaType)
	}
	var config struct {
		Config struct {
			Labels map[string]string `json:"Labels"`
		} `json:"config"`
	}
	if err := r.getJSON(ctx, "/v2/"+repo+"/blobs/"+manifest.Config.Digest, &config); err != nil {
		return nil, err
	}
	return config.Config.Labels, nil
}

func (r *registry) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.scheme+"://"+r.host+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", manifestTypes)
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("kubernetes: registry: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("kubernetes: registry: GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(v); err != nil {
		return fmt.Errorf("kubernetes: registry: GET %s: %w", path, err)
	}
	return nil
}
