#!/usr/bin/env bash
# Instructions counted by callgrind in one run of a bench group, per unit of work, for each
# contender's function (collected on its own with --toggle-collect; inclusive counts).
# Needs valgrind (callgrind, callgrind_annotate). Prints a markdown table. PERFORMANCE.md.
#
#   scripts/instructions.sh ring    (`make ring-instructions`) per push+pop pair of the SPSC
#       ring against rtrb and heapless::spsc: the bench's one-thread fill/drain loop
#       (`ours_solo`, `rtrb_solo`, `heapless_solo`, loop included); `--release` build.
#   scripts/instructions.sh stream  (`make stream-instructions`) per item of a stream's
#       consumer: `stream/drain`, a queue that holds every item already, drained through
#       `StreamExt::next` on one thread; ours (`IterCall`) against the core ring's `Consumer`
#       polled as a `Stream` and its raw `pop` (`drain_loop_*`: the loop and the executor
#       around it, not the set-up). Built with the bench profile (LTO), the binary `make bench`
#       measures: a `--release` build without LTO inlines less of our consumer (60.4 instead
#       of 42.5 instructions per item on 2026-12-03).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is required" >&2; exit 1; }

case "${1:-}" in
  ring)
    profile=release group=ring/one-thread module=ring
    funcs=(ours_solo:aiothreads-core rtrb_solo:rtrb heapless_solo:heapless::spsc)
    count_re='s|^ring/one-thread: \([0-9]*\) push+pop pairs.*|\1|p'
    what='push+pop pairs of `u64` per contender, capacity 1024, loop included.'
    head='| ring | Ir (inclusive) | instructions per push+pop |' ;;
  stream)
    profile=bench group=stream/drain module=stream
    funcs=("drain_loop_ours:aiothreads IterCall"
           "drain_loop_core_stream:aiothreads-core Consumer as a Stream"
           "drain_loop_raw:aiothreads-core ring pop")
    count_re='s|^stream/drain: \([0-9]*\) items drained.*|\1|p'
    what='`u64` items per contender, drained through `StreamExt::next` (the raw ring: `pop`), loop included.'
    head='| consumer | Ir (inclusive) | instructions per item |' ;;
  *) echo "usage: $0 ring|stream" >&2; exit 2 ;;
esac

cargo build -q --profile "$profile" -p aiothreads-bench
mkdir -p target/bench
out=target/bench/callgrind.$1.out
toggles=()
for f in "${funcs[@]}"; do toggles+=("--toggle-collect=*${f%%:*}*"); done
# No wake-up floor: callgrind runs one thread at a time, so its spin round trips would take hours.
log=$(AIOTHREADS_BENCH_QUICK=1 AIOTHREADS_BENCH_NO_FLOOR=1 valgrind --tool=callgrind \
  --callgrind-out-file="$out" "${toggles[@]}" target/release/aiothreads-bench "$group" 2>/dev/null)
units=$(sed -n "$count_re" <<<"$log")
[ -n "$units" ] || { echo "the bench did not report its count" >&2; exit 1; }

echo "Measured $(date -u +%Y-%m-%d) with $(rustc -V), valgrind $(valgrind --version | sed 's/valgrind-//'),"
echo "${units} ${what}"
echo
echo "$head"
echo "|---|---:|---:|"
annotated=$(callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null)
for f in "${funcs[@]}"; do
  sym=${f%%:*} label=${f#*:}
  ir=$(grep -E "${module}::${sym}( |$|\[)" <<<"$annotated" | head -1 | awk '{print $1}' | tr -d ,)
  [ -n "$ir" ] || { echo "no count for $sym" >&2; exit 1; }
  echo "| $label | $ir | $(awk -v ir="$ir" -v n="$units" 'BEGIN { printf "%.1f", ir / n }') |"
done
