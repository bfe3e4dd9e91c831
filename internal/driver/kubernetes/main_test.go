package kubernetes

// Test harness: a real cluster (scripts/cluster.sh up), a namespace of
// this run's that enforces the restricted Pod Security level, the Docker
// engine on this machine as the Builder, and the cluster's registry on
// loopback.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/docker"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// defaultKubeconfig is where scripts/cluster.sh up leaves the admin's.
const defaultKubeconfig = "/var/cache/hershy-cluster/pki/admin.kubeconfig"

// testRegistry is the cluster's registry, under a path of the tests'.
const testRegistry = "127.0.0.1:5000/hershy-test"

var (
	testRun = func() string {
		b := make([]byte, 4)
		rand.Read(b)
		return hex.EncodeToString(b)
	}()
	tmpRoot string

	setupOnce sync.Once
	setupErr  error
	shared    *Driver // the driver on this run's namespace
	namespace string
	probeTag  string
	probeBin  string
)

func TestMain(m *testing.M) {
	var err error
	if tmpRoot, err = os.MkdirTemp("", "hershy-k8s-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// kubeconfig is the cluster the tests use: HERSHY_KUBECONFIG, or the test
// cluster's when it is up. HERSHY_KUBECONFIG or CI set makes the cluster
// required: its absence fails the tests instead of skipping them.
func kubeconfig() (path string, required bool) {
	if p := os.Getenv("HERSHY_KUBECONFIG"); p != "" {
		return p, true
	}
	return defaultKubeconfig, os.Getenv("CI") != ""
}

// testDriver returns the driver on this run's namespace, or skips when no
// cluster answers (fails when HERSHY_KUBECONFIG asks for one).
func testDriver(t *testing.T) *Driver {
	t.Helper()
	setupOnce.Do(func() { setupErr = setup() })
	if setupErr != nil {
		if _, required := kubeconfig(); required {
			t.Fatalf("the test cluster is required (HERSHY_KUBECONFIG or CI set) and not usable: %v (scripts/cluster.sh build && scripts/cluster.sh up)", setupErr)
		}
		t.Skipf("no test cluster (%v): run scripts/cluster.sh up, or set HERSHY_KUBECONFIG", setupErr)
	}
	return shared
}

func setup() error {
	path, _ := kubeconfig()
	if _, err := os.Stat(path); err != nil {
		return err
	}
	b, err := docker.New()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.Check(ctx); err != nil {
		return fmt.Errorf("the Builder (Docker): %w", err)
	}
	namespace = "hershy-kit-" + testRun
	d, err := New(Options{
		Kubeconfig: path, Namespace: namespace, Registry: testRegistry, Builder: b, DirectKubelet: true,
		RuntimeClasses: map[string]string{driver.RuntimeRunsc: "gvisor-host", driver.RuntimeRunc: ""},
	})
	if err != nil {
		return err
	}
	// The namespace enforces the restricted level: the API server refuses
	// a Pod that lacks any of the hardening.
	_, err = d.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: namespace, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
		}}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	shared = d
	if err := d.Check(ctx, driver.RuntimeRunc, driver.RuntimeRunsc); err != nil {
		return err
	}
	if probeBin, err = buildProbe(); err != nil {
		return err
	}
	dir := filepath.Join(tmpRoot, "probe-context")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := copyFile(probeBin, filepath.Join(dir, "probe"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY probe /probe\nENTRYPOINT [\"/probe\"]\n"), 0o644); err != nil {
		return err
	}
	probeTag = "hershy-k8s-probe:" + testRun
	_, err = d.BuildImage(ctx, driver.ImageSpec{ContextDir: dir, Tag: probeTag, MaxContext: 64 << 20,
		Labels: map[string]string{driver.LabelManaged: "true", driver.LabelInstance: testRun}}, io.Discard)
	return err
}

// cleanup lets go of every Pod left in the namespace and deletes it, and
// the probe image.
func cleanup() {
	if shared == nil {
		return
	}
	d := shared
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if pods, err := d.cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{}); err == nil {
		for _, p := range pods.Items {
			fmt.Fprintf(os.Stderr, "cleanup: removing leftover Pod %s\n", p.Name)
			d.RemoveContainer(ctx, p.Name)
		}
	}
	if err := d.cs.CoreV1().Namespaces().Delete(ctx, namespace, metav1.DeleteOptions{}); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup: namespace: %v\n", err)
	}
	if probeTag != "" {
		if err := d.RemoveImage(ctx, probeTag); err != nil {
			fmt.Fprintf(os.Stderr, "cleanup: probe image: %v\n", err)
		}
	}
	d.builder.Close()
	d.Close()
}

func buildProbe() (string, error) {
	bin := filepath.Join(tmpRoot, "probe")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = filepath.Join("..", "docker", "testdata", "probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build probe: %v\n%s", err, out)
	}
	return bin, nil
}

func copyFile(from, to string, mode os.FileMode) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, mode)
}

// volume makes what a check mounts: a writable PersistentVolumeClaim bound
// to a PersistentVolume on a folder here (the test cluster's one node is
// this machine; a hostPath PersistentVolume is the administrator's to
// make, so the restricted level allows the Pod's claim), or a Secret for a
// read-only mount.
func volume(t *testing.T, d *Driver, target string, readOnly bool) (driver.Mount, string) {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("kit-%s-%d", testRun, volumeSeq.Add())
	if readOnly {
		_, err := d.cs.CoreV1().Secrets(namespace).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string][]byte{"token": []byte("kit")},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("secret: %v", err)
		}
		t.Cleanup(func() { d.cs.CoreV1().Secrets(namespace).Delete(context.Background(), name, metav1.DeleteOptions{}) })
		return driver.Mount{Kind: driver.MountSecret, Source: name, Target: target, ReadOnly: true}, ""
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	size := resource.MustParse("16Mi")
	class := "hershy-kit-manual"
	_, err := d.cs.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              class,
			ClaimRef:                      &corev1.ObjectReference{Namespace: namespace, Name: name},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("persistent volume: %v", err)
	}
	_, err = d.cs.CoreV1().PersistentVolumeClaims(namespace).Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: &class,
			VolumeName:       name,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		d.cs.CoreV1().PersistentVolumeClaims(namespace).Delete(ctx, name, metav1.DeleteOptions{})
		d.cs.CoreV1().PersistentVolumes().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return driver.Mount{Kind: driver.MountClaim, Source: name, Target: target}, dir
}

var volumeSeq seq

type seq struct {
	mu sync.Mutex
	n  int
}

func (s *seq) Add() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return s.n
}
