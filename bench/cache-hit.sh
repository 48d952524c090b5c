#!/usr/bin/env bash
# Memory-hit throughput and latency: imgedge serving a cached variant vs nginx serving the same bytes as a
# static file. Same machine, same client (wrk), one run; prints the imgedge/nginx ratios.
#   bench/cache-hit.sh [DURATION] [CONNECTIONS]      (defaults: 10s, 32)
# Needs: wrk and nginx (apt-get install wrk nginx-light), a release build (cargo build --release).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
corpus=${CORPUS:-$top/../shared/corpus}
peers=${PEERS:-$top/../shared/peers}
dur=${1:-10s}
conns=${2:-32}
bin=$top/target/release/imgedge
[ -x "$bin" ] || (cd "$top" && cargo build --release)
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; bash "$peers/peers.sh" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

path=${VARIANT:-'photos/olympus-ep3_4032x3024.jpg?w=800&fm=webp'}
RUST_LOG=${RUST_LOG:-warn} "$bin" serve --origin "$corpus" --listen 127.0.0.1:3110 --cache-dir "$work/cache" >"$work/imgedge.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf -o /dev/null http://127.0.0.1:3110/healthz && break; sleep 0.1; done
mkdir -p "$work/static"
curl -sf -o "$work/static/hit.webp" "http://127.0.0.1:3110/$path"        # the miss that fills the cache
test "$(curl -s -D - -o /dev/null "http://127.0.0.1:3110/$path" | tr -d '\r' | grep -i '^x-cache' | cut -d' ' -f2)" = HIT-MEMORY
bash "$peers/peers.sh" start nginx "$work/static" >/dev/null

run() { wrk -t2 -c"$conns" -d"$dur" --latency "$1" 2>&1; }
echo "body: $(stat -c %s "$work/static/hit.webp") bytes; wrk -t2 -c$conns -d$dur"
ie=$(run "http://127.0.0.1:3110/$path")
ng=$(run "http://127.0.0.1:3103/hit.webp")
rps() { awk '/Requests\/sec/ {print $2}' <<<"$1"; }
pct() { awk -v p="$2" '$1 == p {print $2}' <<<"$1"; }
printf '%-8s %12s %10s %10s\n' "" "req/s" "p50" "p99"
printf '%-8s %12s %10s %10s\n' imgedge "$(rps "$ie")" "$(pct "$ie" 50%)" "$(pct "$ie" 99%)"
printf '%-8s %12s %10s %10s\n' nginx "$(rps "$ng")" "$(pct "$ng" 50%)" "$(pct "$ng" 99%)"
awk -v a="$(rps "$ie")" -v b="$(rps "$ng")" 'BEGIN { printf "throughput ratio imgedge/nginx: %.2f\n", a / b }'
