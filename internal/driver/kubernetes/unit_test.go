package kubernetes

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestLabelEncoding(t *testing.T) {
	for _, tc := range []struct{ key, value, wantKey, wantValue string }{
		{driver.LabelProgram, "abc-123", driver.LabelProgram, "abc-123"},
		{driver.LabelManaged, "true", driver.LabelManaged, "true"},
		{"a/b/c", "x", "hershy.org/k-" + digest("a/b/c"), "x"},
		{"k", strings.Repeat("v", 64), "k", "h-" + digest(strings.Repeat("v", 64))},
		{"k", "spaces are refused", "k", "h-" + digest("spaces are refused")},
		{"k", "", "k", ""},
	} {
		if got := labelKey(tc.key); got != tc.wantKey {
			t.Errorf("labelKey(%q) = %q, want %q", tc.key, got, tc.wantKey)
		}
		if got := labelValue(tc.value); got != tc.wantValue {
			t.Errorf("labelValue(%q) = %q, want %q", tc.value, got, tc.wantValue)
		}
	}
}

func validSpec() driver.ContainerSpec {
	return driver.ContainerSpec{
		Name: "hersh-program-x", Image: "img", User: "10001:10002", Env: []string{"A=1", "B=x=y"},
		Labels: map[string]string{driver.LabelProgram: "x", "odd": "not a label value"},
		Mounts: []driver.Mount{
			{Kind: driver.MountClaim, Source: "state-x", Target: "/state"},
			{Kind: driver.MountSecret, Source: "secrets-x", Target: "/run/secrets", ReadOnly: true},
		},
		Limits: driver.Limits{MemoryBytes: 64 << 20, CPUs: 0.5, Pids: 128, LogBytes: 1 << 20},
	}
}

// TestPodHardening pins the fields the restricted Pod Security level and
// the sandbox contract ask for: a Pod without one of them is weaker than
// a Docker container of the same spec.
func TestPodHardening(t *testing.T) {
	class := "gvisor"
	p, err := podFor(validSpec(), "reg/img@sha256:0", &class, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Spec
	c := s.Containers[0]
	sc := c.SecurityContext
	switch {
	case !gated(p):
		t.Error("a created Pod must wait behind the start gate")
	case len(p.Finalizers) != 1 || p.Finalizers[0] != keepFinalizer:
		t.Errorf("finalizers %v", p.Finalizers)
	case s.RestartPolicy != corev1.RestartPolicyNever:
		t.Errorf("restart policy %s: the Host restarts programs", s.RestartPolicy)
	case s.RuntimeClassName == nil || *s.RuntimeClassName != "gvisor":
		t.Errorf("runtime class %v", s.RuntimeClassName)
	case s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken:
		t.Error("a program must not get a service account token")
	case s.EnableServiceLinks == nil || *s.EnableServiceLinks:
		t.Error("service links must be off")
	case s.HostNetwork || s.HostPID || s.HostIPC:
		t.Error("host namespaces")
	case *s.SecurityContext.RunAsUser != 10001 || *s.SecurityContext.RunAsGroup != 10002 || !*s.SecurityContext.RunAsNonRoot:
		t.Errorf("pod security context %+v", s.SecurityContext)
	case s.SecurityContext.SeccompProfile == nil || s.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("seccomp RuntimeDefault is required")
	case sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || !*sc.RunAsNonRoot:
		t.Errorf("container security context %+v", sc)
	case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0:
		t.Errorf("capabilities %+v", sc.Capabilities)
	case len(c.Ports) != 0:
		t.Error("no port may be declared")
	case c.Resources.Limits.Memory().Value() != 64<<20 || c.Resources.Limits.Cpu().MilliValue() != 500:
		t.Errorf("limits %v", c.Resources.Limits)
	case c.Env[1].Name != "B" || c.Env[1].Value != "x=y":
		t.Errorf("env %v", c.Env)
	}
	kinds := map[string]string{}
	for _, v := range s.Volumes {
		switch {
		case v.HostPath != nil:
			t.Errorf("volume %s is a host path", v.Name)
		case v.PersistentVolumeClaim != nil:
			kinds[v.Name] = "claim " + v.PersistentVolumeClaim.ClaimName
		case v.Secret != nil:
			kinds[v.Name] = "secret " + v.Secret.SecretName
		case v.EmptyDir != nil:
			kinds[v.Name] = "tmp " + string(v.EmptyDir.Medium)
		}
	}
	mounted := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounted[m.MountPath] = kinds[m.Name]
		if m.MountPath == "/run/secrets" && !m.ReadOnly {
			t.Error("secrets must be mounted read-only")
		}
	}
	want := map[string]string{"/tmp": "tmp Memory", "/state": "claim state-x", "/run/secrets": "secret secrets-x"}
	for path, kind := range want {
		if mounted[path] != kind {
			t.Errorf("mount at %s: %q, want %q", path, mounted[path], kind)
		}
	}
	if got := labelsOf(p); got["odd"] != "not a label value" || got[driver.LabelManaged] != "true" {
		t.Errorf("labels read back %v", got)
	}
}

func TestPodRefusesHostFolders(t *testing.T) {
	s := validSpec()
	s.Mounts = []driver.Mount{{Source: "/etc", Target: "/state"}}
	if _, err := podFor(s, "img", nil, time.Second); !errors.Is(err, driver.ErrInvalidSpec) {
		t.Fatalf("a Host folder mount: %v, want ErrInvalidSpec", err)
	}
}

func pod(status corev1.ContainerStatus, deleting bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "u1"}}
	status.Name = container
	p.Status.ContainerStatuses = []corev1.ContainerStatus{status}
	if deleting {
		now := metav1.Now()
		p.DeletionTimestamp = &now
	}
	return p
}

func TestTransition(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	running := corev1.ContainerStatus{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(t0)}}}
	exited := func(code int32, reason string) corev1.ContainerStatus {
		return corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: code, Reason: reason, StartedAt: metav1.NewTime(t0), FinishedAt: metav1.NewTime(t0.Add(time.Second))}}}
	}
	waiting := corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
	for _, tc := range []struct {
		name    string
		was     seen
		status  corev1.ContainerStatus
		deleted bool
		want    string // kinds and codes
	}{
		{"not yet running", seen{}, waiting, false, ""},
		{"starts", seen{}, running, false, "start"},
		{"a repeat of running", seen{started: true}, running, false, ""},
		{"exits", seen{started: true}, exited(3, "Error"), false, "die 3"},
		{"started and exited between two updates", seen{}, exited(0, "Completed"), false, "start die 0"},
		{"a repeat of the exit", seen{started: true, died: true}, exited(3, "Error"), false, ""},
		{"killed for memory", seen{started: true}, exited(137, "OOMKilled"), false, "oom die 137"},
		{"gVisor's memory kill reads 128", seen{started: true}, exited(128, "OOMKilled"), false, "oom die 137"},
		{"removed while running", seen{started: true}, running, true, "die 137"},
		{"removed after its exit", seen{started: true, died: true}, exited(0, "Completed"), true, ""},
		{"removed before it ran", seen{}, waiting, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, _ := transition(tc.was, pod(tc.status, false), tc.deleted, t0)
			var got []string
			for _, e := range evs {
				s := string(e.Kind)
				if e.Kind == driver.EventDie {
					s += " " + strconv.Itoa(e.ExitCode)
				}
				if e.Kind == driver.EventOOM && !e.OOMKilled {
					s += "(no flag)"
				}
				got = append(got, s)
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Errorf("events %q, want %q", g, tc.want)
			}
		})
	}
}

func TestStateFailure(t *testing.T) {
	for reason, fails := range map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "CreateContainerError": true, "ContainerCreating": false} {
		p := pod(corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "m"}}}, false)
		if got := stateOf(p).failure != ""; got != fails {
			t.Errorf("waiting for %s: failure %v, want %v", reason, got, fails)
		}
	}
}

func TestUntimestamp(t *testing.T) {
	in := "2026-01-01T00:00:00.100000000Z early\n" +
		"2026-01-01T00:00:00.600000000Z late\n" +
		"unstamped note\n" +
		"2026-01-01T00:00:01.000000000Z last, no newline"
	since := time.Date(2026, 1, 1, 0, 0, 0, 500_000_000, time.UTC)
	var out bytes.Buffer
	if err := untimestamp(strings.NewReader(in), &out, since); err != nil {
		t.Fatal(err)
	}
	if want := "late\nunstamped note\nlast, no newline"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestRegistryNames(t *testing.T) {
	r, err := newRegistry("127.0.0.1:5000/hershy")
	if err != nil {
		t.Fatal(err)
	}
	if r.scheme != "http" {
		t.Errorf("a loopback registry is spoken to over %s, want http", r.scheme)
	}
	if got, _ := r.remote("hersh-program-abc"); got != "127.0.0.1:5000/hershy/hersh-program-abc:latest" {
		t.Errorf("remote = %q", got)
	}
	if got, _ := r.remote("probe:v1"); got != "127.0.0.1:5000/hershy/probe:v1" {
		t.Errorf("remote = %q", got)
	}
	if got := r.localTag("127.0.0.1:5000/hershy/probe:v1@sha256:" + strings.Repeat("a", 64)); got != "probe:v1" {
		t.Errorf("localTag = %q", got)
	}
	if repo, which, err := r.split("probe:v1"); err != nil || repo != "hershy/probe" || which != "v1" {
		t.Errorf("split of a local tag = %q %q %v", repo, which, err)
	}
	if _, _, err := r.split("other.example/x@sha256:" + strings.Repeat("a", 64)); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("a digest of another registry: %v, want ErrNotFound", err)
	}
	if r, _ := newRegistry("registry.example:443/x"); r.scheme != "https" {
		t.Errorf("a remote registry is spoken to over %s, want https", r.scheme)
	}
	if _, err := newRegistry("nohost"); err == nil {
		t.Error("a registry without a host was accepted")
	}
	if !sameImage("r:5000/a:t1@sha256:"+strings.Repeat("b", 64), "r:5000/a@sha256:"+strings.Repeat("b", 64)) {
		t.Error("one digest under two tags is one image")
	}
}

// TestPolicy: a program without network gets no traffic in or out; one
// granted network reaches public addresses only.
func TestPolicy(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "u", Labels: map[string]string{podLabel: "p"}}}
	np := policyFor(p, false, nil)
	if len(np.Spec.PolicyTypes) != 2 || len(np.Spec.Ingress) != 0 || len(np.Spec.Egress) != 0 {
		t.Errorf("without network: %+v, want both directions denied", np.Spec)
	}
	if np.Spec.PodSelector.MatchLabels[podLabel] != "p" || len(np.OwnerReferences) != 1 || np.OwnerReferences[0].UID != "u" {
		t.Errorf("the policy must select and be owned by its Pod: %+v", np.ObjectMeta)
	}
	np = policyFor(p, true, []string{"192.0.2.2/32", "2001:db8::1/128"})
	if len(np.Spec.Ingress) != 0 || len(np.Spec.Egress) != 1 {
		t.Fatalf("with network: %+v, want egress only", np.Spec)
	}
	except := map[string]bool{}
	for _, peer := range np.Spec.Egress[0].To {
		if peer.IPBlock == nil || peer.PodSelector != nil || peer.NamespaceSelector != nil {
			t.Errorf("egress peer %+v: only address blocks", peer)
			continue
		}
		for _, e := range peer.IPBlock.Except {
			except[e] = true
		}
	}
	for _, cidr := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8", "fc00::/7", "192.0.2.2/32", "2001:db8::1/128"} {
		if !except[cidr] {
			t.Errorf("egress reaches %s", cidr)
		}
	}
}

// endless is a program's output line of n bytes that never ends.
type endless struct{ n int }

func (e *endless) Read(b []byte) (int, error) {
	if e.n == 0 {
		return 0, io.EOF
	}
	k := min(len(b), e.n)
	for i := range b[:k] {
		b[i] = 'x'
	}
	e.n -= k
	return k, nil
}

// TestUntimestampLongLine: a 64 MiB line (a hostile program's output) is
// copied whole, in pieces: the Host does not hold it in memory at once.
func TestUntimestampLongLine(t *testing.T) {
	const size = 64 << 20
	for _, tc := range []struct {
		since time.Time
		want  int64
	}{{time.Time{}, size}, {time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), 0}} {
		in := io.MultiReader(strings.NewReader("2026-01-01T00:00:00Z "), &endless{n: size})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		n := &countWriter{}
		if err := untimestamp(in, n, tc.since); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if n.n != tc.want {
			t.Errorf("since %v: copied %d bytes, want %d", tc.since, n.n, tc.want)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
			t.Errorf("reading a %d MiB line allocated %d MiB", size>>20, alloc>>20)
		}
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(b []byte) (int, error) { c.n += int64(len(b)); return len(b), nil }
