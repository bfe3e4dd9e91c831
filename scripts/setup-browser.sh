#!/usr/bin/env bash
# Installs (when missing) the headless browser the dashboard's browser tests
# drive: Chromium from Debian's packages (/usr/bin/chromium), with the fonts
# its screenshots need. Idempotent: safe to run again at any time; it does
# nothing when chromium is already there. Needs root to install.
#
# The tests (internal/ui/browsertest) start it themselves, headless, as root
# with --no-sandbox, and fail in CI when it is missing. No browser build is
# downloaded from anywhere else: only Debian's package is used.
set -euo pipefail

log() { printf 'setup-browser: %s\n' "$*"; }
die() { printf 'setup-browser: FAIL: %s\n' "$*" >&2; exit 1; }

if command -v chromium >/dev/null 2>&1; then
	log "$(chromium --version 2>/dev/null || echo chromium) already installed"
	exit 0
fi
[ "$(id -u)" = 0 ] || die "chromium is missing and installing it needs root (apt-get install -y chromium)"
log "installing chromium from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || die "apt-get update failed"
apt-get install -y -qq chromium fonts-dejavu-core >/dev/null || die "apt-get install chromium failed"
command -v chromium >/dev/null 2>&1 || die "chromium missing after install"
log "$(chromium --version) installed"
