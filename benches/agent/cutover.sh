#!/usr/bin/env bash
# Cutover: bounded continuous load against the agent while it switches
# between two upstream processes 20 times. Fails unless zero requests failed
# and no request sent after a switch returned reached the old upstream.
#
# Usage: benches/agent/cutover.sh [switches=20] [clients=32] [gap_ms=250]
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$root"
cargo build --release -q -p slipway-agent --bin slipway-agent --example bench_upstream --example cutover >&2
target=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target/release/examples/cutover" "$@"
