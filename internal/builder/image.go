package builder

import (
	"fmt"
	"os"
	"path/filepath"
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
)

// imageDockerfile builds a Go-source program's image from scratch: no base
// image, so it needs no registry. rootfs/ holds /app, /etc/{passwd,group},
// the CA certificates and an empty /tmp (1777); state/ is the empty /state,
// owned by the program's user.
var imageDockerfile = fmt.Sprintf(`FROM scratch
COPY rootfs/ /
COPY --chown=%[1]d:%[2]d state/ %[3]s/
USER %[1]d:%[2]d
ENV HERSH_STATE_DIR=%[3]s HERSH_API_ADDR=%[4]s
ENTRYPOINT ["/app"]
`, ProgramUID, ProgramGID, imageStateDir, imageAPIAddr)

// Paths inside an image context made by newImageContext.
const (
	imageBinary = "rootfs/app"
)

// newImageContext lays out the context of a Go-source image in dir (which
// must not exist), except the binary, which the compiler writes to
// dir/rootfs/app.
func newImageContext(dir string, caCerts []byte) error {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:%s:/sbin/nologin\n", programUser, ProgramUID, ProgramGID, programUser, imageStateDir)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", programUser, ProgramGID)
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{"", 0o700},
		{"rootfs", 0o755},
		{"rootfs/etc", 0o755},
		{"rootfs/etc/ssl", 0o755},
		{"rootfs/etc/ssl/certs", 0o755},
		{"rootfs/tmp", 0o777 | os.ModeSticky},
		{"state", 0o700},
	} {
		p := filepath.Join(dir, filepath.FromSlash(d.path))
		if err := os.Mkdir(p, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(p, d.mode); err != nil { // past the umask, and the sticky bit
			return err
		}
	}
	for _, f := range []struct {
		path    string
		content []byte
		mode    os.FileMode
	}{
		{"Dockerfile", []byte(imageDockerfile), 0o644},
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
