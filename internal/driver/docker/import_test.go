package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/imagetar"
)

// TestDecodeImport: the engine's answer to an import is read whole; an
// error in it fails the import (the engine has answered 200 by then), and
// it must name exactly one image id.
func TestDecodeImport(t *testing.T) {
	id := "sha256:" + strings.Repeat("ab", 32)
	for name, c := range map[string]struct {
		body, want, err string
	}{
		"id":                   {body: `{"status":"` + id + `"}` + "\n", want: id},
		"error":                {body: `{"errorDetail":{"message":"Error processing tar file"},"error":"Error processing tar file"}`, err: "Error processing tar file"},
		"error without detail": {body: `{"error":"no space left on device"}`, err: "no space left"},
		"error after the id":   {body: `{"status":"` + id + `"}{"error":"disk full"}`, err: "disk full"},
		"nothing":              {body: ``, err: "no single image id"},
		"two ids":              {body: `{"status":"` + id + `"}{"status":"` + id + `"}`, err: "no single image id"},
		"not an id":            {body: `{"status":"Downloading"}`, err: "no single image id"},
		"not JSON":             {body: `<html>bad gateway</html>`, err: "reading the engine's answer"},
		"cut JSON":             {body: `{"status":"sha256:ab`, err: "reading the engine's answer"},
	} {
		got, err := decodeImport(strings.NewReader(c.body))
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%s: %q, %v; want %q", name, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %q, %v; want an error with %q", name, got, err, c.err)
		}
	}
}

// TestImportChanges: the settings as Dockerfile instructions, one line
// each, every value one double-quoted word.
func TestImportChanges(t *testing.T) {
	got := importChanges(driver.ImportSpec{
		Tag: "x", User: "65532:65532",
		Env:        []string{"PATH=/bin", `Q=a "b" $c \d`},
		Entrypoint: []string{"/app", "-x", `$y "z"`},
		Labels:     map[string]string{"b": "2", "a": `x" c="y`},
	})
	want := []string{
		"USER 65532:65532",
		`ENV PATH="/bin" Q="a \"b\" \$c \\d"`,
		`ENTRYPOINT ["/app","-x","$y \"z\""]`,
		`LABEL a="x\" c=\"y" b="2"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// importBytes imports layer with spec and removes the image when the test
// ends.
func importBytes(t *testing.T, d *Driver, spec driver.ImportSpec, layer io.Reader) (string, error) {
	t.Helper()
	id, err := d.ImportImage(context.Background(), spec, layer)
	if err == nil {
		t.Cleanup(func() {
			if err := d.RemoveImage(context.Background(), spec.Tag); err != nil {
				t.Errorf("cleanup: RemoveImage(%s): %v", spec.Tag, err)
			}
		})
	}
	return id, err
}

func testSpec(what string) driver.ImportSpec {
	tag := "hershy-test-" + what + "-" + testRun
	return driver.ImportSpec{
		Tag: tag, User: "65532:65532", Entrypoint: []string{"/app"},
		Labels: map[string]string{driver.LabelManaged: "true", driver.LabelInstance: testRun},
	}
}

func layerOf(t *testing.T, files ...imagetar.File) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := imagetar.WriteLayer(&b, files); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestImportImageSettingsAsGiven: values that would change the meaning of
// a Dockerfile line if pasted into it (a quote closing the value and
// starting another label, variables, escapes) reach the image as they were
// given, and add nothing to it.
func TestImportImageSettingsAsGiven(t *testing.T) {
	d := newDriver(t)
	spec := testSpec("quoting")
	spec.Labels["hershy.test.value"] = `x" ` + driver.LabelProgram + `="victim`
	spec.Labels["hershy.test.vars"] = `$HOME ${PATH:-none} \$ \\ \`
	spec.Env = []string{`A=$PATH`, `B=x" C="y`, `C=\`}
	spec.Entrypoint = []string{"/app", "$HOME", `a"b`}
	id, err := importBytes(t, d, spec, bytes.NewReader(layerOf(t, imagetar.File{Path: "/app", Mode: 0o755, Size: 2, Content: strings.NewReader("hi")})))
	if err != nil {
		t.Fatal(err)
	}
	ins, err := d.Client().ImageInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	c := ins.Config
	if !maps.Equal(c.Labels, spec.Labels) || !slices.Equal(c.Env, spec.Env) || !slices.Equal(c.Entrypoint, spec.Entrypoint) || c.User != spec.User {
		t.Errorf("image config:\n labels %q\n env %q\n entrypoint %q\n user %q\nwant the spec's:\n %+v", c.Labels, c.Env, c.Entrypoint, c.User, spec)
	}
}

// TestImportImageWholeLayerOnly: a layer that stops in the middle of a
// file, cleanly or with its reader's error, makes no image (the builder
// counts on it: an image under the tag is reused).
func TestImportImageWholeLayerOnly(t *testing.T) {
	d := newDriver(t)
	data := strings.Repeat("layer data ", 300)
	layer := layerOf(t, imagetar.File{Path: "/app", Mode: 0o755, Size: int64(len(data)), Content: strings.NewReader(data)})
	for what, r := range map[string]io.Reader{
		"cut cleanly":     bytes.NewReader(layer[:1500]),
		"cut by an error": io.MultiReader(bytes.NewReader(layer[:1500]), iotest.ErrReader(errors.New("the writer failed"))),
	} {
		spec := testSpec("cut")
		id, err := importBytes(t, d, spec, r)
		t.Logf("%s: %v", what, err)
		if err == nil {
			t.Errorf("%s: ImportImage = %s, nil", what, id)
		}
		if ok, err := d.ImageExists(context.Background(), spec.Tag); ok || err != nil {
			d.RemoveImage(context.Background(), spec.Tag)
			t.Errorf("%s: the image is left: %v, %v", what, ok, err)
		}
	}
	if id, err := importBytes(t, d, testSpec("whole"), bytes.NewReader(layer)); err != nil {
		t.Errorf("the whole layer: %s, %v", id, err)
	}
}

// TestImportImageContentIsOpaque: a program binary is one file's bytes,
// whatever they hold. Here they are a tarball with a manifest, a path out
// of the root and a setuid shell; the engine stores exactly the files the
// Host named, as `docker save` of the image shows.
func TestImportImageContentIsOpaque(t *testing.T) {
	d := newDriver(t)
	var evil bytes.Buffer
	tw := tar.NewWriter(&evil)
	for _, h := range []*tar.Header{
		{Name: "manifest.json", Size: 2, Mode: 0o644},
		{Name: "../../../etc/hershy-evil", Size: 2, Mode: 0o644},
		{Name: "bin/sh", Size: 2, Mode: 0o4755},
	} {
		tw.WriteHeader(h)
		tw.Write([]byte("[]"))
	}
	tw.Close()
	layer := layerOf(t,
		imagetar.File{Path: "/app", Mode: 0o755, Size: int64(evil.Len()), Content: bytes.NewReader(evil.Bytes())},
		imagetar.File{Path: "/state", Mode: fs.ModeDir | 0o700, UID: 65532, GID: 65532},
	)
	id, err := importBytes(t, d, testSpec("opaque"), bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := d.Client().ImageSave(context.Background(), []string{id})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files, err := imagetar.ReadSaved(rc)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, fmt.Sprintf("%s %v %d:%d %d", f.Path, f.Mode, f.UID, f.GID, f.Size))
	}
	if want := fmt.Sprintf("/app -rwxr-xr-x 0:0 %d, /state drwx------ 65532:65532 0", evil.Len()); strings.Join(got, ", ") != want {
		t.Errorf("the engine stored %q, want %q", got, want)
	}
}
