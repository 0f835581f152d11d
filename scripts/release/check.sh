#!/usr/bin/env bash
# The release workflow's build step as far as this machine allows (only the
# x86_64 standard library is installed, so no other target): builds the
# static x86_64 Linux `slipway` with scripts/release/build.sh, checks the
# archive's checksum, that the binary is statically linked, and that it
# runs `--version` in a FROM scratch image (no libc, no loader, nothing)
# built from local files. Run by scripts/test.sh; prints the timings.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
log() { printf '%s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
export DOCKER_BUILDKIT=0

target=x86_64-unknown-linux-gnu
out=target/release-check
started=$(date +%s)
# `static-check` (unoptimised; Cargo.toml), not the shipped `dist`: the same
# static link, minutes faster on two cores.
archive=$(scripts/release/build.sh "$target" --bins slipway --profile static-check --out "$out")
built=$(date +%s)

(cd "$out" && sha256sum --check --strict "$(basename "$archive").sha256" >/dev/null) ||
  die "the checksum of $archive does not match"
work=$(mktemp -d)
tag="slipway-release-check:$$"
cleanup() {
  rm -rf "$work"
  docker image rm -f "$tag" >/dev/null 2>&1 || true
}
trap cleanup EXIT
tar -xzf "$archive" -C "$work"
[ -x "$work/slipway" ] || die "$archive holds no slipway binary"
# glibc's ldd says "statically linked" (or "not a dynamic executable").
linkage=$(ldd "$work/slipway" 2>&1 || true)
case "$linkage" in
  *"statically linked"* | *"not a dynamic executable"*) ;;
  *) die "the binary is dynamically linked: $(printf '%s' "$linkage" | tr '\n' ' ')" ;;
esac

printf 'FROM scratch\nCOPY slipway /slipway\nENTRYPOINT ["/slipway"]\n' >"$work/Dockerfile"
if ! built_image=$(docker build -q -t "$tag" "$work" 2>&1); then
  die "docker build of the FROM scratch image failed: $built_image"
fi
got=$(docker run --rm --network none "$tag" --version)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ "$got" = "slipway $version" ] || die "the static binary printed \`$got\`, expected \`slipway $version\`"
log "release check: static $target slipway $version runs in FROM scratch (build $((built - started)) s, check $(($(date +%s) - built)) s)"
