package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/hershyorg/hershy/internal/driver"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// testClusterKubeconfig is where scripts/cluster.sh up leaves the admin's.
const testClusterKubeconfig = "/var/cache/hershy-cluster/pki/admin.kubeconfig"

// cluster is the test cluster a Host runs programs on: this test's
// namespace (enforcing the restricted Pod Security level) and registry
// path.
type cluster struct {
	cs       kubernetes.Interface
	config   string
	ns       string
	registry string
}

// openCluster returns the test cluster, or skips when it is not up;
// HERSHY_KUBECONFIG set (scripts/test.sh sets it after
// scripts/cluster.sh up) or CI set makes its absence fail the test.
func openCluster(t *testing.T) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	path, required := os.Getenv("HERSHY_KUBECONFIG"), true
	if path == "" {
		path, required = testClusterKubeconfig, os.Getenv("CI") != ""
	}
	fail := func(err error) {
		if required {
			t.Fatalf("the test cluster is required (HERSHY_KUBECONFIG or CI set) and not usable: %v (scripts/cluster.sh build && scripts/cluster.sh up)", err)
		}
		t.Skipf("no test cluster (%v): run scripts/cluster.sh up, or set HERSHY_KUBECONFIG", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		fail(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		fail(err)
	}
	c := &cluster{cs: cs, config: path, ns: "hershy-e2e-" + nonce(), registry: "127.0.0.1:5000/e2e-" + nonce()}
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: c.ns, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
		}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("namespace: %v", err)
	}
	t.Cleanup(func() {
		cs.CoreV1().Namespaces().Delete(context.Background(), c.ns, metav1.DeleteOptions{})
	})
	return c
}

// hostArgs are the serve flags of a Host that runs programs on the
// cluster under gVisor (the handler on the Pod's own network stack, so
// the API server's port-forward reaches the WatcherAPI).
func (c *cluster) hostArgs() []string {
	return []string{"--engine", "kubernetes", "--kubeconfig", c.config, "--namespace", c.ns,
		"--registry", c.registry, "--runtime-class", "gvisor-host", "--kubelet-direct"}
}

// pod is the program's Pod now (nil when there is none).
func (c *cluster) pod(t *testing.T, p *program) *corev1.Pod {
	t.Helper()
	l, err := c.cs.CoreV1().Pods(c.ns).List(context.Background(), metav1.ListOptions{LabelSelector: driver.LabelProgram + "=" + p.id})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) == 0 {
		return nil
	}
	return &l.Items[0]
}

// TestCluster runs the programs' lifecycle on a real Kubernetes cluster
// under gVisor, through a Host started with --engine kubernetes: deploys
// through the API and the CLI (Go source, and a Dockerfile on the Host's
// image), every WatcherAPI route through the proxy, each program only
// through its own route, messages, /state across stop and start, restart,
// a Host restart (the Pods re-adopted, not replaced) and an upgrade, the
// Pods' hardening as the API server holds it, the sandbox seen from
// inside, crash back-off, and delete leaving nothing in the cluster or
// the registry.
func TestCluster(t *testing.T) {
	c := openCluster(t)
	began := time.Now()
	phase := func(name string) { t.Logf("%7.1fs %s", time.Since(began).Seconds(), name) }
	h := startHostWith(t, driver.RuntimeRunsc, c.hostArgs(), nil)
	s := &suite{h: h, alice: h.user("alice"), bob: h.user("bob")}

	all := s.deployExamples(t, phase)

	phase("the Pods' hardening, and every WatcherAPI route through the proxy")
	for _, p := range all {
		c.checkPod(t, p)
		checkRoutes(t, p)
	}
	phase("each program only through its own route")
	s.checkIsolation(t)
	phase("messages steer the programs")
	s.checkMessages(t)

	podUID := func(p *program) string {
		if pod := c.pod(t, p); pod != nil {
			return string(pod.UID)
		}
		return "no Pod"
	}
	s.checkDurablePhases(t, phase, all, podUID, func(p *program) {
		if pod := c.pod(t, p); pod != nil {
			t.Errorf("%s: Pod %s still there after the stop", p.name, pod.Name)
		}
	})

	phase("the sandbox seen from inside, and crash back-off")
	probe := h.deploy(t, s.alice, "probe", client.SourceRequest{SrcFiles: readSource(t, "testdata/probe")})
	probe.waitState("Ready", 3*time.Minute)
	r := probe.check([]string{"/probe.txt", "/state/probe.txt", "/run/secrets/probe.txt"}, nil)
	if r.Write["/probe.txt"] == "ok" || r.Write["/run/secrets/probe.txt"] == "ok" {
		t.Errorf("the probe wrote outside /state: %v", r.Write)
	}
	if r.Write["/state/probe.txt"] != "ok" {
		t.Errorf("the probe cannot write /state: %s", r.Write["/state/probe.txt"])
	}
	if r.UID == 0 {
		t.Error("the probe runs as root")
	}
	checkCrashLoop(t, probe)

	phase("delete keeps /state when asked (hershy rm --keep-state), and otherwise leaves nothing behind")
	if out, errOut, err := h.cli(s.alice.token, "rm", "--keep-state", probe.id); err != nil {
		t.Fatalf("hershy rm --keep-state: %v\n%s%s", err, out, errOut)
	}
	claims := c.cs.CoreV1().PersistentVolumeClaims(c.ns)
	if _, err := claims.Get(context.Background(), "hersh-state-"+probe.id, metav1.GetOptions{}); err != nil {
		t.Errorf("the /state kept on request: %v", err)
	}
	if pod := c.pod(t, probe); pod != nil {
		t.Errorf("the Pod of a deleted program is left: %s", pod.Name)
	}
	claims.Delete(context.Background(), "hersh-state-"+probe.id, metav1.DeleteOptions{})
	for _, p := range all {
		c.checkDelete(t, p)
	}
	c.checkEmpty(t)
	phase("done")
}

// checkPod checks the program's Pod as the API server holds it: gVisor,
// the hardening, the limits, /state a claim, secrets a read-only Secret,
// no port, no service account token.
func (c *cluster) checkPod(t *testing.T, p *program) {
	t.Helper()
	pod := c.pod(t, p)
	if pod == nil {
		t.Fatalf("%s: no Pod", p.name)
	}
	s := pod.Spec
	ct := s.Containers[0]
	sc := ct.SecurityContext
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if s.RuntimeClassName == nil || *s.RuntimeClassName != "gvisor-host" {
		bad("runtime class %v", s.RuntimeClassName)
	}
	if s.RestartPolicy != corev1.RestartPolicyNever {
		bad("restart policy %s", s.RestartPolicy)
	}
	if s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken || s.HostNetwork || s.HostPID || s.HostIPC {
		bad("a service account token or a host namespace")
	}
	if s.SecurityContext == nil || s.SecurityContext.RunAsUser == nil || *s.SecurityContext.RunAsUser == 0 ||
		s.SecurityContext.SeccompProfile == nil || s.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		bad("pod security context %+v", s.SecurityContext)
	}
	if sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		bad("container security context %+v", sc)
	}
	if len(ct.Ports) != 0 {
		bad("ports %v", ct.Ports)
	}
	if ct.Resources.Limits.Memory().IsZero() || ct.Resources.Limits.Cpu().IsZero() {
		bad("limits %v", ct.Resources.Limits)
	}
	mounts := map[string]string{}
	for _, m := range ct.VolumeMounts {
		for _, v := range s.Volumes {
			switch {
			case v.Name != m.Name:
			case v.PersistentVolumeClaim != nil:
				mounts[m.MountPath] = "claim"
			case v.Secret != nil && m.ReadOnly:
				mounts[m.MountPath] = "secret"
			case v.EmptyDir != nil:
				mounts[m.MountPath] = "tmp"
			default:
				mounts[m.MountPath] = "other " + v.Name
			}
		}
	}
	if mounts["/state"] != "claim" || mounts["/run/secrets"] != "secret" || mounts["/tmp"] != "tmp" || len(mounts) != 3 {
		bad("mounts %v", mounts)
	}
	if len(problems) > 0 {
		t.Errorf("%s: Pod %s: %s", p.name, pod.Name, strings.Join(problems, "; "))
	}
}

// checkDelete deletes a program and checks that the cluster holds nothing
// of it: no Pod, claim or Secret, and its image's tag gone from the
// registry.
func (c *cluster) checkDelete(t *testing.T, p *program) {
	t.Helper()
	ctx := context.Background()
	last := p.get()
	if err := p.c.DeleteProgram(ctx, p.id); err != nil {
		t.Fatalf("%s: delete: %v", p.name, err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(150 * time.Millisecond) {
		if _, err := p.c.GetProgram(ctx, p.id); client.IsStatus(err, http.StatusNotFound) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%s: still there a minute after delete: %v", p.name, err)
		}
	}
	sel := metav1.ListOptions{LabelSelector: driver.LabelProgram + "=" + p.id}
	if l, err := c.cs.CoreV1().Pods(c.ns).List(ctx, sel); err != nil || len(l.Items) != 0 {
		t.Errorf("%s: Pods after delete: %d %v", p.name, len(l.Items), err)
	}
	if l, err := c.cs.CoreV1().PersistentVolumeClaims(c.ns).List(ctx, sel); err != nil || len(l.Items) != 0 {
		t.Errorf("%s: claims after delete: %d %v", p.name, len(l.Items), err)
	}
	if l, err := c.cs.CoreV1().Secrets(c.ns).List(ctx, sel); err != nil || len(l.Items) != 0 {
		t.Errorf("%s: Secrets after delete: %d %v", p.name, len(l.Items), err)
	}
	if tags := c.tags(t, "hersh-program-"+last.BuildID); len(tags) != 0 && !c.buildInUse(t, last.BuildID) {
		t.Errorf("%s: its image is still in the registry: %v", p.name, tags)
	}
}

// buildInUse: another program still runs the build (its image stays).
func (c *cluster) buildInUse(t *testing.T, buildID string) bool {
	l, err := c.cs.CoreV1().Pods(c.ns).List(context.Background(), metav1.ListOptions{LabelSelector: driver.LabelBuild + "=" + buildID})
	return err == nil && len(l.Items) > 0
}

// tags lists a repository's tags in the registry.
func (c *cluster) tags(t *testing.T, repo string) []string {
	t.Helper()
	host, prefix, _ := strings.Cut(c.registry, "/")
	resp, err := http.Get("http://" + host + "/v2/" + prefix + "/" + repo + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var l struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		t.Fatalf("registry tags of %s: %v", repo, err)
	}
	return l.Tags
}

// checkEmpty: nothing of the Host's is left in its namespace, and every
// volume a claim of it had is gone too.
func (c *cluster) checkEmpty(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		pods, err1 := c.cs.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{})
		claims, err2 := c.cs.CoreV1().PersistentVolumeClaims(c.ns).List(ctx, metav1.ListOptions{})
		vols, err3 := c.cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
		left := 0
		for _, v := range vols.Items {
			if v.Spec.ClaimRef != nil && v.Spec.ClaimRef.Namespace == c.ns {
				left++
			}
		}
		if err1 == nil && err2 == nil && err3 == nil && len(pods.Items) == 0 && len(claims.Items) == 0 && left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("left in the cluster a minute after the last delete: %d Pods, %d claims, %d volumes (%v %v %v)",
				len(pods.Items), len(claims.Items), left, err1, err2, err3)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestClusterNetwork runs the sandbox test's network checks on the
// cluster: probes without network, with network, and another user's
// probe listening on its Pod's address. Neither probe reaches the Host's
// API or a service of the machine listening on every interface (on any of
// its addresses, the cluster bridge's among them), nor the other user's
// program; the one granted network has a route out. The dials are made by
// the programs inside their sandboxes; the test itself only talks to the
// Host on 127.0.0.1.
func TestClusterNetwork(t *testing.T) {
	c := openCluster(t)
	h := startHostWith(t, driver.RuntimeRunsc, c.hostArgs(), nil)
	alice, bob := h.user("alice"), h.user("bob")
	files := readSource(t, "testdata/probe")
	yes := true
	none := h.deploy(t, alice, "probe-none", client.SourceRequest{SrcFiles: files})
	egress := h.deploy(t, alice, "probe-egress", client.SourceRequest{SrcFiles: files, Network: &yes})
	peer := h.deploy(t, bob, "probe-peer", client.SourceRequest{SrcFiles: files, Network: &yes})
	for _, p := range []*program{none, egress, peer} {
		p.waitState("Ready", 3*time.Minute)
	}
	_, port, _ := net.SplitHostPort(h.addr)
	wide, accepted := wideListener(t)
	targets := []string{"127.0.0.1:" + port}
	for _, a := range hostAddrs(t) {
		targets = append(targets, net.JoinHostPort(a, port), net.JoinHostPort(a, wide))
	}
	peer.ask("listen 9000", "probe-listen 9000: ok")
	peerAddr := net.JoinHostPort(c.pod(t, peer).Status.PodIP, "9000")
	for _, tc := range []struct {
		p       *program
		network bool
	}{{none, false}, {egress, true}} {
		r := tc.p.check(nil, append(slices.Clone(targets), peerAddr))
		t.Logf("%s: %+v", tc.p.name, r)
		for addr, res := range r.Dial {
			if res == "ok" {
				t.Errorf("%s reached %s", tc.p.name, addr)
			}
		}
		if len(r.Dial) != len(targets)+1 {
			t.Errorf("%s: %d dial results, want %d", tc.p.name, len(r.Dial), len(targets)+1)
		}
		if tc.network && (len(r.Interfaces) < 2 || !r.DefaultRoute) {
			t.Errorf("%s: granted network but has interfaces %v, default route %v", tc.p.name, r.Interfaces, r.DefaultRoute)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the machine's service on all interfaces accepted %d connections from Pods", n)
	}
	if r := peer.check(nil, []string{peerAddr}); r.Dial[peerAddr] != "ok" {
		t.Errorf("the peer cannot reach its own listener %s: %s", peerAddr, r.Dial[peerAddr])
	}
}
