#!/usr/bin/env bash
# Builds the local Docker images Slipway's tests and example configs use, from
# Debian's own packages, because the project's machines have a Docker Engine but
# no image registry (see /work/shared/DESIGN.md, "Testing on this project's
# machines"). This script owns:
#   - debian:bookworm-slim   minimal bookworm rootfs (+ ca-certificates); the
#                            base of the app/agent Dockerfiles, so the same
#                            Dockerfiles work where a registry exists. Our
#                            binaries are built on bookworm (glibc) and run in it.
#   - slipway-postgres:17    PostgreSQL 17 from trixie with PostGIS 3, pgvector
#                            and pg_trgm, plus pg_dump/pg_restore/psql, an
#                            official-image-like entrypoint and a HEALTHCHECK
#                            (files in scripts/images/postgres/).
# Rootfs tarballs are cached in ${SLIPWAY_IMAGE_CACHE:-$HOME/.cache/slipway/images}
# keyed by a hash of the recipe; an image whose tag already carries the current
# recipe hash (label slipway.recipe-hash) is not rebuilt at all.
#
# Usage: scripts/images/build.sh [--verify] [--force]
#   --verify  start a throwaway slipway-postgres:17 container, create the
#             postgis, vector and pg_trgm extensions, print versions, remove it.
#   --force   rebuild the images even when their recipe hash matches (the
#             cached rootfs tarballs are still reused).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${SLIPWAY_IMAGE_CACHE:-$HOME/.cache/slipway/images}
label=slipway.recipe-hash
# The legacy builder is what Engine 20.10 without buildx offers; being explicit
# avoids the CLI guessing (and failing) when the buildx plugin is absent.
export DOCKER_BUILDKIT=0

verify=0
force=0
for arg in "$@"; do
  case "$arg" in
    --verify) verify=1 ;;
    --force) force=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      printf 'error: unknown argument %q (try --help)\n' "$arg" >&2
      exit 2
      ;;
  esac
done

log() { printf '%s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
now() { date +%s; }

# --- preflight ---------------------------------------------------------------
command -v docker >/dev/null 2>&1 ||
  die "the docker CLI is not installed (apt-get install docker.io, or Docker's own packages)"
if ! docker_err=$(docker version --format '{{.Server.Version}}' 2>&1 >/dev/null); then
  die "cannot reach the Docker daemon: ${docker_err}
  Start it (e.g. 'systemctl start docker' or 'dockerd &'), check DOCKER_HOST,
  and make sure this user may use it (root or member of the 'docker' group)."
fi

mkdir -p "$cache"
# Parallel callers (several test binaries running this script at once) must not
# build the same image twice or race on the cache: serialise on a lock file.
exec 9>"$cache/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

# --- recipes -----------------------------------------------------------------
# Everything that shapes a rootfs is in these variables and functions; their
# text is hashed, so changing any of them rebuilds that rootfs and image.

# dpkg filters (persisted in the rootfs, like the official -slim images) so
# neither this build nor later apt installs put docs, man pages or
# translations into images. Copyright files stay, as Debian asks.
common_dpkgopts=(
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/locale/*/LC_MESSAGES/*.mo'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  # No fsync per unpacked file: a half-written rootfs is thrown away anyway,
  # and on loaded disks this is most of the bootstrap time (the official
  # Debian images ship the same setting for later apt installs).
  --dpkgopt='force-unsafe-io'
  --aptopt='APT::Install-Recommends "false"'
  --aptopt='APT::Install-Suggests "false"'
)

base_suite=bookworm
base_variant=minbase
base_packages=ca-certificates
# Merge /usr the way debootstrap and the official images do, instead of via the
# usrmerge package, which would drag perl (40 MB) into the base image.
base_extra=(--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)

pg_suite=trixie
pg_variant=apt
pg_packages=postgresql-17,postgresql-17-postgis-3,postgresql-17-pgvector,ca-certificates
pg_extra=()

# Runs inside mmdebstrap as a customize hook ($1 = rootfs). mmdebstrap itself
# already drops apt lists and caches; this removes what is left.
slim_rootfs() {
  local root=$1
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/var/log/apt/* "$root"/var/log/dpkg.log "$root"/var/log/alternatives.log \
    "$root"/var/log/bootstrap.log "$root"/tmp/* "$root"/root/.cache
  find "$root"/usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$root"/usr/share/doc -mindepth 1 -type d -empty -delete 2>/dev/null || true
}

# Customize hook for the postgres rootfs: the image initialises its own data
# directory at first start (PGDATA), so no Debian cluster and no baked-in
# snake-oil TLS key (it would be the same in every container).
slim_postgres_rootfs() {
  local root=$1
  rm -rf "$root"/var/lib/postgresql/17/main "$root"/etc/postgresql/17/main \
    "$root"/var/log/postgresql/*
  rm -f "$root"/etc/ssl/private/ssl-cert-snakeoil.key "$root"/etc/ssl/certs/ssl-cert-snakeoil.pem
  # JIT compilation is the only user of LLVM (checked with ldd over the whole
  # rootfs) and buys nothing for test and demo databases, while libLLVM and
  # its libz3 are 160 MB of the image. Without llvmjit.so PostgreSQL simply
  # reports jit as unavailable.
  rm -rf "$root"/usr/lib/postgresql/17/lib/llvmjit.so "$root"/usr/lib/postgresql/17/lib/llvmjit_types.bc \
    "$root"/usr/lib/postgresql/17/lib/bitcode "$root"/usr/lib/x86_64-linux-gnu/libLLVM.so.* \
    "$root"/usr/lib/x86_64-linux-gnu/libLLVM-*.so* "$root"/usr/lib/x86_64-linux-gnu/libz3.so.*
  slim_rootfs "$root"
}

# Essential hook: tell postgresql-common not to create the "main" cluster while
# the package is installed (saves an initdb at build time; a drop-in file
# avoids a conffile conflict with the packaged createcluster.conf).
no_main_cluster() {
  local root=$1
  mkdir -p "$root"/etc/postgresql-common/createcluster.d
  echo 'create_main_cluster = false' >"$root"/etc/postgresql-common/createcluster.d/slipway.conf
}

sha() { sha256sum | cut -c1-16; }

base_rootfs_hash=$(
  {
    echo "$base_suite $base_variant $base_packages ${base_extra[*]}"
    printf '%s\n' "${common_dpkgopts[@]}"
    declare -f slim_rootfs
  } | sha
)
pg_rootfs_hash=$(
  {
    echo "$pg_suite $pg_variant $pg_packages ${pg_extra[*]}"
    printf '%s\n' "${common_dpkgopts[@]}"
    declare -f slim_rootfs slim_postgres_rootfs no_main_cluster
  } | sha
)
base_image_hash=$(echo "base $base_rootfs_hash v1" | sha)
pg_image_hash=$(
  {
    echo "postgres $pg_rootfs_hash v1"
    cat "$here/postgres/Dockerfile" "$here/postgres/docker-entrypoint.sh"
  } | sha
)

# --- helpers -----------------------------------------------------------------

# Prints the recipe-hash label of an image, or nothing if it does not exist.
image_hash() {
  docker image inspect --format "{{ index .Config.Labels \"$label\" }}" "$1" 2>/dev/null || true
}

# A rebuild leaves the previous image untagged; remove exactly that image (by
# id, not by label: images FROM ours inherit the label and are not ours to
# delete). docker refuses while containers or child images still use it, fine.
prune_replaced() {
  local old_id=$1 tag=$2
  if [[ -n "$old_id" && "$old_id" != "$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null)" ]]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true
  fi
}

# Builds (or reuses) the cached rootfs tarball; prints its path on stdout.
#   rootfs_tarball NAME HASH SUITE VARIANT PACKAGES ESSENTIAL_HOOK CUSTOMIZE_HOOK [MMDEBSTRAP_OPTS...]
rootfs_tarball() {
  local name=$1 hash=$2 suite=$3 variant=$4 packages=$5 ehook=$6 chook=$7
  shift 7
  local tar="$cache/$name-$hash.tar"
  if [[ -s "$tar" ]]; then
    log "  rootfs $name: cached ($tar)"
    echo "$tar"
    return
  fi
  command -v mmdebstrap >/dev/null 2>&1 ||
    die "mmdebstrap is needed to build the $name rootfs (apt-get install mmdebstrap)"
  local hooks=()
  # The hooks run in a fresh shell, so pass the function definitions along.
  local defs
  defs=$(declare -f slim_rootfs slim_postgres_rootfs no_main_cluster)
  [[ -n "$ehook" ]] && hooks+=(--essential-hook="$defs; $ehook \"\$1\"")
  hooks+=(--customize-hook="$defs; $chook \"\$1\"")
  local t0 mode=auto
  t0=$(now)
  # Write under a temporary name and rename, so an interrupted build never
  # leaves a truncated tarball that would later count as cached.
  local partial="$cache/.$name-$hash.partial.tar"
  # mmdebstrap and its hooks are chatty; keep their output in a log that is
  # shown only when something fails.
  local mmlog="$cache/$name.log"
  if ! mmdebstrap --quiet --mode="$mode" --format=tar --variant="$variant" --include="$packages" \
    "${common_dpkgopts[@]}" "$@" "${hooks[@]}" "$suite" "$partial" >"$mmlog" 2>&1; then
    rm -f "$partial"
    tail -n 40 "$mmlog" >&2
    die "mmdebstrap failed for the $name rootfs ($suite; full log: $mmlog). Is deb.debian.org reachable? Are you root (or can unprivileged user namespaces be used)?"
  fi
  mv "$partial" "$tar"
  # Old tarballs of this rootfs (other recipe hashes) are dead weight.
  find "$cache" -maxdepth 1 -name "$name-*.tar" -not -name "$name-$hash.tar" -delete
  log "  rootfs $name: built in $(($(now) - t0)) s ($(du -h "$tar" | cut -f1))"
  echo "$tar"
}

# --- debian:bookworm-slim ----------------------------------------------------
build_base() {
  local tag=debian:bookworm-slim
  if [[ $force == 0 && "$(image_hash "$tag")" == "$base_image_hash" ]]; then
    log "$tag up to date"
    return
  fi
  log "building $tag (rootfs ~30 s)..."
  local t0 tar old_id
  old_id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  t0=$(now)
  tar=$(rootfs_tarball debian-bookworm-slim "$base_rootfs_hash" "$base_suite" "$base_variant" \
    "$base_packages" "" slim_rootfs ${base_extra[@]+"${base_extra[@]}"})
  docker import \
    --change "LABEL $label=$base_image_hash" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    "$tar" "$tag" >/dev/null
  prune_replaced "$old_id" "$tag"
  log "$tag built in $(($(now) - t0)) s"
}

# --- slipway-postgres:17 -----------------------------------------------------
build_postgres() {
  local tag=slipway-postgres:17
  if [[ $force == 0 && "$(image_hash "$tag")" == "$pg_image_hash" ]]; then
    log "$tag up to date"
    return
  fi
  log "building $tag (rootfs ~60 s)..."
  local t0 tar rootfs_tag="slipway-postgres-rootfs:$pg_rootfs_hash" old_id
  old_id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  t0=$(now)
  if [[ -z "$(docker image ls -q "$rootfs_tag")" ]]; then
    tar=$(rootfs_tarball postgres-17 "$pg_rootfs_hash" "$pg_suite" "$pg_variant" \
      "$pg_packages" no_main_cluster slim_postgres_rootfs ${pg_extra[@]+"${pg_extra[@]}"})
    docker import "$tar" "$rootfs_tag" >/dev/null
  fi
  # Output only on failure: the legacy builder's deprecation notice is noise.
  local out
  if ! out=$(docker build --quiet --pull=false --build-arg "BASE=$rootfs_tag" \
    --label "$label=$pg_image_hash" -t "$tag" "$here/postgres" 2>&1); then
    log "$out"
    die "docker build of $tag failed (rerun: DOCKER_BUILDKIT=0 docker build --build-arg BASE=$rootfs_tag $here/postgres)"
  fi
  # Imported rootfs images of older recipes only take space.
  local old
  for old in $(docker image ls --format '{{.Repository}}:{{.Tag}}' slipway-postgres-rootfs); do
    [[ "$old" == "$rootfs_tag" ]] || docker rmi "$old" >/dev/null 2>&1 || true
  done
  prune_replaced "$old_id" "$tag"
  log "$tag built in $(($(now) - t0)) s"
}

# --- --verify ----------------------------------------------------------------
verify_postgres() {
  local name="slipway-verify-$$-$RANDOM" pw
  # A random password that never appears in output.
  pw=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  log "verifying slipway-postgres:17 in container $name..."
  docker run -d --name "$name" --label slipway.test=1 \
    -e POSTGRES_PASSWORD="$pw" slipway-postgres:17 >/dev/null ||
    die "could not start a slipway-postgres:17 container"
  # shellcheck disable=SC2064 # expand $name now
  trap "docker rm -f -v '$name' >/dev/null 2>&1 || true" EXIT
  local t0 deadline
  t0=$(now)
  deadline=$((t0 + 90))
  # TCP on 127.0.0.1 only answers once initialisation is over (the init-time
  # server listens on the unix socket only), so this waits for the real server.
  until docker exec "$name" pg_isready -q -h 127.0.0.1 -p 5432 -U postgres >/dev/null 2>&1; do
    if [[ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" != true ]]; then
      docker logs --tail 50 "$name" >&2 || true
      die "the postgres container exited during start-up (logs above)"
    fi
    if (($(now) > deadline)); then
      docker logs --tail 50 "$name" >&2 || true
      die "postgres did not accept connections within 90 s (logs above)"
    fi
    sleep 0.2
  done
  log "  accepting connections after $(($(now) - t0)) s"
  # Over TCP with the password, so scram-sha-256 auth is exercised too.
  docker exec -e PGPASSWORD="$pw" "$name" psql -h 127.0.0.1 -U postgres -d postgres \
    -v ON_ERROR_STOP=1 -X -q -A -t -c '
      CREATE EXTENSION postgis;
      CREATE EXTENSION vector;
      CREATE EXTENSION pg_trgm;' -c '
      SELECT version();' -c '
      SELECT extname || '"' '"' || extversion FROM pg_extension
       WHERE extname IN ('"'postgis', 'vector', 'pg_trgm'"') ORDER BY extname;' -c '
      SELECT '"'st_astext: '"' || ST_AsText(ST_MakePoint(1, 2)),
             '"'vector distance: '"' || ('"'[1,2,3]'::vector <-> '[1,2,4]'"'::vector),
             '"'similarity: '"' || similarity('"'slipway', 'slipstream'"');' ||
    die "creating/using the extensions failed"
  docker exec "$name" sh -c 'pg_dump --version && pg_restore --version && psql --version' ||
    die "pg_dump/pg_restore/psql missing from the image"
  docker rm -f -v "$name" >/dev/null
  trap - EXIT
  log "slipway-postgres:17 verified"
}

t_all=$(now)
# On a cold run both rootfs builds are mostly waiting on the network and on
# dpkg; start the postgres one in the background while the base one runs.
pg_prefetch=
if [[ ($force == 1 || "$(image_hash slipway-postgres:17)" != "$pg_image_hash") &&
  -z "$(docker image ls -q "slipway-postgres-rootfs:$pg_rootfs_hash")" &&
  ! -s "$cache/postgres-17-$pg_rootfs_hash.tar" ]]; then
  log "building the postgres-17 rootfs in the background..."
  rootfs_tarball postgres-17 "$pg_rootfs_hash" "$pg_suite" "$pg_variant" "$pg_packages" \
    no_main_cluster slim_postgres_rootfs ${pg_extra[@]+"${pg_extra[@]}"} >/dev/null &
  pg_prefetch=$!
fi
build_base
if [[ -n "$pg_prefetch" ]]; then
  wait "$pg_prefetch" || die "building the postgres-17 rootfs failed (messages above)"
fi
build_postgres
log "images ready in $(($(now) - t_all)) s"
if [[ $verify == 1 ]]; then
  verify_postgres
fi
