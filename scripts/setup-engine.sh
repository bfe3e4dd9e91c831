#!/usr/bin/env bash
# Installs (when missing) and starts the Docker engine with gVisor, as the
# Host and its tests need them. Idempotent: safe to run again at any time.
#
#   - packages from Debian: docker.io (Docker Engine, containerd, runc) and runsc (gVisor),
#     e2fsprogs (each program's /state is a loop-mounted ext4 image of its size cap);
#   - registers runsc in /etc/docker/daemon.json with --network=host (gVisor then uses the
#     container's own network namespace: with --network none that holds only lo), and
#     live-restore so containers outlive a dockerd restart;
#   - removes a stale /var/run/docker.pid left by a killed dockerd, starts dockerd in the
#     background (log: /var/log/hershy-dockerd.log), waits until `docker info` answers.
# See ../shared/PLATFORM.md for why each step is needed. Needs root.
set -euo pipefail

log() { printf 'setup-engine: %s\n' "$*"; }
die() { printf 'setup-engine: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts dockerd)"

if ! command -v dockerd >/dev/null 2>&1 || ! command -v runsc >/dev/null 2>&1; then
	log "installing docker.io and runsc from Debian's packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || die "apt-get update failed"
	apt-get install -y -qq docker.io runsc >/dev/null || die "apt-get install docker.io runsc failed"
fi
command -v dockerd >/dev/null || die "dockerd missing after install"
# Each program's /state is a loop-mounted ext4 image of its size cap: the
# Host formats and resizes it with e2fsprogs.
if ! command -v mkfs.ext4 >/dev/null 2>&1 || ! command -v e2fsck >/dev/null 2>&1 || ! command -v resize2fs >/dev/null 2>&1; then
	log "installing e2fsprogs from Debian's packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || die "apt-get update failed"
	apt-get install -y -qq e2fsprogs >/dev/null || die "apt-get install e2fsprogs failed"
fi
[ -e /dev/loop-control ] || modprobe loop 2>/dev/null || true
[ -e /dev/loop-control ] || die "no /dev/loop-control: the Host needs loop devices to cap each program's /state"
RUNSC=$(command -v runsc) || die "runsc missing after install"

want=$(cat <<JSON
{
  "runtimes": {
    "runsc": {
      "path": "$RUNSC",
      "runtimeArgs": ["--network=host"]
    }
  },
  "live-restore": true
}
JSON
)
mkdir -p /etc/docker
config_changed=0
if [ ! -f /etc/docker/daemon.json ] || [ "$(cat /etc/docker/daemon.json)" != "$want" ]; then
	if [ -f /etc/docker/daemon.json ] && ! grep -q '"runsc"' /etc/docker/daemon.json; then
		cp /etc/docker/daemon.json "/etc/docker/daemon.json.bak.$(date +%s)"
		log "existing /etc/docker/daemon.json saved aside"
	fi
	printf '%s\n' "$want" >/etc/docker/daemon.json
	config_changed=1
fi

dockerd_pid() { pgrep -x dockerd | head -n1 || true; }

pid=$(dockerd_pid)
if [ -n "$pid" ] && [ "$config_changed" = 1 ]; then
	log "reloading dockerd ($pid) for the new runtime configuration"
	kill -HUP "$pid"
fi
start_dockerd() {
	if [ -f /var/run/docker.pid ]; then
		log "removing stale /var/run/docker.pid"
		rm -f /var/run/docker.pid
	fi
	log "starting dockerd"
	# In its own session, so a Ctrl-C or the end of the shell (or job) that
	# ran this script does not take the daemon and every program with it.
	setsid nohup dockerd >>/var/log/hershy-dockerd.log 2>&1 </dev/null &
	disown || true
}
[ -n "$pid" ] || start_dockerd

# After an unclean stop with many containers, containerd first reaps every
# dead shim, and dockerd gives up on it after its own timeout and exits.
# The reaping keeps its progress, so starting dockerd again gets further
# each time: try a few times before failing.
attempt=1
answered=0
for _ in $(seq 1 600); do
	if docker info >/dev/null 2>&1; then
		answered=1
		break
	fi
	if [ -z "$(dockerd_pid)" ]; then
		[ "$attempt" -lt 5 ] || break
		attempt=$((attempt + 1))
		log "dockerd exited before answering (containerd still cleaning up?); attempt $attempt"
		start_dockerd
	fi
	sleep 0.5
done
[ "$answered" = 1 ] || { tail -n 30 /var/log/hershy-dockerd.log >&2 || true; die "dockerd did not answer (after $attempt starts)"; }

for _ in $(seq 1 20); do
	if docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q runsc; then
		log "Docker $(docker version --format '{{.Server.Version}}') ready, runtimes: $(docker info --format '{{range $k, $v := .Runtimes}}{{$k}} {{end}}')"
		exit 0
	fi
	sleep 0.5
done
die "dockerd runs but does not list the runsc runtime; check /etc/docker/daemon.json"
