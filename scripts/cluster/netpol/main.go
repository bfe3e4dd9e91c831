// Command netpol enforces NetworkPolicies on the test cluster's one node,
// with iptables. SIG Network's kube-network-policies would be the choice,
// but it queues packets with nftables' queue expression, which the kernel
// of these machines lacks (nft says "No such file or directory" for
// `queue num 100`); the bridge CNI plugin enforces nothing.
//
// It implements the part of the NetworkPolicy API that policies the
// Hershy driver writes use, with the API's meaning:
//
//   - a policy selects the Pods of its namespace whose labels match its
//     podSelector's matchLabels (a selector with matchExpressions selects
//     nothing here, and is reported);
//   - a Pod selected by a policy with policyTypes Ingress admits only what
//     some such policy's ingress rules allow; the same for Egress;
//   - a rule's peers may be ipBlocks (cidr minus except); a rule with other
//     peers (podSelector, namespaceSelector) or ports is reported and
//     allows nothing;
//   - replies of allowed connections pass.
//
// Pods no policy selects are left alone. Traffic to the node itself (the
// INPUT path) is judged as egress too: the node is an address like any
// other. The rules live in chains of their own (HERSHY-NETPOL-*) jumped to
// from FORWARD and INPUT for the pod subnet, rewritten whole once a second
// with iptables-restore; -cleanup removes them.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const chain = "HERSHY-NETPOL"

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file")
	subnet := flag.String("pod-subnet", "", "the Pods' addresses, e.g. 10.89.0.0/24")
	cleanup := flag.Bool("cleanup", false, "remove the rules and exit")
	flag.Parse()
	if _, err := netip.ParsePrefix(*subnet); err != nil && !*cleanup {
		log.Fatalf("netpol: -pod-subnet: %v", err)
	}
	if *cleanup {
		unhook()
		return
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("netpol: %v", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("netpol: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	last := ""
	for ctx.Err() == nil {
		rules, err := render(ctx, cs)
		if err == nil && rules != last {
			if err = apply(rules, *subnet); err == nil {
				last = rules
			}
		}
		if err != nil && ctx.Err() == nil {
			log.Printf("netpol: %v", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	unhook()
}

// render writes the chain's rules for the Pods and policies there are now.
func render(ctx context.Context, cs kubernetes.Interface) (string, error) {
	pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	pols, err := cs.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "-A %s -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n", chain)
	n := 0
	for _, p := range pods.Items {
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !ip.Is4() || p.Spec.HostNetwork {
			continue
		}
		var in, out []networkingv1.NetworkPolicy
		for _, np := range pols.Items {
			if np.Namespace != p.Namespace || !selects(np, &p) {
				continue
			}
			if slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
				in = append(in, np)
			}
			if slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
				out = append(out, np)
			}
		}
		if len(out) > 0 {
			var peers []networkingv1.IPBlock
			for _, np := range out {
				for _, r := range np.Spec.Egress {
					peers = append(peers, blocks(np, r.To, r.Ports)...)
				}
			}
			writePeers(&b, &n, "-s "+ip.String(), "-d", peers)
		}
		if len(in) > 0 {
			var peers []networkingv1.IPBlock
			for _, np := range in {
				for _, r := range np.Spec.Ingress {
					peers = append(peers, blocks(np, r.From, r.Ports)...)
				}
			}
			writePeers(&b, &n, "-d "+ip.String(), "-s", peers)
		}
	}
	fmt.Fprintf(&b, "-A %s -j RETURN\n", chain)
	return b.String(), nil
}

// writePeers allows a Pod's traffic (match) to each peer block (the other
// end matched by dir, "-d" or "-s"), and drops the rest of it.
func writePeers(b *strings.Builder, n *int, match, dir string, peers []networkingv1.IPBlock) {
	for _, peer := range peers {
		*n++
		sub := fmt.Sprintf("%s-%d", chain, *n)
		fmt.Fprintf(b, ":%s - [0:0]\n", sub)
		for _, e := range peer.Except {
			fmt.Fprintf(b, "-A %s %s %s -j RETURN\n", sub, dir, e)
		}
		fmt.Fprintf(b, "-A %s -j ACCEPT\n", sub)
		fmt.Fprintf(b, "-A %s %s %s %s -j %s\n", chain, match, dir, peer.CIDR, sub)
	}
	fmt.Fprintf(b, "-A %s %s -j DROP\n", chain, match)
}

// selects reports whether np's podSelector matches Pod p.
func selects(np networkingv1.NetworkPolicy, p *corev1.Pod) bool {
	if len(np.Spec.PodSelector.MatchExpressions) > 0 {
		log.Printf("netpol: policy %s/%s: matchExpressions are not supported: it selects nothing", np.Namespace, np.Name)
		return false
	}
	for k, v := range np.Spec.PodSelector.MatchLabels {
		if p.Labels[k] != v {
			return false
		}
	}
	return true
}

// blocks returns a rule's IPv4 ipBlock peers; other peers, and ports,
// are reported and allow nothing.
func blocks(np networkingv1.NetworkPolicy, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) []networkingv1.IPBlock {
	if len(ports) > 0 || len(peers) == 0 {
		log.Printf("netpol: policy %s/%s: a rule with ports or without peers is not supported: it allows nothing", np.Namespace, np.Name)
		return nil
	}
	var out []networkingv1.IPBlock
	for _, peer := range peers {
		if peer.IPBlock == nil {
			log.Printf("netpol: policy %s/%s: only ipBlock peers are supported", np.Namespace, np.Name)
			continue
		}
		if pr, err := netip.ParsePrefix(peer.IPBlock.CIDR); err == nil && pr.Addr().Is4() {
			var except []string
			for _, e := range peer.IPBlock.Except {
				if ep, err := netip.ParsePrefix(e); err == nil && ep.Addr().Is4() {
					except = append(except, ep.Masked().String())
				}
			}
			out = append(out, networkingv1.IPBlock{CIDR: pr.Masked().String(), Except: except})
		}
	}
	return out
}

// apply replaces the chains' contents and makes sure FORWARD and INPUT
// jump to the main one for the pod subnet.
func apply(rules, subnet string) error {
	// Chains of the last round that this one lacks are flushed by
	// restore's ":CHAIN" lines only when named: list them all.
	old, _ := exec.Command("iptables", "-S").Output()
	var b bytes.Buffer
	b.WriteString("*filter\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n", chain)
	for _, line := range strings.Split(string(old), "\n") {
		if name, ok := strings.CutPrefix(line, "-N "+chain+"-"); ok && !strings.Contains(rules, ":"+chain+"-"+name+" ") {
			fmt.Fprintf(&b, ":%s-%s - [0:0]\n-X %s-%s\n", chain, name, chain, name)
		}
	}
	b.WriteString(rules)
	b.WriteString("COMMIT\n")
	cmd := exec.Command("iptables-restore", "--noflush")
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore: %v: %s", err, out)
	}
	for _, hook := range [][]string{{"FORWARD", "-s", subnet}, {"FORWARD", "-d", subnet}, {"INPUT", "-s", subnet}} {
		rule := append(hook[1:], "-j", chain)
		if exec.Command("iptables", append([]string{"-C", hook[0]}, rule...)...).Run() == nil {
			continue
		}
		if out, err := exec.Command("iptables", append([]string{"-I", hook[0], "1"}, rule...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables -I %s: %v: %s", hook[0], err, out)
		}
	}
	return nil
}

// unhook removes the jumps and the chains.
func unhook() {
	out, _ := exec.Command("iptables", "-S").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "-A "); ok && strings.HasSuffix(line, "-j "+chain) {
			exec.Command("iptables", append([]string{"-D"}, strings.Fields(rest)...)...).Run()
		}
	}
	for _, line := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutPrefix(line, "-N "); ok && strings.HasPrefix(name, chain) {
			exec.Command("iptables", "-F", name).Run()
		}
	}
	for _, line := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutPrefix(line, "-N "); ok && strings.HasPrefix(name, chain) {
			exec.Command("iptables", "-X", name).Run()
		}
	}
}
