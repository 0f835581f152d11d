#!/usr/bin/env bash
# The whole test suite, as CI runs it (`.ci/run` calls this): machine setup
# and local images (cached), formatting and lint gates, then every test of
# the workspace against the real Docker Engine and PostgreSQL image.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
scripts/images/build.sh --verify

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Two cores: run test binaries with a bounded number of threads so the
# container-heavy tests don't starve each other.
status=0
cargo test --workspace --locked -- --test-threads=4 || status=$?
# The release workflow's build step, as far as this machine allows: the
# static x86_64 binary runs `--version` in a FROM scratch image.
scripts/release/check.sh || status=$?
scripts/images/cleanup-test-leftovers.sh || true
exit "$status"
