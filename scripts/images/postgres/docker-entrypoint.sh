#!/usr/bin/env bash
# Entrypoint of slipway-postgres:17. Behaves like the official postgres image
# for what Slipway needs: on first start it initialises $PGDATA (default
# /var/lib/postgresql/data) with POSTGRES_USER (default postgres) and
# POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), creates
# POSTGRES_DB (default: the user's name), runs /docker-entrypoint-initdb.d/*.sql
# and *.sh once, allows remote hosts with scram-sha-256 (or
# POSTGRES_HOST_AUTH_METHOD), listens on all addresses on 5432, then execs
# postgres as the postgres user in the foreground so signals reach it.
# POSTGRES_INITDB_ARGS is passed to initdb. Other commands run unchanged.
set -Eeuo pipefail

export PGDATA=${PGDATA:-/var/lib/postgresql/data}

# `docker run image -c foo=bar` means postgres options, as in the official image.
if [[ $# -eq 0 || "${1:0:1}" == '-' ]]; then
  set -- postgres "$@"
fi

if [[ "$1" != postgres ]]; then
  exec "$@"
fi

if [[ "$(id -u)" == 0 ]]; then
  # Volumes arrive root-owned; fix them, then re-run this script unprivileged.
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  chown postgres:postgres /var/run/postgresql
  chmod 2777 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

log() { printf 'docker-entrypoint: %s\n' "$*" >&2; }

init_database() {
  local user=${POSTGRES_USER:-postgres}
  local db=${POSTGRES_DB:-$user}
  local host_auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}

  if [[ -z "${POSTGRES_PASSWORD:-}" && "$host_auth" != trust ]]; then
    log "error: database is uninitialized and POSTGRES_PASSWORD is not set."
    log "  Set POSTGRES_PASSWORD to a non-empty value for the superuser, or"
    log "  POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a password."
    exit 1
  fi

  log "initialising $PGDATA (user $user, database $db)"
  # The password goes through a pipe, never the command line or the log.
  local initdb_args=(--username="$user" --encoding=UTF8 --locale=C.UTF-8
    --auth-local=trust --auth-host="$host_auth")
  if [[ -n "${POSTGRES_PASSWORD:-}" ]]; then
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is word-split on purpose
    initdb "${initdb_args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
      ${POSTGRES_INITDB_ARGS:-} >/dev/null
  else
    # shellcheck disable=SC2086
    initdb "${initdb_args[@]}" ${POSTGRES_INITDB_ARGS:-} >/dev/null
  fi

  {
    echo
    echo "# added by docker-entrypoint.sh"
    echo "listen_addresses = '*'"
    echo "port = 5432"
  } >>"$PGDATA/postgresql.conf"
  {
    echo
    echo "# added by docker-entrypoint.sh: remote hosts"
    echo "host all all all $host_auth"
  } >>"$PGDATA/pg_hba.conf"

  local scripts=(/docker-entrypoint-initdb.d/*)
  [[ -e "${scripts[0]}" ]] || scripts=()
  if [[ "$db" == postgres && ${#scripts[@]} -eq 0 ]]; then
    # Nothing to run in a temporary server: skipping its start, checkpoint
    # and stop makes a fresh (test) database ready a few seconds sooner.
    log "initialisation complete"
    return
  fi

  # A temporary server on the unix socket only: clients polling TCP do not
  # see the database before it is fully set up.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w -s start
  local psql=(psql -X -v ON_ERROR_STOP=1 --no-password --username "$user" -q)
  if [[ "$db" != postgres ]]; then
    "${psql[@]}" --dbname postgres --set db="$db" <<<'CREATE DATABASE :"db";'
  fi
  local f
  for f in ${scripts[@]+"${scripts[@]}"}; do
    case "$f" in
      *.sql)
        log "running $f"
        "${psql[@]}" --dbname "$db" -f "$f"
        ;;
      *.sh)
        log "running $f"
        if [[ -x "$f" ]]; then "$f"; else bash "$f"; fi
        ;;
      *) log "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w -s stop
  log "initialisation complete"
}

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  init_database
fi

exec "$@"
