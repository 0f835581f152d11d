#!/usr/bin/env bash
# Prepares the Docker build context of events-server on the host: builds the
# release binary with cargo and stages it, the migrations and the Dockerfile
# into <context-dir>, then prints the directory's absolute path on stdout
# (progress goes to stderr). See the header of Dockerfile beside this script.
#
# Usage: build-context.sh <context-dir>
#   ctx=$(apps/events-server/deploy/docker/build-context.sh /tmp/events-ctx)
#   docker build -t events-server:dev "$ctx"
#
# EVENTS_SERVER_VERSION, EVENTS_SERVER_GIT_COMMIT and EVENTS_SERVER_BUILD_DATE,
# when set, override what build.rs reads from git (for builds outside a git
# checkout, or reproducible ones); cargo passes them through to build.rs.
set -euo pipefail

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
  printf 'usage: %s <context-dir>\n' "$0" >&2
  exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
app=$(cd "$here/../.." && pwd)
manifest="$app/Cargo.toml"

mkdir -p "$1"
ctx=$(cd "$1" && pwd)

printf 'building events-server (release)...\n' >&2
# stdout of cargo is machine-readable JSON here; the human progress stays on stderr.
binary=$(cargo build --release -p events-server --manifest-path "$manifest" \
  --message-format=json-render-diagnostics |
  jq -r 'select(.reason == "compiler-artifact" and .target.name == "events-server"
                and (.target.kind | index("bin")) and .executable != null) | .executable' |
  tail -n 1)
if [ -z "$binary" ] || [ ! -x "$binary" ]; then
  printf 'error: cargo did not report the events-server binary\n' >&2
  exit 1
fi

rm -rf "$ctx/migrations"
# Explicit modes: the image runs as a non-root user, and a caller's umask
# (077 is common for people who handle secrets) must not make the binary
# or the migrations unreadable to it.
install -m 0755 "$binary" "$ctx/events-server"
# Debug symbols are not needed in the image and triple its size.
strip "$ctx/events-server" 2>/dev/null || true
cp -R "$app/migrations" "$ctx/migrations"
chmod -R a+rX "$ctx/migrations"
install -m 0644 "$here/Dockerfile" "$ctx/Dockerfile"

printf 'staged %s (binary %s)\n' "$ctx" "$("$ctx/events-server" --version)" >&2
printf '%s\n' "$ctx"
