package drivertest

import (
	"archive/tar"
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

// imageLabel is put on every image the kit writes, with its tag, so its
// containers can be told from others' by a label the engine copies.
const imageLabel = "hershy.drivertest.image"

// probeTarball describes an image of the probe as the Host writes its
// Go-source images: the binary in a folder of its own, run as its
// entrypoint with arguments, a user, an environment, labels (a Host label
// among them) and a /state folder only the program's user may enter.
func (k *kit) probeTarball(tag, envValue string) imagetar.Image {
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
	return imagetar.Image{
		Tag: tag,
		Config: imagetar.Config{
			User:       "65532:65532",
			Env:        []string{"PATH=/kit", "KIT_FROM_IMAGE=" + envValue, "KIT_OVERRIDDEN=image"},
			Entrypoint: []string{"/kit/probe", "-lines", "1"},
			Labels:     k.labelsImage(map[string]string{imageLabel: tag, driver.LabelBuild: "kit-build"}),
		},
		Files: []imagetar.File{
			{Path: "/kit", Mode: fs.ModeDir | 0o755},
			{Path: "/kit/probe", Mode: 0o755, Size: st.Size(), Content: f},
			{Path: "/kit/note", Mode: 0o640, UID: 65532, GID: 65532, Size: int64(len(note)), Content: strings.NewReader(note)},
			{Path: "/state", Mode: fs.ModeDir | 0o700, UID: 65532, GID: 65532},
		},
		Created: time.Now(),
		History: "drivertest: the probe",
	}
}

// load streams img into LoadImage as the Host does (written while it is
// read) and returns the id imagetar computed and the one LoadImage
// returned.
func (k *kit) load(img imagetar.Image) (wantID, id string, err error) {
	pr, pw := io.Pipe()
	done := make(chan string, 1)
	go func() {
		id, err := imagetar.Write(pw, img)
		pw.CloseWithError(err)
		done <- id
	}()
	id, err = k.d.LoadImage(k.ctx, pr)
	pr.CloseWithError(errors.New("LoadImage has returned"))
	return <-done, id, err
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

// checkLoadImage: LoadImage loads, in one call, a tarball package imagetar
// streams, and returns the image's id, which is its config's digest; the
// image exists by id and by tag. A container of it runs its entrypoint
// with its arguments, has its environment under the spec's (the spec's
// entry wins), sees its files with their owners and modes, gets its labels
// except the Host's (blanked), and cannot write even where the image lets
// its user (the root is read-only). Loading the tag again moves it to the
// new image; the old one stays for the container that uses it.
func checkLoadImage(k *kit) {
	t, ctx := k.t, k.ctx
	tag := k.tag("loaded")
	wantID, id, err := k.load(k.probeTarball(tag, "first"))
	if err != nil {
		t.Fatalf("LoadImage: %v", err)
	}
	k.removeImageAtEnd(id)
	if id != wantID {
		t.Errorf("LoadImage returned %q, the config's digest is %q", id, wantID)
	}
	for _, ref := range []string{id, tag} {
		if ok, err := k.d.ImageExists(ctx, ref); !ok || err != nil {
			t.Errorf("ImageExists(%s) = %v, %v", ref, ok, err)
		}
	}

	s := k.spec("loaded", "")
	s.Image, s.User, s.Env = tag, "65532:65532", []string{"KIT_OVERRIDDEN=spec"}
	cid := k.create(s)
	info := k.inspect(cid)
	if info.Image != id {
		t.Errorf("container of image %q, want the loaded %q", info.Image, id)
	}
	if info.Labels[imageLabel] != tag || info.Labels[driver.LabelBuild] != "" {
		t.Errorf("container labels %v: want the image's %s, and its %s blanked", info.Labels, imageLabel, driver.LabelBuild)
	}
	k.start(cid)
	c := k.client(cid)
	k.waitReady(c)
	for route, want := range map[string]string{
		"/env?name=KIT_FROM_IMAGE": "first",
		"/env?name=KIT_OVERRIDDEN": "spec",
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

	_, id2, err := k.load(k.probeTarball(tag, "second"))
	if err != nil {
		t.Fatalf("LoadImage of the same tag again: %v", err)
	}
	k.removeImageAtEnd(tag)
	if id2 == id {
		t.Fatalf("an image of another config has the same id %s", id)
	}
	s2 := k.spec("reloaded", "")
	s2.Image = tag
	if info := k.inspect(k.create(s2)); info.Image != id2 {
		t.Errorf("after the second load the tag names %q, want %q", info.Image, id2)
	}
	if ok, err := k.d.ImageExists(ctx, id); !ok || err != nil {
		t.Errorf("the first image, still used, is gone after the tag moved: %v, %v", ok, err)
	}
}

// checkLoadImageFailure: a tarball the engine would not load makes no
// image and LoadImage fails: a layer whose bytes do not match the digest
// its config gives (the engine's refusal comes in its answer's stream,
// not as an HTTP status), a tarball cut short by its writer's error, and
// one holding no image.
func checkLoadImageFailure(k *kit) {
	tag := k.tag("corrupt")
	img := imagetar.Image{
		Tag:    tag,
		Config: imagetar.Config{User: "65532:65532", Labels: k.labelsImage(map[string]string{imageLabel: tag})},
		Files: []imagetar.File{
			{Path: "/kit", Mode: fs.ModeDir | 0o755},
			{Path: "/kit/data", Mode: 0o644, Size: 18, Content: strings.NewReader("kit-original-bytes")},
		},
	}
	var good bytes.Buffer
	if _, err := imagetar.Write(&good, img); err != nil {
		k.t.Fatal(err)
	}
	var empty bytes.Buffer
	tar.NewWriter(&empty).Close()
	half := good.Len() / 2
	for what, r := range map[string]io.Reader{
		"a layer that does not match its digest": bytes.NewReader(bytes.Replace(good.Bytes(), []byte("kit-original-bytes"), []byte("kit-tampered-bytes"), 1)),
		"a tarball cut short":                    io.MultiReader(bytes.NewReader(good.Bytes()[:half]), iotest.ErrReader(errors.New("kit: the writer failed"))),
		"no image":                               &empty,
	} {
		id, err := k.d.LoadImage(k.ctx, r)
		if err == nil {
			k.d.RemoveImage(context.Background(), id)
			k.t.Errorf("%s: LoadImage = %q, nil", what, id)
		}
		if ok, _ := k.d.ImageExists(k.ctx, tag); ok {
			k.d.RemoveImage(context.Background(), tag)
			k.t.Errorf("%s: an image was made", what)
		}
	}
}
