#!/usr/bin/env bash
# The README's first command: on a fresh Debian machine with cargo and a
# running Docker Engine, set everything up (packages, local images, the
# tools) and deploy the example service apps/events-server to the local
# engine with `slipway deploy development`, then show its /health.
# Rerunning it redeploys (fast: images are cached).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
log() { printf '%s\n' "$*" >&2; }

scripts/setup.sh
log "building slipway and slipway-agent..."
cargo build -p slipway -p slipway-agent >&2
slipway="$repo/target/debug/slipway"

cd apps/events-server
env_file=deploy/config/environments/.env.development
if [ ! -f "$env_file" ]; then
  log "creating $env_file from its template with fresh random secrets (mode 600)"
  secret() { head -c 48 /dev/urandom | base64 | tr -d '/+=\n' | head -c 48; }
  # umask only in this subshell: later steps (the app's build) must not
  # inherit it.
  (
    umask 077
    sed -e "s/^POSTGRES_PASSWORD=CHANGE_ME/POSTGRES_PASSWORD=$(secret)/" \
        -e "s/^JWT_SECRET=CHANGE_ME/JWT_SECRET=$(secret)/" \
        -e "s/^ADMIN_API_KEY=CHANGE_ME/ADMIN_API_KEY=$(secret)/" \
        "$env_file.example" > "$env_file"
  )
  chmod 600 "$env_file"
fi

"$slipway" config validate development
"$slipway" deploy development
port=$("$slipway" --json config show development | jq -r '.settings["deployment.public_port"].value')
log ""
log "events-server is served on http://127.0.0.1:$port/ ; its health:"
curl -s "http://127.0.0.1:$port/health" | jq .
