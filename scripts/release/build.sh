#!/usr/bin/env bash
# Builds Slipway's release archive for one target, as the release workflow
# (.github/workflows/release.yml) does on each of the forge's runners, and
# as scripts/release/check.sh does here for x86_64 Linux:
#   <out>/slipway-<version>-<target>.tar.gz          the binaries, at the top level
#   <out>/slipway-<version>-<target>.tar.gz.sha256   `sha256sum --check` format
# Linux (gnu) targets are linked statically, glibc included
# (-C target-feature=+crt-static), so one binary runs on any distribution
# and in a FROM scratch image. The profile is `dist` (what we ship: fat LTO,
# see Cargo.toml) unless --profile says otherwise; the test suite's check
# uses `release`, several times faster to build on two cores.
#
# Usage: scripts/release/build.sh <target> [--bins "slipway slipway-agent"] [--profile P] [--out DIR]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
log() { printf '%s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 2
}

target=${1:-}
if [ -z "$target" ] || [ "${target#-}" != "$target" ]; then
  die "usage: $0 <target> [--bins \"slipway slipway-agent\"] [--profile P] [--out DIR]"
fi
shift
bins="slipway slipway-agent"
profile=dist
out=dist
while [ $# -gt 0 ]; do
  case "$1" in
    --bins) bins=${2:?--bins needs a list}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --profile) profile=${2:?--profile needs a name}; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || die "no version in Cargo.toml's [workspace.package]"

case "$target" in
  *-linux-gnu) export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" ;;
esac

packages=()
for bin in $bins; do packages+=(-p "$bin" --bin "$bin"); done
started=$(date +%s)
log "building ${bins} ${version} for ${target} (profile ${profile}${RUSTFLAGS:+, RUSTFLAGS=${RUSTFLAGS# }})"
cargo build --locked --profile "$profile" --target "$target" "${packages[@]}"
log "built in $(($(date +%s) - started)) s"

mkdir -p "$out"
asset="slipway-${version}-${target}.tar.gz"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for bin in $bins; do cp "target/${target}/${profile}/${bin}" "$stage/"; done
# Owned by root in the archive, whoever built it (GNU tar here, bsdtar on macOS).
if tar --version 2>/dev/null | grep -q GNU; then
  owner=(--owner=0 --group=0 --numeric-owner)
else
  owner=(--uid 0 --gid 0)
fi
# shellcheck disable=SC2086 # the binaries' names are words
tar -C "$stage" "${owner[@]}" -czf "$out/$asset" $bins
if command -v sha256sum >/dev/null 2>&1; then
  (cd "$out" && sha256sum "$asset" >"$asset.sha256")
else
  (cd "$out" && shasum -a 256 "$asset" >"$asset.sha256")
fi
log "wrote $out/$asset and $out/$asset.sha256"
printf '%s\n' "$out/$asset"
