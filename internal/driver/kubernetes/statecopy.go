package kubernetes

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/imagetar"
	"github.com/hershyorg/hershy/internal/statearchive"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// A program's /state volume is copied out and in (driver.StateCopier) by
// a short-lived helper Pod in the namespace that mounts the volume's
// claim at /state and runs the state helper: the Host's own binary
// (Options.StateHelper), never anything of the user's image, in an image
// of that one file pushed to the registry once per binary and named by
// digest. The Pod has the program Pods' hardening (the program's own user,
// a read-only root, no capability, no privilege escalation, seccomp
// RuntimeDefault, no service account token, the program's RuntimeClass)
// and a NetworkPolicy that lets nothing in or out before it is scheduled.
// The archive goes through the exec subresource's stdin and stdout, which
// carry bytes as they are; the helper checks every entry as
// package statearchive does, and writes into the real volume, whose size
// is the cap.

const (
	// helperContainer is the helper Pod's container.
	helperContainer = "state-helper"
	// helperPath is the helper's binary in its image.
	helperPath = "/hershy"
	// helperLife bounds a helper Pod's life: its main process ends then,
	// and the kubelet ends the Pod (activeDeadlineSeconds).
	helperLife = time.Hour
	// helperMemory is the helper's memory limit.
	helperMemory = 256 << 20
)

// ExportVolume writes the volume's archive to w, read by the state helper
// in a Pod of its own.
func (d *Driver) ExportVolume(ctx context.Context, spec driver.VolumeCopy, w io.Writer) error {
	return d.withHelper(ctx, spec, func(pod string) error {
		res, err := d.exec(ctx, pod, helperContainer, []string{helperPath, statearchive.HelperCommand, "export", "/state"}, nil, w)
		if err != nil {
			return err
		}
		if res.code != 0 {
			return fmt.Errorf("kubernetes: export of volume %s: the helper's exit status %d: %s", spec.Volume, res.code, strings.TrimSpace(res.stderr))
		}
		return nil
	})
}

// ImportVolume sends the archive r to the state helper, which extracts it
// into a folder of the volume (checked entry by entry, spec.Limit the
// cap); then, if commit agrees, the helper swaps the volume's files for
// it. Otherwise the folder is removed and the volume keeps its files.
func (d *Driver) ImportVolume(ctx context.Context, spec driver.VolumeCopy, r io.Reader, commit func() error) (statearchive.Result, error) {
	var res statearchive.Result
	if spec.Limit <= 0 {
		return res, fmt.Errorf("kubernetes: import into volume %s: %w: a positive limit is required", spec.Volume, driver.ErrInvalidSpec)
	}
	err := d.withHelper(ctx, spec, func(pod string) error {
		token := statearchive.NewToken()
		run := func(stdin io.Reader, stdout io.Writer, args ...string) (execResult, error) {
			cmd := append([]string{helperPath, statearchive.HelperCommand}, args...)
			return d.exec(ctx, pod, helperContainer, cmd, stdin, stdout)
		}
		var out bytes.Buffer
		er, err := run(r, &limitedBuffer{b: &out, n: 4 << 10}, "import", "/state", token, strconv.FormatInt(spec.Limit, 10))
		switch {
		case err != nil:
			return err
		case er.code == statearchive.HelperRefused:
			why := strings.TrimPrefix(strings.TrimSpace(er.stderr), statearchive.ErrRefused.Error()+": ")
			return fmt.Errorf("kubernetes: import into volume %s: %w: %s", spec.Volume, statearchive.ErrRefused, why)
		case er.code != 0:
			return fmt.Errorf("kubernetes: import into volume %s: the helper's exit status %d: %s", spec.Volume, er.code, strings.TrimSpace(er.stderr))
		}
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			return fmt.Errorf("kubernetes: import into volume %s: the helper's answer: %w", spec.Volume, err)
		}
		if err := commit(); err != nil {
			// The Pod goes in any case; its folder should not stay in the volume.
			run(nil, io.Discard, "discard", "/state", token)
			return err
		}
		er, err = run(nil, io.Discard, "commit", "/state", token)
		if err != nil {
			return err
		}
		if er.code != 0 {
			return fmt.Errorf("kubernetes: import into volume %s: the swap: %s", spec.Volume, strings.TrimSpace(er.stderr))
		}
		return nil
	})
	return res, err
}

// limitedBuffer keeps the first n bytes written to it.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// withHelper runs fn with a helper Pod up on spec's volume, and removes
// the Pod (and waits until it is gone, so the volume is free for the
// program) whatever happens. One helper per volume at a time: its name is
// the volume's.
func (d *Driver) withHelper(ctx context.Context, spec driver.VolumeCopy, fn func(pod string) error) error {
	uid, gid, err := userIDs(spec.User)
	if err != nil || uid == 0 || gid == 0 {
		return fmt.Errorf("kubernetes: %w: state helper user %q: a numeric non-root \"uid:gid\" is required", driver.ErrInvalidSpec, spec.User)
	}
	class, err := d.runtimeClass(spec.Runtime)
	if err != nil {
		return err
	}
	if err := d.volumeExists(ctx, driver.Mount{Kind: driver.MountClaim, Source: spec.Volume, Target: "/state"}); err != nil {
		return err
	}
	image, err := d.helperImage(ctx)
	if err != nil {
		return err
	}
	pod := helperPod(spec, image, class, uid, gid)
	p, err := d.createHelper(ctx, pod)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		zero := int64(0)
		if err := d.cs.CoreV1().Pods(d.ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err == nil || apierrors.IsNotFound(err) {
			d.waitGone(ctx, p.Name, p.UID)
		}
	}()
	// Nothing runs before its policy is there, as for a program.
	if err := d.ensurePolicy(ctx, p); err != nil {
		return err
	}
	patch := []byte(`{"spec":{"schedulingGates":null}}`)
	if _, err := d.cs.CoreV1().Pods(d.ns).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("kubernetes: state helper %s: %w", p.Name, err)
	}
	why := ""
	err = d.waitPod(ctx, p.Name, func(p *corev1.Pod) (bool, error) {
		for _, cs := range p.Status.ContainerStatuses {
			switch {
			case cs.Name != helperContainer:
			case cs.State.Running != nil:
				return true, nil
			case cs.State.Terminated != nil:
				return false, fmt.Errorf("kubernetes: state helper %s ended: %s %s", p.Name, cs.State.Terminated.Reason, cs.State.Terminated.Message)
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "ContainerCreating" && cs.State.Waiting.Reason != "PodInitializing":
				return false, fmt.Errorf("kubernetes: state helper %s: %s: %s", p.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message)
			}
		}
		if p.Status.Phase == corev1.PodFailed {
			return false, fmt.Errorf("kubernetes: state helper %s: %s: %s", p.Name, p.Status.Reason, p.Status.Message)
		}
		why = pendingReason(p)
		return false, nil
	})
	if err != nil {
		if ctx.Err() != nil && why != "" {
			return fmt.Errorf("kubernetes: state helper %s: %w (the Pod waits: %s)", p.Name, err, why)
		}
		return err
	}
	return fn(p.Name)
}

// createHelper creates the helper Pod. One of the same name that is still
// there is another copy of the volume under way (a conflict), unless it
// has ended or outlived helperLife (a Host that died during a copy): then
// it is removed first.
func (d *Driver) createHelper(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	pods := d.cs.CoreV1().Pods(d.ns)
	for attempt := 0; ; attempt++ {
		p, err := pods.Create(ctx, pod, metav1.CreateOptions{})
		if err == nil {
			return p, nil
		}
		if !apierrors.IsAlreadyExists(err) || attempt > 0 {
			return nil, fmt.Errorf("kubernetes: state helper %s: %w", pod.Name, err)
		}
		old, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return nil, notFound("state helper "+pod.Name, err)
		}
		ended := old.Status.Phase == corev1.PodSucceeded || old.Status.Phase == corev1.PodFailed
		if !ended && old.DeletionTimestamp == nil && time.Since(old.CreationTimestamp.Time) < helperLife+time.Minute {
			return nil, fmt.Errorf("kubernetes: another copy of this volume is under way (Pod %s)", pod.Name)
		}
		if err := d.release(ctx, old.Name); err != nil {
			return nil, err
		}
		if err := d.waitGone(ctx, old.Name, old.UID); err != nil {
			return nil, err
		}
	}
}

// helperVolumeLabel names the volume a helper Pod copies.
const helperVolumeLabel = "hershy.org/volume"

// helperPod is the helper Pod of spec's volume, created behind the start
// gate, with the program Pods' hardening.
func helperPod(spec driver.VolumeCopy, image string, class *string, uid, gid int64) *corev1.Pod {
	name := "hersh-copy-" + digest(spec.Volume)[:20]
	given := map[string]string{driver.LabelManaged: "true"}
	for k, v := range spec.Labels {
		given[k] = v
	}
	labels := kubeLabels(given)
	labels[podLabel] = labelValue(name)
	labels[helperVolumeLabel] = labelValue(spec.Volume)
	all, _ := json.Marshal(given)
	mem := resource.NewQuantity(helperMemory, resource.BinarySI)
	cpu := resource.NewMilliQuantity(1000, resource.DecimalSI)
	life := int64(helperLife / time.Second)
	grace := int64(1)
	no := false
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      labels,
			Annotations: map[string]string{labelsAnnotation: string(all), networkAnnotation: "false"},
		},
		Spec: corev1.PodSpec{
			SchedulingGates:               []corev1.PodSchedulingGate{{Name: startGate}},
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         &life,
			RuntimeClassName:              class,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			TerminationGracePeriodSeconds: &grace,
			SecurityContext:               podSecurity(uid, gid),
			Containers: []corev1.Container{{
				Name:            helperContainer,
				Image:           image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{helperPath, statearchive.HelperCommand, "wait", strconv.FormatInt(life, 10)},
				Resources: corev1.ResourceRequirements{
					Limits:   corev1.ResourceList{corev1.ResourceMemory: *mem, corev1.ResourceCPU: *cpu},
					Requests: corev1.ResourceList{corev1.ResourceMemory: *mem, corev1.ResourceCPU: *resource.NewMilliQuantity(100, resource.DecimalSI)},
				},
				VolumeMounts:             []corev1.VolumeMount{{Name: "state", MountPath: "/state"}},
				SecurityContext:          containerSecurity(),
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			}},
			Volumes: []corev1.Volume{{Name: "state", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: spec.Volume}}}},
		},
	}
}

// helperImage is the state helper's image in the registry, pinned by
// digest: one file, Options.StateHelper, tagged by its SHA-256, imported
// and pushed the first time this binary is asked for (the registry may
// already hold it, from an earlier run of the same binary).
func (d *Driver) helperImage(ctx context.Context) (string, error) {
	d.helperMu.Lock()
	defer d.helperMu.Unlock()
	if d.helperRef != "" {
		return d.helperRef, nil
	}
	bin := d.opts.StateHelper
	if bin == "" {
		return "", errors.New("kubernetes: no state helper binary is configured (Options.StateHelper): /state cannot be copied on this cluster")
	}
	f, err := os.Open(bin)
	if err != nil {
		return "", fmt.Errorf("kubernetes: state helper: %w", err)
	}
	defer f.Close()
	if err := staticELF(f); err != nil {
		return "", fmt.Errorf("kubernetes: state helper %s: %w", bin, err)
	}
	h := sha256.New()
	size, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return "", fmt.Errorf("kubernetes: state helper: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	tag := "hershy-state-helper:" + sum[:32]
	if pinned, err := d.reg.resolve(ctx, tag); err == nil {
		d.helperRef = pinned
		return pinned, nil
	} else if !errors.Is(err, driver.ErrNotFound) {
		return "", err
	}
	// The binary's one copy goes from its file into the layer as it is
	// read; a binary that changed since it was hashed fails the layer.
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(imagetar.WriteLayer(pw, []imagetar.File{
			{Path: "/state", Mode: fs.ModeDir | 0o700, UID: 65532, GID: 65532},
			{Path: helperPath, Mode: 0o555, Size: size, Content: io.NewSectionReader(f, 0, size)},
		}))
	}()
	pinned, err := d.ImportImage(ctx, driver.ImportSpec{
		Tag: tag, User: "65532:65532", Entrypoint: []string{helperPath, statearchive.HelperCommand},
		Labels: map[string]string{driver.LabelManaged: "true"},
	}, pr)
	pr.CloseWithError(errors.New("the import ended"))
	if err != nil {
		return "", fmt.Errorf("kubernetes: state helper image: %w", err)
	}
	// The registry holds it now; the builder's copy (the binary's size,
	// one per Host binary) would only pile up on this machine's engine.
	if err := d.builder.RemoveImage(ctx, tag); err != nil && !errors.Is(err, driver.ErrNotFound) {
		return "", fmt.Errorf("kubernetes: state helper image: removing the local copy: %w", err)
	}
	again := sha256.New()
	if _, err := io.Copy(again, io.NewSectionReader(f, 0, 1<<62)); err != nil || hex.EncodeToString(again.Sum(nil)) != sum {
		return "", errors.New("kubernetes: state helper image: the binary changed while it was sent")
	}
	d.helperRef = pinned
	return pinned, nil
}

// staticELF refuses a file that is not an executable the kernel runs
// alone: a dynamically linked binary needs its interpreter and libraries,
// which the helper's image of one file lacks.
func staticELF(f *os.File) error {
	e, err := elf.NewFile(f)
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	if e.Type != elf.ET_EXEC && e.Type != elf.ET_DYN {
		return errors.New("not an ELF executable")
	}
	for _, p := range e.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("it is dynamically linked, and runs alone in the helper's image only when static: build hershy with CGO_ENABLED=0")
		}
	}
	return nil
}
