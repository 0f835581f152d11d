#!/usr/bin/env bash
# Deploy benchmark (issue 6): command-to-switched time of a warm redeploy
# (image cached, no new migration) and of `slipway rollback`, with each
# step's duration, against a named peer measured in the same run: a plain
# `docker-compose up -d --force-recreate` of the same image (what many small
# deployments do), timed until its /health answers 200, with a probe loop
# counting failed requests during each.
#
# Then (issue 19) a deploy with one ordinary migration (ADD COLUMN, then
# CREATE INDEX CONCURRENTLY) on the app's own database grown to ROWS events
# (default 1,000,000, generated server-side as in benches/database/run.sh, in
# the events-server schema): command to switched, step by step, against the
# 2-minute goal. ROWS=0 skips it.
#
# Usage: [ROWS=n] benches/deploy/run.sh [runs]   (default 3 runs of each)
# Needs: the local images (scripts/images/build.sh), docker-compose, jq, curl.
set -euo pipefail

runs=${1:-3}
rows=${ROWS:-1000000}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
log() { printf '%s\n' "$*" >&2; }

cargo build -q -p slipway -p slipway-agent -p events-server --manifest-path "$repo/Cargo.toml"
"$repo/scripts/images/build.sh" >/dev/null
target_dir=$(cargo metadata --no-deps --format-version 1 --manifest-path "$repo/Cargo.toml" | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
slipway="$target_dir/debug/slipway"

work=$(mktemp -d)
app="bench-$$"
port=$((23000 + $$ % 1000))
cpport=$((port + 1))
cleanup() {
  docker ps -aq --filter "label=slipway.app=$app" | xargs -r docker rm -f >/dev/null
  docker volume ls -q --filter "label=slipway.app=$app" | xargs -r docker volume rm >/dev/null
  docker network ls -q --filter "label=slipway.app=$app" | xargs -r docker network rm >/dev/null
  (cd "$work/compose" 2>/dev/null && docker-compose down -v >/dev/null 2>&1) || true
  docker images --format '{{.Repository}}:{{.Tag}}' "$app" | xargs -r docker rmi -f >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# The example app with a build command that stages the prebuilt binary.
mkdir -p "$work/app/deploy/config/environments" "$work/app/deploy/docker"
cp -R "$repo/apps/events-server/migrations" "$work/app/"
cp "$repo/apps/events-server/deploy/docker/Dockerfile"* "$work/app/deploy/docker/"
python3 - "$repo" "$work/app" "$app" "$target_dir" <<'PY'
import sys
repo, root, app, target = sys.argv[1:]
s = open(f"{repo}/apps/events-server/deploy/config/deployment.yml").read()
a = s.index("    command: >-"); b = s.index("    context:")
s = s[:a] + f"    command: rm -rf ctx && mkdir -p ctx && cp {target}/debug/events-server ctx/ && cp -R migrations ctx/\n" + s[b:]
s = s.replace("context: .slipway/build-context", "context: ctx").replace("name: events-server", f"name: {app}")
open(f"{root}/deploy/config/deployment.yml", "w").write(s)
PY
umask 077
printf 'POSTGRES_PASSWORD=bench-pg-%s\nJWT_SECRET=bench-jwt-0123456789abcdef0123456789abcdef\nADMIN_API_KEY=bench\n' "$$" \
  > "$work/app/deploy/config/environments/.env.development"
umask 022
printf 'ctx/\ndeploy/config/environments/.env.*\n' > "$work/app/.gitignore"
cd "$work/app"
git init -q -b main && git add -A && git -c user.name=b -c user.email=b@b commit -qm a
S() { "$slipway" --set "deployment.public_port=$port" --set "database.snapshots.dir=$work/snapshots" "$@"; }

# A probe loop counting non-2xx answers on a port while a command runs.
probe() { # port outfile
  local ok=0 bad=0
  while [ ! -f "$work/stop" ]; do
    if curl -fs -o /dev/null -m 2 "http://127.0.0.1:$1/version"; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
  done
  echo "$ok $bad" > "$2"
}
measure() { # port label command...
  local p=$1 label=$2; shift 2
  rm -f "$work/stop"; probe "$p" "$work/probe.$label" & local pid=$!
  "$@"
  touch "$work/stop"; wait "$pid"
  cat "$work/probe.$label"
}

log "cold first deploy (builds, provisions, migrates)..."
S deploy development >/dev/null 2>"$work/first.log" || { cat "$work/first.log" >&2; exit 1; }
release_a=$(git rev-parse HEAD | cut -c1-12)
git commit -q --allow-empty -m b
S deploy development >/dev/null 2>&1

declare -a warm rollback warm_total compose
for i in $(seq 1 "$runs"); do
  read -r ok bad < <(measure "$port" "warm$i" bash -c "S() { \"$slipway\" --set deployment.public_port=$port --set database.snapshots.dir=$work/snapshots \"\$@\"; }; S --json rollback development --yes > $work/rb.$i.json 2>/dev/null")
  rollback+=("$(jq .switched_after_ms "$work/rb.$i.json") $ok $bad $(jq .total_ms "$work/rb.$i.json")")
  read -r ok bad < <(measure "$port" "deploy$i" bash -c "S() { \"$slipway\" --set deployment.public_port=$port --set database.snapshots.dir=$work/snapshots \"\$@\"; }; S --json deploy development > $work/dep.$i.json 2>/dev/null")
  warm+=("$(jq .switched_after_ms "$work/dep.$i.json") $ok $bad $(jq .total_ms "$work/dep.$i.json")")
done

# Peer: docker-compose recreate of the same image on the same database.
image="$app:$(jq -r .release.id "$work/dep.1.json")"
db_url="postgres://events:bench-pg-$$@$app-development-db:5432/events"
mkdir -p "$work/compose" && cd "$work/compose"
cat > docker-compose.yml <<YML
version: "3"
services:
  web:
    image: $image
    environment: { DATABASE_URL: "$db_url", JWT_SECRET: bench-jwt-0123456789abcdef0123456789abcdef, PORT: "8080" }
    ports: ["127.0.0.1:$cpport:8080"]
    networks: [appnet]
networks:
  appnet: { external: true, name: $app-development-net }
YML
docker-compose up -d >/dev/null 2>&1
until curl -fs -o /dev/null "http://127.0.0.1:$cpport/health"; do sleep 0.1; done
for i in $(seq 1 "$runs"); do
  start=$(date +%s%N)
  read -r ok bad < <(measure "$cpport" "compose$i" bash -c "docker-compose up -d --force-recreate >/dev/null 2>&1; until curl -fs -o /dev/null http://127.0.0.1:$cpport/health; do sleep 0.05; done")
  compose+=("$(( ($(date +%s%N) - start) / 1000000 )) $ok $bad")
done

# --- a deploy with one migration on ROWS events -------------------------------
if ((rows > 0)); then
  db="$app-development-db"
  dbq() { docker exec -i "$db" psql -X -q -v ON_ERROR_STOP=1 -U events -d events "$@"; }
  log "growing the database to $rows events (secondary indexes dropped for the load, then rebuilt) ..."
  t0=$(date +%s)
  dbq >/dev/null <<SQL
-- Serial builds (parallel ones need more /dev/shm than a container has); the
-- HNSW graph of 1M vectors needs about 700 MB to build in memory.
SET maintenance_work_mem = '1GB';
SET max_parallel_maintenance_workers = 0;
CREATE TEMP TABLE saved AS
  SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events' AND indexname <> 'events_pkey';
DO \$\$ DECLARE r record; BEGIN
  FOR r IN SELECT indexname FROM saved LOOP EXECUTE format('DROP INDEX %I', r.indexname); END LOOP;
END \$\$;
INSERT INTO events (title, description, starts_at, location, embedding)
SELECT 'event ' || g || ' ' || md5(g::text), md5((g * 7)::text),
       timestamptz '2025-01-01' + g * interval '1 minute',
       ST_SetSRID(ST_MakePoint(random() * 360 - 180, random() * 180 - 90), 4326)::geography,
       ('[' || random() || ',' || random() || ',' || random() || ']')::vector
  FROM generate_series(1, $rows) g;
DO \$\$ DECLARE r record; BEGIN
  FOR r IN SELECT indexdef FROM saved LOOP EXECUTE r.indexdef; END LOOP;
END \$\$;
VACUUM ANALYZE events;
SQL
  size=$(dbq -At -c "SELECT pg_size_pretty(pg_database_size('events'))")
  count=$(dbq -At -c "SELECT count(*) FROM events")
  log "  $count events, database $size, in $(($(date +%s) - t0)) s"
  cd "$work/app"
  printf 'ALTER TABLE events ADD COLUMN IF NOT EXISTS category text;\n' > migrations/0005_category.up.sql
  printf 'ALTER TABLE events DROP COLUMN IF EXISTS category;\n' > migrations/0005_category.down.sql
  printf -- '-- slipway:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS events_created_at_idx ON events (created_at);\n' \
    > migrations/0006_created_at_idx.up.sql
  printf -- '-- slipway:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS events_created_at_idx;\n' \
    > migrations/0006_created_at_idx.down.sql
  git add -A && git -c user.name=b -c user.email=b@b commit -qm migration
  log "deploying a release with one migration on $count events ..."
  read -r ok bad < <(measure "$port" "migration" bash -c "S() { \"$slipway\" --set deployment.public_port=$port --set database.snapshots.dir=$work/snapshots \"\$@\"; }; S --json deploy development > $work/mig.json 2>$work/mig.log || true")
  mig_switched=$(jq -e .switched_after_ms "$work/mig.json") || { cat "$work/mig.log" >&2; exit 1; }
fi

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wmed=$(printf '%s\n' "${warm[@]}" | awk '{print $1}' | median)
rmed=$(printf '%s\n' "${rollback[@]}" | awk '{print $1}' | median)
cmed=$(printf '%s\n' "${compose[@]}" | awk '{print $1}' | median)
wfail=$(printf '%s\n' "${warm[@]}" | awk '{s+=$3} END {print s}')
rfail=$(printf '%s\n' "${rollback[@]}" | awk '{s+=$3} END {print s}')
cfail=$(printf '%s\n' "${compose[@]}" | awk '{s+=$3} END {print s}')
printf '\n%-44s %12s %14s\n' "command ($runs runs, median)" "to switched" "failed probes"
printf '%-44s %10sms %14s\n' "slipway deploy (warm: image cached)" "$wmed" "$wfail"
printf '%-44s %10sms %14s\n' "slipway rollback" "$rmed" "$rfail"
printf '%-44s %10sms %14s\n' "peer: docker-compose up --force-recreate" "$cmed" "$cfail"
printf 'ratio deploy/peer: %s   rollback/peer: %s\n' "$(echo "scale=2; $wmed/$cmed" | bc)" "$(echo "scale=2; $rmed/$cmed" | bc)"
printf 'targets: deploy < 20000 ms, rollback < 5000 ms (command to switched)\n'
printf '\nsteps of the last warm deploy:\n'
jq -r '.steps[] | "  \(.step)\t\(.duration_ms) ms\t\(.detail)"' "$work/dep.$runs.json"
printf 'steps of the last rollback:\n'
jq -r '.steps[] | "  \(.step)\t\(.duration_ms) ms\t\(.detail)"' "$work/rb.$runs.json"
if ((rows > 0)); then
  printf '\ndeploy with one migration (ADD COLUMN + CREATE INDEX CONCURRENTLY) on %s events (%s):\n' "$count" "$size"
  printf '  command to switched: %s ms (total %s ms), %s failed probes; goal < 120000 ms\n' \
    "$mig_switched" "$(jq .total_ms "$work/mig.json")" "$bad"
  jq -r '.steps[] | "  \(.step)\t\(.duration_ms) ms\t\(.detail)"' "$work/mig.json"
  jq -r '.migrations.applied[]? | "    \(.file)\t\(.duration_ms) ms"' "$work/mig.json"
fi
