package drivertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing/iotest"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/imagetar"
)

// imageLabel is put on every image the kit imports, with its tag, so its
// containers can be told from others' by a label the engine copies.
const imageLabel = "hershy.drivertest.image"

// tricky is a value an engine that carries settings as text must quote:
// quotes, variables, escapes, spaces, an "=".
const tricky = `a "quoted" 'word' $HOME ${PATH} \back\slash x=y \`

// probeLayer is an image of the probe as the Host makes its Go-source
// images: the binary in a folder of its own, run as the entrypoint with
// arguments, a user, an environment, labels (a Host label among them) and
// a /state folder only the program's user may enter.
func (k *kit) probeLayer(tag, envValue string) (driver.ImportSpec, []imagetar.File) {
	k.t.Helper()
	f, err := os.Open(k.fx.ProbeBinary)
	if err != nil {
		k.t.Fatalf("Fixture.ProbeBinary: %v", err)
	}
	k.t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		k.t.Fatal(err)
	}
	note := "a note for the program\n"
	spec := driver.ImportSpec{
		Tag:        tag,
		User:       "65532:65532",
		Env:        []string{"PATH=/kit", "KIT_FROM_IMAGE=" + envValue, "KIT_OVERRIDDEN=image", "KIT_TRICKY=" + tricky},
		Entrypoint: []string{"/kit/probe", "-lines", "1"},
		Labels:     k.labelsImage(map[string]string{imageLabel: tag, driver.LabelBuild: "kit-build", "hershy.drivertest.tricky": tricky}),
	}
	return spec, []imagetar.File{
		{Path: "/kit", Mode: fs.ModeDir | 0o755},
		{Path: "/kit/probe", Mode: 0o755, Size: st.Size(), Content: f},
		{Path: "/kit/note", Mode: 0o640, UID: 65532, GID: 65532, Size: int64(len(note)), Content: strings.NewReader(note)},
		{Path: "/state", Mode: fs.ModeDir | 0o700, UID: 65532, GID: 65532},
	}
}

// importLayer streams files into ImportImage as the Host does (written
// while it is read).
func (k *kit) importLayer(spec driver.ImportSpec, files []imagetar.File) (string, error) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(imagetar.WriteLayer(pw, files))
	}()
	id, err := k.d.ImportImage(k.ctx, spec, pr)
	pr.CloseWithError(errors.New("ImportImage has returned"))
	<-done
	return id, err
}

// removeImageAtEnd removes ref when the check ends (after the containers
// created later, whose removals run first).
func (k *kit) removeImageAtEnd(ref string) {
	k.t.Cleanup(func() {
		if err := k.d.RemoveImage(context.Background(), ref); err != nil {
			k.t.Errorf("cleanup: RemoveImage(%s): %v", ref, err)
		}
	})
}

// probe asks the probe for a route answering a probeResult.
func (k *kit) probe(c *client, route string) probeResult {
	k.t.Helper()
	var r probeResult
	if err := json.Unmarshal([]byte(k.get(c, route)), &r); err != nil {
		k.t.Fatalf("GET %s: %v", route, err)
	}
	return r
}

// checkImportImage: ImportImage makes an image, in one call, of a layer
// package imagetar streams, and returns its id; the image exists by id and
// by tag. A container of it runs its entrypoint with its arguments, has
// its environment under the spec's (the spec's entry wins), sees its files
// with their owners and modes, gets its labels except the Host's
// (blanked), and cannot write even where the image lets its user (the root
// is read-only). Values with quotes, variables and escapes arrive as they
// were given. Importing the tag again moves it to the new image; the old
// one stays for the container that uses it.
func checkImportImage(k *kit) {
	t, ctx := k.t, k.ctx
	tag := k.tag("imported")
	id, err := k.importLayer(k.probeLayer(tag, "first"))
	if err != nil {
		t.Fatalf("ImportImage: %v", err)
	}
	k.removeImageAtEnd(id)
	for _, ref := range []string{id, tag} {
		if ok, err := k.d.ImageExists(ctx, ref); !ok || err != nil {
			t.Errorf("ImageExists(%s) = %v, %v", ref, ok, err)
		}
	}

	s := k.spec("imported", "")
	s.Image, s.User, s.Env = tag, "65532:65532", []string{"KIT_OVERRIDDEN=spec"}
	cid := k.create(s)
	info := k.inspect(cid)
	if info.Image != id {
		t.Errorf("container of image %q, want the imported %q", info.Image, id)
	}
	if info.Labels[imageLabel] != tag || info.Labels["hershy.drivertest.tricky"] != tricky || info.Labels[driver.LabelBuild] != "" {
		t.Errorf("container labels %v: want the image's %s and tricky label, and its %s blanked", info.Labels, imageLabel, driver.LabelBuild)
	}
	k.start(cid)
	c := k.client(cid)
	k.waitReady(c)
	for route, want := range map[string]string{
		"/env?name=KIT_FROM_IMAGE": "first",
		"/env?name=KIT_OVERRIDDEN": "spec",
		"/env?name=KIT_TRICKY":     tricky,
		"/uid":                     "65532:65532",
		"/stat?path=/state":        "drwx------ 65532:65532",
		"/stat?path=/kit/probe":    "-rwxr-xr-x 0:0",
		"/stat?path=/kit/note":     "-rw-r----- 65532:65532",
	} {
		if r := k.probe(c, route); r.Value != want {
			t.Errorf("GET %s = %+v, want %q", route, r, want)
		}
	}
	if r := k.probe(c, "/write?path=/state/kit-file"); r.OK {
		t.Error("the program wrote into its image's /state: the root is not read-only")
	}
	k.eventually("the entrypoint's arguments at work (line 1 in the logs)", func() bool {
		rc, err := k.d.Logs(ctx, cid, time.Time{}, false)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return strings.Contains(string(b), "line 1 out")
	})

	id2, err := k.importLayer(k.probeLayer(tag, "second"))
	if err != nil {
		t.Fatalf("ImportImage of the same tag again: %v", err)
	}
	k.removeImageAtEnd(tag)
	if id2 == id {
		t.Fatalf("a second import has the same id %s", id)
	}
	s2 := k.spec("reimported", "")
	s2.Image = tag
	if info := k.inspect(k.create(s2)); info.Image != id2 {
		t.Errorf("after the second import the tag names %q, want %q", info.Image, id2)
	}
	if ok, err := k.d.ImageExists(ctx, id); !ok || err != nil {
		t.Errorf("the first image, still used, is gone after the tag moved: %v, %v", ok, err)
	}
}

// failingReader fails the check if it is read: a refused spec must be
// refused before the layer is touched.
type failingReader struct{ k *kit }

func (r failingReader) Read([]byte) (int, error) {
	r.k.t.Error("the layer of a refused spec was read")
	return 0, io.EOF
}

// checkImportImageFailure: a layer the engine cannot take whole makes no
// image, and ImportImage fails: a stream cut short by its writer's error,
// one that stops cleanly in the middle of a file, one that is not a tar.
// A spec with a value an engine could misread (a line break, which would
// start an instruction of its own where settings travel as Dockerfile
// lines), a root or named user, a bad tag, a malformed environment entry
// or label key, or no entrypoint, is refused with ErrInvalidSpec before
// the layer is read.
func checkImportImageFailure(k *kit) {
	tag := k.tag("broken")
	spec := driver.ImportSpec{Tag: tag, User: "65532:65532", Entrypoint: []string{"/kit/data"}, Labels: k.labelsImage(map[string]string{imageLabel: tag})}
	var layer bytes.Buffer
	data := strings.Repeat("kit data ", 200)
	if err := imagetar.WriteLayer(&layer, []imagetar.File{
		{Path: "/kit", Mode: fs.ModeDir | 0o755},
		{Path: "/kit/data", Mode: 0o644, Size: int64(len(data)), Content: strings.NewReader(data)},
	}); err != nil {
		k.t.Fatal(err)
	}
	for what, r := range map[string]io.Reader{
		"a stream cut short by an error":          io.MultiReader(bytes.NewReader(layer.Bytes()[:1000]), iotest.ErrReader(errors.New("kit: the writer failed"))),
		"a stream ending in the middle of a file": bytes.NewReader(layer.Bytes()[:1000]),
		"not a tar": strings.NewReader(strings.Repeat("not a tar ", 200)),
	} {
		id, err := k.d.ImportImage(k.ctx, spec, r)
		if err == nil {
			k.d.RemoveImage(context.Background(), id)
			k.t.Errorf("%s: ImportImage = %q, nil", what, id)
		}
		if ok, _ := k.d.ImageExists(k.ctx, tag); ok {
			k.d.RemoveImage(context.Background(), tag)
			k.t.Errorf("%s: an image was made", what)
		}
	}

	for what, weaken := range map[string]func(*driver.ImportSpec){
		"a line break in a label":      func(s *driver.ImportSpec) { s.Labels = map[string]string{"k": "v\nUSER 0:0"} },
		"a line break in the env":      func(s *driver.ImportSpec) { s.Env = []string{"A=1\nUSER 0:0"} },
		"a NUL in the entrypoint":      func(s *driver.ImportSpec) { s.Entrypoint = []string{"/kit/data\x00"} },
		"user root":                    func(s *driver.ImportSpec) { s.User = "0:0" },
		"named user":                   func(s *driver.ImportSpec) { s.User = "nobody" },
		"no user":                      func(s *driver.ImportSpec) { s.User = "" },
		"no tag":                       func(s *driver.ImportSpec) { s.Tag = "" },
		"a tag in capitals":            func(s *driver.ImportSpec) { s.Tag = "Kit" },
		"a digest":                     func(s *driver.ImportSpec) { s.Tag = "kit@sha256:" + strings.Repeat("a", 64) },
		"an env entry without a value": func(s *driver.ImportSpec) { s.Env = []string{"PATH"} },
		"an env name with a space":     func(s *driver.ImportSpec) { s.Env = []string{"A B=1"} },
		"a label key with a space":     func(s *driver.ImportSpec) { s.Labels = map[string]string{"a b": "1"} },
		"no entrypoint":                func(s *driver.ImportSpec) { s.Entrypoint = nil },
	} {
		s := spec
		weaken(&s)
		if id, err := k.d.ImportImage(k.ctx, s, failingReader{k}); !errors.Is(err, driver.ErrInvalidSpec) {
			if err == nil {
				k.d.RemoveImage(context.Background(), id)
			}
			k.t.Errorf("%s: ImportImage = %q, %v; want ErrInvalidSpec", what, id, err)
		}
	}
	if ok, _ := k.d.ImageExists(k.ctx, tag); ok {
		k.t.Error("a refused spec made an image")
	}
}
