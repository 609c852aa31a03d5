#!/usr/bin/env python3
"""Published sizes of aiothreads-core (`make sizes`; the README's table comes from here).

Builds the fixture `sizes/probe` (a `no_std` staticlib, `opt-level = "s"`, LTO, one exported
function per operation and two `static` rings) for each target, then reads with the Rust
toolchain's own LLVM tools (`rustup component add llvm-tools`):

- RAM: the symbol sizes of the two statics (`llvm-nm --print-size`), i.e. `size_of`;
- code: the size of each probe function, alone and with every function it calls, found by
  following the call relocations of the object (`llvm-objdump -d -r`), each callee counted
  once per operation;
- the four operations together (the union of their call trees, shared helpers once).

Prints markdown on stdout. Needs python3, rustup and the targets (the script adds them).
"""

import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "sizes" / "probe" / "Cargo.toml"
TARGET_DIR = ROOT / "target" / "sizes"

# (target, label, fixture features, measure code size)
TARGETS = [
    ("x86_64-unknown-linux-gnu", "x86_64", [], False),
    ("thumbv7em-none-eabihf", "Cortex-M4/M7 (thumbv7em)", [], True),
    ("thumbv6m-none-eabi", "Cortex-M0/M0+ (thumbv6m), portable-atomic", ["single-core"], True),
    ("riscv32imc-unknown-none-elf", "RISC-V (riscv32imc), portable-atomic", ["single-core"], True),
]
RINGS = [("RING_U32_16", "`Ring<u32, 16>`"), ("RING_U8_64", "`Ring<u8, 64>`")]
OPS = [
    ("probe_push", "`push`"),
    ("probe_pop", "`pop`"),
    ("probe_try_send", "`try_send`"),
    ("probe_poll_next", "stream `poll_next`"),
]


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def tools():
    run("rustup", "component", "add", "llvm-tools")
    host = re.search(r"^host: (.*)$", run("rustc", "-vV"), re.M).group(1)
    sysroot = run("rustc", "--print", "sysroot").strip()
    bin_dir = Path(sysroot) / "lib" / "rustlib" / host / "bin"
    return {name: str(bin_dir / f"llvm-{name}") for name in ("nm", "objdump")}


def build(target, features):
    run("rustup", "target", "add", target)
    cmd = ["cargo", "build", "-q", "--release", "--manifest-path", str(PROBE),
           "--target", target, "--target-dir", str(TARGET_DIR)]
    if features:
        cmd += ["--features", ",".join(features)]
    subprocess.run(cmd, check=True)
    return TARGET_DIR / target / "release" / "libaiothreads_size_probe.a"


def symbols(llvm, lib):
    """name -> (size, type letter) of every defined symbol with a size."""
    out = run(llvm["nm"], "--print-size", "--defined-only", str(lib))
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            _addr, size, kind, name = parts
            table[name] = (int(size, 16), kind)
    return table


def call_graph(llvm, lib, functions):
    """caller -> set of called functions, from the relocations inside each function."""
    out = run(llvm["objdump"], "-d", "-r", "--no-show-raw-insn", str(lib))
    graph, current = {}, None
    for line in out.splitlines():
        head = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if head:
            current = head.group(1)
            graph.setdefault(current, set())
            continue
        reloc = re.search(r"R_\w+\s+([^\s+]+)", line)
        if current and reloc and reloc.group(1) in functions and reloc.group(1) != current:
            graph[current].add(reloc.group(1))
    return graph


def closure(graph, root):
    seen, todo = set(), [root]
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo.extend(graph.get(f, ()))
    return seen


def main():
    llvm = tools()
    toolchain = run("rustc", "-V").strip()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    ram_rows, code_rows, totals = [], [], []
    for target, label, features, code in TARGETS:
        lib = build(target, features)
        syms = symbols(llvm, lib)
        ram_rows.append((label, [syms[name][0] for name, _ in RINGS]))
        if not code:
            continue
        functions = {n for n, (_, k) in syms.items() if k in "Tt"}
        graph = call_graph(llvm, lib, functions)
        cells, union = [], set()
        for probe, _ in OPS:
            own = syms[probe][0]
            tree = closure(graph, probe)
            union |= tree
            cells.append(f"{own} / {sum(syms[f][0] for f in tree)}")
        code_rows.append((label, cells))
        totals.append((label, sum(syms[f][0] for f in union)))

    print(f"Measured {when} with {toolchain} by `make sizes` (scripts/sizes.py).\n")
    print("RAM, bytes (`size_of`, read from the symbol sizes of two `static` rings):\n")
    print("| target | " + " | ".join(r for _, r in RINGS) + " |")
    print("|---|" + "---:|" * len(RINGS))
    for label, sizes in ram_rows:
        print(f"| {label} | " + " | ".join(str(s) for s in sizes) + " |")
    print()
    print('Code, bytes at `opt-level = "s"` with LTO, `u32` items: the operation\'s own function /')
    print("with every function it calls (waker registration, the out-of-line wake and")
    print("checkpoint paths, panic paths), each counted once:\n")
    print("| target | " + " | ".join(o for _, o in OPS) + " |")
    print("|---|" + "---:|" * len(OPS))
    for label, cells in code_rows:
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    print("All four operations together (shared helpers counted once): " +
          ", ".join(f"{label} {size} B" for label, size in totals) + ".")


if __name__ == "__main__":
    sys.exit(main())
