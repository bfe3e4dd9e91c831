package kubernetes

import (
	"context"
	"fmt"

	"github.com/hershyorg/hershy/internal/driver"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// A program's /state is a PersistentVolumeClaim of Options.StorageClass,
// so it follows the program to whichever node runs it (given storage that
// can), with the /state quota as its size. Its secrets are a Secret,
// mounted read-only. Both carry the labels the Host gives, so they are
// found again as its containers are.

// EnsureVolume makes the claim, or grows its request (the storage class
// must allow expansion for the volume to follow).
func (d *Driver) EnsureVolume(ctx context.Context, name string, bytes int64, labels map[string]string) error {
	claims := d.cs.CoreV1().PersistentVolumeClaims(d.ns)
	size := resource.NewQuantity(bytes, resource.BinarySI)
	old, err := claims.Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		have := old.Spec.Resources.Requests[corev1.ResourceStorage]
		switch have.Cmp(*size) {
		case 0:
			return nil
		case 1:
			return fmt.Errorf("kubernetes: volume %s: %w: it holds %s and cannot shrink to %s", name, driver.ErrInvalidSpec, have.String(), size.String())
		}
		patch := fmt.Appendf(nil, `{"spec":{"resources":{"requests":{"storage":%q}}}}`, size.String())
		if _, err := claims.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("kubernetes: volume %s: growing it: %w", name, err)
		}
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: volume %s: %w", name, err)
	}
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: kubeLabels(labels)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: *size}},
		},
	}
	if d.opts.StorageClass != "" {
		claim.Spec.StorageClassName = &d.opts.StorageClass
	}
	if _, err := claims.Create(ctx, claim, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("kubernetes: volume %s: %w", name, err)
	}
	return nil
}

// RemoveVolume deletes the claim (its volume goes as the storage class's
// reclaim policy says).
func (d *Driver) RemoveVolume(ctx context.Context, name string) error {
	err := d.cs.CoreV1().PersistentVolumeClaims(d.ns).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: remove volume %s: %w", name, err)
	}
	return nil
}

// PutSecret creates or replaces the Secret.
func (d *Driver) PutSecret(ctx context.Context, name string, files map[string][]byte, labels map[string]string) error {
	secrets := d.cs.CoreV1().Secrets(d.ns)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: kubeLabels(labels)}, Type: corev1.SecretTypeOpaque, Data: files}
	old, err := secrets.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = secrets.Create(ctx, s, metav1.CreateOptions{})
	case err == nil:
		s.ResourceVersion = old.ResourceVersion
		_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("kubernetes: secret %s: %w", name, err)
	}
	return nil
}

// RemoveSecret deletes the Secret.
func (d *Driver) RemoveSecret(ctx context.Context, name string) error {
	err := d.cs.CoreV1().Secrets(d.ns).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: remove secret %s: %w", name, err)
	}
	return nil
}

// kubeLabels encodes labels as podFor does.
func kubeLabels(labels map[string]string) map[string]string {
	out := make(map[string]string, len(labels))
	for k, v := range labels {
		out[labelKey(k)] = labelValue(v)
	}
	return out
}
