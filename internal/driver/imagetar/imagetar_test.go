package imagetar

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"runtime"
	"strings"
	"testing"
	"time"
)

// sample is an image like the Host's Go-source images.
func sample(app []byte) Image {
	return Image{
		Tag: "hersh-program-build-0123",
		Config: Config{
			User: "65532:65532", Env: []string{"PATH=/bin", "HERSH_STATE_DIR=/state"},
			Entrypoint: []string{"/app"}, Labels: map[string]string{"org.hershy.build-id": "build-0123"},
		},
		Files: []File{
			{Path: "/app", Mode: 0o755, Size: int64(len(app)), Content: bytes.NewReader(app)},
			{Path: "/etc", Mode: fs.ModeDir | 0o755},
			{Path: "/etc/passwd", Mode: 0o644, Size: 5, Content: strings.NewReader("root\n")},
			{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
			{Path: "/state", Mode: fs.ModeDir | 0o700, UID: 65532, GID: 65532},
		},
		Created: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		History: "test image",
	}
}

func TestWriteRead(t *testing.T) {
	img := sample([]byte("\x7fELF program"))
	var buf bytes.Buffer
	id, err := Write(&buf, img)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id || !strings.HasPrefix(id, "sha256:") || len(id) != len("sha256:")+64 {
		t.Errorf("id %q, Read says %q", id, got.ID)
	}
	if len(got.Tags) != 1 || got.Tags[0] != "hersh-program-build-0123:latest" {
		t.Errorf("tags %q", got.Tags)
	}
	if got.OS != "linux" || got.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", got.OS, got.Architecture)
	}
	c := got.Config
	if c.User != "65532:65532" || strings.Join(c.Env, " ") != "PATH=/bin HERSH_STATE_DIR=/state" ||
		strings.Join(c.Entrypoint, " ") != "/app" || len(c.Labels) != 1 || c.Labels["org.hershy.build-id"] != "build-0123" {
		t.Errorf("config %+v", c)
	}
	if len(got.Files) != len(img.Files) {
		t.Fatalf("files %+v", got.Files)
	}
	for i, f := range img.Files {
		g := got.Files[i]
		if g.Path != f.Path || g.Mode != f.Mode || g.UID != f.UID || g.GID != f.GID || g.Size != f.Size {
			t.Errorf("file %d: %+v, want %+v", i, g, f)
		}
	}

	// The same image again is the same bytes: a layer and an id that
	// depend only on what goes in.
	var again bytes.Buffer
	if id2, err := Write(&again, sample([]byte("\x7fELF program"))); err != nil || id2 != id || !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Errorf("a second Write differs: %s, %v", id2, err)
	}
}

// TestWriteEntries: the tarball holds the layer, the config and the
// manifest, and the layer's entries are stamped with FileTime and owned as
// asked.
func TestWriteEntries(t *testing.T) {
	var buf bytes.Buffer
	id, err := Write(&buf, sample([]byte("bin")))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		switch h.Name {
		case layerName:
			lr := tar.NewReader(tr)
			for {
				lh, err := lr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if !lh.ModTime.Equal(FileTime) || len(lh.PAXRecords) != 0 {
					t.Errorf("%s: time %v, PAX %v", lh.Name, lh.ModTime, lh.PAXRecords)
				}
				if lh.Name == "state/" && (lh.Uid != 65532 || lh.Gid != 65532 || lh.Mode != 0o700) {
					t.Errorf("state/: %d:%d %o", lh.Uid, lh.Gid, lh.Mode)
				}
				if lh.Name == "tmp/" && lh.Mode != 0o1777 {
					t.Errorf("tmp/: %o", lh.Mode)
				}
			}
		case manifestName:
			var m []manifestEntry
			if err := json.NewDecoder(tr).Decode(&m); err != nil {
				t.Fatal(err)
			}
			if len(m) != 1 || m[0].Config != strings.TrimPrefix(id, "sha256:")+".json" || len(m[0].Layers) != 1 || m[0].Layers[0] != layerName {
				t.Errorf("manifest %+v", m)
			}
		}
	}
	if strings.Join(names, " ") != layerName+" "+strings.TrimPrefix(id, "sha256:")+".json "+manifestName {
		t.Errorf("entries %q", names)
	}
}

// TestWriteContentIsOpaque: a program binary is the content of one file
// whose name and size the Host sets; whatever it holds (here a tarball of
// its own, with a manifest, a path out of the root and a setuid shell)
// stays that file's bytes and adds nothing to the image.
func TestWriteContentIsOpaque(t *testing.T) {
	var evil bytes.Buffer
	tw := tar.NewWriter(&evil)
	for _, h := range []*tar.Header{
		{Name: "manifest.json", Size: 2, Mode: 0o644},
		{Name: "../../etc/shadow", Size: 2, Mode: 0o644},
		{Name: "bin/sh", Size: 2, Mode: 0o4755},
	} {
		tw.WriteHeader(h)
		tw.Write([]byte("[]"))
	}
	tw.Close()
	// The evil bytes also stand at the start of the content, where a
	// reader that lost count of the sizes would look for a header.
	img := sample(evil.Bytes())
	var buf bytes.Buffer
	if _, err := Write(&buf, img); err != nil {
		t.Fatal(err)
	}
	got, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range got.Files {
		paths = append(paths, f.Path)
	}
	if strings.Join(paths, " ") != "/app /etc /etc/passwd /tmp /state" || got.Files[0].Size != int64(evil.Len()) {
		t.Errorf("files %+v", got.Files)
	}
}

// TestWriteContentSize: a file whose content is longer or shorter than its
// Size (a binary that changed after it was measured) fails the write
// instead of sending other bytes than were announced.
func TestWriteContentSize(t *testing.T) {
	for name, content := range map[string]string{"longer": "0123456789+", "shorter": "012345678"} {
		img := sample(nil)
		img.Files[0] = File{Path: "/app", Mode: 0o755, Size: 10, Content: strings.NewReader(content)}
		_, err := Write(io.Discard, img)
		if err == nil || !strings.Contains(err.Error(), "/app") {
			t.Errorf("%s: Write = %v, want an error naming /app", name, err)
		}
	}
}

// endless yields n bytes without holding them.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	if e.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	for i := range p {
		p[i] = byte(i)
	}
	e.n -= int64(len(p))
	return len(p), nil
}

// TestWriteStreams: a large file goes through without being held in
// memory (a program binary may be over 100 MB).
func TestWriteStreams(t *testing.T) {
	const size = 128 << 20
	img := sample(nil)
	img.Files[0] = File{Path: "/app", Mode: 0o755, Size: size, Content: &endless{n: size}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var n counter
	if _, err := Write(&n, img); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if n.n < size {
		t.Fatalf("wrote %d bytes", n.n)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("writing a %d MiB file allocated %d MiB", size>>20, alloc>>20)
	}
}

func TestWriteRefuses(t *testing.T) {
	for name, change := range map[string]func(*Image){
		"relative path":     func(i *Image) { i.Files[0].Path = "app" },
		"unclean path":      func(i *Image) { i.Files[0].Path = "/x/../app" },
		"root":              func(i *Image) { i.Files[1].Path = "/" },
		"twice":             func(i *Image) { i.Files[3].Path = "/etc" },
		"no parent":         func(i *Image) { i.Files[2].Path = "/usr/passwd" },
		"file as parent":    func(i *Image) { i.Files[2].Path = "/app/passwd" },
		"parent after":      func(i *Image) { i.Files[1], i.Files[2] = i.Files[2], i.Files[1] },
		"setuid":            func(i *Image) { i.Files[0].Mode |= fs.ModeSetuid },
		"setgid":            func(i *Image) { i.Files[0].Mode |= fs.ModeSetgid },
		"symlink":           func(i *Image) { i.Files[0].Mode = fs.ModeSymlink | 0o777 },
		"device":            func(i *Image) { i.Files[0].Mode = fs.ModeDevice | 0o600 },
		"negative uid":      func(i *Image) { i.Files[0].UID = -1 },
		"huge gid":          func(i *Image) { i.Files[0].GID = 1 << 22 },
		"size, no content":  func(i *Image) { i.Files[0].Content = nil },
		"negative size":     func(i *Image) { i.Files[0].Size = -1 },
		"dir with content":  func(i *Image) { i.Files[1].Size = 3 },
		"NUL in path":       func(i *Image) { i.Files[0].Path = "/ap\x00p" },
		"name too long":     func(i *Image) { i.Files[0].Path = "/" + strings.Repeat("a", 300) },
		"tag with digest":   func(i *Image) { i.Tag = "x@sha256:" + strings.Repeat("a", 64) },
		"tag in capitals":   func(i *Image) { i.Tag = "Hersh" },
		"no tag":            func(i *Image) { i.Tag = "" },
		"env without value": func(i *Image) { i.Config.Env = []string{"PATH"} },
	} {
		img := sample([]byte("bin"))
		change(&img)
		var buf bytes.Buffer
		if _, err := Write(&buf, img); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Write = %v, want ErrInvalid", name, err)
		}
		if name != "env without value" && buf.Len() != 0 {
			t.Errorf("%s: %d bytes written before the refusal", name, buf.Len())
		}
	}
}

func TestNormalizeTag(t *testing.T) {
	for in, want := range map[string]string{
		"hersh-program-x":     "hersh-program-x:latest",
		"hersh-program-x:v1":  "hersh-program-x:v1",
		"docker.io/library/a": "a:latest",
		"reg:5000/a/b:c":      "reg:5000/a/b:c",
	} {
		if got, err := NormalizeTag(in); err != nil || got != want {
			t.Errorf("NormalizeTag(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// rewrite rebuilds a tarball written by Write, letting edit change each
// entry's content (nil: drop the entry).
func rewrite(t *testing.T, tarball []byte, edit func(name string, b []byte) []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(tarball))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if b = edit(h.Name, b); b == nil {
			continue
		}
		h.Size = int64(len(b))
		tw.WriteHeader(h)
		tw.Write(b)
	}
	tw.Close()
	return out.Bytes()
}

func TestReadRefuses(t *testing.T) {
	var buf bytes.Buffer
	if _, err := Write(&buf, sample([]byte("bin"))); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	manifest := func(f func(m *manifestEntry) []manifestEntry) func(string, []byte) []byte {
		return func(name string, b []byte) []byte {
			if name != manifestName {
				return b
			}
			var m []manifestEntry
			json.Unmarshal(b, &m)
			out, _ := json.Marshal(f(&m[0]))
			return out
		}
	}
	cases := map[string][]byte{
		"not a tarball": []byte("hello"),
		"no manifest": rewrite(t, good, func(name string, b []byte) []byte {
			if name == manifestName {
				return nil
			}
			return b
		}),
		"layer changed": rewrite(t, good, func(name string, b []byte) []byte {
			if name == layerName {
				b = bytes.Replace(b, []byte("root\n"), []byte("evil\n"), 1)
			}
			return b
		}),
		"two images":      rewrite(t, good, manifest(func(m *manifestEntry) []manifestEntry { return []manifestEntry{*m, *m} })),
		"tag without tag": rewrite(t, good, manifest(func(m *manifestEntry) []manifestEntry { m.RepoTags = []string{"x"}; return []manifestEntry{*m} })),
		"missing config":  rewrite(t, good, manifest(func(m *manifestEntry) []manifestEntry { m.Config = "nope.json"; return []manifestEntry{*m} })),
		"missing layer":   rewrite(t, good, manifest(func(m *manifestEntry) []manifestEntry { m.Layers = []string{"nope.tar"}; return []manifestEntry{*m} })),
		"layers length":   rewrite(t, good, manifest(func(m *manifestEntry) []manifestEntry { m.Layers = nil; return []manifestEntry{*m} })),
		"windows": rewrite(t, good, func(name string, b []byte) []byte {
			if strings.HasSuffix(name, ".json") && name != manifestName {
				b = bytes.Replace(b, []byte(`"os":"linux"`), []byte(`"os":"windows"`), 1)
			}
			return b
		}),
	}
	for name, tarball := range cases {
		if c, err := Read(bytes.NewReader(tarball)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Read = %+v, %v; want ErrInvalid", name, c, err)
		}
	}
}
