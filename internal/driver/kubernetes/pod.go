package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Names the driver puts on its Pods.
const (
	// container is the name of the program's container in its Pod.
	container = "program"
	// startGate holds a created Pod back from scheduling until
	// StartContainer.
	startGate = "hershy.org/start"
	// keepFinalizer keeps a stopped Pod, with its exit, until
	// RemoveContainer.
	keepFinalizer = "hershy.org/keep"
	// labelsAnnotation holds the container's labels exactly as given
	// (JSON): a label value Kubernetes would refuse (too long, or other
	// characters) is hashed in the Pod's labels and kept whole here.
	labelsAnnotation = "hershy.org/labels"
	// limitsAnnotation records the limits Kubernetes has no Pod field for
	// (pids, log bytes): the node's kubelet configuration enforces them.
	limitsAnnotation = "hershy.org/limits"
	// tmpBytes is the size of the memory-backed /tmp, as the Docker
	// driver's tmpfs.
	tmpBytes = 16 << 20
)

// labelKey and labelValue make a driver label valid for Kubernetes: one
// it would refuse becomes a hash, the same every time, so selection by
// label still works (the whole label is in labelsAnnotation).
func labelKey(k string) string {
	if len(validation.IsQualifiedName(k)) == 0 {
		return k
	}
	return "hershy.org/k-" + digest(k)
}

func labelValue(v string) string {
	if len(validation.IsValidLabelValue(v)) == 0 {
		return v
	}
	return "h-" + digest(v)
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:20])
}

// selector is the label selector of labels, in Kubernetes' encoding.
func selector(labels map[string]string) string {
	var parts []string
	for k, v := range labels {
		parts = append(parts, labelKey(k)+"="+labelValue(v))
	}
	return strings.Join(parts, ",")
}

// podFor renders a container spec as a Pod: created behind the start gate,
// under the restricted Pod Security level. spec must have passed
// driver.ContainerSpec.Check; image is the reference the nodes pull.
func podFor(spec driver.ContainerSpec, image string, class *string, grace time.Duration) (*corev1.Pod, error) {
	uid, gid, err := userIDs(spec.User)
	if err != nil {
		return nil, err
	}
	given := map[string]string{driver.LabelManaged: "true"}
	for k, v := range spec.Labels {
		given[k] = v
	}
	labels := kubeLabels(given)
	labels[podLabel] = labelValue(spec.Name)
	all, _ := json.Marshal(given)
	lim, _ := json.Marshal(map[string]int64{"pids": spec.Limits.Pids, "logBytes": spec.Limits.LogBytes})
	var env []corev1.EnvVar
	for _, kv := range spec.Env {
		k, v, _ := strings.Cut(kv, "=")
		env = append(env, corev1.EnvVar{Name: k, Value: v})
	}
	mem := resource.NewQuantity(spec.Limits.MemoryBytes, resource.BinarySI)
	cpu := resource.NewMilliQuantity(max(1, int64(spec.Limits.CPUs*1000)), resource.DecimalSI)
	res := corev1.ResourceList{corev1.ResourceMemory: *mem, corev1.ResourceCPU: *cpu}
	// The memory a program may use is reserved (the Host's quotas count
	// it); its CPU is a cap, as with Docker, not a reservation: a tenth of
	// it is asked for, so a node's cores are not spent on idle programs.
	req := corev1.ResourceList{corev1.ResourceMemory: *mem,
		corev1.ResourceCPU: *resource.NewMilliQuantity(max(1, cpu.MilliValue()/10), resource.DecimalSI)}
	tmp := resource.NewQuantity(tmpBytes, resource.BinarySI)
	mounts := []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
	volumes := []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: tmp}}}}
	for i, m := range spec.Mounts {
		v, err := volumeFor(m, fmt.Sprintf("m%d", i))
		if err != nil {
			return nil, err
		}
		volumes = append(volumes, v)
		mounts = append(mounts, corev1.VolumeMount{Name: v.Name, MountPath: m.Target, ReadOnly: m.ReadOnly})
	}
	graceSec := int64(grace / time.Second)
	no := false
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   spec.Name,
			Labels: labels,
			Annotations: map[string]string{labelsAnnotation: string(all), limitsAnnotation: string(lim),
				networkAnnotation: strconv.FormatBool(spec.Network)},
			Finalizers: []string{keepFinalizer},
		},
		Spec: corev1.PodSpec{
			SchedulingGates:               []corev1.PodSchedulingGate{{Name: startGate}},
			RestartPolicy:                 corev1.RestartPolicyNever,
			RuntimeClassName:              class,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			TerminationGracePeriodSeconds: &graceSec,
			SecurityContext:               podSecurity(uid, gid),
			Containers: []corev1.Container{{
				Name:                     container,
				Image:                    image,
				ImagePullPolicy:          corev1.PullIfNotPresent,
				Env:                      env,
				Resources:                corev1.ResourceRequirements{Limits: res, Requests: req},
				VolumeMounts:             mounts,
				SecurityContext:          containerSecurity(),
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			}},
			Volumes: volumes,
		},
	}, nil
}

// podSecurity is the Pod-level half of the restricted level's hardening,
// shared by program Pods and the state helper's: a numeric non-root user
// and group (also the group of the volumes' files), seccomp RuntimeDefault.
func podSecurity(uid, gid int64) *corev1.PodSecurityContext {
	yes := true
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   &yes,
		RunAsUser:      &uid,
		RunAsGroup:     &gid,
		FSGroup:        &gid,
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// containerSecurity is the container-level half: a read-only root, no
// privilege escalation, every capability dropped.
func containerSecurity() *corev1.SecurityContext {
	no, yes := false, true
	return &corev1.SecurityContext{
		ReadOnlyRootFilesystem:   &yes,
		AllowPrivilegeEscalation: &no,
		RunAsNonRoot:             &yes,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// volumeFor renders one mount. The driver makes no Host folder visible to
// a Pod (a hostPath volume breaks the restricted level, and the node is
// not the Host): a mount names a PersistentVolumeClaim or a Secret of the
// namespace.
func volumeFor(m driver.Mount, name string) (corev1.Volume, error) {
	switch m.Kind {
	case driver.MountClaim:
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: m.Source, ReadOnly: m.ReadOnly}}}, nil
	case driver.MountSecret:
		mode := int32(0o440)
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: m.Source, DefaultMode: &mode}}}, nil
	}
	return corev1.Volume{}, fmt.Errorf("kubernetes: %w: mount of %s: this driver mounts no folder of the Host (a PersistentVolumeClaim or a Secret is required)", driver.ErrInvalidSpec, m.Target)
}

func userIDs(u string) (uid, gid int64, err error) {
	a, b, _ := strings.Cut(u, ":")
	uid, err1 := strconv.ParseInt(a, 10, 64)
	gid, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("kubernetes: %w: user %q", driver.ErrInvalidSpec, u)
	}
	return uid, gid, nil
}

// gated reports whether a Pod still waits for StartContainer.
func gated(p *corev1.Pod) bool {
	for _, g := range p.Spec.SchedulingGates {
		if g.Name == startGate {
			return true
		}
	}
	return false
}

// programStatus is the program container's status in p, if the kubelet
// has reported one.
func programStatus(p *corev1.Pod) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == container {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// labelsOf returns the labels a Pod was made with.
func labelsOf(p *corev1.Pod) map[string]string {
	var l map[string]string
	if err := json.Unmarshal([]byte(p.Annotations[labelsAnnotation]), &l); err != nil || l == nil {
		l = map[string]string{}
		for k, v := range p.Labels {
			l[k] = v
		}
	}
	return l
}

// podState is what the driver reads from a Pod.
type podState struct {
	running    bool
	exited     bool // the program ran and ended
	exitCode   int
	oom        bool
	startedAt  time.Time
	finishedAt time.Time
	// failure is why the program cannot start (an image that cannot be
	// pulled, a spec the runtime refuses); empty otherwise.
	failure string
}

// stateOf reads the program's state from its Pod.
func stateOf(p *corev1.Pod) podState {
	var s podState
	cs := programStatus(p)
	if cs == nil {
		if p.Status.Phase == corev1.PodFailed {
			s.failure = p.Status.Reason + ": " + p.Status.Message
		}
		return s
	}
	switch {
	case cs.State.Running != nil:
		s.running = true
		s.startedAt = cs.State.Running.StartedAt.Time
	case cs.State.Terminated != nil:
		t := cs.State.Terminated
		s.exited = true
		s.exitCode = int(t.ExitCode)
		s.oom = t.Reason == "OOMKilled"
		if s.oom && s.exitCode != 137 {
			// A memory kill is a SIGKILL; gVisor's sandbox dies with it
			// and the runtime reports 128 (status unknown).
			s.exitCode = 137
		}
		s.startedAt, s.finishedAt = t.StartedAt.Time, t.FinishedAt.Time
		if s.finishedAt.IsZero() {
			s.finishedAt = p.DeletionTimestamp.Time
		}
		if s.startedAt.IsZero() && t.ExitCode != 0 && t.Reason != "" {
			// It never ran: the runtime refused it.
			s.failure = t.Reason + ": " + t.Message
		}
	case cs.State.Waiting != nil:
		switch r := cs.State.Waiting.Reason; r {
		case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
			"CreateContainerConfigError", "CreateContainerError", "RunContainerError":
			s.failure = r + ": " + cs.State.Waiting.Message
		}
	}
	return s
}

// infoOf is the driver's view of a Pod.
func (d *Driver) infoOf(p *corev1.Pod) driver.ContainerInfo {
	s := stateOf(p)
	info := driver.ContainerInfo{
		ID:         p.Name,
		Name:       p.Name,
		Labels:     labelsOf(p),
		Running:    s.running && p.DeletionTimestamp == nil,
		ExitCode:   s.exitCode,
		OOMKilled:  s.oom,
		StartedAt:  s.startedAt,
		FinishedAt: s.finishedAt,
		Runtime:    d.runtimeOf(p.Spec.RuntimeClassName),
	}
	if s.running && p.DeletionTimestamp != nil {
		info.Running = true // still stopping
	}
	if len(p.Spec.Containers) > 0 {
		info.Image = p.Spec.Containers[0].Image
	}
	if s.running {
		info.StartedAt = s.startedAt
		info.FinishedAt = time.Time{}
	}
	return info
}
