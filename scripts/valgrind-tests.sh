#!/usr/bin/env bash
# Every test binary of the workspace (the release build `make test-release` makes) under
# valgrind's memcheck: no invalid access, no use of uninitialised memory, every test passing.
# Miri checks the core and the std crate's unit tests; this adds the integration tests, with
# real threads and system calls. Valgrind runs one thread at a time, which also shakes out
# tests that assume a thread already ran (RELIABILITY.md, fourteenth session).
# `macros_ui` is left out: it runs the compiler (trybuild), not our code.
set -euo pipefail
cd "$(dirname "$0")/.."
bins=$(cargo test -q --workspace --all-features --release --lib --bins --tests --no-run \
  --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    exe = m.get("executable")
    if m.get("reason") == "compiler-artifact" and exe and m.get("profile", {}).get("test"):
        print(exe)
')
# Proc-macro crates' test binaries link the toolchain's libstd dynamically (cargo test sets this).
export LD_LIBRARY_PATH="$(rustc --print target-libdir)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Bounds on what must happen promptly allow for valgrind's pace (`aiothreads_tests::prompt`).
export AIOTHREADS_TEST_TIME_SCALE=20
n=0
for b in $bins; do
  case "$(basename "$b")" in macros_ui-*) continue ;; esac
  name=$(basename "$b")
  start=$(date +%s)
  if ! timeout 900 valgrind -q --error-exitcode=9 "$b" --test-threads=2 >"target/valgrind-$name.log" 2>&1; then
    echo "FAIL under valgrind: $name (log: target/valgrind-$name.log)" >&2
    tail -30 "target/valgrind-$name.log" >&2
    exit 1
  fi
  echo "== valgrind $name: ok ($(( $(date +%s) - start )) s)"
  n=$((n + 1))
done
[ "$n" -gt 10 ] || { echo "only $n test binaries found" >&2; exit 1; }
echo "valgrind: $n test binaries passed under memcheck"
