package builder

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/docker"
	"github.com/hershyorg/hershy/internal/driver/imagetar"
	"github.com/hershyorg/hershy/internal/source"
)

// The way Go-source images were made before they were written directly,
// kept here only to measure and compare against: a context folder with
// this Dockerfile, built by the engine's legacy builder (9 steps, 6
// intermediate containers).
var legacyImageDockerfile = fmt.Sprintf(`FROM scratch
COPY rootfs/ /
COPY --chown=%[1]d:%[2]d state/ %[3]s/
USER %[1]d:%[2]d
ENV HERSH_STATE_DIR=%[3]s HERSH_API_ADDR=%[4]s
ENTRYPOINT ["/app"]
`, ProgramUID, ProgramGID, imageStateDir, imageAPIAddr)

// legacyImageContext lays out the legacy context in dir (which must not
// exist) with the binary bin as rootfs/app.
func legacyImageContext(dir, bin string, caCerts []byte) error {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:%s:/sbin/nologin\n", programUser, ProgramUID, ProgramGID, programUser, imageStateDir)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", programUser, ProgramGID)
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{"", 0o700}, {"rootfs", 0o755}, {"rootfs/etc", 0o755}, {"rootfs/etc/ssl", 0o755},
		{"rootfs/etc/ssl/certs", 0o755}, {"rootfs/tmp", 0o777 | os.ModeSticky}, {"state", 0o700},
	} {
		p := filepath.Join(dir, filepath.FromSlash(d.path))
		if err := os.Mkdir(p, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return err
		}
	}
	app, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path    string
		content []byte
		mode    os.FileMode
	}{
		{"Dockerfile", []byte(legacyImageDockerfile), 0o644},
		{"rootfs/app", app, 0o755},
		{"rootfs/etc/passwd", []byte(passwd), 0o644},
		{"rootfs/etc/group", []byte(group), 0o644},
		{"rootfs/etc/ssl/certs/ca-certificates.crt", caCerts, 0o644},
	} {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.WriteFile(p, f.content, 0o600); err != nil {
			return err
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// imageBench is what the image-step benchmark and its comparison test
// share: the engine, a Builder on it, a program binary, the labels.
type imageBench struct {
	engine   *docker.Driver
	b        *Builder
	bin      string
	dir      string
	instance string
	lw       *logLimiter
}

func newImageBench(t testing.TB) *imageBench {
	t.Helper()
	engine := testEngine(t)
	b, err := New(t.TempDir(), engine, Options{SharedCacheDir: testSharedCache, GoProxy: "off"})
	if err != nil {
		t.Fatal(err)
	}
	ib := &imageBench{engine: engine, b: b, dir: t.TempDir(), instance: "imagebench-" + strings.ToLower(rand.Text()[:10]), lw: newLogLimiter(io.Discard, 1<<20)}
	ib.bin = ib.compile(t)
	return ib
}

// compile builds the hello program on the Host (the framework by a
// replace, as TestBuildTimings does): a real hersh binary, stripped as the
// build sandbox strips it.
func (ib *imageBench) compile(t testing.TB) string {
	t.Helper()
	if _, err := ib.b.GoVersion(); err != nil {
		t.Fatalf("no Go toolchain: %v", err)
	}
	src := filepath.Join(ib.dir, "src")
	files := helloFiles()
	files["go.mod"] = "module example.com/hello\n\ngo 1.25\n\nrequire " + FrameworkModule + " v0.0.0\n\nreplace " + FrameworkModule + " => " + ib.b.framework + "\n"
	if err := source.WriteTree(src, "", files); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(ib.dir, "app")
	cmd := exec.Command(ib.b.goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off", "GOPROXY=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// variant writes a copy of the binary with n more bytes (a round's own
// binary, so that no way finds a layer or a build cache of another round).
func (ib *imageBench) variant(t testing.TB, round, n int) string {
	t.Helper()
	b, err := os.ReadFile(ib.bin)
	if err != nil {
		t.Fatal(err)
	}
	pad := make([]byte, n)
	rand.Read(pad)
	b = append(append(b, fmt.Sprintf("round %d ", round)...), pad...)
	p := filepath.Join(ib.dir, fmt.Sprintf("app-%d", round))
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func (ib *imageBench) labels(tag string) map[string]string {
	return map[string]string{driver.LabelManaged: "true", driver.LabelBuild: tag, driver.LabelInstance: ib.instance}
}

// legacy builds the image of bin the old way; the context is laid out
// first, as the compile step used to write the binary into it.
func (ib *imageBench) legacy(t testing.TB, tag, bin string) (time.Duration, string) {
	t.Helper()
	dir := filepath.Join(ib.dir, tag)
	if err := legacyImageContext(dir, bin, ib.b.caCerts); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	id, err := ib.engine.BuildImage(context.Background(), driver.ImageSpec{ContextDir: dir, Dockerfile: "Dockerfile", Tag: tag, Labels: ib.labels(tag)}, io.Discard)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("legacy build: %v", err)
	}
	return took, id
}

// hostImport makes the image of bin the Host's way.
func (ib *imageBench) hostImport(t testing.TB, tag, bin string) (time.Duration, string) {
	t.Helper()
	start := time.Now()
	id, err := ib.b.importGoImage(context.Background(), tag, ib.labels(tag), bin, ib.lw)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return took, id
}

// rootfsTar writes the layer of bin's image (the same bytes the Host
// sends) to a file, for the baseline.
func (ib *imageBench) rootfsTar(t testing.TB, name, bin string) string {
	t.Helper()
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(ib.dir, name+".tar")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	_, files := goImage(name, nil, f, st.Size(), ib.b.caCerts)
	if err := imagetar.WriteLayer(out, files); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// dockerImport is the baseline: the engine's import of the rootfs tar on
// disk, with the image's settings as changes (`docker import --change`).
func (ib *imageBench) dockerImport(t testing.TB, tag, rootfs string) (time.Duration, string) {
	t.Helper()
	changes := []string{
		"USER 65532:65532",
		"ENV PATH=" + imagePath + " HERSH_STATE_DIR=" + imageStateDir + " HERSH_API_ADDR=" + imageAPIAddr,
		`ENTRYPOINT ["/app"]`,
	}
	for _, k := range slices.Sorted(maps.Keys(ib.labels(tag))) {
		changes = append(changes, fmt.Sprintf("LABEL %s=%q", k, ib.labels(tag)[k]))
	}
	start := time.Now()
	f, err := os.Open(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rc, err := ib.engine.Client().ImageImport(context.Background(), image.ImportSource{Source: f, SourceName: "-"}, tag, image.ImportOptions{Changes: changes})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	defer rc.Close()
	var id string
	dec := json.NewDecoder(rc)
	for {
		var m struct{ Status, Error string }
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil || m.Error != "" {
			t.Fatalf("import: %v %s", err, m.Error)
		}
		id = strings.TrimSpace(m.Status)
	}
	return time.Since(start), id
}

func (ib *imageBench) remove(t testing.TB, tag string) {
	if err := ib.engine.RemoveImage(context.Background(), tag); err != nil {
		t.Errorf("removing %s: %v", tag, err)
	}
}

// savedImage reads an image back as the engine stores it: its files
// (docker save) and its config.
func (ib *imageBench) savedImage(t testing.TB, ref string) ([]imagetar.File, imageConfig) {
	t.Helper()
	rc, err := ib.engine.Client().ImageSave(context.Background(), []string{ref})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files, err := imagetar.ReadSaved(rc)
	if err != nil {
		t.Fatalf("docker save of %s: %v", ref, err)
	}
	ins, err := ib.engine.Client().ImageInspect(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	c := ins.Config
	return files, imageConfig{User: c.User, Env: c.Env, Entrypoint: c.Entrypoint, Labels: c.Labels}
}

// imageConfig is what the comparison reads of an image's config.
type imageConfig struct {
	User            string
	Env, Entrypoint []string
	Labels          map[string]string
}

// TestGoImageMatchesLegacy: the image the Host imports holds what the
// legacy build of the same binary held, file by file (path, type, mode,
// owner, size), with the same user, environment, entrypoint and labels,
// except one intended change: /state is 0700 (the legacy COPY made the
// folder 0755, not the context's 0700).
func TestGoImageMatchesLegacy(t *testing.T) {
	ib := newImageBench(t)
	bin := ib.variant(t, 0, 0)
	oldTag, newTag := "hershy-imagebench-legacy-"+ib.instance, "hershy-imagebench-import-"+ib.instance
	ib.legacy(t, oldTag, bin)
	t.Cleanup(func() { ib.remove(t, oldTag) })
	_, newID := ib.hostImport(t, newTag, bin)
	t.Cleanup(func() { ib.remove(t, newTag) })
	if ok, err := ib.engine.ImageExists(context.Background(), newID); !ok || err != nil {
		t.Errorf("the imported id %s: %v, %v", newID, ok, err)
	}
	oldFiles, oldConfig := ib.savedImage(t, oldTag)
	newFiles, newConfig := ib.savedImage(t, newTag)

	describe := func(files []imagetar.File) map[string]string {
		m := map[string]string{}
		for _, f := range files {
			m[f.Path] = fmt.Sprintf("%v %d:%d %d", f.Mode, f.UID, f.GID, f.Size)
		}
		return m
	}
	want, got := describe(oldFiles), describe(newFiles)
	if want["/state"] != "drwxr-xr-x 65532:65532 0" || got["/state"] != "drwx------ 65532:65532 0" {
		t.Errorf("/state: legacy %q, imported %q", want["/state"], got["/state"])
	}
	delete(want, "/state")
	delete(got, "/state")
	if !maps.Equal(got, want) {
		t.Errorf("imported image files:\n%v\nlegacy:\n%v", got, want)
	}
	oc, nc := oldConfig, newConfig
	oc.Labels[driver.LabelBuild], nc.Labels[driver.LabelBuild] = "", "" // the tags differ
	if oc.User != nc.User || !slices.Equal(oc.Env, nc.Env) || !slices.Equal(oc.Entrypoint, nc.Entrypoint) || !maps.Equal(oc.Labels, nc.Labels) {
		t.Errorf("config: imported %+v, legacy %+v", nc, oc)
	}
}

// BenchmarkImageStep measures the image step of a Go-source deploy three
// ways for the same binary, interleaved in every round (the order turns
// each round) so the engine's state and the machine's load are shared:
//
//   - legacy: the Dockerfile above, built by the engine's legacy builder
//     (Driver.BuildImage), its context already on disk;
//   - host: the Host's way (importGoImage: the layer written while the
//     engine reads it, Driver.ImportImage);
//   - import: the baseline, the engine's import of the same layer as a tar
//     file on disk (`docker import` through the API, no CLI start-up), with
//     the same user, environment, entrypoint and labels as changes.
//
// Each round's binary differs (a few bytes appended), so no way finds a
// layer or a build cache of an earlier round; the images are removed
// between rounds, outside the timings. Reported: each way's median in ms
// and the ratios host/import, legacy/import, legacy/host. The image step
// runs no container, so it does not depend on the programs' runtime. The
// sub-benchmark "padded-100MB" appends 100 MB to the binary.
//
//	go test ./internal/builder -run '^$' -bench ImageStep -benchtime 15x
func BenchmarkImageStep(b *testing.B) {
	ib := newImageBench(b)
	for _, bc := range []struct {
		name string
		pad  int
	}{{"program", 0}, {"padded-100MB", 100 << 20}} {
		b.Run(bc.name, func(b *testing.B) {
			st, err := os.Stat(ib.bin)
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("binary: %d bytes", st.Size()+int64(bc.pad))
			var legacy, host, imp []time.Duration
			// timed runs one way's call and removes its image untimed.
			timed := func(into *[]time.Duration, tag string, run func() (time.Duration, string)) {
				took, _ := run()
				*into = append(*into, took)
				b.StopTimer()
				ib.remove(b, tag)
				b.StartTimer()
			}
			ways := []func(round int, bin, rootfs string){
				func(round int, bin, _ string) {
					tag := fmt.Sprintf("hershy-imagebench-legacy-%s-%d", ib.instance, round)
					timed(&legacy, tag, func() (time.Duration, string) { return ib.legacy(b, tag, bin) })
				},
				func(round int, bin, _ string) {
					tag := fmt.Sprintf("hershy-imagebench-host-%s-%d", ib.instance, round)
					timed(&host, tag, func() (time.Duration, string) { return ib.hostImport(b, tag, bin) })
				},
				func(round int, _, rootfs string) {
					tag := fmt.Sprintf("hershy-imagebench-import-%s-%d", ib.instance, round)
					timed(&imp, tag, func() (time.Duration, string) { return ib.dockerImport(b, tag, rootfs) })
				},
			}
			for round := 0; b.Loop(); round++ {
				b.StopTimer()
				bin := ib.variant(b, round, bc.pad)
				rootfs := ib.rootfsTar(b, fmt.Sprintf("rootfs-%d", round), bin)
				b.StartTimer()
				for i := range ways {
					ways[(round+i)%len(ways)](round, bin, rootfs)
				}
				b.StopTimer()
				os.Remove(bin)
				os.Remove(rootfs)
				b.StartTimer()
			}
			ms := func(d []time.Duration) float64 {
				s := slices.Clone(d)
				slices.Sort(s)
				return float64(s[len(s)/2]) / float64(time.Millisecond)
			}
			b.ReportMetric(ms(legacy), "legacy-ms")
			b.ReportMetric(ms(host), "host-ms")
			b.ReportMetric(ms(imp), "import-ms")
			b.ReportMetric(ms(host)/ms(imp), "host/import")
			b.ReportMetric(ms(legacy)/ms(imp), "legacy/import")
			b.ReportMetric(ms(legacy)/ms(host), "legacy/host")
		})
	}
}
