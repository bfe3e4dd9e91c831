package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/testenv"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestClusterStateMove moves a program from Docker to a cluster and back
// with the CLI, as an operator does: `hershy state export` of simple-counter
// on a Docker Host, `hershy state import` into the same program deployed
// (not started) on a cluster Host, whose counter goes on from there; an
// export on the cluster (the program stopped for it and started again)
// imported into a new program on the Docker Host, which goes on from that.
// A hostile archive (an entry naming ../) is refused on the cluster Host
// and the volume keeps its files. No helper Pod is left.
func TestClusterStateMove(t *testing.T) {
	c := openCluster(t)
	began := time.Now()
	phase := func(name string) { t.Logf("%7.1fs %s", time.Since(began).Seconds(), name) }
	dockerHost := startHost(t, driver.RuntimeRunsc)
	clusterHost := startHostWith(t, driver.RuntimeRunsc, c.hostArgs(), nil)
	onDocker, onCluster := dockerHost.user("alice"), clusterHost.user("alice")
	// A source of each Host's own (readSource's nonce): both Hosts build on
	// this machine's engine, and each removes its builds' images.
	dir := testenv.WriteFiles(t, readSource(t, filepath.Join(examplesDir, "simple-counter")))
	clusterDir := testenv.WriteFiles(t, readSource(t, filepath.Join(examplesDir, "simple-counter")))
	cli := func(h *host, u *user, args ...string) string {
		t.Helper()
		out, _ := h.mustCLI(u.token, args...)
		return out
	}
	counter := func(p *program) int {
		t.Helper()
		return numberAfter(t, p.ask("status", "status: counter is"), "counter is ")
	}
	archiveDir := t.TempDir()

	phase("export from the Docker Host")
	src := &program{t: t, h: dockerHost, c: onDocker, name: "on-docker", id: field(cli(dockerHost, onDocker, "deploy", dir), "Program")}
	src.waitState("Ready", 3*time.Minute)
	src.waitLog(time.Time{}, "counter: 5", time.Minute, func(line string) bool { return strings.Contains(line, "counter: 5") })
	fromDocker := filepath.Join(archiveDir, "from-docker.tar.gz")
	writeFile(t, fromDocker, cli(dockerHost, onDocker, "state", "export", src.id))
	src.waitState("Ready", 2*time.Minute)

	phase("import into a program on the cluster Host, not started yet")
	moved := &program{t: t, h: clusterHost, c: onCluster, name: "on-cluster", id: field(cli(clusterHost, onCluster, "deploy", "--no-start", clusterDir), "Program")}
	if got := cli(clusterHost, onCluster, "state", "import", moved.id, fromDocker); !strings.Contains(got, "/state imported") {
		t.Errorf("hershy state import said %q", got)
	}
	cli(clusterHost, onCluster, "start", moved.id)
	moved.waitState("Ready", 3*time.Minute)
	// A fresh program counts from 1; this one goes on from the export (5 or more).
	atCluster := counter(moved)
	if atCluster < 5 {
		t.Errorf("the program moved to the cluster counts %d: want it to go on from the export (at least 5)", atCluster)
	}
	if _, errOut, err := clusterHost.cli(onCluster.token, "state", "import", moved.id, fromDocker); err == nil || !strings.Contains(errOut, "stop it") {
		t.Errorf("an import into a running program on the cluster: %v %s", err, errOut)
	}

	phase("export from the cluster Host (the program stopped for it and started again)")
	fromCluster := filepath.Join(archiveDir, "from-cluster.tar.gz")
	writeFile(t, fromCluster, cli(clusterHost, onCluster, "state", "export", moved.id))
	if p := moved.waitState("Ready", 3*time.Minute); p.State != "Ready" {
		t.Fatalf("the exported program is %s, want it started again", p.State)
	}
	exported := archiveFiles(t, fromCluster)
	if _, ok := exported["counter.log"]; !ok {
		t.Errorf("the cluster's export lacks counter.log: %v", keys(exported))
	}

	phase("and back: import into a new program on the Docker Host")
	back := &program{t: t, h: dockerHost, c: onDocker, name: "back-on-docker", id: field(cli(dockerHost, onDocker, "deploy", "--no-start", dir), "Program")}
	cli(dockerHost, onDocker, "state", "import", back.id, fromCluster)
	cli(dockerHost, onDocker, "start", back.id)
	back.waitState("Ready", 3*time.Minute)
	if n := counter(back); n < atCluster {
		t.Errorf("the program moved back counts %d: want it to go on from the cluster's export (at least %d)", n, atCluster)
	}

	phase("a hostile archive is refused on the cluster Host, the volume unchanged")
	cli(clusterHost, onCluster, "stop", moved.id)
	moved.waitState("Stopped", 2*time.Minute)
	before := filepath.Join(archiveDir, "before.tar.gz")
	writeFile(t, before, cli(clusterHost, onCluster, "state", "export", moved.id))
	hostile := filepath.Join(archiveDir, "hostile.tar.gz")
	writeFile(t, hostile, string(hostileArchive(t)))
	_, errOut, err := clusterHost.cli(onCluster.token, "state", "import", moved.id, hostile)
	if err == nil || !strings.Contains(errOut, "clean relative name") {
		t.Errorf("a traversal archive on the cluster Host: %v %s", err, errOut)
	}
	after := filepath.Join(archiveDir, "after.tar.gz")
	writeFile(t, after, cli(clusterHost, onCluster, "state", "export", moved.id))
	if b, a := archiveFiles(t, before), archiveFiles(t, after); !sameFiles(b, a) {
		t.Errorf("the volume changed: before %v, after %v", keys(b), keys(a))
	}
	if p := moved.get(); p.State != "Stopped" {
		t.Errorf("a stopped program's export started it: %s", p.State)
	}

	pods, err := c.cs.CoreV1().Pods(c.ns).List(context.Background(), metav1.ListOptions{LabelSelector: driver.LabelJob + "=state"})
	if err != nil || len(pods.Items) != 0 {
		t.Errorf("helper Pods left: %d %v", len(pods.Items), err)
	}
	phase("done")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hostileArchive holds a good file, then one named ../ out of /state.
func hostileArchive(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range []string{"counter.log", "../../escaped"} {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, Size: 2})
		tw.Write([]byte("1\n"))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// archiveFiles reads an archive's regular files (name to content).
func archiveFiles(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tr := tar.NewReader(zr)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files[h.Name] = string(b)
		}
	}
}

func sameFiles(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
