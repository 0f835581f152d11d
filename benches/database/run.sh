#!/usr/bin/env bash
# Database-safety benchmark (issues 3 and 19): Slipway's snapshot (custom
# format with its default zstd:1, and the directory format with JOBS
# parallel jobs kept as one tar) against plain `pg_dump -Fc` (gzip level 6,
# its default) in the same container; Slipway's restore of each against plain
# `pg_restore` of the peer's archive into an empty database; Slipway's
# migration runner against psql on the same SQL; and the peak memory of our
# process while it streams. Prints a table with ratios. Not part of CI.
#
# The data set: ROWS (default 1,000,000) events with a geography(Point,4326)
# column, a vector(384) embedding (random, generated server-side with
# generate_series) and a trigram index on the title, in a throwaway
# slipway-postgres:17 container (removed on exit).
#
# Usage: benches/database/run.sh            (ROWS=..., RUNS=... to change)
#   RUNS  dumps per side, alternating peer/ours (default 1); the table shows
#         the fastest of each side.
#   JOBS  parallel jobs of the directory format's dump and restore (default 2).
#   BENCH_DIR  where dumps are written (default /var/tmp); needs ~2x the
#              compressed dump size (about 4 GB at 1M rows).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
rows=${ROWS:-1000000}
runs=${RUNS:-1}
jobs=${JOBS:-2}
name="slipway-bench-pg-$$"
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/slipway-bench.XXXXXX")
# The password reaches docker and psql through the environment only.
POSTGRES_PASSWORD=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export POSTGRES_PASSWORD PGPASSWORD=$POSTGRES_PASSWORD

log() { printf '[bench] %s\n' "$*" >&2; }
cleanup() {
  docker rm -f -v "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
max_rss_kb() { sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$1"; }

# --- build --------------------------------------------------------------------
scripts/images/build.sh >&2
cargo build --release -p slipway-core --example snapshot_bench >&2
target_dir=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bench_bin="$target_dir/release/examples/snapshot_bench"

# --- database -----------------------------------------------------------------
docker run -d --name "$name" --label slipway.test=1 -e POSTGRES_PASSWORD \
  -p 127.0.0.1::5432 slipway-postgres:17 \
  -c fsync=off -c max_wal_size=8GB -c maintenance_work_mem=512MB >/dev/null
deadline=$((SECONDS + 120))
until docker exec "$name" pg_isready -q -h 127.0.0.1 -p 5432 -U postgres 2>/dev/null; do
  ((SECONDS < deadline)) || { docker logs "$name" >&2; log "database not ready after 120 s"; exit 1; }
  sleep 0.5
done
port=$(docker port "$name" 5432/tcp | head -1 | sed 's/.*://')
export SLIPWAY_BENCH_DATABASE_URL="postgres://postgres:${POSTGRES_PASSWORD}@127.0.0.1:${port}/bench"
psql() { docker exec -i -e PGPASSWORD "$name" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres "$@"; }

psql -d postgres -c 'CREATE DATABASE bench' >/dev/null
log "generating $rows events (geography + vector(384)) ..."
t0=$(now)
psql -d bench >/dev/null <<SQL
CREATE EXTENSION postgis;
CREATE EXTENSION vector;
CREATE EXTENSION pg_trgm;
CREATE TABLE events (
  id bigserial PRIMARY KEY,
  title text NOT NULL,
  starts_at timestamptz NOT NULL,
  location geography(Point, 4326),
  embedding vector(384)
);
INSERT INTO events (title, starts_at, location, embedding)
SELECT 'event ' || g || ' ' || md5(g::text),
       timestamptz '2025-01-01' + g * interval '1 minute',
       ST_SetSRID(ST_MakePoint(random() * 360 - 180, random() * 180 - 90), 4326)::geography,
       (SELECT array_agg(random())::real[] FROM generate_series(1, 384) WHERE g > 0)::vector
  FROM generate_series(1, $rows) g;
CREATE INDEX events_title_trgm ON events USING gin (title gin_trgm_ops);
VACUUM ANALYZE events;
SQL
gen_s=$(elapsed "$t0" "$(now)")
db_size=$(psql -d bench -At -c "SELECT pg_size_pretty(pg_database_size('bench'))")
log "generated in ${gen_s}s; database size $db_size"

# --- snapshots: peer and ours, alternating -------------------------------------
best_peer="" best_ours="" best_dir="" peer_rss="" ours_tree_rss="" ours_self_rss="" peer_size="" ours_size="" dir_size=""
faster() { [[ -z $2 ]] || python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$1" "$2"; }
for run in $(seq 1 "$runs"); do
  log "run $run/$runs: plain pg_dump -Fc via docker exec (peer) ..."
  t0=$(now)
  /usr/bin/time -v -o "$work/peer.time" \
    docker exec -e PGPASSWORD "$name" pg_dump -Fc -h 127.0.0.1 -U postgres -d bench >"$work/peer.dump"
  s=$(elapsed "$t0" "$(now)")
  peer_size=$(stat -c %s "$work/peer.dump")
  peer_rss=$(max_rss_kb "$work/peer.time")
  log "  peer: ${s}s, $peer_size bytes, docker CLI peak RSS ${peer_rss} KiB"
  if [[ -z $best_peer ]] || python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$s" "$best_peer"; then best_peer=$s; fi

  log "run $run/$runs: slipway snapshot (library, DumpSite::Container) ..."
  t0=$(now)
  /usr/bin/time -v -o "$work/ours.time" "$bench_bin" snapshot "$name" "$work/snaps" >"$work/ours.json"
  s=$(elapsed "$t0" "$(now)")
  ours_size=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["size_bytes"])' "$work/ours.json")
  ours_self_rss=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["vm_hwm_kb"])' "$work/ours.json")
  ours_tree_rss=$(max_rss_kb "$work/ours.time")
  ours_file=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["path"])' "$work/ours.json")
  log "  ours: ${s}s, $ours_size bytes, our process peak RSS ${ours_self_rss} KiB (with docker CLI children: ${ours_tree_rss} KiB)"
  if faster "$s" "$best_ours"; then best_ours=$s; fi

  log "run $run/$runs: slipway snapshot, directory format, $jobs jobs ..."
  t0=$(now)
  "$bench_bin" snapshot "$name" "$work/snaps-dir" directory "$jobs" >"$work/dir.json"
  s=$(elapsed "$t0" "$(now)")
  dir_size=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["size_bytes"])' "$work/dir.json")
  dir_file=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["path"])' "$work/dir.json")
  log "  ours (directory): ${s}s, $dir_size bytes"
  if faster "$s" "$best_dir"; then best_dir=$s; fi
  if ((run < runs)); then rm -rf "$work/snaps" "$work/snaps-dir" "$work/peer.dump"; fi
done

# --- restores: plain pg_restore of the peer's archive, then ours ----------------
psql -d postgres -c 'CREATE DATABASE bench_peer' >/dev/null
log "plain pg_restore of the peer's archive into an empty database (peer) ..."
t0=$(now)
docker exec -i -e PGPASSWORD "$name" pg_restore --no-owner -h 127.0.0.1 -U postgres -d bench_peer <"$work/peer.dump"
peer_restore_s=$(elapsed "$t0" "$(now)")
log "  peer restore: ${peer_restore_s}s"
psql -d postgres -c 'DROP DATABASE bench_peer' >/dev/null
rm -f "$work/peer.dump"
log "slipway snapshot restore, custom format (one transaction) ..."
"$bench_bin" restore "$name" "$ours_file" >"$work/restore.json"
ours_restore_s=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$work/restore.json")
restore_rss=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["vm_hwm_kb"])' "$work/restore.json")
log "  ours restore (custom): ${ours_restore_s}s, peak RSS ${restore_rss} KiB"
log "slipway snapshot restore, directory format ($jobs jobs, new database swapped in) ..."
"$bench_bin" restore "$name" "$dir_file" "$jobs" >"$work/restore-dir.json"
dir_restore_s=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$work/restore-dir.json")
log "  ours restore (directory): ${dir_restore_s}s"
rm -rf "$work/snaps" "$work/snaps-dir"

# --- migration: add a column + a concurrent index ------------------------------
mkdir -p "$work/migrations"
printf 'ALTER TABLE events ADD COLUMN category text;\n' >"$work/migrations/0001_add_category.up.sql"
printf -- '-- slipway:no-transaction\nCREATE INDEX CONCURRENTLY events_starts_at_idx ON events (starts_at);\n' \
  >"$work/migrations/0002_index_starts_at.up.sql"
log "migration through the runner ..."
t0=$(now)
"$bench_bin" migrate "$work/migrations" >"$work/migrate.json"
mig_s=$(elapsed "$t0" "$(now)")
read -r mig_col_ms mig_idx_ms < <(python3 -c '
import json, sys
steps = json.load(open(sys.argv[1]))["steps"]
print(steps[0]["duration_ms"], steps[1]["duration_ms"])' "$work/migrate.json")
log "same SQL through psql (peer) ..."
t0=$(now)
psql -d bench -c 'ALTER TABLE events ADD COLUMN category_peer text' >/dev/null
psql -d bench -c 'CREATE INDEX CONCURRENTLY events_starts_at_peer_idx ON events (starts_at)' >/dev/null
peer_mig_s=$(elapsed "$t0" "$(now)")

# --- report ---------------------------------------------------------------------
python3 - "$rows" "$db_size" "$best_peer" "$best_ours" "$peer_size" "$ours_size" "$peer_rss" \
  "$ours_self_rss" "$ours_tree_rss" "$mig_s" "$mig_col_ms" "$mig_idx_ms" "$peer_mig_s" "$runs" \
  "$best_dir" "$dir_size" "$jobs" "$peer_restore_s" "$ours_restore_s" "$dir_restore_s" "$restore_rss" <<'PY'
import sys
(rows, db_size, peer, ours, peer_size, ours_size, peer_rss, self_rss, tree_rss,
 mig, mig_col_ms, mig_idx_ms, peer_mig, runs, dir_s, dir_size, jobs, peer_restore,
 ours_restore, dir_restore, restore_rss) = sys.argv[1:]
peer, ours, mig, peer_mig = map(float, (peer, ours, mig, peer_mig))
dir_s, peer_restore, ours_restore, dir_restore = map(float, (dir_s, peer_restore, ours_restore, dir_restore))
mb = lambda kb: int(kb) / 1024
print()
print(f"Database benchmark: {int(rows):,} events (geography + vector(384)), database {db_size}, best of {runs} run(s)")
print()
print(f"{'measure':<44} {'slipway':>12} {'peer':>12} {'ratio':>8}  target")
print(f"{'snapshot wall time, custom zstd:1 (s)':<44} {ours:>12.1f} {peer:>12.1f} {ours / peer:>7.2f}x  <= 0.20x  (peer: pg_dump -Fc, gzip 6, via docker exec)")
print(f"{f'snapshot wall time, directory -j {jobs} (s)':<44} {dir_s:>12.1f} {peer:>12.1f} {dir_s / peer:>7.2f}x  <= 0.20x")
print(f"{'archive size, custom zstd:1 (MB)':<44} {int(ours_size) / 1e6:>12.0f} {int(peer_size) / 1e6:>12.0f} {int(ours_size) / int(peer_size):>7.2f}x")
print(f"{f'archive size, directory -j {jobs} (MB)':<44} {int(dir_size) / 1e6:>12.0f} {int(peer_size) / 1e6:>12.0f} {int(dir_size) / int(peer_size):>7.2f}x")
print(f"{'restore, custom, one transaction (s)':<44} {ours_restore:>12.1f} {peer_restore:>12.1f} {ours_restore / peer_restore:>7.2f}x  <= 1.00x  (peer: plain pg_restore of its archive into an empty database)")
print(f"{f'restore, directory -j {jobs}, swapped in (s)':<44} {dir_restore:>12.1f} {peer_restore:>12.1f} {dir_restore / peer_restore:>7.2f}x  <= 1.00x")
print(f"{'peak RSS, our process, snapshot (MiB)':<44} {mb(self_rss):>12.1f} {'':>12} {'':>8}  < 50 MiB, flat")
print(f"{'peak RSS, our process, restore (MiB)':<44} {mb(restore_rss):>12.1f} {'':>12} {'':>8}  < 50 MiB, flat")
print(f"{'peak RSS incl. docker CLI child (MiB)':<44} {mb(tree_rss):>12.1f} {mb(peer_rss):>12.1f} {int(tree_rss) / int(peer_rss):>7.2f}x  (peer: the docker CLI streaming plain pg_dump)")
print(f"{'migration: ADD COLUMN (ms)':<44} {int(mig_col_ms):>12}")
print(f"{'migration: CREATE INDEX CONCURRENTLY (s)':<44} {int(mig_idx_ms) / 1000:>12.1f}")
print(f"{'migration total, runner vs psql (s)':<44} {mig:>12.1f} {peer_mig:>12.1f} {mig / peer_mig:>7.2f}x  (psql ran second: warm cache)")
PY
