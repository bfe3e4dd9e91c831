package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/imagetar"
)

// TestDecodeLoad: the engine's answer to a load is read whole; an error in
// it fails the load even after a line that says an image was loaded (the
// engine answers 200 and reports failures inside the stream), and it must
// name exactly one image.
func TestDecodeLoad(t *testing.T) {
	for name, c := range map[string]struct {
		body, want, err string
	}{
		"tagged":   {body: `{"stream":"Loaded image: hersh-program-x:latest\n"}`, want: "hersh-program-x:latest"},
		"untagged": {body: `{"stream":"Loaded image ID: sha256:abc\n"}`, want: "sha256:abc"},
		"renamed": {body: `{"stream":"The image a:latest already exists, renaming the old one with ID sha256:0 to empty string\n"}` +
			`{"stream":"Loaded image: a:latest\n"}`, want: "a:latest"},
		"split lines":          {body: `{"stream":"Loaded ima"}{"stream":"ge: a:latest\n"}`, want: "a:latest"},
		"error":                {body: `{"errorDetail":{"message":"invalid diffID for layer 0"},"error":"invalid diffID for layer 0"}`, err: "invalid diffID"},
		"error without detail": {body: `{"error":"open manifest.json: no such file"}`, err: "manifest.json"},
		"error after success":  {body: `{"stream":"Loaded image: a:latest\n"}{"errorDetail":{"message":"disk full"},"error":"disk full"}`, err: "disk full"},
		"nothing":              {body: ``, err: "names 0 images"},
		"no image line":        {body: `{"stream":"hello\n"}`, err: "names 0 images"},
		"two images":           {body: `{"stream":"Loaded image: a:latest\nLoaded image: b:latest\n"}`, err: "names 2 images"},
		"not JSON":             {body: `<html>bad gateway</html>`, err: "reading the engine's answer"},
		"cut JSON":             {body: `{"stream":"Loaded image: a:lat`, err: "reading the engine's answer"},
	} {
		got, err := decodeLoad(strings.NewReader(c.body))
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%s: %q, %v; want %q", name, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %q, %v; want an error with %q", name, got, err, c.err)
		}
	}
}

// TestLoadImageEngineRefusal: a tarball the engine refuses (a layer that
// does not match its config's digest) fails with the engine's own words.
func TestLoadImageEngineRefusal(t *testing.T) {
	d := newDriver(t)
	tag := "hershy-test-corrupt-" + testRun
	var buf bytes.Buffer
	_, err := imagetar.Write(&buf, imagetar.Image{Tag: tag, Files: []imagetar.File{
		{Path: "/data", Mode: 0o644, Size: 8, Content: strings.NewReader("original")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Replace(buf.Bytes(), []byte("original"), []byte("tampered"), 1)
	id, err := d.LoadImage(context.Background(), bytes.NewReader(corrupt))
	if err == nil {
		d.RemoveImage(context.Background(), id)
		t.Fatal("the engine loaded a corrupt layer")
	}
	if !strings.Contains(err.Error(), "invalid diffID") {
		t.Errorf("LoadImage = %v, want the engine's refusal", err)
	}
}

// TestLoadImageContentIsOpaque: a program binary is one file's bytes,
// whatever they hold. Here they are a tarball with a manifest, a path out
// of the root and a setuid shell; the engine stores exactly the files the
// Host named, as `docker save` of the loaded image shows.
func TestLoadImageContentIsOpaque(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
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
	tag := "hershy-test-opaque-" + testRun
	img := imagetar.Image{
		Tag:    tag,
		Config: imagetar.Config{Labels: map[string]string{driver.LabelManaged: "true", driver.LabelInstance: testRun}},
		Files: []imagetar.File{
			{Path: "/app", Mode: 0o755, Size: int64(evil.Len()), Content: bytes.NewReader(evil.Bytes())},
			{Path: "/state", Mode: fs.ModeDir | 0o700, UID: 65532, GID: 65532},
		},
	}
	var buf bytes.Buffer
	if _, err := imagetar.Write(&buf, img); err != nil {
		t.Fatal(err)
	}
	id, err := d.LoadImage(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.RemoveImage(context.Background(), tag) })
	saved := savedImage(t, d, id)
	var got []string
	for _, f := range saved.Files {
		got = append(got, f.Path+" "+f.Mode.String())
	}
	if strings.Join(got, ", ") != "/app -rwxr-xr-x, /state drwx------" || saved.Files[0].Size != int64(evil.Len()) {
		t.Errorf("the engine stored %q (%+v)", got, saved.Files)
	}
}

// savedImage reads back an image as the engine stores it (docker save).
func savedImage(t *testing.T, d *Driver, ref string) *imagetar.Contents {
	t.Helper()
	rc, err := d.Client().ImageSave(context.Background(), []string{ref})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	c, err := imagetar.Read(rc)
	if err != nil {
		t.Fatalf("reading docker save of %s: %v", ref, err)
	}
	return c
}
