package docker

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// recorder collects the build output and counts the writes.
type recorder struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes++
	return r.buf.Write(p)
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// buildImage runs BuildImage and removes the image when the test ends.
func buildImage(t *testing.T, d *Driver, ctx context.Context, spec driver.ImageSpec, out *recorder) (string, error) {
	t.Helper()
	id, err := d.BuildImage(ctx, spec, out)
	if err == nil {
		ref := id
		if spec.Tag != "" {
			ref = spec.Tag
		}
		t.Cleanup(func() {
			if err := d.RemoveImage(context.Background(), ref); err != nil {
				t.Errorf("cleanup: RemoveImage(%s): %v", ref, err)
			}
		})
	}
	return id, err
}

func TestBuildImage(t *testing.T) {
	d := newDriver(t)
	probeImage(t, d)
	ctx := context.Background()

	t.Run("output streamed and id returned", func(t *testing.T) {
		dir := probeContext(t, probeDockerfile+"LABEL test.unique="+testRun+"\n")
		os.Symlink("probe", filepath.Join(dir, "inner-link"))
		tag := "hershy-test-build:" + testRun
		var out recorder
		id, err := buildImage(t, d, ctx, driver.ImageSpec{
			ContextDir: dir, Tag: tag, MaxContext: 64 << 20,
			Labels: map[string]string{driver.LabelBuild: "b1", driver.LabelInstance: testRun},
		}, &out)
		if err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		text := out.String()
		for _, want := range []string{"Step 1/6 : FROM scratch", "Step 2/6 : COPY probe /probe", "Step 5/6 : LABEL org.hershy.build-id=b1", "Successfully built", "Successfully tagged " + tag} {
			if !strings.Contains(text, want) {
				t.Errorf("build output lacks %q:\n%s", want, text)
			}
		}
		if out.writes < 4 || strings.Contains(text, `{"stream"`) {
			t.Errorf("output not decoded as it came (%d writes):\n%s", out.writes, text)
		}
		ins, err := d.Client().ImageInspect(ctx, tag)
		if err != nil || ins.ID != id || ins.Config.Labels[driver.LabelBuild] != "b1" {
			t.Errorf("image %s: id %s labels %v, %v", tag, ins.ID, ins.Config.Labels, err)
		}
		if ok, err := d.ImageExists(ctx, id); !ok || err != nil {
			t.Errorf("ImageExists(id) = %v, %v", ok, err)
		}
	})

	t.Run("builder error returned with its message", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY not-there /x\n"), 0o644)
		var out recorder
		_, err := buildImage(t, d, ctx, driver.ImageSpec{ContextDir: dir, Tag: "hershy-test-fail:" + testRun}, &out)
		if err == nil || !strings.Contains(err.Error(), "COPY failed") || !strings.Contains(err.Error(), "not-there") {
			t.Fatalf("err = %v, want the builder's COPY failure", err)
		}
		if !strings.Contains(out.String(), "Step 2/2 : COPY not-there /x") {
			t.Errorf("output:\n%s", out.String())
		}
	})

	t.Run("policy refusal before the engine", func(t *testing.T) {
		for df, want := range map[string]string{
			"FROM scratch\nNOSUCHINSTRUCTION x\n":                              "line 2: unknown instruction NOSUCHINSTRUCTION",
			"FROM " + probeTag + "\nRUN [\"/probe\", \"-serve=false\"]\n":      "line 2: RUN is not allowed",
			"FROM scratch\nCOPY \\\n\n--from=" + probeTag + " /probe /probe\n": "line 2: COPY continues over an empty line",
			"FROM scratch\nADD http://127.0.0.1:1/x /x\n":                      "line 2: ADD is not allowed",
		} {
			dir := probeContext(t, df)
			var out recorder
			_, err := buildImage(t, d, ctx, driver.ImageSpec{ContextDir: dir}, &out)
			if err == nil || !strings.Contains(err.Error(), "Dockerfile: "+want) {
				t.Errorf("%q: err = %v, want %q", df, err, want)
			}
			if out.String() != "" {
				t.Errorf("%q: the build reached the engine:\n%s", df, out.String())
			}
		}
	})

	t.Run("missing base image refused without pulling", func(t *testing.T) {
		for _, df := range []string{
			"FROM hershy-test-missing:" + testRun + "\nCOPY probe /probe\n",
			"FROM scratch AS s\nFROM hershy-test-missing:" + testRun + "\n",
			"FROM scratch\nCOPY --from=hershy-test-missing:" + testRun + " /x /x\n",
		} {
			dir := probeContext(t, df)
			var out recorder
			start := time.Now()
			_, err := buildImage(t, d, ctx, driver.ImageSpec{ContextDir: dir}, &out)
			if err == nil || !strings.Contains(err.Error(), `"hershy-test-missing:`+testRun+`" is not present`) || !strings.Contains(err.Error(), "never pulled") {
				t.Fatalf("err = %v", err)
			}
			if out.String() != "" {
				t.Errorf("the build reached the engine:\n%s", out.String())
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("refusal took %v", took)
			}
		}
		// A local base image is fine.
		dir := t.TempDir()
		df := "FROM " + probeTag + "\nENV PROBE_TEST=1\n"
		os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644)
		var out recorder
		if _, err := buildImage(t, d, ctx, driver.ImageSpec{ContextDir: dir, Tag: "hershy-test-local:" + testRun}, &out); err != nil {
			t.Fatalf("build FROM the local probe image: %v\n%s", err, out.String())
		}
	})

	t.Run("base image with ONBUILD triggers refused", func(t *testing.T) {
		// As an operator might load it: built with the engine directly.
		tag := "hershy-test-onbuild:" + testRun
		rawBuild(t, d, tag, "FROM "+probeTag+"\nONBUILD COPY probe /onbuild-probe\n")
		dir := probeContext(t, "FROM "+tag+"\nENV X=1\n")
		var out recorder
		_, err := buildImage(t, d, ctx, driver.ImageSpec{ContextDir: dir}, &out)
		if err == nil || !strings.Contains(err.Error(), "line 1: base image \""+tag+"\" has ONBUILD triggers") || out.String() != "" {
			t.Fatalf("err = %v, output %q", err, out.String())
		}
		// COPY --from such an image runs no trigger, and is fine.
		dir = probeContext(t, "FROM scratch\nCOPY --from="+tag+" /probe /probe\n")
		if _, err := buildImage(t, d, ctx, driver.ImageSpec{ContextDir: dir, Tag: "hershy-test-onbuild-copy:" + testRun}, &out); err != nil {
			t.Fatalf("COPY --from an image with triggers: %v\n%s", err, out.String())
		}
	})

	t.Run("context cap and escaping symlink refused before the engine", func(t *testing.T) {
		dir := probeContext(t, probeDockerfile)
		var out recorder
		_, err := buildImage(t, d, ctx, driver.ImageSpec{ContextDir: dir, MaxContext: 1 << 20}, &out)
		if err == nil || !strings.Contains(err.Error(), "over the cap of 1048576 bytes") || out.String() != "" {
			t.Fatalf("err = %v, output %q", err, out.String())
		}
		os.Symlink("/etc/shadow", filepath.Join(dir, "shadow"))
		_, err = buildImage(t, d, ctx, driver.ImageSpec{ContextDir: dir}, &out)
		if err == nil || !strings.Contains(err.Error(), "outside the context") || out.String() != "" {
			t.Fatalf("err = %v, output %q", err, out.String())
		}
		if _, err := buildImage(t, d, ctx, driver.ImageSpec{ContextDir: dir, Dockerfile: "../Dockerfile"}, &out); err == nil {
			t.Fatal("a Dockerfile outside the context was accepted")
		}
	})

	t.Run("timeout cancels the build", func(t *testing.T) {
		dir := probeContext(t, probeDockerfile)
		// A large (sparse) file makes the upload last long enough for the
		// deadline to fall inside the build.
		f, err := os.Create(filepath.Join(dir, "big"))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(256 << 20); err != nil {
			t.Fatal(err)
		}
		f.Close()
		tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		tag := "hershy-test-slow:" + testRun
		_, err = buildImage(t, d, tctx, driver.ImageSpec{ContextDir: dir, Tag: tag}, &recorder{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
		if ok, _ := d.ImageExists(ctx, tag); ok {
			t.Error("the cancelled build produced an image")
		}
	})
}

// rawBuild builds an image with the engine directly, bypassing the
// driver's checks (as an operator loading an image would), and removes it
// when the test ends.
func rawBuild(t *testing.T, d *Driver, tag, dockerfile string) {
	t.Helper()
	rawBuildDir(t, d, tag, probeContext(t, dockerfile))
}

// rawBuildDir is rawBuild of a context directory holding its Dockerfile.
func rawBuildDir(t *testing.T, d *Driver, tag, dir string) {
	t.Helper()
	cmd := exec.Command("docker", "build", "-q", "--network", "none", "--label", driver.LabelInstance+"="+testRun, "-t", tag, dir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker build %s: %v\n%s", tag, err, out)
	}
	t.Cleanup(func() {
		if err := d.RemoveImage(context.Background(), tag); err != nil {
			t.Errorf("cleanup: RemoveImage(%s): %v", tag, err)
		}
	})
}

// TestRemoveImage: in use refused, then removed, then missing is fine.
func TestRemoveImage(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	h := newHarness(t, d, driver.RuntimeRunc)
	dir := probeContext(t, probeDockerfile+"LABEL test.remove="+testRun+"\n")
	tag := "hershy-test-remove:" + testRun
	id, err := d.BuildImage(ctx, driver.ImageSpec{ContextDir: dir, Tag: tag}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.RemoveImage(context.Background(), id) })
	spec := h.spec("remove-image", "")
	spec.Image = tag
	cid := h.create(spec)

	err = d.RemoveImage(ctx, tag)
	if !errors.Is(err, ErrImageInUse) || !strings.Contains(err.Error(), spec.Name) {
		t.Fatalf("RemoveImage of an image in use: %v", err)
	}
	if ok, _ := d.ImageExists(ctx, tag); !ok {
		t.Fatal("image in use was removed")
	}
	if err := d.RemoveContainer(ctx, cid); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveImage(ctx, tag); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{tag, id} {
		if ok, err := d.ImageExists(ctx, ref); ok || err != nil {
			t.Errorf("ImageExists(%s) after removal = %v, %v", ref, ok, err)
		}
	}
	if err := d.RemoveImage(ctx, tag); err != nil {
		t.Errorf("removing a missing image: %v", err)
	}
}
