#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, on loopback, for the
# Kubernetes driver's tests and for users who want to try the driver on one
# machine. Everything is built from the Go module proxy and Debian's packages
# (no image registry, no other download), and lives under one folder:
#
#   scripts/cluster.sh build    build the binaries (about 11 minutes the first time; seconds after)
#   scripts/cluster.sh up       start it (about 12 s); prints the kubeconfig's path
#   scripts/cluster.sh down     stop it and undo what it changed on the machine
#   scripts/cluster.sh status   say what runs
#
# The folder is $HERSHY_CLUSTER (default /var/cache/hershy-cluster): bin/ and
# the Go caches stay between runs, the rest is made again by each `up`.
#
# What runs, all on 127.0.0.1: etcd, kube-apiserver (:6443, RBAC, the
# PodSecurity admission), kube-controller-manager, kube-scheduler, a
# containerd of its own (Debian's 1.6; Docker's stays untouched) with the
# handlers runc, runsc (gVisor, its own network stack) and runsc-host (gVisor
# on the pod's network namespace, so the API server's port-forward reaches a
# program's loopback), the kubelet (node "localhost"), the RuntimeClasses
# gvisor and gvisor-host, and an image registry (CNCF distribution) on
# 127.0.0.1:5000 that the node pulls from over plain HTTP.
#
# Why each odd setting is there is ../shared/KUBERNETES.md's subject: root
# here lacks CAP_SYS_RESOURCE (containerd's restrict_oom_score_adj, and a
# gVisor shim whose failure to set its own OOM score is not fatal), the
# containerd 1.6 shim protocol (a wrapper prints the address alone), and
# loopback only (the kubelet is "localhost" with a serving certificate for
# it). Needs root.
set -euo pipefail

K8S_VERSION=v1.33.13
K8S_STAGING=v0.33.13
ETCD_VERSION=v3.5.21
GVISOR_VERSION=v0.0.0-20260905035102-160fafc42237
REGISTRY_VERSION=v3.1.2

DIR=${HERSHY_CLUSTER:-/var/cache/hershy-cluster}
BIN=$DIR/bin
PKI=$DIR/pki
RUN=$DIR/run
LOGS=$DIR/logs
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BRIDGE=hershyk8s0
POD_SUBNET=10.89.0.0/24
SERVICE_RANGE=10.97.0.0/24
APISERVER=https://127.0.0.1:6443
REGISTRY=127.0.0.1:5000
PAUSE_IMAGE=localhost/hershy-cluster/pause:1

log() { printf 'cluster: %s\n' "$*"; }
die() { printf 'cluster: FAIL: %s\n' "$*" >&2; exit 1; }
started=$(date +%s.%N)
took() { awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }'; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# quiet runs a command with its output in the build log, shown if it fails.
quiet() {
	mkdir -p "$DIR"
	if ! "$@" >>"$DIR/build.log" 2>&1; then
		tail -n 30 "$DIR/build.log" >&2
		die "$* failed (the whole output is in $DIR/build.log)"
	fi
}

# go_env points the Go toolchain at the cluster's own caches, so a build
# neither fills nor depends on the user's.
go_env() {
	command -v go >/dev/null || die "needs Go on PATH"
	export GOMODCACHE=$DIR/go/mod GOCACHE=$DIR/go/build GOPATH=$DIR/go/path
	export GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local
}

# ---------------------------------------------------------------- build

build_kubernetes() {
	local mod=$DIR/src/kubernetes
	mkdir -p "$mod"
	if [ -x "$BIN/kubelet" ] && [ "$("$BIN/kubectl" version --client -o json 2>/dev/null | grep -c "\"$K8S_VERSION\"")" -ge 1 ]; then
		log "kubernetes $K8S_VERSION: built"
		return
	fi
	log "kubernetes $K8S_VERSION: fetching modules"
	(cd "$mod" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null)
	# k8s.io/kubernetes points its k8s.io/* requirements at ./staging, which
	# a module outside its repository cannot use: each goes to the staging
	# module's published version instead.
	local upstream=$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod
	{
		printf 'module hershy.local/cluster/kubernetes\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$K8S_VERSION"
		awk -v v="$K8S_STAGING" '$2 == "=>" && $3 ~ /^\.\/staging\// { printf "\t%s => %s %s\n", $1, $1, v }' "$upstream"
		printf ')\n'
	} >"$mod/go.mod"
	local cmds="kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl" pkgs="" c
	for c in $cmds; do pkgs="$pkgs k8s.io/kubernetes/cmd/$c"; done
	# shellcheck disable=SC2086
	(cd "$mod" && quiet go get $(for c in $cmds; do printf 'k8s.io/kubernetes/cmd/%s@%s ' "$c" "$K8S_VERSION"; done) "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
	log "kubernetes $K8S_VERSION: compiling (minutes)"
	local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
	local ld="-s -w"
	local p
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
	done
	# shellcheck disable=SC2086
	(cd "$mod" && go build -trimpath -ldflags "$ld" -o "$BIN/" $pkgs)
	(cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
}

build_gvisor() {
	if [ -x "$BIN/runsc" ] && [ -x "$BIN/containerd-shim-runsc-v1.bin" ]; then
		log "gvisor: built"
		return
	fi
	local mod=$DIR/src/gvisor
	mkdir -p "$mod"
	log "gvisor $GVISOR_VERSION: fetching"
	(cd "$mod" && go mod download -json "gvisor.dev/gvisor@$GVISOR_VERSION" >/dev/null)
	rm -rf "$mod/gvisor"
	cp -r "$GOMODCACHE/gvisor.dev/gvisor@$GVISOR_VERSION" "$mod/gvisor"
	chmod -R u+w "$mod/gvisor"
	# The shim raises its own OOM score and gives up when it cannot: root
	# here has no CAP_SYS_RESOURCE. Keep going without it.
	local mgr=$mod/gvisor/pkg/shim/v1/manager.go
	grep -q 'failed to set OOM Score on shim' "$mgr" || die "gvisor: the shim's OOM score call moved; see KUBERNETES.md"
	perl -0pi -e 's/if err := sys\.SetOOMScore\(cmd\.Process\.Pid, oomScoreMax\); err != nil \{\n\t\treturn shim\.BootstrapParams\{\}, fmt\.Errorf\("failed to set OOM Score on shim: %w", err\)\n\t\}/_ = sys.SetOOMScore(cmd.Process.Pid, oomScoreMax) \/\/ hershy cluster: no CAP_SYS_RESOURCE/' "$mgr"
	grep -q 'hershy cluster: no CAP_SYS_RESOURCE' "$mgr" || die "gvisor: could not make the shim's OOM score call non-fatal"
	printf 'module hershy.local/cluster/gvisor\n\ngo 1.26\n\nrequire gvisor.dev/gvisor %s\n\nreplace gvisor.dev/gvisor => ./gvisor\n' "$GVISOR_VERSION" >"$mod/go.mod"
	(cd "$mod" && quiet go get gvisor.dev/gvisor/runsc gvisor.dev/gvisor/shim)
	log "gvisor: compiling"
	(cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$BIN/runsc" gvisor.dev/gvisor/runsc)
	(cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$BIN/containerd-shim-runsc-v1.bin" gvisor.dev/gvisor/shim)
}

build_registry() {
	if [ -x "$BIN/registry" ]; then
		log "registry: built"
		return
	fi
	local mod=$DIR/src/registry
	mkdir -p "$mod"
	printf 'module hershy.local/cluster/registry\n\ngo 1.24.0\n' >"$mod/go.mod"
	log "registry $REGISTRY_VERSION: fetching and compiling"
	(cd "$mod" && quiet go get "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION")
	(cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$BIN/registry" github.com/distribution/distribution/v3/cmd/registry)
}

# fetch_debs unpacks the CNI plugins (bridge, host-local, loopback) without
# installing them: nothing of the machine's changes.
fetch_debs() {
	if [ -x "$DIR/debs/usr/lib/cni/bridge" ]; then
		return
	fi
	log "CNI plugins: from Debian's containernetworking-plugins"
	local tmp
	tmp=$(mktemp -d)
	chown _apt "$tmp" 2>/dev/null || true # apt downloads as _apt when it can
	(cd "$tmp" && apt-get download -qq containernetworking-plugins >/dev/null) ||
		{ apt-get update -qq && (cd "$tmp" && apt-get download -qq containernetworking-plugins >/dev/null); } ||
		die "apt-get download containernetworking-plugins failed"
	mkdir -p "$DIR/debs"
	dpkg -x "$tmp"/containernetworking-plugins_*.deb "$DIR/debs"
	rm -rf "$tmp"
}

# build_provisioner builds the volume provisioner of the StorageClass
# hershy-local (scripts/cluster/provisioner), from this repository.
build_provisioner() {
	(cd "$ROOT" && quiet go build -trimpath -o "$BIN/hershy-provisioner" ./scripts/cluster/provisioner)
	(cd "$ROOT" && quiet go build -trimpath -o "$BIN/hershy-netpol" ./scripts/cluster/netpol)
}

# build_pause makes the pods' sandbox image (scripts/cluster/pause) FROM
# scratch, saved as a tarball for containerd to import.
build_pause() {
	local tmp
	tmp=$(mktemp -d)
	(cd "$ROOT" && CGO_ENABLED=0 GOWORK= GOFLAGS= go build -trimpath -ldflags "-s -w" -o "$tmp/pause" ./scripts/cluster/pause)
	printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$tmp/Dockerfile"
	docker build -q -t "$PAUSE_IMAGE" "$tmp" >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; die "building the pause image failed"; }
	docker save "$PAUSE_IMAGE" -o "$DIR/pause.tar"
	docker rmi "$PAUSE_IMAGE" >/dev/null
	rm -rf "$tmp"
}

cmd_build() {
	need_root
	go_env
	mkdir -p "$BIN"
	command -v containerd >/dev/null && command -v ctr >/dev/null ||
		die "needs containerd and ctr (Debian's containerd, installed with docker.io: scripts/setup-engine.sh)"
	command -v openssl >/dev/null || die "needs openssl (apt-get install openssl)"
	fetch_debs
	build_kubernetes
	build_gvisor
	build_registry
	build_pause
	build_provisioner
	log "built in $(took): $(ls "$BIN" | tr '\n' ' ')"
}

# ---------------------------------------------------------------- up

# cert makes a key and a certificate signed by the cluster's CA: name,
# subject, and the server names (empty: a client certificate only).
cert() {
	local name=$1 subject=$2 sans=${3:-}
	openssl req -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -out "$PKI/$name.csr" -subj "$subject" 2>/dev/null
	if [ -n "$sans" ]; then
		printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$sans" >"$PKI/$name.ext"
	else
		printf 'extendedKeyUsage=clientAuth\n' >"$PKI/$name.ext"
	fi
	openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
		-out "$PKI/$name.crt" -days 30 -extfile "$PKI/$name.ext" 2>/dev/null
	rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

kubeconfig() {
	local user=$1
	cat >"$PKI/$user.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: hershy
  cluster: {server: "$APISERVER", certificate-authority: "$PKI/ca.crt"}
users:
- name: $user
  user: {client-certificate: "$PKI/$user.crt", client-key: "$PKI/$user.key"}
contexts:
- name: hershy
  context: {cluster: hershy, user: $user}
current-context: hershy
EOF
}

make_pki() {
	mkdir -p "$PKI"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 30 -subj "/CN=hershy-cluster-ca" 2>/dev/null
	openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
	openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
	cert apiserver /CN=kube-apiserver "IP:127.0.0.1,IP:${SERVICE_RANGE%.0/24}.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
	cert apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client"
	cert kubelet-serving /CN=localhost "IP:127.0.0.1,DNS:localhost"
	cert admin "/O=system:masters/CN=admin"
	cert node "/O=system:nodes/CN=system:node:localhost"
	cert scheduler /CN=system:kube-scheduler
	cert controller-manager /CN=system:kube-controller-manager
	local u
	for u in admin node scheduler controller-manager; do kubeconfig "$u"; done
}

# start runs a component in the background, its pid in run/ and its output
# in logs/.
start() {
	local name=$1
	shift
	nohup "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
	echo $! >"$RUN/$name.pid"
}

# wait_for retries a command until it succeeds, for up to a minute.
wait_for() {
	local what=$1 i
	shift
	for i in $(seq 1 300); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.2
	done
	die "$what did not come up (logs in $LOGS)"
}

write_containerd_config() {
	local c=$DIR/containerd
	mkdir -p "$c" "$c/certs.d/$REGISTRY"
	# containerd 1.6 wants a shim's "start" to print the shim's address; this
	# gVisor shim prints its bootstrap parameters as JSON.
	cat >"$BIN/containerd-shim-runsc-v1" <<'EOF'
#!/bin/sh
shim="$(dirname "$0")/containerd-shim-runsc-v1.bin"
for verb in "$@"; do :; done
[ "$verb" = start ] || exec "$shim" "$@"
out=$("$shim" "$@") || { status=$?; printf '%s' "$out"; exit "$status"; }
case $out in
'{'*) printf '%s' "$out" | sed -n 's/.*"address":"\([^"]*\)".*/\1/p' ;;
*) printf '%s' "$out" ;;
esac
EOF
	chmod 755 "$BIN/containerd-shim-runsc-v1"
	printf 'binary_name = "%s"\nroot = "%s"\n' "$BIN/runsc" "$c/runsc-root" >"$c/runsc.toml"
	# Flags of the runsc-host handler go under [runsc_config]: a top-level
	# key is ignored without a word.
	printf 'binary_name = "%s"\nroot = "%s"\n\n[runsc_config]\n  network = "host"\n' "$BIN/runsc" "$c/runsc-root" >"$c/runsc-host.toml"
	printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$REGISTRY" "$REGISTRY" >"$c/certs.d/$REGISTRY/hosts.toml"
	local runtimes="" h
	for h in runsc runsc-host; do
		runtimes="$runtimes
    [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.$h]
      runtime_type = \"io.containerd.runsc.v1\"
      [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.$h.options]
        TypeUrl = \"io.containerd.runsc.v1.options\"
        ConfigPath = \"$c/$h.toml\""
	done
	cat >"$c/config.toml" <<EOF
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "$c/containerd.sock"
[ttrpc]
  address = "$c/containerd.sock.ttrpc"
[debug]
  address = "$c/debug.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  # An image's VOLUME would otherwise be a writable folder on the node,
  # past the read-only root.
  ignore_image_defined_volumes = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
$runtimes
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$DIR/debs/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$c/certs.d"
EOF
	mkdir -p "$DIR/cni/net.d"
	cat >"$DIR/cni/net.d/10-hershy.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "hershy-cluster", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_SUBNET"}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$DIR/cni/ipam"}}]}
EOF
}

write_kubelet_config() {
	mkdir -p "$DIR/kubelet"
	cat >"$DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$PKI/kubelet-serving.crt"
tlsPrivateKeyFile: "$PKI/kubelet-serving.key"
cgroupDriver: cgroupfs
containerRuntimeEndpoint: "unix://$DIR/containerd/containerd.sock"
failSwapOn: false
podLogsDir: "$DIR/kubelet/pod-logs"
clusterDomain: cluster.local
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
}

cmd_up() {
	need_root
	[ -x "$BIN/kubelet" ] && [ -x "$BIN/registry" ] && [ -x "$BIN/hershy-provisioner" ] && [ -x "$BIN/hershy-netpol" ] && [ -f "$DIR/pause.tar" ] || die "not built: run scripts/cluster.sh build first"
	if [ -f "$RUN/apiserver.pid" ] && kill -0 "$(cat "$RUN/apiserver.pid")" 2>/dev/null; then
		die "already up (scripts/cluster.sh down first)"
	fi
	# Remember what the kubelet changes on the machine, for down.
	mkdir -p "$RUN"
	sysctl -n vm.overcommit_memory kernel.panic kernel.panic_on_oops | paste -sd' ' >"$RUN/sysctls"
	rm -rf "$PKI" "$DIR/etcd" "$DIR/containerd" "$DIR/kubelet" "$DIR/cni" "$LOGS"
	mkdir -p "$LOGS"
	make_pki
	start etcd "$BIN/etcd" --name hershy --data-dir "$DIR/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster hershy=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
		--unsafe-no-fsync=true
	start apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
		--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 \
		--tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" --client-ca-file="$PKI/ca.crt" \
		--kubelet-client-certificate="$PKI/apiserver-kubelet.crt" --kubelet-client-key="$PKI/apiserver-kubelet.key" \
		--kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=Hostname \
		--endpoint-reconciler-type=none \
		--service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-cluster-ip-range="$SERVICE_RANGE" --authorization-mode=Node,RBAC \
		--enable-admission-plugins=NodeRestriction,PodSecurity --profiling=false
	export KUBECONFIG=$PKI/admin.kubeconfig
	wait_for "the API server" "$BIN/kubectl" get --raw /readyz
	log "API server ready ($(took))"
	start controller-manager "$BIN/kube-controller-manager" --kubeconfig="$PKI/controller-manager.kubeconfig" \
		--authentication-kubeconfig="$PKI/controller-manager.kubeconfig" --authorization-kubeconfig="$PKI/controller-manager.kubeconfig" \
		--bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false \
		--service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" --use-service-account-credentials=true
	start scheduler "$BIN/kube-scheduler" --kubeconfig="$PKI/scheduler.kubeconfig" \
		--authentication-kubeconfig="$PKI/scheduler.kubeconfig" --authorization-kubeconfig="$PKI/scheduler.kubeconfig" \
		--bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false
	write_containerd_config
	PATH=$BIN:$PATH start containerd containerd --config "$DIR/containerd/config.toml"
	wait_for containerd ctr -a "$DIR/containerd/containerd.sock" version
	ctr -a "$DIR/containerd/containerd.sock" -n k8s.io images import "$DIR/pause.tar" >/dev/null
	log "containerd ready ($(took))"
	write_kubelet_config
	PATH=$BIN:$PATH start kubelet "$BIN/kubelet" --config="$DIR/kubelet/config.yaml" --kubeconfig="$PKI/node.kubeconfig" \
		--root-dir="$DIR/kubelet/root" --cert-dir="$DIR/kubelet/pki" --hostname-override=localhost
	wait_for "the node" "$BIN/kubectl" get node localhost
	"$BIN/kubectl" wait --for=condition=Ready node/localhost --timeout=120s >/dev/null
	local i
	for i in $(seq 1 240); do
		[ -z "$("$BIN/kubectl" get node localhost -o jsonpath='{.spec.taints}')" ] && break
		sleep 0.5
	done
	"$BIN/kubectl" apply -f - >/dev/null <<EOF
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: gvisor}
handler: runsc
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: gvisor-host}
handler: runsc-host
EOF
	# Programs' /state: a claim of hershy-local gets a loop-mounted ext4
	# filesystem of its size on this machine (the provisioner).
	"$BIN/kubectl" apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: hershy-local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: hershy.org/local
reclaimPolicy: Delete
allowVolumeExpansion: true
volumeBindingMode: Immediate
EOF
	rm -rf "$DIR/volumes"
	mkdir -p "$DIR/volumes"
	start provisioner "$BIN/hershy-provisioner" -kubeconfig "$PKI/admin.kubeconfig" -root "$DIR/volumes"
	# NetworkPolicies: the bridge plugin enforces none (scripts/cluster/netpol).
	start netpol "$BIN/hershy-netpol" -kubeconfig "$PKI/admin.kubeconfig" -pod-subnet "$POD_SUBNET"
	log "node Ready ($(took))"
	mkdir -p "$DIR/registry-data"
	printf 'version: 0.1\nlog: {level: warn}\nstorage:\n  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\nhttp:\n  addr: %s\n' \
		"$DIR/registry-data" "$REGISTRY" >"$DIR/registry.yml"
	# The registry sets up OpenTelemetry whatever its configuration; its
	# default exporter would try to reach a collector.
	OTEL_TRACES_EXPORTER=none start registry "$BIN/registry" serve "$DIR/registry.yml"
	wait_for "the registry" curl -sf "http://$REGISTRY/v2/"
	log "up in $(took): KUBECONFIG=$PKI/admin.kubeconfig, registry $REGISTRY"
}

# ---------------------------------------------------------------- down

stop_pid() {
	local name=$1 pid i
	[ -f "$RUN/$name.pid" ] || return 0
	pid=$(cat "$RUN/$name.pid")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid"
		for i in $(seq 1 40); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.25
		done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
	fi
	rm -f "$RUN/$name.pid"
}

cmd_down() {
	need_root
	# Pods first, while the kubelet runs: otherwise gVisor's shims and
	# sandboxes outlive it.
	if [ -f "$RUN/kubelet.pid" ] && kill -0 "$(cat "$RUN/kubelet.pid")" 2>/dev/null; then
		KUBECONFIG=$PKI/admin.kubeconfig "$BIN/kubectl" delete pods --all --all-namespaces --wait=true --timeout=90s >/dev/null 2>&1 || true
	fi
	local c
	for c in kubelet provisioner netpol controller-manager scheduler apiserver etcd containerd registry; do
		stop_pid "$c"
	done
	[ -x "$BIN/hershy-netpol" ] && "$BIN/hershy-netpol" -cleanup || true
	# Shims of this containerd (found by its socket) still alive.
	local pid
	for pid in $(pgrep -f -- "-address $DIR/containerd/containerd.sock" || true); do
		kill -9 "$pid" 2>/dev/null || true
	done
	local m
	for m in $(awk -v d="$DIR/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" || true
	done
	# The volumes' loop devices, then their files.
	local img dev
	for img in "$DIR"/volumes/*/state.img; do
		[ -f "$img" ] || continue
		for dev in $(losetup -j "$img" -O NAME -n 2>/dev/null); do
			losetup -d "$dev" 2>/dev/null || true
		done
	done
	rm -rf "$DIR/volumes"
	# The registry holds only what tests pushed (programs' images, the
	# Hosts' state helpers): a new start begins empty.
	rm -rf "$DIR/registry-data"
	ip link del "$BRIDGE" 2>/dev/null || true
	for c in /sys/fs/cgroup/*/kubepods; do
		[ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
	if [ -f "$RUN/sysctls" ]; then
		read -r oc panic oops <"$RUN/sysctls"
		sysctl -q -w "vm.overcommit_memory=$oc" "kernel.panic=$panic" "kernel.panic_on_oops=$oops" || true
		rm -f "$RUN/sysctls"
	fi
	# The kubelet makes /var/lib/kubelet/device-plugins whatever its root.
	rm -f /var/lib/kubelet/device-plugins/kubelet.sock
	rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet 2>/dev/null || true
	rmdir /run/containerd/runc/k8s.io 2>/dev/null || true
	log "down"
}

cmd_status() {
	local c up=0
	for c in etcd apiserver controller-manager scheduler containerd kubelet provisioner netpol registry; do
		if [ -f "$RUN/$c.pid" ] && kill -0 "$(cat "$RUN/$c.pid")" 2>/dev/null; then
			printf '%-20s running (pid %s)\n' "$c" "$(cat "$RUN/$c.pid")"
			up=$((up + 1))
		else
			printf '%-20s stopped\n' "$c"
		fi
	done
	[ "$up" -gt 0 ] && printf 'KUBECONFIG=%s\n' "$PKI/admin.kubeconfig"
	return 0
}

case ${1:-} in
build) cmd_build ;;
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*)
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
