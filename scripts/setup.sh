#!/usr/bin/env bash
# Installs what Slipway's tests and quickstart need on a fresh Debian machine
# that already has Rust (cargo) and a running Docker Engine: the Debian
# packages below (when missing and when we can install them), then the local
# images (scripts/images/build.sh, cached). Idempotent; safe to rerun.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '%s\n' "$*" >&2; }

# command -> Debian package
declare -A needed=([mmdebstrap]=mmdebstrap [jq]=jq [curl]=curl [wrk]=wrk [nginx]=nginx [sshd]=openssh-server [ssh]=openssh-client [hyperfine]=hyperfine [pebble]=pebble)
missing=()
for cmd in "${!needed[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    missing+=("${needed[$cmd]}")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    log "error: missing packages: ${missing[*]}; install them (apt-get install ${missing[*]}) and rerun"
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  log "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null 2>&1 || { log "error: cargo not found; install Rust (https://rustup.rs) and rerun"; exit 1; }
"$here/images/build.sh"
