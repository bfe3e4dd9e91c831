package kubernetes

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/hershyorg/hershy/internal/driver"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Each program Pod gets a NetworkPolicy of its own, owned by the Pod (so
// the garbage collector removes it with the Pod): no traffic in at all
// (the WatcherAPI is reached through the node's runtime, which the pod
// network does not see), and none out unless the program was granted
// network, in which case it may reach public addresses only: not the
// private, shared, link-local or loopback ranges where the cluster, its
// nodes, the Host and the cloud's metadata service live. A network plugin
// that enforces NetworkPolicies must run; the test cluster runs SIG
// Network's kube-network-policies.

// podLabel names the Pod a policy selects (a label of its own: a Pod's
// name may be longer than a label value, and then is hashed).
const podLabel = "hershy.org/pod"

// privateCIDRs are the ranges a program granted network may not reach.
var privateCIDRs = []string{
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", // private (RFC 1918)
	"100.64.0.0/10",  // shared (carrier-grade NAT; some clusters' pods)
	"169.254.0.0/16", // link-local: the cloud's metadata service
	"127.0.0.0/8",    // loopback
	"0.0.0.0/8",      // "this network"
}

var privateCIDRs6 = []string{"fc00::/7", "fe80::/10", "::1/128"}

// policyFor is the NetworkPolicy of Pod p. deny are more addresses a
// program granted network may not reach (the nodes', the Host's).
func policyFor(p *corev1.Pod, network bool, deny []string) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name:   p.Name,
			Labels: map[string]string{labelKey(driver.LabelManaged): "true"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Pod", Name: p.Name, UID: p.UID,
			}},
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{podLabel: p.Labels[podLabel]}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
	if network {
		v4, v6 := slices.Clone(privateCIDRs), slices.Clone(privateCIDRs6)
		for _, cidr := range deny {
			if p, err := netip.ParsePrefix(cidr); err == nil && p.Addr().Is4() {
				v4 = append(v4, p.Masked().String())
			} else if err == nil {
				v6 = append(v6, p.Masked().String())
			}
		}
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
			{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: v4}},
			{IPBlock: &networkingv1.IPBlock{CIDR: "::/0", Except: v6}},
		}}}
	}
	return np
}

// denied are the addresses no program may reach besides the private
// ranges: every node's own (a node on a public address would otherwise be
// reachable, and its kubelet with it) and Options.DenyCIDRs (the Host's
// machine, when it is not a node).
func (d *Driver) denied(ctx context.Context) ([]string, error) {
	nodes, err := d.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("kubernetes: the nodes' addresses: %w", err)
	}
	out := slices.Clone(d.opts.DenyCIDRs)
	for _, n := range nodes.Items {
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				out = append(out, netip.PrefixFrom(ip, ip.BitLen()).String())
			}
		}
	}
	return out, nil
}

// networkAnnotation records the spec's Network on the Pod, so a Pod made
// again (StartContainer after a stop) gets the same policy.
const networkAnnotation = "hershy.org/network"

// ensurePolicy makes Pod p's NetworkPolicy.
func (d *Driver) ensurePolicy(ctx context.Context, p *corev1.Pod) error {
	network := p.Annotations[networkAnnotation] == "true"
	var deny []string
	if network {
		var err error
		if deny, err = d.denied(ctx); err != nil {
			return err
		}
	}
	np := policyFor(p, network, deny)
	_, err := d.cs.NetworkingV1().NetworkPolicies(d.ns).Create(ctx, np, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// A policy of an earlier Pod of this name, not yet collected.
		if err = d.cs.NetworkingV1().NetworkPolicies(d.ns).Delete(ctx, np.Name, metav1.DeleteOptions{}); err == nil || apierrors.IsNotFound(err) {
			_, err = d.cs.NetworkingV1().NetworkPolicies(d.ns).Create(ctx, np, metav1.CreateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("kubernetes: network policy of %s: %w", p.Name, err)
	}
	return nil
}
