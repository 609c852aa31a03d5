#!/usr/bin/env bash
# Instructions per push+pop pair of the SPSC ring against rtrb and heapless::spsc, counted by
# callgrind in one run of the bench's one-thread fill/drain loop (`make ring-instructions`;
# PERFORMANCE.md). Each contender's function (`ours_solo`, `rtrb_solo`, `heapless_solo`) is
# collected on its own with --toggle-collect; its inclusive count covers the loop too.
# Needs valgrind (callgrind, callgrind_annotate). Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is required" >&2; exit 1; }

cargo build -q --release -p aiothreads-bench
mkdir -p target/bench
out=target/bench/callgrind.ring.out
# No wake-up floor: callgrind runs one thread at a time, so its spin round trips would take hours.
log=$(AIOTHREADS_BENCH_QUICK=1 AIOTHREADS_BENCH_NO_FLOOR=1 valgrind --tool=callgrind --callgrind-out-file="$out" \
  --toggle-collect='*ours_solo*' --toggle-collect='*rtrb_solo*' \
  --toggle-collect='*heapless_solo*' target/release/aiothreads-bench ring/one-thread 2>/dev/null)
pairs=$(sed -n 's|^ring/one-thread: \([0-9]*\) push+pop pairs.*|\1|p' <<<"$log")
[ -n "$pairs" ] || { echo "the bench did not report its pair count" >&2; exit 1; }

echo "Measured $(date -u +%Y-%m-%d) with $(rustc -V), valgrind $(valgrind --version | sed 's/valgrind-//'),"
echo "${pairs} push+pop pairs of \`u64\` per contender, capacity 1024, loop included."
echo
echo "| ring | Ir (inclusive) | instructions per push+pop |"
echo "|---|---:|---:|"
annotated=$(callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null)
for f in ours_solo:aiothreads-core rtrb_solo:rtrb heapless_solo:heapless::spsc; do
  sym=${f%%:*} label=${f#*:}
  ir=$(grep -E "ring::${sym}( |$|\[)" <<<"$annotated" | head -1 | awk '{print $1}' | tr -d ,)
  [ -n "$ir" ] || { echo "no count for $sym" >&2; exit 1; }
  echo "| $label | $ir | $(awk -v ir="$ir" -v n="$pairs" 'BEGIN { printf "%.1f", ir / n }') |"
done
