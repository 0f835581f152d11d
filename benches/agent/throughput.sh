#!/usr/bin/env bash
# Throughput and latency of the agent against nginx, same upstream, same wrk
# settings, same run: wrk direct to the upstream, through nginx (Debian
# package, keepalive upstream, 2 workers, buffered access log) and through
# the agent (`dist` build: fat LTO, buffered JSON access log). Prints req/s, p50 and
# p99, the agent/nginx throughput ratio, latency added over direct, and the
# agent's peak RSS (VmHWM) under load, and the CPU time (user + system) each
# proxy spent per request, which a busy shared machine disturbs less than
# req/s.
#
# Usage: benches/agent/throughput.sh
#   env: WRK_ARGS (default "-t2 -c64 -d10s"), ROUNDS (3), WORKERS (2: nginx
#   worker processes = agent proxy threads), AGENT + UPSTREAM (prebuilt
#   binaries instead of building)
set -euo pipefail
cd "$(dirname "$0")"
source ./common.sh
need_packages wrk nginx
build_release

WRK_ARGS=${WRK_ARGS:-"-t2 -c64 -d10s"}
WORKERS=${WORKERS:-2}
UP=127.0.0.1:18101 NGX=127.0.0.1:18102 AGT=127.0.0.1:18103 MET=127.0.0.1:18104
TMP=$(mktemp -d)
trap cleanup EXIT

"$UPSTREAM" "$UP" bench 2>/dev/null &
UPSTREAM_PID=$!
PIDS+=($UPSTREAM_PID)
wait_port "$UP"

mkdir -p "$TMP/nginx/logs"
cat >"$TMP/nginx.conf" <<CONF
worker_processes $WORKERS;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log $TMP/nginx/access.log combined buffer=64k flush=1s;
    upstream app { server $UP; keepalive 256; }
    server {
        listen $NGX reuseport;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
            add_header x-slipway-release r1;
        }
    }
}
CONF
nginx -c "$TMP/nginx.conf" -p "$TMP/nginx" 2>/dev/null &
PIDS+=($!)
wait_port "$NGX"

"$AGENT" serve --workers "$WORKERS" --listen "$AGT" --metrics-listen "$MET" --state-dir "$TMP/state" \
    --socket "$TMP/admin.sock" --access-log stdout >"$TMP/agent-access.log" 2>"$TMP/agent.err" &
AGENT_PID=$!
PIDS+=($AGENT_PID)
wait_port "$AGT"
for _ in $(seq 1 100); do [ -S "$TMP/admin.sock" ] && break; sleep 0.05; done
"$AGENT" ctl --socket "$TMP/admin.sock" deploy bench --target "$UP" --release r1 \
    --health-passes 1 >/dev/null

# to_ms VALUE: wrk prints 812.00us / 1.23ms / 1.02s
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n = n * 1000
        printf "%.3f", n }'
}

# Rounds interleave the three targets so that a noisy neighbour (a shared
# CI machine) hits all of them alike; each figure is the median of rounds.
ROUNDS=${ROUNDS:-3}
declare -A RPS P50 P99 CPU_TICKS REQS
# cpu_ticks PID...: user + system clock ticks of these processes so far.
cpu_ticks() { for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done | awk '{t += $14 + $15} END {print t + 0}'; }
run() {
    local name=$1 addr=$2 out before after pids
    pids=$(proxy_pids "$name")
    # shellcheck disable=SC2086
    before=$(cpu_ticks $pids)
    # shellcheck disable=SC2086
    out=$(wrk $WRK_ARGS --latency "http://$addr/")
    # shellcheck disable=SC2086
    after=$(cpu_ticks $pids)
    CPU_TICKS[$name]=$((${CPU_TICKS[$name]:-0} + after - before))
    REQS[$name]=$((${REQS[$name]:-0} + $(awk '/requests in/ {print $1}' <<<"$out")))
    if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
        echo "warning: $name: $(grep -E 'Non-2xx|Socket errors' <<<"$out")" >&2
    fi
    RPS[$name]+="$(awk '/Requests\/sec/ {print $2}' <<<"$out") "
    P50[$name]+="$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")") "
    P99[$name]+="$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")") "
}
# proxy_pids NAME: the processes whose CPU time counts for NAME.
proxy_pids() {
    case $1 in
    direct) echo "$UPSTREAM_PID" ;;
    nginx) pgrep -P "$(cat "$TMP/nginx.pid")" | tr '\n' ' ' ;;
    agent) echo "$AGENT_PID" ;;
    esac
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

for addr in "$UP" "$NGX" "$AGT"; do wrk -t2 -c64 -d2s "http://$addr/" >/dev/null; done # warm pools
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round/$ROUNDS" >&2
    run direct "$UP"
    run nginx "$NGX"
    run agent "$AGT"
done
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$AGENT_PID/status")
NGINX_HWM=$(for p in $(pgrep -P "$(cat "$TMP/nginx.pid")"); do awk '/VmHWM/ {print $2}' "/proc/$p/status"; done | sort -n | tail -1)
for t in direct nginx agent; do
    echo "$t rounds: req/s ${RPS[$t]}| p99 ${P99[$t]}" >&2
    RPS[$t]=$(median "${RPS[$t]}")
    P50[$t]=$(median "${P50[$t]}")
    P99[$t]=$(median "${P99[$t]}")
done

echo "wrk $WRK_ARGS --latency, median of $ROUNDS interleaved rounds, $(nproc) cores, load avg $(cut -d" " -f1 /proc/loadavg), upstream: bench_upstream (hyper)"
printf "%-8s %12s %10s %10s\n" target req/s p50_ms p99_ms
for t in direct nginx agent; do
    printf "%-8s %12s %10s %10s\n" "$t" "${RPS[$t]}" "${P50[$t]}" "${P99[$t]}"
done
awk -v a="${RPS[agent]}" -v n="${RPS[nginx]}" \
    -v a50="${P50[agent]}" -v n50="${P50[nginx]}" -v d50="${P50[direct]}" \
    -v a99="${P99[agent]}" -v n99="${P99[nginx]}" -v d99="${P99[direct]}" \
    -v hwm="$HWM" -v nhwm="${NGINX_HWM:-0}" 'BEGIN {
    printf "throughput agent/nginx: %.2f\n", a / n
    printf "added p50 vs direct: agent %+.3f ms, nginx %+.3f ms\n", a50 - d50, n50 - d50
    printf "added p99 vs direct: agent %+.3f ms, nginx %+.3f ms\n", a99 - d99, n99 - d99
    printf "agent peak RSS (VmHWM): %.1f MB (largest nginx worker: %.1f MB)\n", hwm / 1024, nhwm / 1024
}'
TICK=$(getconf CLK_TCK)
for t in nginx agent; do
    awk -v n="$t" -v c="${CPU_TICKS[$t]}" -v r="${REQS[$t]}" -v hz="$TICK" 'BEGIN {
        printf "%s CPU per request (user + system, all rounds): %.2f us\n", n, c / hz * 1e6 / r }'
done
