#!/usr/bin/env bash
# The API under load while an apply runs (docs/PERFORMANCE.md): a daemon applies a generated
# 2,000-resource stack with the local driver's simulated latency (20 ms a call, 8 in parallel),
# while wrk sends /api/v1/status from 200 concurrent connections on loopback. Reports wrk's
# latency distribution and errors, and the apply's duration against the same apply without load.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/platformd-target}"
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --quiet --release --bin platformd --bin gen-stack
bin="$CARGO_TARGET_DIR/release"
connections="${CONNECTIONS:-200}"

apply_once() { # $1: work dir, $2: "load" or "quiet"; prints the apply's seconds
    local dir="$1" port
    mkdir -p "$dir"
    "$bin/gen-stack" "$dir/stack" 2000 7 >/dev/null
    sed -i 's|driver "local" {|driver "local" {\n        simulate-latency-ms "20"|' "$dir/stack/platform.kdl"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    (cd "$dir" && exec "$bin/platformd" daemon --repo stack --listen "127.0.0.1:$port" --parallelism 8 \
        >"$dir/daemon.log" 2>&1) &
    local daemon=$!
    until curl -s "127.0.0.1:$port/api/v1/status" | grep -q '"sync_state":"applying"'; do sleep 0.05; done
    local started=$(date +%s.%N)
    if [ "$2" = load ]; then
        wrk -t2 -c"$connections" -d"${SECONDS_UNDER_LOAD:-15}s" --latency --timeout 5s \
            "http://127.0.0.1:$port/api/v1/status" >"$dir/wrk.txt"
    fi
    until curl -s "127.0.0.1:$port/api/v1/status" | grep -q '"sync_state":"synced"'; do sleep 0.05; done
    local finished=$(date +%s.%N)
    curl -s "127.0.0.1:$port/api/v1/revisions" | python3 -c 'import json,sys; a=json.load(sys.stdin)["applies"][-1]; print("apply:", a["status"], a["summary"], file=sys.stderr)'
    kill "$daemon"; wait "$daemon" 2>/dev/null || true
    python3 -c "print(f'{$finished - $started:.2f}')"
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
quiet=$(apply_once "$work/quiet" quiet)
loaded=$(apply_once "$work/load" load)
echo "== wrk, $connections connections, GET /api/v1/status during the apply"
sed -n '/Latency Distribution/,$p;/Socket errors/p;/Non-2xx/p' "$work/load/wrk.txt"
grep -E 'Requests/sec|requests in' "$work/load/wrk.txt"
echo "apply of 2,000 resources (from applying to synced): ${quiet}s without load, ${loaded}s under load"
