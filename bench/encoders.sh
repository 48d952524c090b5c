#!/usr/bin/env bash
# Encoder settings vs sharp: bytes, quality (DSSIM against each tool's own lossless resize, so that only
# the encoder is compared) and CPU per image, for one photo resized to 800 px wide.
#   bench/encoders.sh [IMAGE]        (default: photos/olympus-ep3_4032x3024.jpg)
# Needs: a release build, sharp (../shared/peers/peers.sh install), and dssim (cargo install dssim).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
corpus=${CORPUS:-$top/../shared/corpus}
PEERS_DIR=${PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/imgedge-peers}
img=${1:-photos/olympus-ep3_4032x3024.jpg}
src=$corpus/$img
bin=$top/target/release/imgedge
[ -x "$bin" ] || (cd "$top" && cargo build --release)
command -v dssim >/dev/null || { echo "needs dssim: cargo install dssim" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
runs=${RUNS:-5}

# decode any output to PNG with imgedge's own decoders (dssim reads PNG)
topng() { "$bin" transform "$1" "$2" -q fm=png 2>/dev/null; }
# CPU ms of the best of $runs runs of a command (whole process, user+system)
cpu_ms() {
  local best=999999 t TIMEFORMAT='%U %S'
  for _ in $(seq 1 "$runs"); do
    t=$( { time "$@" >/dev/null 2>&1; } 2>&1 | awk '{printf "%.0f", ($1 + $2) * 1000}')
    [ "$t" -lt "$best" ] && best=$t
  done
  echo "$best"
}

echo "$img → 800 px wide; DSSIM against the tool's own lossless 800 px resize (lower is better)"
printf '%-34s %9s %10s %8s\n' setting bytes dssim cpu-ms
"$bin" transform "$src" "$work/ie-ref.png" -q 'w=800&fm=png' 2>/dev/null
row() { # name output reference cpu
  topng "$2" "$work/cmp.png"
  printf '%-34s %9s %10s %8s\n' "$1" "$(stat -c %s "$2")" "$(dssim "$3" "$work/cmp.png" | awk '{print $1}')" "$4"
}
for m in ${METHODS:-2 3 4}; do
  for q in ${WEBP_Q:-75 80}; do
    printf '[encode]\nwebp_method = %s\n' "$m" >"$work/m$m.toml"
    out=$work/ie-m$m-q$q.webp
    "$bin" transform "$src" "$out" -q "w=800&fm=webp&q=$q" --config "$work/m$m.toml" 2>/dev/null
    row "imgedge webp q$q method $m" "$out" "$work/ie-ref.png" \
      "$(cpu_ms "$bin" transform "$src" "$out" -q "w=800&fm=webp&q=$q" --config "$work/m$m.toml")"
  done
done
for q in ${AVIF_Q:-50 60 70}; do
  out=$work/ie-q$q.avif
  "$bin" transform "$src" "$out" -q "w=800&fm=avif&q=$q" 2>/dev/null
  row "imgedge avif q$q (speed 8)" "$out" "$work/ie-ref.png" "$(cpu_ms "$bin" transform "$src" "$out" -q "w=800&fm=avif&q=$q")"
done

# sharp with its defaults (WebP q80 effort 4, AVIF q50 effort 4), timed in-process over $runs runs
cat >"$work/sharp.js" <<'JS'
const sharp = require(process.env.SHARP);
const [src, dir, runs] = process.argv.slice(2);
const fs = require('fs');
(async () => {
  sharp.concurrency(1);
  sharp.cache(false);
  await sharp(src).resize({ width: 800 }).png().toFile(`${dir}/sharp-ref.png`);
  for (const [name, f] of [['webp', (s) => s.webp()], ['avif', (s) => s.avif()]]) {
    let best = Infinity, buf;
    for (let i = 0; i < +runs; i++) {
      const t = process.cpuUsage();
      buf = await f(sharp(src).resize({ width: 800 })).toBuffer();
      const d = process.cpuUsage(t);
      best = Math.min(best, (d.user + d.system) / 1000);
    }
    fs.writeFileSync(`${dir}/sharp.${name}`, buf);
    console.log(`${name} ${Math.round(best)}`);
  }
})();
JS
SHARP=$PEERS_DIR/node/node_modules/sharp node "$work/sharp.js" "$src" "$work" "$runs" >"$work/sharp.txt"
row "sharp webp default (q80 effort 4)" "$work/sharp.webp" "$work/sharp-ref.png" "$(awk '$1 == "webp" {print $2}' "$work/sharp.txt")"
row "sharp avif default (q50 effort 4)" "$work/sharp.avif" "$work/sharp-ref.png" "$(awk '$1 == "avif" {print $2}' "$work/sharp.txt")"
echo "(imgedge CPU is the whole process: start, read, decode, resize, encode; sharp's is the pipeline alone)"
