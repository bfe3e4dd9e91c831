package kubernetes

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/statearchive"
	"github.com/hershyorg/hershy/internal/statearchive/archivetest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestHelperPodHardening pins the helper Pod's sandbox: the program Pods'
// hardening, the claim its only volume, no token, a deadline, gated until
// its policy exists, and the Host's binary as its command.
func TestHelperPodHardening(t *testing.T) {
	class := "gvisor"
	p := helperPod(driver.VolumeCopy{Volume: "hersh-state-x", User: "65532:65532", Labels: map[string]string{driver.LabelInstance: "i"}},
		"reg/hershy-state-helper:1@sha256:0", &class, 65532, 65532)
	s := p.Spec
	c := s.Containers[0]
	sc, psc := c.SecurityContext, s.SecurityContext
	switch {
	case !gated(p):
		t.Error("not created behind the start gate")
	case s.RuntimeClassName == nil || *s.RuntimeClassName != class:
		t.Error("runtime class")
	case s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken, s.EnableServiceLinks == nil || *s.EnableServiceLinks:
		t.Error("a service account token or service links")
	case s.HostNetwork || s.HostPID || s.HostIPC || len(c.Ports) != 0:
		t.Error("a host namespace or a port")
	case psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || *psc.RunAsUser != 65532 || *psc.RunAsGroup != 65532:
		t.Error("user")
	case psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("seccomp")
	case !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL":
		t.Errorf("container security context %+v", sc)
	case s.ActiveDeadlineSeconds == nil || *s.ActiveDeadlineSeconds <= 0 || s.RestartPolicy != corev1.RestartPolicyNever:
		t.Error("no deadline, or restarted")
	case len(s.Volumes) != 1 || s.Volumes[0].PersistentVolumeClaim == nil || s.Volumes[0].PersistentVolumeClaim.ClaimName != "hersh-state-x":
		t.Errorf("volumes %+v", s.Volumes)
	case len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/state":
		t.Errorf("mounts %+v", c.VolumeMounts)
	case c.Command[0] != helperPath || c.Command[1] != statearchive.HelperCommand || c.Resources.Limits.Memory().IsZero():
		t.Errorf("command %v, limits %v", c.Command, c.Resources.Limits)
	case p.Labels[podLabel] == "" || p.Annotations[networkAnnotation] != "false":
		t.Error("no policy would select it, or it would be granted network")
	case labelsOf(p)[driver.LabelProgram] != "":
		t.Error("a helper Pod must not look like a program's container")
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		code int
		ok   bool
	}{
		{`{"status":"Success"}`, 0, true},
		{`{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"2"}]}}`, 2, true},
		{`{"status":"Failure","message":"no such file"}`, 0, false},
		{``, 0, false},
		{`not json`, 0, false},
	} {
		code, err := exitCode([]byte(tc.msg))
		if code != tc.code || (err == nil) != tc.ok {
			t.Errorf("exitCode(%s) = %d, %v", tc.msg, code, err)
		}
	}
}

var (
	helperOnce sync.Once
	helperBin  string
	helperErr  error
)

// staticHershy builds the Host's binary as a Host runs it on a cluster:
// static, so it runs alone in the helper's image.
func staticHershy(t *testing.T) string {
	t.Helper()
	helperOnce.Do(func() {
		helperBin = filepath.Join(tmpRoot, "hershy-static")
		cmd := exec.Command("go", "build", "-o", helperBin, "github.com/hershyorg/hershy/cmd/hershy")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			helperErr = errors.New(err.Error() + "\n" + string(out))
		}
	})
	if helperErr != nil {
		t.Fatalf("go build hershy: %v", helperErr)
	}
	return helperBin
}

// copierDriver is the test driver with the state helper configured.
func copierDriver(t *testing.T) *Driver {
	t.Helper()
	shared := testDriver(t)
	o := shared.opts
	o.StateHelper = staticHershy(t)
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestStateCopy copies a volume out and in through helper Pods on the
// cluster, under gVisor and runc: the export holds the volume's files and
// folders but not a link planted there; an import replaces them only
// once its commit agrees; a hostile archive sent straight to the driver
// (no check of the Host's) is refused inside the sandbox, with the volume
// unchanged; and no helper Pod is left.
func TestStateCopy(t *testing.T) {
	d := copierDriver(t)
	for _, rt := range []string{driver.RuntimeRunsc, driver.RuntimeRunc} {
		t.Run(rt, func(t *testing.T) { testStateCopy(t, d, rt) })
	}
}

func testStateCopy(t *testing.T, d *Driver, rt string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, dir := volume(t, d, "/state", false)
	own := func(p string) {
		if err := os.Lchown(p, 65532, 65532); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "book"), 0o700)
	own(filepath.Join(dir, "book"))
	for name, content := range map[string]string{"counter.json": `{"n":41}`, "book/orders": "buy 1\n"} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		own(p)
	}
	os.Symlink("/etc/hostname", filepath.Join(dir, "planted"))
	spec := driver.VolumeCopy{Volume: m.Source, User: "65532:65532", Runtime: rt, Limit: 1 << 20,
		Labels: map[string]string{driver.LabelManaged: "true", driver.LabelInstance: testRun, driver.LabelJob: "state"}}

	// The claim binds to its volume at the controller's pace (up to 15 s),
	// which is not the copy's time.
	for {
		c, err := d.cs.CoreV1().PersistentVolumeClaims(d.ns).Get(ctx, m.Source, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c.Status.Phase == corev1.ClaimBound {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	began := time.Now()
	var out bytes.Buffer
	if err := d.ExportVolume(ctx, spec, &out); err != nil {
		t.Fatalf("export: %v", err)
	}
	t.Logf("export: %v", time.Since(began))
	if got := strings.Join(archivetest.Names(t, out.Bytes()), " "); got != "book/ book/orders counter.json" {
		t.Errorf("exported entries: %s", got)
	}

	// An import whose commit refuses changes nothing.
	archive := tarGz(t, map[string]string{"moved/a": "alpha", "b": "beta"})
	no := errors.New("the program started")
	if _, err := d.ImportVolume(ctx, spec, bytes.NewReader(archive), func() error { return no }); !errors.Is(err, no) {
		t.Errorf("import refused at its commit: %v", err)
	}
	checkFiles(t, dir, "book book/orders counter.json planted")

	began = time.Now()
	res, err := d.ImportVolume(ctx, spec, bytes.NewReader(archive), func() error { return nil })
	if err != nil || res.Files != 2 || res.Bytes != 9 {
		t.Fatalf("import: %+v %v", res, err)
	}
	t.Logf("import: %v", time.Since(began))
	checkFiles(t, dir, "b moved moved/a")
	if b, _ := os.ReadFile(filepath.Join(dir, "moved", "a")); string(b) != "alpha" {
		t.Errorf("imported file: %q", b)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(dir, "moved", "a"), &st); err != nil || st.Uid != 65532 || st.Mode&0o777 != 0o600 {
		t.Errorf("imported file owned by %d, mode %o: %v", st.Uid, st.Mode&0o777, err)
	}

	// The helper's own checks, with no Host in front of it.
	for name, hdr := range map[string]tar.Header{
		"traversal": {Name: "../../../escaped", Typeflag: tar.TypeReg, Size: 1},
		"link":      {Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
		"over cap":  {Name: "big", Typeflag: tar.TypeReg, Size: 2 << 20},
	} {
		_, err := d.ImportVolume(ctx, spec, bytes.NewReader(archivetest.Make(t, hdr)), func() error { return nil })
		if !errors.Is(err, statearchive.ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", name, err)
		}
		checkFiles(t, dir, "b moved moved/a")
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(dir), "escaped")); err == nil {
		t.Error("a file was written outside the volume")
	}

	pods, err := d.cs.CoreV1().Pods(d.ns).List(ctx, metav1.ListOptions{LabelSelector: helperVolumeLabel + "=" + labelValue(m.Source)})
	if err != nil || len(pods.Items) != 0 {
		t.Errorf("helper Pods left: %d %v", len(pods.Items), err)
	}
}

// checkFiles compares what the volume's folder holds (names below it,
// sorted by the walk) with want.
func checkFiles(t *testing.T, dir, want string) {
	t.Helper()
	var names []string
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if rel, _ := filepath.Rel(dir, p); err == nil && rel != "." {
			names = append(names, rel)
		}
		return nil
	})
	if got := strings.Join(names, " "); got != want {
		t.Errorf("the volume holds %q, want %q", got, want)
	}
}

func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(content))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}
