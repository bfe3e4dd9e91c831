// Package kubernetes is the runtime driver for a Kubernetes cluster: the
// Host's programs run as Pods in one namespace, reached through the API
// server alone (no Service, no exposed port), and built on the Host by a
// local engine whose images are pushed to a registry the nodes pull from.
//
// # What a container is here
//
// A container of the driver interface is one bare Pod (restartPolicy
// Never) named after it; the Pod's name is the container's id. The Host's
// own supervisor restarts programs, as it does with Docker, so both drivers
// share one lifecycle, one restart tracker and one crash back-off, and every
// exit is seen with its code and reason. ARCHITECTURE.md says why this is
// chosen over a StatefulSet of one and the kubelet's own back-off.
//
//   - Created: the Pod exists behind a scheduling gate, so nothing runs
//     and no node is chosen until StartContainer removes the gate.
//   - Running: the gate is gone and the program's container runs.
//   - Stopped: the program exited by itself (phase Succeeded or Failed), or
//     StopContainer deleted the Pod with the stop's grace. The Pod carries
//     a finalizer of the driver's, so a deleted Pod stays readable, with its
//     exit code, until RemoveContainer lets it go.
//   - Starting a stopped container makes its Pod again from the same spec.
//
// # Security
//
// Every Pod meets the restricted Pod Security level (the test namespace
// enforces it, so a missing field is refused by the API server itself):
// non-root numeric user, read-only root, every capability dropped, no
// privilege escalation, seccomp RuntimeDefault, no service account token,
// no service links. The sandbox runtime is a RuntimeClass (gVisor by
// default). A program's WatcherAPI stays on its loopback and is reached by
// the API server's port-forward subresource.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options configure the driver.
type Options struct {
	// Kubeconfig is the path of a kubeconfig file; empty means the
	// in-cluster configuration (the Host running in a Pod).
	Kubeconfig string
	// Namespace holds every Pod the driver makes. It must exist.
	Namespace string
	// RuntimeClasses maps the driver's runtimes (driver.RuntimeRunsc,
	// driver.RuntimeRunc) to RuntimeClass names; an empty class means the
	// node's default handler. A runtime missing from the map is refused.
	// Default: runsc -> "gvisor", runc -> "".
	RuntimeClasses map[string]string
	// Registry is where images go, e.g. "127.0.0.1:5000/hershy": the Host
	// pushes there and the nodes pull from there.
	Registry string
	// Builder is the engine on the Host that builds images, imports them
	// and runs build jobs (the Docker driver). It must be able to push
	// (Pusher).
	Builder driver.Driver
	// StopGrace is the Pods' terminationGracePeriodSeconds, the grace the
	// kubelet gives a program it stops for reasons of its own (node
	// shutdown). StopContainer uses its own. Default 10 s.
	StopGrace time.Duration
	// StorageClass is the class of the programs' /state claims; empty
	// means the cluster's default class.
	StorageClass string
	// DenyCIDRs are addresses no program granted network may reach, besides
	// the private ranges and the nodes' own addresses: the Host's machine
	// when it is not a node, a service of your network on a public address.
	DenyCIDRs []string
	// DirectKubelet reads each node's resource figures from its kubelet
	// (https://NODE:10250, with the kubeconfig's credentials) instead of
	// through the API server's node proxy. The API server will not proxy
	// to a loopback address, so a single-node cluster on loopback needs
	// it.
	DirectKubelet bool
	// StateHelper is the path of the Host's own binary, statically linked
	// (the Host passes /proc/self/exe): its hidden state-helper command
	// copies a program's /state volume out and in, in a helper Pod
	// (driver.StateCopier). Empty: /state is not copied.
	StateHelper string
}

// Pusher is what the Builder offers to send an image to a registry:
// PushImage tags the local image ref as remote and pushes it, returning
// the manifest's digest ("sha256:...").
type Pusher interface {
	PushImage(ctx context.Context, ref, remote string) (digest string, err error)
}

// Driver runs programs as Pods. Every method is safe for concurrent use.
type Driver struct {
	opts    Options
	cfg     *rest.Config
	cs      kubernetes.Interface
	ns      string
	builder driver.Driver
	pusher  Pusher
	reg     *registry

	statsMu sync.Mutex
	summary map[string]*nodeSummary // node name -> its last summary

	helperMu  sync.Mutex
	helperRef string // the state helper's pinned image, once pushed

	kubeletOnce sync.Once
	kubelet     *http.Client // DirectKubelet's client
	kubeletErr  error
}

// New connects to the cluster of o.Kubeconfig. It does not call the API
// server: Check does.
func New(o Options) (*Driver, error) {
	if o.Namespace == "" {
		return nil, errors.New("kubernetes: a namespace is required")
	}
	if o.Builder == nil {
		return nil, errors.New("kubernetes: a builder engine is required")
	}
	p, ok := o.Builder.(Pusher)
	if !ok {
		return nil, errors.New("kubernetes: the builder engine cannot push images")
	}
	if o.RuntimeClasses == nil {
		o.RuntimeClasses = map[string]string{driver.RuntimeRunsc: "gvisor", driver.RuntimeRunc: ""}
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 10 * time.Second
	}
	reg, err := newRegistry(o.Registry)
	if err != nil {
		return nil, err
	}
	var cfg *rest.Config
	if o.Kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes: configuration: %w", err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "hershy"
	// The driver's own pace: the Host already limits how often it calls.
	cfg.QPS, cfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client: %w", err)
	}
	return &Driver{opts: o, cfg: cfg, cs: cs, ns: o.Namespace, builder: o.Builder, pusher: p, reg: reg,
		summary: map[string]*nodeSummary{}}, nil
}

// Close releases nothing the Builder holds: its owner closes it.
func (d *Driver) Close() error {
	d.reg.client.CloseIdleConnections()
	return nil
}

// Check asks the API server for its version (ErrEngineDown when it does
// not answer) and for the RuntimeClass of each runtime (ErrRuntimeMissing
// when the runtime is not mapped or its class does not exist).
func (d *Driver) Check(ctx context.Context, runtimes ...string) error {
	if _, err := d.cs.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw(); err != nil {
		return fmt.Errorf("kubernetes: %w: %w", driver.ErrEngineDown, err)
	}
	if _, err := d.cs.CoreV1().Namespaces().Get(ctx, d.ns, metav1.GetOptions{}); err != nil {
		return fmt.Errorf("kubernetes: namespace %s: %w: %w", d.ns, driver.ErrEngineDown, err)
	}
	for _, rt := range runtimes {
		class, ok := d.opts.RuntimeClasses[rt]
		if !ok {
			return fmt.Errorf("kubernetes: runtime %q: %w: no RuntimeClass is configured for it", rt, driver.ErrRuntimeMissing)
		}
		if class == "" {
			continue
		}
		if _, err := d.cs.NodeV1().RuntimeClasses().Get(ctx, class, metav1.GetOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("kubernetes: runtime %q: %w: RuntimeClass %s does not exist", rt, driver.ErrRuntimeMissing, class)
			}
			return fmt.Errorf("kubernetes: RuntimeClass %s: %w: %w", class, driver.ErrEngineDown, err)
		}
	}
	return nil
}

// runtimeClass returns the class of runtime rt (empty for the default).
func (d *Driver) runtimeClass(rt string) (*string, error) {
	rt = driver.SpecRuntime(rt)
	class, ok := d.opts.RuntimeClasses[rt]
	if !ok {
		return nil, fmt.Errorf("kubernetes: %w: no RuntimeClass is configured for runtime %q", driver.ErrInvalidSpec, rt)
	}
	if class == "" {
		return nil, nil
	}
	return &class, nil
}

// runtimeOf is runtimeClass backwards, for what a Pod says.
func (d *Driver) runtimeOf(class *string) string {
	want := ""
	if class != nil {
		want = *class
	}
	for rt, c := range d.opts.RuntimeClasses {
		if c == want {
			return rt
		}
	}
	return ""
}

// notFound wraps an API server's NotFound as driver.ErrNotFound.
func notFound(what string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: %s: %w", what, driver.ErrNotFound)
	}
	return fmt.Errorf("kubernetes: %s: %w", what, err)
}

// The build side is the Builder's: images are made on the Host, then
// pushed (image.go).

// BuildEngine is the Builder (driver.BuildEngine): build sandboxes run
// there.
func (d *Driver) BuildEngine() driver.Driver { return d.builder }

// RunJob runs a build job on the Builder. The driver keeps no job up
// (it is no driver.JobKeeper): a kept job's container would be the
// Builder's, which this driver's container calls do not reach.
func (d *Driver) RunJob(ctx context.Context, spec driver.JobSpec, out io.Writer) (driver.JobResult, error) {
	return d.builder.RunJob(ctx, spec, out)
}
