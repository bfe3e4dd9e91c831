package imagetar

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"strings"
	"testing"
)

// sample is a layer like the Host's Go-source images'.
func sample(app []byte) []File {
	return []File{
		{Path: "/app", Mode: 0o755, Size: int64(len(app)), Content: bytes.NewReader(app)},
		{Path: "/etc", Mode: fs.ModeDir | 0o755},
		{Path: "/etc/passwd", Mode: 0o644, Size: 5, Content: strings.NewReader("root\n")},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{Path: "/state", Mode: fs.ModeDir | 0o700, UID: 65532, GID: 65532},
	}
}

func describe(files []File) string {
	var s []string
	for _, f := range files {
		s = append(s, fmt.Sprintf("%s %v %d:%d %d", f.Path, f.Mode, f.UID, f.GID, f.Size))
	}
	return strings.Join(s, "\n")
}

func TestWriteReadLayer(t *testing.T) {
	files := sample([]byte("\x7fELF program"))
	var buf bytes.Buffer
	if err := WriteLayer(&buf, files); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLayer(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if want := describe(sample([]byte("\x7fELF program"))); describe(got) != want {
		t.Errorf("read back:\n%s\nwant:\n%s", describe(got), want)
	}
	// The same files again are the same bytes.
	var again bytes.Buffer
	if err := WriteLayer(&again, sample([]byte("\x7fELF program"))); err != nil || !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Errorf("a second write differs (%v)", err)
	}
}

// TestWriteLayerHeaders: plain headers (no PAX records), FileTime, the
// owners and modes asked for, directories with a trailing slash and no
// leading one anywhere.
func TestWriteLayerHeaders(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteLayer(&buf, sample([]byte("bin"))); err != nil {
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
		if !h.ModTime.Equal(FileTime) || len(h.PAXRecords) != 0 || h.Format != tar.FormatUSTAR {
			t.Errorf("%s: time %v, PAX %v, format %v", h.Name, h.ModTime, h.PAXRecords, h.Format)
		}
		switch h.Name {
		case "state/":
			if h.Uid != 65532 || h.Gid != 65532 || h.Mode != 0o700 {
				t.Errorf("state/: %d:%d %o", h.Uid, h.Gid, h.Mode)
			}
		case "tmp/":
			if h.Mode != 0o1777 || h.Uid != 0 {
				t.Errorf("tmp/: %d %o", h.Uid, h.Mode)
			}
		}
	}
	if strings.Join(names, " ") != "app etc/ etc/passwd tmp/ state/" {
		t.Errorf("entries %q", names)
	}
}

// evilTar is a tarball with a manifest, a path out of the root and a
// setuid shell.
func evilTar() []byte {
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
	return evil.Bytes()
}

// TestWriteLayerContentIsOpaque: a program binary is the content of one
// file whose name and size the Host sets; whatever it holds (here a
// tarball of its own, standing where a reader that lost count of the sizes
// would look for a header) stays that file's bytes and adds nothing.
func TestWriteLayerContentIsOpaque(t *testing.T) {
	evil := evilTar()
	var buf bytes.Buffer
	if err := WriteLayer(&buf, sample(evil)); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLayer(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if want := describe(sample(evil)); describe(got) != want {
		t.Errorf("read back:\n%s\nwant:\n%s", describe(got), want)
	}
}

// TestWriteLayerContentSize: a file whose content is longer or shorter
// than its Size (a binary that changed after it was measured) fails the
// write instead of sending other bytes than were announced.
func TestWriteLayerContentSize(t *testing.T) {
	for name, content := range map[string]string{"longer": "0123456789+", "shorter": "012345678"} {
		files := sample(nil)
		files[0] = File{Path: "/app", Mode: 0o755, Size: 10, Content: strings.NewReader(content)}
		err := WriteLayer(io.Discard, files)
		if err == nil || !strings.Contains(err.Error(), "/app") {
			t.Errorf("%s: WriteLayer = %v, want an error naming /app", name, err)
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

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// TestWriteLayerStreams: a large file goes through without being held in
// memory (a program binary may be over 100 MB).
func TestWriteLayerStreams(t *testing.T) {
	const size = 128 << 20
	files := sample(nil)
	files[0] = File{Path: "/app", Mode: 0o755, Size: size, Content: &endless{n: size}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var n counter
	if err := WriteLayer(&n, files); err != nil {
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

func TestWriteLayerRefuses(t *testing.T) {
	for name, change := range map[string]func([]File){
		"relative path":    func(f []File) { f[0].Path = "app" },
		"unclean path":     func(f []File) { f[0].Path = "/x/../app" },
		"root":             func(f []File) { f[1].Path = "/" },
		"twice":            func(f []File) { f[3].Path = "/etc" },
		"no parent":        func(f []File) { f[2].Path = "/usr/passwd" },
		"file as parent":   func(f []File) { f[2].Path = "/app/passwd" },
		"parent after":     func(f []File) { f[1], f[2] = f[2], f[1] },
		"setuid":           func(f []File) { f[0].Mode |= fs.ModeSetuid },
		"setgid":           func(f []File) { f[0].Mode |= fs.ModeSetgid },
		"symlink":          func(f []File) { f[0].Mode = fs.ModeSymlink | 0o777 },
		"device":           func(f []File) { f[0].Mode = fs.ModeDevice | 0o600 },
		"negative uid":     func(f []File) { f[0].UID = -1 },
		"huge gid":         func(f []File) { f[0].GID = 1 << 22 },
		"size, no content": func(f []File) { f[0].Content = nil },
		"negative size":    func(f []File) { f[0].Size = -1 },
		"dir with content": func(f []File) { f[1].Size = 3 },
		"NUL in path":      func(f []File) { f[0].Path = "/ap\x00p" },
		"name too long":    func(f []File) { f[0].Path = "/" + strings.Repeat("a", 300) },
	} {
		files := sample([]byte("bin"))
		change(files)
		var buf bytes.Buffer
		if err := WriteLayer(&buf, files); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: WriteLayer = %v, want ErrInvalid", name, err)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: %d bytes written before the refusal", name, buf.Len())
		}
	}
}

func TestReadLayerRefuses(t *testing.T) {
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tw.WriteHeader(&tar.Header{Name: "../escape", Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Close()
	for name, stream := range map[string][]byte{
		"outside the root": out.Bytes(),
		"not a tar":        bytes.Repeat([]byte("not a tar "), 100),
	} {
		if files, err := ReadLayer(bytes.NewReader(stream)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: ReadLayer = %v, %v; want ErrInvalid", name, files, err)
		}
	}
}

// TestReadSaved: the files of a saved image are its layers' in the
// manifest's order, whatever the order of the entries.
func TestReadSaved(t *testing.T) {
	layer := func(files []File) []byte {
		var b bytes.Buffer
		if err := WriteLayer(&b, files); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	var saved bytes.Buffer
	tw := tar.NewWriter(&saved)
	for _, e := range []struct {
		name    string
		content []byte
	}{
		{"b/layer.tar", layer([]File{{Path: "/state", Mode: fs.ModeDir | 0o755, UID: 1, GID: 2}})},
		{"a/layer.tar", layer([]File{{Path: "/app", Mode: 0o755, Size: 3, Content: strings.NewReader("bin")}})},
		{"c.json", []byte("{}")},
		{"manifest.json", []byte(`[{"Config":"c.json","RepoTags":null,"Layers":["a/layer.tar","b/layer.tar"]}]`)},
	} {
		tw.WriteHeader(&tar.Header{Name: e.name, Size: int64(len(e.content)), Mode: 0o644, Typeflag: tar.TypeReg})
		tw.Write(e.content)
	}
	tw.Close()
	files, err := ReadSaved(&saved)
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(files); got != "/app -rwxr-xr-x 0:0 3\n/state drwxr-xr-x 1:2 0" {
		t.Errorf("files:\n%s", got)
	}
}
