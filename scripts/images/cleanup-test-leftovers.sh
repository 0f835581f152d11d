#!/usr/bin/env bash
# Removes Docker resources left behind by killed test processes: every
# container, volume and network carrying the label slipway.test=1 (which
# slipway-testkit puts on everything it creates). Running tests lose theirs,
# so run this before or after a test run, not during one (CI: after).
set -euo pipefail

# SLIPWAY_CLEANUP_LABEL exists so this script can be tried on its own label.
label=${SLIPWAY_CLEANUP_LABEL:-slipway.test=1}
containers=$(docker ps -aq --filter "label=$label")
if [[ -n "$containers" ]]; then
  # shellcheck disable=SC2086 # one id per word
  docker rm --force --volumes $containers >/dev/null
fi
volumes=$(docker volume ls -q --filter "label=$label")
if [[ -n "$volumes" ]]; then
  # shellcheck disable=SC2086
  docker volume rm $volumes >/dev/null
fi
networks=$(docker network ls -q --filter "label=$label")
if [[ -n "$networks" ]]; then
  # shellcheck disable=SC2086
  docker network rm $networks >/dev/null
fi
printf 'removed %d container(s), %d volume(s), %d network(s) labelled %s\n' \
  "$(wc -w <<<"$containers")" "$(wc -w <<<"$volumes")" "$(wc -w <<<"$networks")" "$label" >&2
