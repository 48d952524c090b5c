#!/usr/bin/env bash
# Memory-hit throughput, latency and CPU: imgedge serving a cached variant vs nginx serving the same bytes as
# a static file (sendfile on), same machine, same client (wrk). A third server, imgedge with zero-copy sends
# off (cache.zero_copy_min_bytes = 0), shows what sendfile from sealed memory files is worth.
#
#   bench/cache-hit.sh [DURATION] [CONNECTIONS] [ROUNDS]      (defaults: 5s, 32, 5)
#   VARIANT='photos/x.jpg?w=200&fm=webp' bench/cache-hit.sh   (another variant; default 800 px WebP)
#   PIN=1 bench/cache-hit.sh                                  (servers on the first half of the cores, wrk on the rest)
#
# One wrk run per server per round, servers interleaved. The table gives each server's median over the
# rounds; the ratios are the medians of each round's own ratio (its servers ran back to back). "cpu µs/req" is the server's own CPU time (user + system,
# every thread or worker) divided by the requests wrk completed. Any non-2xx answer aborts the run.
# Needs: wrk and nginx (apt-get install wrk nginx-light), a release build (cargo build --release).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
corpus=${CORPUS:-$top/../shared/corpus}
peers=${PEERS:-$top/../shared/peers}
dur=${1:-5s}
conns=${2:-32}
rounds=${3:-5}
bin=$top/target/release/imgedge
[ -x "$bin" ] || (cd "$top" && cargo build --release)
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; bash "$peers/peers.sh" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

cores=$(nproc)
server_cpus="" client_cpus=""
if [ "${PIN:-0}" = 1 ] && [ "$cores" -ge 2 ]; then
  server_cpus=0-$((cores / 2 - 1)) client_cpus=$((cores / 2))-$((cores - 1))
fi
pinned() { if [ -n "$server_cpus" ]; then taskset -c "$server_cpus" "$@"; else "$@"; fi; }

path=${VARIANT:-'photos/olympus-ep3_4032x3024.jpg?w=800&fm=webp'}
start_imgedge() {  # port, zero_copy_min_bytes
  local cmd=("$bin" serve --origin "$corpus" --listen "127.0.0.1:$1" --cache-dir "$work/cache-$1")
  [ -z "$server_cpus" ] || cmd=(taskset -c "$server_cpus" "${cmd[@]}")
  RUST_LOG=${RUST_LOG:-warn} IMGEDGE_CACHE__ZERO_COPY_MIN_BYTES=$2 "${cmd[@]}" >"$work/imgedge-$1.log" 2>&1 &
  pids+=($!)   # taskset execs, so this is the server's own pid
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$1/healthz" && break; sleep 0.1; done
  curl -sf -o "$work/body-$1" "http://127.0.0.1:$1/$path"       # the miss that fills the cache
  test "$(curl -s -D - -o /dev/null "http://127.0.0.1:$1/$path" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache" {print $2}')" = HIT-MEMORY
}
start_imgedge 3110 16384
start_imgedge 3111 0
mkdir -p "$work/static"
cp "$work/body-3110" "$work/static/hit.webp"
cmp -s "$work/body-3110" "$work/body-3111"
# nginx's workers drop root: mktemp -d makes a 0700 directory they cannot enter (every answer a 403)
chmod 755 "$work" "$work/static"; chmod 644 "$work/static/hit.webp"
NGINX_WORKERS=${NGINX_WORKERS:-$([ -n "$server_cpus" ] && echo $((cores / 2)) || echo "$cores")} \
  pinned bash "$peers/peers.sh" start nginx "$work/static" >/dev/null
curl -sf -o "$work/nginx.webp" http://127.0.0.1:3103/hit.webp
cmp -s "$work/static/hit.webp" "$work/nginx.webp" || { echo "nginx does not serve the same bytes" >&2; exit 1; }
ngpid=$(cat "${PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/imgedge-peers}/run/nginx.pid")

declare -A url=([imgedge]="http://127.0.0.1:3110/$path" [imgedge-copy]="http://127.0.0.1:3111/$path"
  [nginx]=http://127.0.0.1:3103/hit.webp)
declare -A procs=([imgedge]=${pids[0]} [imgedge-copy]=${pids[1]} [nginx]="$ngpid $(pgrep -P "$ngpid" | tr '\n' ' ')")
names=(imgedge imgedge-copy nginx)
tick=$(getconf CLK_TCK)
cpu_ticks() {  # user + system ticks of every thread of the given processes
  local t=0 p s
  for p in "$@"; do for s in /proc/"$p"/task/*/stat; do t=$((t + $(awk '{print $14 + $15}' "$s"))); done; done
  echo "$t"
}
one() {  # name → "req/s p50 p99 cpu-µs/req"
  local before after out
  # shellcheck disable=SC2086
  before=$(cpu_ticks ${procs[$1]})
  if [ -n "$client_cpus" ]; then
    out=$(taskset -c "$client_cpus" wrk -t2 -c"$conns" -d"$dur" --latency "${url[$1]}" 2>&1)
  else
    out=$(wrk -t2 -c"$conns" -d"$dur" --latency "${url[$1]}" 2>&1)
  fi
  # shellcheck disable=SC2086
  after=$(cpu_ticks ${procs[$1]})
  if grep -q 'Non-2xx' <<<"$out"; then echo "$1: non-2xx answers under load" >&2; echo "$out" >&2; return 1; fi
  awk -v c=$((after - before)) -v t="$tick" '
    /Requests\/sec/ {rps = $2} /requests in/ {n = $1}
    $1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2}
    END {printf "%s %s %s %.1f\n", rps, p50, p99, c / t * 1e6 / n}' <<<"$out"
}
echo "body: $(stat -c %s "$work/static/hit.webp") bytes; wrk -t2 -c$conns -d$dur × $rounds rounds; $cores cores${server_cpus:+; servers on CPUs $server_cpus, wrk on $client_cpus}"
for r in $(seq 1 "$rounds"); do
  for n in "${names[@]}"; do
    res=$(one "$n")
    echo "$n $res" >>"$work/results"
    echo "round $r: $n $res"
  done
done
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { awk -v n="$1" -v c="$2" '$1 == n {print $c}' "$work/results"; }
printf '\n%-13s %10s %10s %10s %12s   (medians of %s rounds)\n' "" "req/s" "p50" "p99" "cpu µs/req" "$rounds"
declare -A rps cpu
for n in "${names[@]}"; do
  rps[$n]=$(col "$n" 2 | median); cpu[$n]=$(col "$n" 5 | median)
  # latencies are printed by wrk with units; take the run whose throughput is the median
  row=$(awk -v n="$n" -v m="${rps[$n]}" '$1 == n {d = $2 - m; d = d < 0 ? -d : d; if (best == "" || d < best) {best = d; l = $3 " " $4}} END {print l}' "$work/results")
  printf '%-13s %10s %10s %10s %12s\n' "$n" "${rps[$n]}" ${row} "${cpu[$n]}"
done
# the servers of one round ran back to back, so a round's ratio is the least disturbed by a noisy neighbour
ratios() {  # column → per-round imgedge/nginx and imgedge/imgedge-copy, one pair per line
  awk -v c="$1" '{v[$1] = $c} $1 == "nginx" {print v["imgedge"] / v["nginx"], v["imgedge"] / v["imgedge-copy"]}' "$work/results"
}
thr=$(ratios 2 | awk '{print $1}' | median); gain=$(ratios 2 | awk '{print $2}' | median)
cpr=$(ratios 5 | awk '{print $1}' | median)
printf 'median of the per-round ratios: throughput imgedge/nginx %.2f, cpu per request imgedge/nginx %.2f, zero-copy gain %.2fx\n' \
  "$thr" "$cpr" "$gain"
