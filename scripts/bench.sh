#!/usr/bin/env bash
# The benchmark report: every figure of the Host measured against doing the
# same by hand on the same engine, in one run (see BENCHMARKS.md).
#
#   - installs and starts Docker Engine and gVisor when missing (needs root);
#   - builds the hershy command into ./bin;
#   - runs `hershy bench` with the arguments given (default: both runtimes,
#     10 rounds, 100 programs) and writes the report to bench-report.md.
#
#   ./scripts/bench.sh
#   ./scripts/bench.sh --runtime runc --programs 1000
#   ./scripts/bench.sh --smoke
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { echo "bench: Go 1.25 or newer is required" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench: run as root (the Host drives Docker and enters container namespaces)" >&2; exit 1; }

"$ROOT/scripts/setup-engine.sh"

echo "==> building hershy"
mkdir -p "$ROOT/bin"
GOWORK=off CGO_ENABLED=0 go build -o "$ROOT/bin/hershy" ./cmd/hershy # static: a cluster Host runs itself as its state helper

echo "==> hershy bench $*"
"$ROOT/bin/hershy" bench --out "$ROOT/bench-report.md" "$@"
cat "$ROOT/bench-report.md"
