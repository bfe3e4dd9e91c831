package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
)

// CreateContainer makes the program's Pod behind the start gate. The image
// must be in the registry (it is never built or pushed here): a missing
// one is ErrNotFound, as is a missing claim or Secret a mount names.
func (d *Driver) CreateContainer(ctx context.Context, spec driver.ContainerSpec) (string, error) {
	if err := spec.Check(); err != nil {
		return "", fmt.Errorf("kubernetes: %w", err)
	}
	if errs := validation.IsDNS1123Subdomain(spec.Name); len(errs) != 0 {
		return "", fmt.Errorf("kubernetes: %w: name %q: a DNS name is required", driver.ErrInvalidSpec, spec.Name)
	}
	class, err := d.runtimeClass(spec.Runtime)
	if err != nil {
		return "", err
	}
	image, err := d.reg.resolve(ctx, spec.Image)
	if err != nil {
		return "", err
	}
	for _, m := range spec.Mounts {
		if err := d.volumeExists(ctx, m); err != nil {
			return "", err
		}
	}
	// The image's labels are the container's too, as with Docker, except
	// the Host's own (driver.LabelPrefix), which an image cannot set.
	imgLabels, err := d.reg.labels(ctx, image)
	if err != nil {
		return "", err
	}
	merged := map[string]string{}
	for k, v := range imgLabels {
		if !strings.HasPrefix(k, driver.LabelPrefix) {
			merged[k] = v
		}
	}
	for k, v := range spec.Labels {
		merged[k] = v
	}
	spec.Labels = merged
	pod, err := podFor(spec, image, class, d.opts.StopGrace)
	if err != nil {
		return "", err
	}
	p, err := d.cs.CoreV1().Pods(d.ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("kubernetes: create %s: the name is in use", spec.Name)
		}
		return "", fmt.Errorf("kubernetes: create %s: %w", spec.Name, err)
	}
	// The policy is in place before the gate lifts: the program never
	// runs without it.
	if err := d.ensurePolicy(ctx, p); err != nil {
		d.release(context.WithoutCancel(ctx), p.Name)
		return "", err
	}
	return p.Name, nil
}

func (d *Driver) volumeExists(ctx context.Context, m driver.Mount) error {
	var err error
	switch m.Kind {
	case driver.MountClaim:
		_, err = d.cs.CoreV1().PersistentVolumeClaims(d.ns).Get(ctx, m.Source, metav1.GetOptions{})
	case driver.MountSecret:
		_, err = d.cs.CoreV1().Secrets(d.ns).Get(ctx, m.Source, metav1.GetOptions{})
	}
	if err != nil {
		return notFound(fmt.Sprintf("mount of %s: %s %s", m.Target, m.Kind, m.Source), err)
	}
	return nil
}

// StartContainer lifts a created Pod's start gate, or makes a stopped
// container's Pod again, and returns once the program runs (or ran and
// ended already). An image that cannot be pulled, or a Pod the node
// refuses, is an error.
func (d *Driver) StartContainer(ctx context.Context, id string) error {
	p, err := d.get(ctx, id)
	if err != nil {
		return err
	}
	switch s := stateOf(p); {
	case gated(p):
		patch := []byte(`{"spec":{"schedulingGates":null}}`)
		if _, err := d.cs.CoreV1().Pods(d.ns).Patch(ctx, id, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return notFound("start "+id, err)
		}
	case p.DeletionTimestamp != nil || s.exited || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
		if err := d.remake(ctx, p); err != nil {
			return err
		}
	case s.running:
		return nil
	}
	return d.waitStarted(ctx, id)
}

// remake replaces a stopped container's Pod by a new one of the same name
// and spec, ungated.
func (d *Driver) remake(ctx context.Context, old *corev1.Pod) error {
	if err := d.release(ctx, old.Name); err != nil {
		return err
	}
	if err := d.waitGone(ctx, old.Name, old.UID); err != nil {
		return err
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: old.Name, Labels: old.Labels, Annotations: old.Annotations, Finalizers: []string{keepFinalizer},
		},
		Spec: *old.Spec.DeepCopy(),
	}
	p.Spec.NodeName = ""
	// Gated until its policy is in place, as at create.
	p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: startGate}}
	made, err := d.cs.CoreV1().Pods(d.ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("kubernetes: start %s again: %w", old.Name, err)
	}
	if err := d.ensurePolicy(ctx, made); err != nil {
		return err
	}
	patch := []byte(`{"spec":{"schedulingGates":null}}`)
	if _, err := d.cs.CoreV1().Pods(d.ns).Patch(ctx, old.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return notFound("start "+old.Name, err)
	}
	return nil
}

// waitStarted watches a Pod until its program runs or has ended. If ctx
// ends first, the error says what the Pod waited for (a node with room,
// its volume, its image).
func (d *Driver) waitStarted(ctx context.Context, id string) error {
	why := ""
	err := d.waitPod(ctx, id, func(p *corev1.Pod) (bool, error) {
		s := stateOf(p)
		if s.failure != "" {
			return false, fmt.Errorf("kubernetes: start %s: %s", id, s.failure)
		}
		why = pendingReason(p)
		return s.running || s.exited, nil
	})
	if err != nil && ctx.Err() != nil && why != "" {
		return fmt.Errorf("kubernetes: start %s: %w (the Pod waits: %s)", id, err, why)
	}
	return err
}

// pendingReason says why a Pod does not run yet, from its conditions and
// its container's waiting state.
func pendingReason(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return c.Reason + ": " + c.Message
		}
	}
	if cs := programStatus(p); cs != nil && cs.State.Waiting != nil {
		return cs.State.Waiting.Reason + ": " + cs.State.Waiting.Message
	}
	return string(p.Status.Phase)
}

// waitPod watches Pod id until done says so (or fails). A Pod that
// disappears is ErrNotFound.
func (d *Driver) waitPod(ctx context.Context, id string, done func(*corev1.Pod) (bool, error)) error {
	pods := d.cs.CoreV1().Pods(d.ns)
	for {
		list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", id).String()})
		if err != nil {
			return fmt.Errorf("kubernetes: %s: %w", id, err)
		}
		if len(list.Items) == 0 {
			return fmt.Errorf("kubernetes: %s: %w", id, driver.ErrNotFound)
		}
		if ok, err := done(&list.Items[0]); ok || err != nil {
			return err
		}
		w, err := pods.Watch(ctx, metav1.ListOptions{
			FieldSelector:   fields.OneTermEqualSelector("metadata.name", id).String(),
			ResourceVersion: list.ResourceVersion,
		})
		if err != nil {
			return fmt.Errorf("kubernetes: %s: %w", id, err)
		}
		ok, err := watchUntil(ctx, w, done)
		w.Stop()
		if ok || err != nil {
			return err
		}
		// The watch ended (the API server closes them now and then): list again.
	}
}

func watchUntil(ctx context.Context, w watch.Interface, done func(*corev1.Pod) (bool, error)) (bool, error) {
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case ev, open := <-w.ResultChan():
			if !open {
				return false, nil
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				return false, nil // an error event: start over
			}
			if ev.Type == watch.Deleted {
				return false, fmt.Errorf("kubernetes: %s: %w", p.Name, driver.ErrNotFound)
			}
			if ok, err := done(p); ok || err != nil {
				return ok, err
			}
		}
	}
}

// StopContainer deletes a running program's Pod with grace: the kubelet
// sends SIGTERM, kills after grace, and reports the exit; the driver's
// finalizer keeps the Pod, stopped, until RemoveContainer. It returns once
// the program has exited.
func (d *Driver) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	p, err := d.get(ctx, id)
	if errors.Is(err, driver.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if gated(p) || stateOf(p).exited && p.DeletionTimestamp == nil {
		return nil
	}
	if p.DeletionTimestamp == nil {
		// The kubelet kills no sooner than 2 s after a deletion's SIGTERM
		// and takes 0 to mean at once, so never ask for less than 1.
		sec := max(1, int64((grace+time.Second-1)/time.Second))
		err := d.cs.CoreV1().Pods(d.ns).Delete(ctx, id, metav1.DeleteOptions{GracePeriodSeconds: &sec, Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("kubernetes: stop %s: %w", id, err)
		}
	}
	err = d.waitPod(ctx, id, func(p *corev1.Pod) (bool, error) {
		s := stateOf(p)
		// A Pod deleted before its container ever ran has nothing to wait for.
		return s.exited || (!s.running && p.Status.Phase != corev1.PodRunning), nil
	})
	if errors.Is(err, driver.ErrNotFound) {
		return nil
	}
	return err
}

// RemoveContainer lets a Pod go: its finalizer is dropped and it is
// deleted at once (a running program is killed). A missing one is not an
// error.
func (d *Driver) RemoveContainer(ctx context.Context, id string) error {
	if err := d.release(ctx, id); err != nil {
		return err
	}
	return nil
}

// release drops the driver's finalizer and deletes the Pod with no grace.
func (d *Driver) release(ctx context.Context, id string) error {
	pods := d.cs.CoreV1().Pods(d.ns)
	zero := int64(0)
	if err := pods.Delete(ctx, id, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: remove %s: %w", id, err)
	}
	patch := []byte(`{"metadata":{"finalizers":null}}`)
	if _, err := pods.Patch(ctx, id, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: remove %s: %w", id, err)
	}
	return nil
}

// waitGone waits until the Pod of uid is gone from the API server.
func (d *Driver) waitGone(ctx context.Context, id string, uid types.UID) error {
	for {
		p, err := d.cs.CoreV1().Pods(d.ns).Get(ctx, id, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || err == nil && p.UID != uid {
			return nil
		}
		if err != nil {
			return fmt.Errorf("kubernetes: %s: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// get reads Pod id; a missing one is ErrNotFound.
func (d *Driver) get(ctx context.Context, id string) (*corev1.Pod, error) {
	if id == "" || len(validation.IsDNS1123Subdomain(id)) != 0 {
		return nil, fmt.Errorf("kubernetes: container %q: %w", id, driver.ErrNotFound)
	}
	p, err := d.cs.CoreV1().Pods(d.ns).Get(ctx, id, metav1.GetOptions{})
	if err != nil {
		return nil, notFound("container "+id, err)
	}
	return p, nil
}

// InspectContainer reads a container's facts from its Pod.
func (d *Driver) InspectContainer(ctx context.Context, id string) (driver.ContainerInfo, error) {
	p, err := d.get(ctx, id)
	if err != nil {
		return driver.ContainerInfo{}, err
	}
	return d.infoOf(p), nil
}

// ListContainers lists the Pods carrying every label, in one call.
func (d *Driver) ListContainers(ctx context.Context, labels map[string]string) ([]driver.ContainerInfo, error) {
	list, err := d.cs.CoreV1().Pods(d.ns).List(ctx, metav1.ListOptions{LabelSelector: selector(labels)})
	if err != nil {
		return nil, fmt.Errorf("kubernetes: list: %w", err)
	}
	var out []driver.ContainerInfo
	for i := range list.Items {
		info := d.infoOf(&list.Items[i])
		if hasAll(info.Labels, labels) { // a hashed label value could collide
			out = append(out, info)
		}
	}
	return out, nil
}

func hasAll(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
