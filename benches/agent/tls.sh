#!/usr/bin/env bash
# TLS termination: the agent (`serve --tls-listen`) against nginx (Debian
# package), same run, same upstream (bench_upstream), same ECDSA P-256
# certificate and key (openssl, temp dir), 2 workers each (nginx worker
# processes = agent proxy threads), HTTP/1.1 over TLS (wrk sends no ALPN).
# nginx: `ssl_protocols TLSv1.2 TLSv1.3`, everything else of TLS at its
# defaults; the agent: rustls defaults (TLS 1.2 + 1.3). Both negotiate what
# wrk's OpenSSL asks for; the script prints what they did negotiate.
#
# Three tests, each with wrk, rounds interleaved (the order of the two
# proxies alternates from round to round), median of rounds:
#   keep-alive    HTTPS req/s on kept-alive connections, p50/p99
#   new-resumed   every request on a new connection (`Connection: close`),
#                 as wrk does it: wrk keeps the session of a connection
#                 slot's previous connection, so it offers a TLS 1.3 ticket
#                 (PSK + ECDHE) that both servers issue by default (nginx:
#                 stateless tickets; rustls: stateful, 256-entry cache)
#   new-full      the same with resumption off on the client side, for both
#                 (full handshake: ECDHE + ECDSA signature every time)
# Peak memory: VmHWM of the agent and the sum of nginx's master + worker
# VmHWM, plus the summed PSS (shared pages counted once) sampled twice a
# second. CPU time (user + system) of each proxy per request, from /proc.
#
# Which handshakes wrk made (full/resumed/failed, version, cipher, group,
# ALPN) is counted on the client side by a tiny LD_PRELOAD shim around
# wrk's SSL_connect (same code for both servers); with TLS_NO_RESUME it also
# drops the session wrk's SSL_clear would keep, which is how new-full turns
# resumption off (wrk has no option for it).
#
# Usage: benches/agent/tls.sh
#   env: WRK_ARGS (keep-alive, default "-t2 -c64 -d10s"), HS_WRK_ARGS (new
#   connections, default "-t2 -c64 -d10s"), ROUNDS (3), WORKERS (2), AGENT +
#   UPSTREAM (prebuilt binaries instead of building)
set -euo pipefail
cd "$(dirname "$0")"
source ./common.sh
need_packages wrk nginx openssl gcc curl
build_release

WRK_ARGS=${WRK_ARGS:-"-t2 -c64 -d10s"}
HS_WRK_ARGS=${HS_WRK_ARGS:-"-t2 -c64 -d10s"}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-2}
# The certificate's name: SNI and Host (the agent's HTTPS side routes by
# host name only). localhost resolves to loopback without touching /etc/hosts.
HOST=localhost
UP=127.0.0.1:18111 NGX=127.0.0.1:18112 AGT_HTTP=127.0.0.1:18113 AGT=127.0.0.1:18114 MET=127.0.0.1:18115
TMP=$(mktemp -d)
trap cleanup EXIT

# --- certificate (ECDSA P-256), one copy used by both -----------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 2 \
    -subj "/CN=$HOST" -addext "subjectAltName=DNS:$HOST" 2>/dev/null
chmod 600 "$TMP/key.pem"

# --- wrk shim: counts handshakes and what they negotiated --------------------
# Prototypes declared here so that no libssl-dev headers are needed; the
# symbols resolve against wrk's own libssl.so.3.
cat >"$TMP/wrktls.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
typedef struct ssl_cipher_st SSL_CIPHER;
int SSL_session_reused(const SSL *);
const char *SSL_get_version(const SSL *);
const SSL_CIPHER *SSL_get_current_cipher(const SSL *);
const char *SSL_CIPHER_get_name(const SSL_CIPHER *);
long SSL_ctrl(SSL *, int, long, void *);
const char *SSL_group_to_name(SSL *, int);
void SSL_get0_alpn_selected(const SSL *, const unsigned char **, unsigned int *);
int SSL_set_session(SSL *, SSL_SESSION *);
int SSL_get_error(const SSL *, int);
#define CTRL_GET_NEGOTIATED_GROUP 134 /* SSL_get_negotiated_group */
#define WANT_READ 2
#define WANT_WRITE 3

static unsigned long full, resumed, failed;
static int described, no_resume;
static char what[200];

int SSL_connect(SSL *s) {
    static int (*real)(SSL *);
    if (!real) real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_connect");
    int r = real(s);
    if (r == 1) {
        __atomic_add_fetch(SSL_session_reused(s) ? &resumed : &full, 1, __ATOMIC_RELAXED);
        if (!__atomic_exchange_n(&described, 1, __ATOMIC_RELAXED)) {
            const unsigned char *alpn = NULL;
            unsigned int alpn_len = 0;
            const char *group = SSL_group_to_name(s, (int)SSL_ctrl(s, CTRL_GET_NEGOTIATED_GROUP, 0, NULL));
            SSL_get0_alpn_selected(s, &alpn, &alpn_len);
            snprintf(what, sizeof what, "%s/%s/%s/alpn:%.*s", SSL_get_version(s),
                     SSL_CIPHER_get_name(SSL_get_current_cipher(s)), group ? group : "?",
                     alpn_len ? (int)alpn_len : 4, alpn_len ? (const char *)alpn : "none");
        }
    } else {
        int e = SSL_get_error(s, r);
        if (e != WANT_READ && e != WANT_WRITE) __atomic_add_fetch(&failed, 1, __ATOMIC_RELAXED);
    }
    return r;
}

/* wrk ends a connection with SSL_shutdown + SSL_clear and reuses the SSL
   object, which keeps its session: the next SSL_connect offers it. */
int SSL_clear(SSL *s) {
    static int (*real)(SSL *);
    if (!real) real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
    if (no_resume) SSL_set_session(s, NULL);
    return real(s);
}

__attribute__((constructor)) static void start(void) { no_resume = getenv("TLS_NO_RESUME") != NULL; }
__attribute__((destructor)) static void report(void) {
    const char *path = getenv("TLS_SHIM_OUT");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (!f) return;
    fprintf(f, "%lu %lu %lu %s\n", full, resumed, failed, described ? what : "-");
    fclose(f);
}
C
gcc -O2 -shared -fPIC -o "$TMP/wrktls.so" "$TMP/wrktls.c" -ldl

# --- upstream, nginx, agent --------------------------------------------------
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
        listen $NGX ssl reuseport;
        server_name $HOST;
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
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
nginx -c "$TMP/nginx.conf" -p "$TMP/nginx" 2>"$TMP/nginx.err" &
NGINX_PID=$!
PIDS+=($NGINX_PID)
wait_port "$NGX"

"$AGENT" serve --workers "$WORKERS" --listen "$AGT_HTTP" --tls-listen "$AGT" --metrics-listen "$MET" \
    --state-dir "$TMP/state" --socket "$TMP/admin.sock" --access-log stdout \
    >"$TMP/agent-access.log" 2>"$TMP/agent.err" &
AGENT_PID=$!
PIDS+=($AGENT_PID)
wait_port "$AGT"
for _ in $(seq 1 100); do [ -S "$TMP/admin.sock" ] && break; sleep 0.05; done
"$AGENT" ctl --socket "$TMP/admin.sock" deploy bench --target "$UP" --release r1 --host "$HOST" \
    --health-passes 1 >/dev/null
"$AGENT" ctl --socket "$TMP/admin.sock" cert ensure "$HOST" \
    --cert-file "$TMP/cert.pem" --key-file "$TMP/key.pem" >/dev/null

NGINX_WORKER_PIDS=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')
for t in nginx agent; do
    port=$([ $t = nginx ] && echo "${NGX##*:}" || echo "${AGT##*:}")
    code=$(curl -sk -o /dev/null -w '%{http_code}' --http1.1 "https://$HOST:$port/")
    [ "$code" = 200 ] || { echo "$t: GET https://$HOST:$port/ answered $code" >&2; exit 1; }
done

# --- memory sampler (both proxies, twice a second, for the whole run) --------
# rollup PID...: "rss pss" in kB, summed.
rollup() { for p in "$@"; do cat "/proc/$p/smaps_rollup" 2>/dev/null; done |
    awk '$1 == "Rss:" {r += $2} $1 == "Pss:" {p += $2} END {print r + 0, p + 0}'; }
(
    # shellcheck disable=SC2086
    while :; do
        echo "$(rollup "$AGENT_PID") $(rollup "$NGINX_PID" $NGINX_WORKER_PIDS)"
        sleep 0.5
    done
) >"$TMP/mem.samples" &
PIDS+=($!)

# to_ms VALUE: wrk prints 812.00us / 1.23ms / 1.02s
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n = n * 1000
        printf "%.3f", n }'
}
# cpu_ticks PID...: user + system clock ticks of these processes so far.
cpu_ticks() { for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done | awk '{t += $14 + $15} END {print t + 0}'; }
# client_ticks: user + system ticks of this shell's reaped children (wrk).
client_ticks() { awk '{print $16 + $17}' "/proc/$$/stat"; }
# machine_ticks: busy ticks of the whole machine (every process and the
# kernel; not idle, iowait or steal).
machine_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
# steal_ticks: "busy ticks steal ticks" of the machine (the hypervisor's share).
steal_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8, $9}' /proc/stat; }
# agent_failed_handshakes: the agent's own count.
agent_failed_handshakes() {
    curl -s "http://$MET/metrics" | awk '/^slipway_tls_handshakes_total\{result="failed"\}/ {print $2}'
}
proxy_pids() { case $1 in nginx) echo "$NGINX_WORKER_PIDS" ;; agent) echo "$AGENT_PID" ;; esac; }
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

MODES="keep-alive new-resumed new-full"
declare -A RPS P50 P99 CPU_TICKS WRK_TICKS ALL_TICKS UP_TICKS REQS SECS FULL RESUMED FAILED NEGOTIATED ERRORS AGENT_FAILED
# run TARGET MODE
run() {
    local t=$1 mode=$2 k="$1 $2" port out before after pids secs args extra=() env=()
    port=$([ "$t" = nginx ] && echo "${NGX##*:}" || echo "${AGT##*:}")
    args=$HS_WRK_ARGS
    case $mode in
    keep-alive) args=$WRK_ARGS ;;
    new-resumed) extra=(-H "Connection: close") ;;
    new-full) extra=(-H "Connection: close") env=(TLS_NO_RESUME=1) ;;
    esac
    pids=$(proxy_pids "$t")
    local fails_before=0 wrk_before all_before up_before
    [ "$t" = agent ] && fails_before=$(agent_failed_handshakes)
    wrk_before=$(client_ticks)
    all_before=$(machine_ticks)
    up_before=$(cpu_ticks "$UPSTREAM_PID")
    # shellcheck disable=SC2086
    before=$(cpu_ticks $pids)
    # shellcheck disable=SC2086
    out=$(env "${env[@]}" LD_PRELOAD="$TMP/wrktls.so" TLS_SHIM_OUT="$TMP/shim.out" \
        wrk $args --latency "${extra[@]}" "https://$HOST:$port/")
    # shellcheck disable=SC2086
    after=$(cpu_ticks $pids)
    UP_TICKS[$k]=$((${UP_TICKS[$k]:-0} + $(cpu_ticks "$UPSTREAM_PID") - up_before))
    ALL_TICKS[$k]=$((${ALL_TICKS[$k]:-0} + $(machine_ticks) - all_before))
    WRK_TICKS[$k]=$((${WRK_TICKS[$k]:-0} + $(client_ticks) - wrk_before))
    [ "$t" = agent ] && AGENT_FAILED[$mode]=$((${AGENT_FAILED[$mode]:-0} + $(agent_failed_handshakes) - fails_before))
    secs=$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' <<<"$out")
    CPU_TICKS[$k]=$((${CPU_TICKS[$k]:-0} + after - before))
    REQS[$k]=$((${REQS[$k]:-0} + $(awk '/requests in/ {print $1}' <<<"$out")))
    SECS[$k]=$(awk -v a="${SECS[$k]:-0}" -v b="$secs" 'BEGIN {print a + b}')
    if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
        ERRORS[$k]+="$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | tr '\n' ';')"
        echo "warning: $k: $(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ')" >&2
    fi
    read -r full resumed failed what <"$TMP/shim.out"
    FULL[$k]=$((${FULL[$k]:-0} + full))
    RESUMED[$k]=$((${RESUMED[$k]:-0} + resumed))
    FAILED[$k]=$((${FAILED[$k]:-0} + failed))
    NEGOTIATED[$k]=$what
    RPS[$k]+="$(awk '/Requests\/sec/ {print $2}' <<<"$out") "
    P50[$k]+="$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")") "
    P99[$k]+="$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")") "
}

for t in nginx agent; do # warm both (upstream pools, page cache, allocators)
    port=$([ $t = nginx ] && echo "${NGX##*:}" || echo "${AGT##*:}")
    wrk -t2 -c64 -d2s "https://$HOST:$port/" >/dev/null
done
START=$(date +%s)
read -r BUSY0 STEAL0 < <(steal_ticks)
for round in $(seq 1 "$ROUNDS"); do
    order="nginx agent"
    ((round % 2)) || order="agent nginx"
    echo "round $round/$ROUNDS ($order first)" >&2
    for mode in $MODES; do
        for t in $order; do run "$t" "$mode"; done
    done
done
ELAPSED=$(($(date +%s) - START))
read -r BUSY1 STEAL1 < <(steal_ticks)

# --- memory ------------------------------------------------------------------
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
AGENT_HWM=$(hwm "$AGENT_PID")
NGINX_HWM=0
NGINX_HWM_PARTS=""
# shellcheck disable=SC2086
for p in $NGINX_PID $NGINX_WORKER_PIDS; do
    h=$(hwm "$p")
    NGINX_HWM=$((NGINX_HWM + h))
    NGINX_HWM_PARTS+="$(awk -v h="$h" 'BEGIN {printf "%.1f", h / 1024}') "
done
read -r AGENT_PSS_PEAK NGINX_PSS_PEAK NSAMPLES < <(awk '
    $2 > a {a = $2} $4 > n {n = $4} END {print a + 0, n + 0, NR}' "$TMP/mem.samples")

# --- agent-side and nginx-side handshake records ----------------------------
METRICS=$(curl -s "http://$MET/metrics" || true)
AGENT_HS_OK=$(awk '/^slipway_tls_handshakes_total\{result="ok"\}/ {print $2}' <<<"$METRICS")
AGENT_HS_FAILED=$(awk '/^slipway_tls_handshakes_total\{result="failed"\}/ {print $2}' <<<"$METRICS")
NGINX_ERRLOG=$(grep -c . "$TMP/nginx/error.log" 2>/dev/null || true)
AGENT_ERRLOG=$(grep -vc ' INFO ' "$TMP/agent.err" || true)

# --- report ------------------------------------------------------------------
TICK=$(getconf CLK_TCK)
for k in "${!RPS[@]}"; do echo "$k rounds: req/s ${RPS[$k]}| p99 ${P99[$k]}" >&2; done | sort >&2
declare -A MED
for k in "${!RPS[@]}"; do
    MED[$k rps]=$(median "${RPS[$k]}")
    MED[$k p50]=$(median "${P50[$k]}")
    MED[$k p99]=$(median "${P99[$k]}")
    MED[$k cpu]=$(awk -v c="${CPU_TICKS[$k]}" -v r="${REQS[$k]}" -v hz="$TICK" 'BEGIN {printf "%.1f", c / hz * 1e6 / r}')
    MED[$k cores]=$(awk -v c="${CPU_TICKS[$k]}" -v s="${SECS[$k]}" -v hz="$TICK" 'BEGIN {printf "%.2f", c / hz / s}')
    MED[$k wrk]=$(awk -v c="${WRK_TICKS[$k]}" -v s="${SECS[$k]}" -v hz="$TICK" 'BEGIN {printf "%.2f", c / hz / s}')
    MED[$k up]=$(awk -v c="${UP_TICKS[$k]}" -v s="${SECS[$k]}" -v hz="$TICK" 'BEGIN {printf "%.2f", c / hz / s}')
    # everything else that ran: kernel work not charged to a process, other tenants
    MED[$k other]=$(awk -v c="${ALL_TICKS[$k]}" -v p="${CPU_TICKS[$k]}" -v w="${WRK_TICKS[$k]}" -v u="${UP_TICKS[$k]}" \
        -v s="${SECS[$k]}" -v hz="$TICK" 'BEGIN {printf "%.2f", (c - p - w - u) / hz / s}')
    MED[$k resumed]=$(awk -v f="${FULL[$k]}" -v r="${RESUMED[$k]}" 'BEGIN {printf "%.1f%%", f + r ? 100 * r / (f + r) : 0}')
done
row() { # row LABEL KEY-SUFFIX MODE [higher|lower]
    local n=${MED[nginx $3 $2]} a=${MED[agent $3 $2]}
    awk -v l="$1" -v n="$n" -v a="$a" 'BEGIN {
        printf "%-34s %12s %12s %8s\n", l, n, a, (n + 0 > 0 ? sprintf("%.2f", a / n) : "-") }'
}
echo
echo "TLS termination, agent vs nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), $ROUNDS interleaved rounds (median), $(nproc) cores, load avg $(cut -d' ' -f1 /proc/loadavg), $ELAPSED s"
echo "wrk keep-alive: $WRK_ARGS; new connections: $HS_WRK_ARGS -H 'Connection: close'; upstream: bench_upstream (hyper), plain HTTP/1.1 keep-alive from both"
echo "cert: ECDSA P-256 self-signed for $HOST, same files for both; $WORKERS nginx workers = $WORKERS agent proxy threads"
printf "%-34s %12s %12s %8s\n" "" nginx agent agent/nginx
row "keep-alive HTTPS req/s" rps keep-alive
row "keep-alive p50 ms" p50 keep-alive
row "keep-alive p99 ms" p99 keep-alive
row "keep-alive proxy CPU us/req" cpu keep-alive
row "keep-alive proxy cores busy" cores keep-alive
row "keep-alive wrk cores busy" wrk keep-alive
row "keep-alive upstream cores busy" up keep-alive
row "keep-alive rest of machine cores" other keep-alive
row "new conn, resumed: conn/s" rps new-resumed
row "new conn, resumed: proxy CPU us/conn" cpu new-resumed
row "new conn, resumed: proxy cores" cores new-resumed
row "new conn, resumed: wrk cores" wrk new-resumed
row "new conn, resumed: upstream cores" up new-resumed
row "new conn, resumed: rest of machine" other new-resumed
printf "%-34s %12s %12s\n" "new conn, resumed: share resumed" "${MED[nginx new-resumed resumed]}" "${MED[agent new-resumed resumed]}"
row "new conn, full hs: conn/s" rps new-full
row "new conn, full hs: proxy CPU us/conn" cpu new-full
row "new conn, full hs: proxy cores" cores new-full
row "new conn, full hs: wrk cores" wrk new-full
row "new conn, full hs: upstream cores" up new-full
row "new conn, full hs: rest of machine" other new-full
printf "%-34s %12s %12s\n" "new conn, full hs: share resumed" "${MED[nginx new-full resumed]}" "${MED[agent new-full resumed]}"
awk -v n="$NGINX_HWM" -v a="$AGENT_HWM" 'BEGIN {
    printf "%-34s %12.1f %12.1f %8.2f\n", "peak RSS MB (VmHWM; nginx: sum)", n / 1024, a / 1024, a / n }'
awk -v n="$NGINX_PSS_PEAK" -v a="$AGENT_PSS_PEAK" 'BEGIN {
    printf "%-34s %12.1f %12.1f %8.2f\n", "peak PSS MB (sampled, summed)", n / 1024, a / 1024, a / n }'
awk -v b=$((BUSY1 - BUSY0)) -v st=$((STEAL1 - STEAL0)) 'BEGIN {
    printf "CPU stolen by the hypervisor during the timed runs: %.1f%% of busy + stolen time\n", b + st ? 100 * st / (b + st) : 0 }'
echo "nginx VmHWM master + workers: ${NGINX_HWM_PARTS% } MB; PSS sampled $NSAMPLES times"
for t in nginx agent; do
    echo "$t negotiated: keep-alive ${NEGOTIATED[$t keep-alive]}; new-resumed ${NEGOTIATED[$t new-resumed]}; new-full ${NEGOTIATED[$t new-full]}"
done
for t in nginx agent; do
    hs=0 fails=0
    for m in $MODES; do
        hs=$((hs + ${FULL[$t $m]} + ${RESUMED[$t $m]}))
        fails=$((fails + ${FAILED[$t $m]}))
    done
    echo "$t: wrk made $hs handshakes, $fails failed; wrk errors: $(for m in $MODES; do [ -n "${ERRORS[$t $m]:-}" ] && printf '%s: %s ' "$m" "${ERRORS[$t $m]}"; done; true)"
done
echo "agent /metrics: handshakes failed during the timed runs: keep-alive ${AGENT_FAILED[keep-alive]}, new-resumed ${AGENT_FAILED[new-resumed]}, new-full ${AGENT_FAILED[new-full]} (each wrk run adds 1: its address probe, a TCP connect + close; new-connection runs also cut the handshakes in flight when they stop)"
echo "agent /metrics totals: handshakes ok ${AGENT_HS_OK:-?}, failed ${AGENT_HS_FAILED:-?} (warm-up, the port probe and checks included); agent stderr non-INFO lines: $AGENT_ERRLOG; nginx error.log lines: $NGINX_ERRLOG"
echo "session resumption: on in both servers at their defaults (TLS 1.3 tickets); new-resumed lets wrk resume, new-full turns it off on the client for both"
awk -v ka="${MED[agent keep-alive rps]}" -v nka="${MED[nginx keep-alive rps]}" \
    -v r="${MED[agent new-resumed rps]}" -v nr="${MED[nginx new-resumed rps]}" \
    -v f="${MED[agent new-full rps]}" -v nf="${MED[nginx new-full rps]}" \
    -v ah="$AGENT_HWM" -v nh="$NGINX_HWM" 'BEGIN {
    ok = (ka >= nka && r >= nr && f >= nf) ? "met" : "not met"
    printf "summary: agent/nginx over TLS 1.3: keep-alive req/s %.2fx, new connections %.2fx (resumed) and %.2fx (full handshakes), peak RSS %.1f vs %.1f MB; goal (>= nginx on throughput and handshake rate): %s\n",
        ka / nka, r / nr, f / nf, ah / 1024, nh / 1024, ok }'
