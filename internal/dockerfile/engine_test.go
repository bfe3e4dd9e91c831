package dockerfile_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/hershyorg/hershy/internal/dockerfile"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/docker"
	"github.com/hershyorg/hershy/internal/testenv"
)

// run tells this test's images and containers from anything else on the
// shared engine.
var run = fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffffff)

// engineBuild is an image the engine built: what it made of a Dockerfile.
type engineBuild struct {
	t  *testing.T
	d  *docker.Driver
	id string
}

// buildContext writes a build context: the Dockerfile and a file "f"
// holding "context".
func buildContext(t *testing.T, df string) string {
	return testenv.WriteFiles(t, map[string]string{"Dockerfile": df, "f": "context"})
}

// build builds df through the driver (the Host's path: no pull, network
// none, the policy checked again) and removes the image at the end.
func build(t *testing.T, d *docker.Driver, tag, df string) engineBuild {
	t.Helper()
	var out strings.Builder
	id, err := d.BuildImage(context.Background(), driver.ImageSpec{
		ContextDir: buildContext(t, df), Tag: tag,
		Labels: map[string]string{driver.LabelInstance: "dftest-" + run},
	}, &out)
	if err != nil {
		t.Fatalf("build %s: %v\n%s", tag, err, out.String())
	}
	t.Cleanup(func() { removeImage(t, d, tag) })
	return engineBuild{t: t, d: d, id: id}
}

// rawBuild builds df with the engine's legacy builder directly (docker
// build, no driver, no policy), as an attacker would like the Host to.
func rawBuild(t *testing.T, d *docker.Driver, tag, df string) engineBuild {
	t.Helper()
	cmd := exec.Command("docker", "build", "-q", "--network", "none", "-t", tag, buildContext(t, df))
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker build %s: %v\n%s%s", tag, err, out, stderr.String())
	}
	t.Cleanup(func() { removeImage(t, d, tag) })
	return engineBuild{t: t, d: d, id: strings.TrimSpace(string(out))}
}

func removeImage(t *testing.T, d *docker.Driver, ref string) {
	if err := d.RemoveImage(context.Background(), ref); err != nil {
		t.Errorf("cleanup: remove image %s: %v", ref, err)
	}
}

// layers are the image's layer digests, base first.
func (b engineBuild) layers() []string {
	ins, err := b.d.Client().ImageInspect(context.Background(), b.id)
	if err != nil {
		b.t.Fatal(err)
	}
	return ins.RootFS.Layers
}

// builtOn reports whether the image's layers start with base's.
func (b engineBuild) builtOn(base engineBuild) bool {
	l, bl := b.layers(), base.layers()
	return len(l) >= len(bl) && reflect.DeepEqual(l[:len(bl)], bl)
}

// file reads a file of the image: from a created (never started)
// container, removed at once.
func (b engineBuild) file(path string) string {
	b.t.Helper()
	ctx := context.Background()
	cli := b.d.Client()
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: b.id, Cmd: []string{"/none"}, Labels: map[string]string{driver.LabelInstance: "dftest-" + run}},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		b.t.Fatal(err)
	}
	defer cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	rc, _, err := cli.CopyFromContainer(ctx, c.ID, path)
	if err != nil {
		return "" // missing
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	if _, err := tr.Next(); err != nil {
		b.t.Fatal(err)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		b.t.Fatal(err)
	}
	return string(data)
}

// TestEngineAgrees builds, with the engine's legacy builder through the
// driver, Dockerfiles the policy accepts in tricky spellings, and checks
// that the engine took exactly the bases the policy reported: the result
// is built on the reported FROM image (its layers), and files copied
// --from come from the reported image. Then the bypasses of issue 9 are
// shown to work on this engine when built without the Host (docker build),
// and to be refused by the policy and by the driver before the engine
// sees them.
func TestEngineAgrees(t *testing.T) {
	d := testenv.Engine(t, driver.RuntimeRunc)
	nameA, nameB := "hershy-dftest-a-"+run, "hershy-dftest-b-"+run
	// Two bases told apart by their layers and by the content of /who
	// (the build context's file f, copied under another name in each).
	a := build(t, d, nameA, "FROM scratch\nCOPY f /a\nCOPY f /who\nLABEL who=a\n")
	b := build(t, d, nameB, "FROM scratch\nCOPY f /b\nCOPY f /who\nLABEL who=b\n")
	who := func(img engineBuild) string { // "a", "b" or "" by the marker files
		switch {
		case img.file("/a") != "" && img.file("/b") == "":
			return "a"
		case img.file("/b") != "" && img.file("/a") == "":
			return "b"
		}
		return ""
	}
	if who(a) != "a" || who(b) != "b" || a.builtOn(b) || b.builtOn(a) {
		t.Fatal("test bases not as built")
	}

	for i, c := range []struct {
		name, dockerfile string
		bases            []string // what the policy reports
		on               *engineBuild
		copied           map[string]string // a path of the result -> the base its file comes from
	}{
		{"plain", "FROM " + nameA + "\nCOPY f /f\n", []string{"FROM " + nameA}, &a, nil},
		{"lower case and JSON", "from " + nameA + "\ncopy [\"f\", \"/f\"]\n", []string{"FROM " + nameA}, &a, nil},
		{"byte-order mark and escape directive", "\ufeff# escape=`\nFROM `\n  " + nameB + "\nCOPY f /f\n", []string{"FROM " + nameB}, &b, nil},
		{"backslash does not continue after escape=`", "# escape=`\nFROM scratch\nMAINTAINER me \\\nFROM " + nameA + "\nCOPY f /f\n", []string{"FROM " + nameA}, &a, nil},
		{"comments inside a continuation", "FROM scratch\nCOPY \\\n# note\n  --from=" + nameB + " /b /x\n", []string{"COPY --from=" + nameB}, nil, map[string]string{"/x": "/b"}},
		{"quoted --from", "FROM scratch\nCOPY --from=\"" + nameA + "\" /a /x\n", []string{"COPY --from=" + nameA}, nil, map[string]string{"/x": "/a"}},
		{"stages by name, case and index", "FROM " + nameA + " AS One\nFROM " + nameB + "\nCOPY --from=ONE /a /x\nCOPY --from=0 /a /y\n",
			[]string{"FROM " + nameA, "FROM " + nameB}, &b, map[string]string{"/x": "/a", "/y": "/a"}},
		// Inside a stage its own name is an image, not the stage.
		{"current stage's name is an image", "FROM " + nameB + " AS " + nameA + "\nCOPY --from=" + nameA + " /a /x\n",
			[]string{"FROM " + nameB, "COPY --from=" + nameA}, &b, map[string]string{"/x": "/a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := dockerfile.Check(c.dockerfile)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, base := range res.Bases {
				got = append(got, base.String())
			}
			if !reflect.DeepEqual(got, c.bases) {
				t.Fatalf("policy reports %q, want %q", got, c.bases)
			}
			img := build(t, d, fmt.Sprintf("hershy-dftest-case%d-%s", i, run), c.dockerfile)
			if c.on != nil && !img.builtOn(*c.on) {
				t.Errorf("the engine did not build on %s", c.bases[0])
			}
			if c.on == nil && (img.builtOn(a) || img.builtOn(b)) {
				t.Errorf("the engine built on a base the policy did not report")
			}
			// A file copied --from exists only in the base the policy
			// named (/a in a, /b in b): its presence in the result shows
			// which image the engine read.
			for path, src := range c.copied {
				if img.file(path) != "context" {
					t.Errorf("%s (from %s) missing: the engine read another image", path, src)
				}
			}
		})
	}

	t.Run("the bypasses work on the engine, and are refused before it", func(t *testing.T) {
		for i, c := range []struct {
			name, dockerfile string
			line             string
			check            func(raw engineBuild) bool // the engine took b
		}{
			{"blank line in COPY", "FROM " + nameA + "\nCOPY \\\n\n--from=" + nameB + " /b /victim-app\n", "line 2: COPY continues over an empty line",
				func(raw engineBuild) bool { return raw.file("/victim-app") == "context" }},
			{"blank line in ARG", "ARG IMG=scratch \\\n\nIMG=" + nameB + "\nFROM ${IMG}\nCOPY f /f\n", "line 1: ARG continues over an empty line",
				func(raw engineBuild) bool { return raw.builtOn(b) }},
		} {
			raw := rawBuild(t, d, fmt.Sprintf("hershy-dftest-raw%d-%s", i, run), c.dockerfile)
			if !c.check(raw) {
				t.Errorf("%s: the engine did not take the other image: the attack needs rewriting", c.name)
			}
			if _, err := dockerfile.Check(c.dockerfile); err == nil || !strings.Contains(err.Error(), c.line) {
				t.Errorf("%s: policy: %v, want %q", c.name, err, c.line)
			}
			var out strings.Builder
			_, err := d.BuildImage(context.Background(), driver.ImageSpec{ContextDir: buildContext(t, c.dockerfile)}, &out)
			if err == nil || !strings.Contains(err.Error(), c.line) || out.Len() > 0 {
				t.Errorf("%s: driver: %v, output %q; want a refusal before the engine", c.name, err, out.String())
			}
		}
	})
}

// TestEngineHeredoc: the engine knows no heredocs, and neither does the
// policy's parser: both refuse the same file (a newer parser would read it
// as one COPY).
func TestEngineHeredoc(t *testing.T) {
	d := testenv.Engine(t, driver.RuntimeRunc)
	df := "FROM scratch\nCOPY <<EOF /x\nhello\nEOF\n"
	if _, err := dockerfile.Check(df); err == nil || !strings.Contains(err.Error(), "line 3: unknown instruction HELLO") {
		t.Fatalf("policy: %v", err)
	}
	dir := buildContext(t, df)
	cmd := exec.Command("docker", "build", "-q", "--network", "none", "-t", "hershy-dftest-heredoc-"+run, dir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	out, err := cmd.CombinedOutput()
	if err == nil {
		removeImage(t, d, "hershy-dftest-heredoc-"+run)
		t.Fatalf("the engine built a heredoc: %s", out)
	}
	if !strings.Contains(strings.ToLower(string(out)), "unknown instruction: hello") {
		t.Errorf("engine: %v\n%s", err, out)
	}
}
