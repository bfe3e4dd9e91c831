#!/usr/bin/env bash
# The main job: start the Hershy Host with its embedded defaults and deploy
# an example into a sandboxed container.
#
#   - installs and starts Docker Engine and gVisor when missing (needs root);
#   - builds the hershy command into ./bin;
#   - starts `hershy serve` (API on 127.0.0.1:18080, data in ./.data/host,
#     programs under gVisor) and waits until it answers;
#   - deploys examples/simple-counter with `hershy deploy` and shows its
#     WatcherAPI status through the Host's authenticated proxy;
#   - keeps the Host running until Ctrl-C (programs keep running in their
#     containers; the next start re-adopts them).
#
#   ./scripts/demo.sh
#   EXAMPLE=examples/simple-counter HERSHY_RUNTIME=runc ./scripts/demo.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
EXAMPLE=${EXAMPLE:-examples/simple-counter}
RUNTIME=${HERSHY_RUNTIME:-runsc}
DATA=${HERSHY_DATA:-$ROOT/.data/host}
LISTEN=${HERSHY_LISTEN:-127.0.0.1:18080}

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { echo "demo: Go 1.25 or newer is required" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "demo: run as root (the Host drives Docker and enters container namespaces)" >&2; exit 1; }

"$ROOT/scripts/setup-engine.sh"

echo "==> building hershy"
mkdir -p "$ROOT/bin" "$DATA"
GOWORK=off CGO_ENABLED=0 go build -o "$ROOT/bin/hershy" ./cmd/hershy # static: a cluster Host runs itself as its state helper
HERSHY="$ROOT/bin/hershy"

echo "==> starting the Host (log: $DATA/host.log)"
"$HERSHY" serve --data "$DATA" --listen "$LISTEN" --runtime "$RUNTIME" >>"$DATA/host.log" 2>&1 &
host_pid=$!
trap 'echo "==> stopping the Host"; kill -TERM $host_pid 2>/dev/null; wait $host_pid 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 100); do
	curl -fsS "http://$LISTEN/healthz" >/dev/null 2>&1 && break
	kill -0 $host_pid 2>/dev/null || { tail -n 20 "$DATA/host.log" >&2; exit 1; }
	sleep 0.2
done
curl -fsS "http://$LISTEN/healthz" >/dev/null || { tail -n 20 "$DATA/host.log" >&2; exit 1; }

export HERSHY_URL="http://$LISTEN"
HERSHY_TOKEN=$(cat "$DATA/admin.token")
export HERSHY_TOKEN

echo "==> deploying $EXAMPLE"
id_file="$DATA/demo-program"
if [ -s "$id_file" ] && "$HERSHY" inspect "$(cat "$id_file")" >/dev/null 2>&1; then
	"$HERSHY" deploy --program "$(cat "$id_file")" "$EXAMPLE"
else
	"$HERSHY" deploy --user demo -o json "$EXAMPLE" | tee "$DATA/deploy.json"
	sed -n 's/.*"program_id": *"\([^"]*\)".*/\1/p' "$DATA/deploy.json" | head -n1 >"$id_file"
fi
id=$(cat "$id_file")

echo "==> the program's WatcherAPI through the Host's proxy"
"$HERSHY" status "$id" || true
cat <<MSG

The Host is running (Ctrl-C stops it; the program keeps running and is re-adopted next time).
Dashboard: $HERSHY_URL/ui/ (sign in with the token in $DATA/admin.token)
    export HERSHY_URL=$HERSHY_URL HERSHY_TOKEN=\$(cat $DATA/admin.token)
    $HERSHY ps
    $HERSHY send $id status
    $HERSHY logs -f $id
    $HERSHY watch $id
    curl -s -H "Authorization: Bearer \$HERSHY_TOKEN" $HERSHY_URL/programs/$id/proxy/watcher/status
MSG
wait $host_pid
