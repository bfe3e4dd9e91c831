package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/imagetar"
)

// The program's user inside a Go-source image: a fixed non-root uid/gid
// (65532, as distroless "nonroot"), owner of /state.
const (
	ProgramUID  = 65532
	ProgramGID  = 65532
	programUser = "hersh"
)

// Environment of a Go-source image (names from hersh/config.go).
const (
	imageStateDir = "/state"
	imageAPIAddr  = "127.0.0.1:8080"
	// imagePath is the PATH the engine's builder gives an image built FROM
	// scratch, which Go-source images were until they were written
	// directly: a program sees the environment it saw then.
	imagePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// goImage describes the image of a Go-source program: one layer holding
// the binary as /app (size bytes read from bin), /etc/passwd and
// /etc/group naming the program's user, the CA certificates, an empty /tmp
// (1777) and an empty /state that only the program's user may enter (the
// Host mounts the program's own /state there); everything else is root's.
// The settings run /app as that user, with the framework's environment and
// the labels.
func goImage(tag string, labels map[string]string, bin io.Reader, size int64, caCerts []byte) (driver.ImportSpec, []imagetar.File) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:%s:/sbin/nologin\n", programUser, ProgramUID, ProgramGID, programUser, imageStateDir)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", programUser, ProgramGID)
	file := func(path string, content []byte) imagetar.File {
		return imagetar.File{Path: path, Mode: 0o644, Size: int64(len(content)), Content: bytes.NewReader(content)}
	}
	dir := func(path string) imagetar.File { return imagetar.File{Path: path, Mode: fs.ModeDir | 0o755} }
	spec := driver.ImportSpec{
		Tag:        tag,
		User:       strconv.Itoa(ProgramUID) + ":" + strconv.Itoa(ProgramGID),
		Env:        []string{"PATH=" + imagePath, "HERSH_STATE_DIR=" + imageStateDir, "HERSH_API_ADDR=" + imageAPIAddr},
		Entrypoint: []string{"/app"},
		Labels:     labels,
	}
	return spec, []imagetar.File{
		{Path: "/app", Mode: 0o755, Size: size, Content: bin},
		dir("/etc"),
		file("/etc/group", []byte(group)),
		file("/etc/passwd", []byte(passwd)),
		dir("/etc/ssl"),
		dir("/etc/ssl/certs"),
		file("/etc/ssl/certs/ca-certificates.crt", caCerts),
		{Path: imageStateDir, Mode: fs.ModeDir | 0o700, UID: ProgramUID, GID: ProgramGID},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}
}

// errImportReturned ends the writing of a layer the driver stopped
// reading.
var errImportReturned = errors.New("the image import has returned")

// importGoImage makes the image of the Go program binPath in one engine
// call (driver.Driver.ImportImage), within ImageTimeout: the layer is
// written while the driver sends it, so the binary goes from its file to
// the engine without being held in memory. The binary's file is the
// Host's own copy (readBinary), whose size is read once and must not
// change.
func (b *Builder) importGoImage(ctx context.Context, tag string, labels map[string]string, binPath string, lw *logLimiter) (string, error) {
	f, err := os.Open(binPath)
	if err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	spec, files := goImage(tag, labels, f, st.Size(), b.caCerts)
	lw.notef("image %s: one layer (the program: %d bytes), imported by the engine (timeout %s)", tag, st.Size(), b.opts.ImageTimeout)
	start := time.Now()
	id, err := b.importLayer(ctx, spec, files)
	if err != nil {
		return "", err
	}
	lw.notef("image %s (%s) imported in %s", tag, id, time.Since(start).Round(time.Millisecond))
	return id, nil
}

// importLayer streams files as the layer of an image into
// driver.Driver.ImportImage, within ImageTimeout. A layer whose writing
// fails (a file that grew or shrank since it was measured) reaches the
// engine as a failed stream, never as a clean end: the engine makes an
// image of a layer that ends cleanly after a whole file, even if the files
// after it are missing.
func (b *Builder) importLayer(ctx context.Context, spec driver.ImportSpec, files []imagetar.File) (string, error) {
	ictx, cancel := context.WithTimeoutCause(ctx, b.opts.ImageTimeout, errImageTimeout)
	defer cancel()
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		err := imagetar.WriteLayer(pw, files)
		pw.CloseWithError(err)
		written <- err
	}()
	id, err := b.driver.ImportImage(ictx, spec, pr)
	pr.CloseWithError(errImportReturned) // a writer the driver stopped reading returns
	if werr := <-written; werr != nil && !errors.Is(werr, errImportReturned) {
		// The layer was cut short: the import's failure follows from it.
		err = fmt.Errorf("writing the layer: %w (the import: %v)", werr, err)
	} else if err == nil && werr != nil {
		err = fmt.Errorf("the engine answered before it read the whole layer")
	}
	if err != nil {
		if ictx.Err() != nil && context.Cause(ictx) == errImageTimeout && ctx.Err() == nil {
			err = fmt.Errorf("timed out after %s: %w (%v)", b.opts.ImageTimeout, context.DeadlineExceeded, err)
		}
		return "", &Error{Step: "image import", Err: err}
	}
	return id, nil
}
