#!/usr/bin/env bash
# Instructions per item of a stream's consumer, counted by callgrind in one run of the bench's
# `stream/drain` group (`make stream-instructions`; PERFORMANCE.md): a queue that holds every
# item already, drained through `StreamExt::next` on one thread. Ours (`IterCall`) against the
# core ring's `Consumer` polled as a `Stream` and its raw `pop`. Each contender's drain loop
# (`drain_loop_ours`, `drain_loop_core_stream`, `drain_loop_raw`) is collected on its own with
# --toggle-collect: the loop and the executor around it, not the set-up (starting the stream,
# filling the queue). Built with the bench profile (LTO), the binary `make bench` measures (a
# `--release` build without LTO inlines less of our consumer: 60.4 instead of 42.5 instructions
# per item on 2026-12-03). Needs valgrind (callgrind, callgrind_annotate). Prints a markdown
# table.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is required" >&2; exit 1; }

cargo build -q --profile bench -p aiothreads-bench
mkdir -p target/bench
out=target/bench/callgrind.stream.out
# No wake-up floor: callgrind runs one thread at a time, so its spin round trips would take hours.
log=$(AIOTHREADS_BENCH_QUICK=1 AIOTHREADS_BENCH_NO_FLOOR=1 valgrind --tool=callgrind --callgrind-out-file="$out" \
  --toggle-collect='*drain_loop_ours*' --toggle-collect='*drain_loop_core_stream*' \
  --toggle-collect='*drain_loop_raw*' target/release/aiothreads-bench stream/drain 2>/dev/null)
items=$(sed -n 's|^stream/drain: \([0-9]*\) items drained.*|\1|p' <<<"$log")
[ -n "$items" ] || { echo "the bench did not report its item count" >&2; exit 1; }

echo "Measured $(date -u +%Y-%m-%d) with $(rustc -V), valgrind $(valgrind --version | sed 's/valgrind-//'),"
echo "${items} \`u64\` items per contender, drained through \`StreamExt::next\` (the raw ring: \`pop\`), loop included."
echo
echo "| consumer | Ir (inclusive) | instructions per item |"
echo "|---|---:|---:|"
annotated=$(callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null)
for f in drain_loop_ours:"aiothreads IterCall" drain_loop_core_stream:"aiothreads-core Consumer as a Stream" drain_loop_raw:"aiothreads-core ring pop"; do
  sym=${f%%:*} label=${f#*:}
  ir=$(grep -E "stream::${sym}( |$|\[)" <<<"$annotated" | head -1 | awk '{print $1}' | tr -d ,)
  [ -n "$ir" ] || { echo "no count for $sym" >&2; exit 1; }
  echo "| $label | $ir | $(awk -v ir="$ir" -v n="$items" 'BEGIN { printf "%.1f", ir / n }') |"
done
