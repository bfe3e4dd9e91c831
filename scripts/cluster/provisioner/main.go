// Command provisioner gives the test cluster's PersistentVolumeClaims of
// the StorageClass hershy-local a volume each: a loop-mounted ext4
// filesystem of the claim's size on this machine (package statefs, the
// one the Host caps /state with under Docker), offered to the node as a
// hostPath PersistentVolume. So a program's /state on the cluster has a
// real size cap, as on Docker. A claim's growth grows its filesystem; a
// released volume is unmounted and removed.
//
// It is the test cluster's, run by scripts/cluster.sh up: a real cluster
// has its own provisioner (CSI) and a StorageClass for it. It polls (once a
// second) instead of watching: a handful of claims, and nothing to resume.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/statefs"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// class is the StorageClass served.
const class = "hershy-local"

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file")
	root := flag.String("root", "", "folder that holds the volumes")
	flag.Parse()
	if *root == "" {
		log.Fatal("provisioner: -root is required")
	}
	if err := statefs.Check(); err != nil {
		log.Fatalf("provisioner: %v", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("provisioner: %v", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("provisioner: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	p := &provisioner{cs: cs, root: *root, fs: statefs.New(builder.ProgramUID, builder.ProgramGID)}
	log.Printf("provisioner: serving StorageClass %s from %s", class, *root)
	for ctx.Err() == nil {
		if err := p.sweep(ctx); err != nil && ctx.Err() == nil {
			log.Printf("provisioner: %v", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

type provisioner struct {
	cs   kubernetes.Interface
	root string
	fs   *statefs.Manager
}

// sweep provisions pending claims, grows grown ones, and removes released
// volumes.
func (p *provisioner) sweep(ctx context.Context) error {
	claims, err := p.cs.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range claims.Items {
		c := &claims.Items[i]
		if c.Spec.StorageClassName == nil || *c.Spec.StorageClassName != class || c.DeletionTimestamp != nil {
			continue
		}
		if err := p.claim(ctx, c); err != nil {
			log.Printf("provisioner: claim %s/%s: %v", c.Namespace, c.Name, err)
		}
	}
	volumes, err := p.cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, v := range volumes.Items {
		// Released: its claim is gone. Failed: the same, after the
		// controller manager found no plugin of its own to delete it.
		if v.Spec.StorageClassName != class || v.Status.Phase != corev1.VolumeReleased && v.Status.Phase != corev1.VolumeFailed {
			continue
		}
		dir := filepath.Join(p.root, v.Name)
		if err := p.fs.Remove(dir); err != nil {
			log.Printf("provisioner: volume %s: %v", v.Name, err)
			continue
		}
		if err := p.cs.CoreV1().PersistentVolumes().Delete(ctx, v.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			log.Printf("provisioner: volume %s: %v", v.Name, err)
		}
	}
	return nil
}

// claim makes a pending claim's volume, or grows a bound one's.
func (p *provisioner) claim(ctx context.Context, c *corev1.PersistentVolumeClaim) error {
	want := c.Spec.Resources.Requests[corev1.ResourceStorage]
	name := "pvc-" + string(c.UID)
	dir := filepath.Join(p.root, name)
	if c.Spec.VolumeName == "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := p.fs.Ensure(ctx, dir, want.Value()); err != nil {
			return err
		}
		v := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: want},
				AccessModes:                   c.Spec.AccessModes,
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
				StorageClassName:              class,
				ClaimRef:                      &corev1.ObjectReference{Namespace: c.Namespace, Name: c.Name, UID: c.UID},
				PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
					Path: filepath.Join(dir, "state"),
				}},
			},
		}
		if _, err := p.cs.CoreV1().PersistentVolumes().Create(ctx, v, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		return nil
	}
	if c.Spec.VolumeName != name || c.Status.Phase != corev1.ClaimBound {
		return nil
	}
	have := c.Status.Capacity[corev1.ResourceStorage]
	if have.Cmp(want) >= 0 {
		return nil
	}
	if err := p.fs.Ensure(ctx, dir, want.Value()); err != nil { // grows it
		return err
	}
	v, err := p.cs.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	v.Spec.Capacity = corev1.ResourceList{corev1.ResourceStorage: want}
	if _, err := p.cs.CoreV1().PersistentVolumes().Update(ctx, v, metav1.UpdateOptions{}); err != nil {
		return err
	}
	c.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: *resource.NewQuantity(want.Value(), resource.BinarySI)}
	if _, err := p.cs.CoreV1().PersistentVolumeClaims(c.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
		return err
	}
	fmt.Printf("provisioner: grew %s/%s to %s\n", c.Namespace, c.Name, want.String())
	return nil
}
