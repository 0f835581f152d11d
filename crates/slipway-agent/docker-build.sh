#!/usr/bin/env bash
# Build the agent image from the release binary: slipway-agent:<tag>
# (default: the crate version). The context holds only the binary, so the
# build sends kilobytes, not the target dir. Needs debian:bookworm-slim
# locally (scripts/images/build.sh makes it where no registry exists).
#
# Usage: crates/slipway-agent/docker-build.sh [tag]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel)
cd "$root"
version=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "slipway-agent"))')
tag=${1:-$version}
target=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cargo build --release -q -p slipway-agent --bin slipway-agent
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$target/release/slipway-agent" "$here/Dockerfile" "$ctx/"
DOCKER_BUILDKIT=0 docker build -q -t "slipway-agent:$tag" "$ctx" >&2
echo "slipway-agent:$tag"
