# Shared helpers of the agent benchmarks (sourced, not run).
# Builds the shipped (`dist` profile) binaries and exposes $AGENT and $UPSTREAM; installs wrk
# and nginx from the Debian archive when missing (CI machines start clean).

need_packages() {
    local missing=()
    for pkg in "$@"; do
        command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        echo "installing ${missing[*]} (apt-get)" >&2
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
    fi
}

build_release() {
    # Prebuilt binaries (e.g. to compare two builds): AGENT=... UPSTREAM=...
    if [ -n "${AGENT:-}" ] && [ -n "${UPSTREAM:-}" ]; then
        return 0
    fi
    local root
    root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
    # The shipped build (`dist`: fat LTO), as operators run it.
    (cd "$root" && cargo build --profile dist -q -p slipway-agent --bin slipway-agent --example bench_upstream) >&2
    local target
    target=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    AGENT="$target/dist/slipway-agent"
    UPSTREAM="$target/dist/examples/bench_upstream"
}

# wait_port HOST:PORT — poll until something accepts there (10 s bound).
wait_port() {
    local host=${1%:*} port=${1##*:}
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on $1" >&2
    return 1
}

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    [ -n "${TMP:-}" ] && rm -rf "$TMP"
}
