#!/usr/bin/env bash
# Runs examples/simple-counter directly on this machine (no Host, no container),
# with its WatcherAPI on 127.0.0.1:8080 and its durable state in
# ./.data/simple-counter. Ctrl-C stops it gracefully (state is saved; run the
# script again and the counter resumes).
#
#   ./scripts/run-example-locally.sh
#   HERSH_API_ADDR=127.0.0.1:9090 ./scripts/run-example-locally.sh
#
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { echo "demo: Go 1.25 or newer is required (https://go.dev/dl/)" >&2; exit 1; }

export HERSH_API_ADDR="${HERSH_API_ADDR:-127.0.0.1:8080}"
export HERSH_STATE_DIR="${HERSH_STATE_DIR:-$ROOT/.data/simple-counter}"
mkdir -p "$HERSH_STATE_DIR" "$ROOT/bin"

echo "==> building examples/simple-counter"
(cd examples/simple-counter && go build -o "$ROOT/bin/simple-counter" .)

api="http://$HERSH_API_ADDR"
cat <<MSG
==> running simple-counter (Ctrl-C to stop)
    WatcherAPI: $api   state: $HERSH_STATE_DIR (counter.log, hersh-context.json)

    Try, from another terminal:
      curl -s $api/watcher/status
      curl -s $api/watcher/ready
      curl -s $api/watcher/varState
      curl -s $api/watcher/watching
      curl -s $api/watcher/memoCache
      curl -s $api/watcher/signals
      curl -s $api/watcher/config
      curl -s '$api/watcher/logs?type=effect_result&limit=5'
      curl -s -X POST -H 'Content-Type: application/json' -d '{"content":"status"}' $api/watcher/message
      curl -s -X POST -H 'Content-Type: application/json' -d '{"content":"reset"}' $api/watcher/message
      tail -f $HERSH_STATE_DIR/counter.log

MSG
exec "$ROOT/bin/simple-counter"
