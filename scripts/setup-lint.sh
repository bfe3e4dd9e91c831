#!/usr/bin/env bash
# Installs (when missing) the two OpenAPI linters internal/api's
# TestOpenAPILint runs on the API's description: Spectral and Redocly CLI,
# at the versions scripts/lint/package-lock.json pins, with `npm ci` from
# the npm registry. Idempotent: safe to run again at any time; it does
# nothing when the installed tree was made from the same lock file.
#
# They go to $HERSHY_LINT_DIR (default /var/cache/hershy-test/lint when
# that can be written, else ~/.cache/hershy-test/lint), never into the
# work tree; the test looks in the same places. Needs Node.js 20.19 or newer
# with npm on PATH. Package install scripts are not run (--ignore-scripts):
# neither linter needs one.
set -euo pipefail

log() { printf 'setup-lint: %s\n' "$*"; }
die() { printf 'setup-lint: FAIL: %s\n' "$*" >&2; exit 1; }

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/lint" && pwd)"
default_dir() {
	if mkdir -p /var/cache/hershy-test 2>/dev/null && [ -w /var/cache/hershy-test ]; then
		echo /var/cache/hershy-test/lint
	else
		echo "${XDG_CACHE_HOME:-$HOME/.cache}/hershy-test/lint"
	fi
}
DIR=${HERSHY_LINT_DIR:-$(default_dir)}

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
	die "node and npm are required (Node.js 20.19 or newer: https://nodejs.org/)"
v=$(node --version) # e.g. v20.20.2
major=$(printf '%s' "${v#v}" | cut -d. -f1)
minor=$(printf '%s' "${v#v}" | cut -d. -f2)
if ! [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || ((major < 20 || (major == 20 && minor < 19))); then
	die "Node.js 20.19 or newer is required (Redocly CLI's minimum), found $v"
fi

stamp=$(sha256sum "$SRC/package-lock.json" | cut -d' ' -f1)
if [ -f "$DIR/.installed" ] && [ "$(cat "$DIR/.installed")" = "$stamp" ] &&
	[ -x "$DIR/node_modules/.bin/spectral" ] && [ -x "$DIR/node_modules/.bin/redocly" ]; then
	log "spectral and redocly already installed in $DIR"
	exit 0
fi
log "installing spectral and redocly into $DIR (node $v)"
mkdir -p "$DIR"
rm -f "$DIR/.installed"
cp "$SRC/package.json" "$SRC/package-lock.json" "$DIR/"
(cd "$DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || die "npm ci failed in $DIR"
"$DIR/node_modules/.bin/spectral" --version >/dev/null || die "spectral does not run after the install"
REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true "$DIR/node_modules/.bin/redocly" --version >/dev/null 2>&1 ||
	die "redocly does not run after the install"
echo "$stamp" >"$DIR/.installed"
log "spectral $("$DIR/node_modules/.bin/spectral" --version) and redocly $(REDOCLY_TELEMETRY=off "$DIR/node_modules/.bin/redocly" --version 2>/dev/null | tail -1) installed"
