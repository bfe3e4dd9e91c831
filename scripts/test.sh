#!/usr/bin/env bash
# The whole test suite: for every Go module of the repository (the hersh
# framework, the main module, each example), a gofmt check, go vet and the
# tests with the race detector. Exits non-zero on the first failure.
#
#   ./scripts/test.sh                 every module
#   ./scripts/test.sh hersh examples/simple-counter   only these modules
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

header() { printf '\n=== %s\n' "$*"; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

# need_go makes sure a Go toolchain of at least 1.25 is on PATH, and that the
# race detector can work (it needs cgo and a C compiler).
need_go() {
	if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
		export PATH="/usr/local/go/bin:$PATH"
	fi
	command -v go >/dev/null 2>&1 ||
		die "go is not installed or not on PATH; Go 1.25 or newer is required (https://go.dev/dl/)"
	local v major minor
	v=$(go env GOVERSION) # e.g. go1.26.8
	major=$(printf '%s' "${v#go}" | cut -d. -f1)
	minor=$(printf '%s' "${v#go}" | cut -d. -f2)
	if ! [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || ((major < 1 || (major == 1 && minor < 25))); then
		die "Go 1.25 or newer is required, found $v ($(command -v go))"
	fi
	[ "$(go env CGO_ENABLED)" = 1 ] ||
		die "go test -race needs cgo: set CGO_ENABLED=1 and install a C compiler (apt-get install -y gcc)"
	command -v "$(go env CC | cut -d' ' -f1)" >/dev/null 2>&1 ||
		die "go test -race needs a C compiler ($(go env CC)); install one (apt-get install -y gcc)"
	echo "using $(go version) at $(command -v go)"
}

# modules lists the directories of every module, framework first.
modules() {
	echo hersh
	echo .
	for d in examples/*/; do
		[ -f "$d/go.mod" ] && echo "${d%/}"
	done
	return 0
}

# go_files lists a module's Go files, leaving out nested modules, vendor,
# testdata and hidden directories.
go_files() {
	local dir=$1
	find "$dir" \
		\( -type d ! -path "$dir" \( -name vendor -o -name testdata -o -name '.*' \) -prune \) -o \
		\( -type d ! -path "$dir" -exec test -e '{}/go.mod' \; -prune \) -o \
		\( -type f -name '*.go' -print \)
}

check_module() {
	local dir=$1 files unformatted
	header "module $dir: gofmt"
	files=$(go_files "$dir")
	if [ -n "$files" ]; then
		# shellcheck disable=SC2086 # one file per word; paths hold no spaces
		unformatted=$(gofmt -l $files)
		if [ -n "$unformatted" ]; then
			printf '%s\n' "$unformatted" >&2
			die "module $dir: these files need gofmt -w"
		fi
	fi
	echo ok

	# A module with no packages yet (the main module, for now) has nothing to
	# vet or test; go vet and go test would fail on it. Any other go list
	# failure falls through to go vet, which reports it.
	if (cd "$dir" && go list ./... 2>&1) | grep -q 'matched no packages'; then
		header "module $dir: no packages yet, skipping vet and tests"
		return 0
	fi
	header "module $dir: go vet"
	(cd "$dir" && go vet ./...) || die "module $dir: go vet"
	echo ok

	header "module $dir: go test -race"
	(cd "$dir" && go test -race -count=1 -timeout 30m ./...) || die "module $dir: go test"
}

header "toolchain"
need_go

# The Host's tests run against the real engine under runc and runsc: install
# and start Docker and gVisor when missing (idempotent). In CI (CI set) a
# missing engine makes those tests fail rather than skip.
need_engine() {
	header "container engine"
	if [ "$(id -u)" != 0 ]; then
		echo "not root: skipping the engine set-up; engine tests need a running Docker with runsc" >&2
		return 0
	fi
	"$ROOT/scripts/setup-engine.sh"
}

# The dashboard's browser tests drive a headless Chromium: install it when
# missing (idempotent). In CI a missing Chromium fails those tests.
need_browser() {
	header "browser"
	if [ "$(id -u)" != 0 ] && ! command -v chromium >/dev/null 2>&1; then
		echo "not root: skipping the browser set-up; browser tests need chromium on PATH" >&2
		return 0
	fi
	"$ROOT/scripts/setup-browser.sh"
}

# The OpenAPI description's lint test runs Spectral and Redocly CLI: install
# them when missing (idempotent, into a cache outside the tree). Without
# Node.js the test skips, except in CI, where it fails.
need_lint() {
	header "OpenAPI linters"
	if ! command -v node >/dev/null 2>&1 && [ -z "${CI:-}" ]; then
		echo "no node on PATH: skipping the linters' set-up; the OpenAPI lint test skips" >&2
		return 0
	fi
	"$ROOT/scripts/setup-lint.sh"
}

# The Kubernetes driver's tests (its conformance kit and e2e TestCluster)
# run against a real single-node cluster on loopback: build it (about 11
# minutes the first time, seconds with its cache in
# /var/cache/hershy-cluster), start it, and stop it when the suite ends.
# HERSHY_KUBECONFIG makes those tests fail, not skip, without it.
cluster_started=
need_cluster() {
	header "test cluster (Kubernetes)"
	if [ "$(id -u)" != 0 ]; then
		echo "not root: skipping the test cluster; the Kubernetes driver's tests skip" >&2
		return 0
	fi
	"$ROOT/scripts/cluster.sh" build
	if ! "$ROOT/scripts/cluster.sh" status | grep -q '^apiserver .*running'; then
		"$ROOT/scripts/cluster.sh" up
		cluster_started=1
	fi
	export HERSHY_KUBECONFIG=${HERSHY_CLUSTER:-/var/cache/hershy-cluster}/pki/admin.kubeconfig
}
stop_cluster() {
	if [ -n "$cluster_started" ]; then
		header "test cluster: down"
		"$ROOT/scripts/cluster.sh" down || true
	fi
}
trap stop_cluster EXIT

if [ $# -gt 0 ]; then
	targets=("$@")
else
	mapfile -t targets < <(modules)
fi
for m in "${targets[@]}"; do
	[ -f "$m/go.mod" ] || die "$m is not a module directory (no go.mod)"
	if [ "$m" = . ]; then
		need_engine
		need_browser
		need_lint
		need_cluster
	fi
	check_module "$m"
done

# Last, alone: the engine restart test stops and starts dockerd, which any
# other engine test running at the same time would feel.
if [[ " ${targets[*]} " == *" . "* ]]; then
	header "module .: the engine restart (dockerd stopped and started under running programs)"
	if [ "$(id -u)" != 0 ]; then
		echo "not root: skipping the engine restart test (it restarts dockerd)" >&2
	else
		HERSHY_ENGINE_RESTART=1 go test -race -count=1 -timeout 20m -run '^TestEngineRestart$' ./e2e ||
			die "module .: the engine restart test"
	fi
fi

header "all checks passed"
