# aiothreads for Rust — every target installs what it needs, so a fresh machine with rustup works.
# `make demo` runs the main demonstration; `make test` runs everything CI runs.

CARGO ?= cargo
NIGHTLY ?= nightly
NO_STD_TARGET := thumbv7em-none-eabihf
# Cortex-M0/M0+ and the smallest RISC-V: no compare-and-swap, hence the `portable-atomic` feature.
NO_CAS_TARGETS := thumbv6m-none-eabi riscv32imc-unknown-none-elf
MSRV := $(shell sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
EXAMPLES := $(basename $(notdir $(wildcard examples/src/bin/*.rs)))

.PHONY: demo test setup setup-nightly fmt-check clippy test-debug test-release doc nostd msrv loom miri \
        examples valgrind valgrind-tests bench bench-quick sizes ring-instructions stream-instructions soak sanitize clean

demo:
	$(CARGO) run -q --release -p aiothreads-examples --bin demo

# ---- set-up -------------------------------------------------------------------------------
setup:
	rustup component add rustfmt clippy
	rustup target add $(NO_STD_TARGET) $(NO_CAS_TARGETS)

# Installs nightly only when missing (an installed nightly is not updated under CI's feet).
setup-nightly:
	rustup toolchain list | grep -q '^$(NIGHTLY)' || rustup toolchain install $(NIGHTLY) --profile minimal
	rustup +$(NIGHTLY) component add miri rust-src
	$(CARGO) +$(NIGHTLY) miri setup

# ---- the CI suite ---------------------------------------------------------------------------
# Steps that build in a target dir of their own (docsrs, package, readme, msrv, loom) remove it
# once they pass, so that `make test` peaks near 3 GB of build output instead of 5.6 GB (a CI
# machine ran out of disk); `make test KEEP_SCRATCH=1` keeps them for faster reruns.
drop-scratch = $(if $(KEEP_SCRATCH),,rm -rf $(1))

test: setup fmt-check clippy test-debug test-release doc docsrs package readme minimal nostd msrv \
      examples valgrind loom miri
	@echo "make test: all checks passed"

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

# Debug: `AIOTHREADS_MEMBARRIER=0`, so the suites run the rings' fence protocol only; release:
# the default, so stream consumers switch between the fence and the light protocol (membarrier).
test-debug:
	AIOTHREADS_MEMBARRIER=0 $(CARGO) test --workspace --all-features

# Release: the library, binaries and test suites; the doctests ran in test-debug (compiling
# each of them again with optimisations only costs CI time).
test-release:
	$(CARGO) test --workspace --all-features --release --lib --bins --tests

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --all-features

# The no_std proof: plain cross builds of the core, without dev-dependencies, with and without
# `alloc`, and through `portable-atomic`. The no-CAS targets need the binary's choice of
# portable-atomic back-end; `portable-atomic/unsafe-assume-single-core` stands in for it here
# (a firmware crate would enable it, or `portable-atomic/critical-section`, itself).
PA_SINGLE_CORE := portable-atomic,portable-atomic/unsafe-assume-single-core
nostd:
	$(CARGO) build -p aiothreads-core --target $(NO_STD_TARGET)
	$(CARGO) build -p aiothreads-core --target $(NO_STD_TARGET) --features alloc
	$(CARGO) build -p aiothreads-core --target $(NO_STD_TARGET) --features portable-atomic,alloc
	@set -e; for t in $(NO_CAS_TARGETS); do \
	  $(CARGO) build -p aiothreads-core --target $$t --features $(PA_SINGLE_CORE); \
	  $(CARGO) build -p aiothreads-core --target $$t --features $(PA_SINGLE_CORE),alloc; \
	done
	# The published RAM sizes (README), asserted at compile time in the size probe.
	$(CARGO) build -q --release --manifest-path sizes/probe/Cargo.toml --target-dir target/sizes \
	  --target $(NO_STD_TARGET)
	@set -e; for t in $(NO_CAS_TARGETS); do \
	  $(CARGO) build -q --release --manifest-path sizes/probe/Cargo.toml --target-dir target/sizes \
	    --target $$t --features single-core; \
	done

# The published crates build with the declared minimum Rust version (own target dir).
msrv:
	rustup toolchain list | grep -q '^$(MSRV)' || rustup toolchain install $(MSRV) --profile minimal
	$(CARGO) +$(MSRV) check $(PUBLISHED) --all-features --target-dir target/msrv
	$(call drop-scratch,target/msrv)

.PHONY: docsrs package minimal readme

# The published crates as docs.rs builds them ([package.metadata.docs.rs]: nightly, `--cfg docsrs`,
# all features, so feature-gated items are shown with their badges). Own target dir.
PUBLISHED := -p aiothreads-core -p aiothreads-macros -p aiothreads
docsrs: setup-nightly
	RUSTDOCFLAGS="--cfg docsrs -D warnings" $(CARGO) +$(NIGHTLY) doc $(PUBLISHED) --no-deps \
	  --all-features --target-dir target/docsrs
	$(call drop-scratch,target/docsrs)

# The published artefacts build from their own tarballs: the three crates are packaged together,
# so each one is verified against the packaged versions of the others (a local registry under
# target/package-verify/package), with every feature on. `--allow-dirty` only for a work tree with local edits.
# Cargo unpacks each crate of that local registry under $CARGO_HOME/registry/src/-<hash of the
# registry's path>/ and reuses an unpacked crate whose name and version it has seen before, even
# when the tarball changed. A checkout at a fixed path (a CI runner) would then verify against an
# older run's sources, so our three crates' unpacked copies from local registries (folders named
# `-<hash>`, never crates.io's) are removed first; cargo unpacks them again. Cargo also keys a
# registry crate's build by name and version only, so the verification builds in a target dir of
# its own, emptied first (about 20 s on 2 cores).
CARGO_HOME_DIR := $(or $(CARGO_HOME),$(HOME)/.cargo)
package:
	rm -rf $(CARGO_HOME_DIR)/registry/src/-*/aiothreads-core-[0-9]* \
	  $(CARGO_HOME_DIR)/registry/src/-*/aiothreads-macros-[0-9]* \
	  $(CARGO_HOME_DIR)/registry/src/-*/aiothreads-[0-9]*
	rm -rf target/package-verify
	$(CARGO) package $(PUBLISHED) --all-features --target-dir target/package-verify \
	  $(if $(CI),,--allow-dirty)
	$(call drop-scratch,target/package-verify)

# The README as pasted: a fresh package per install block (the workspace's crates patched in as
# if published, the workspace's Cargo.lock for the rest), each Rust block below it built and run.
# Line tables only in the fresh packages too, as in the workspace (disk).
readme:
	CARGO_PROFILE_DEV_DEBUG=line-tables-only $(CARGO) test -p aiothreads-tests --test readme -- --ignored
	$(call drop-scratch,target/readme-check)

# The smallest build: no default features, hence no proc-macro crate and no syn.
minimal:
	$(CARGO) check -p aiothreads --no-default-features
	@if $(CARGO) tree -p aiothreads --no-default-features -e normal,build --prefix none \
	  --format '{p}' | grep -q '^syn '; then echo "syn is in the minimal build"; exit 1; fi
	@if $(CARGO) tree -p aiothreads --no-default-features -e normal,build --prefix none \
	  --format '{p}' | grep -q '^rustix '; then echo "rustix is in the minimal build"; exit 1; fi

# Every example runs and exits 0 (the demo included); the last line each prints is shown.
examples:
	$(CARGO) build -q --release -p aiothreads-examples --bins
	@set -e; for e in $(EXAMPLES); do echo "== example $$e"; \
	  out=$$(timeout 120 target/release/$$e); printf '%s\n' "$$out" | tail -n 1; done

# Every example but the demo (a minute under valgrind) under valgrind's memcheck: no invalid
# access, no use of uninitialised memory, no crash. Programs using the library must run under the
# tools their authors debug with: until the fourteenth session every one of them died of SIGSEGV
# under valgrind (rustix's own vDSO lookup, for `getcpu`, read memory valgrind does not map).
# `make valgrind-tests` (not in `make test`: about 4 minutes with its build, and valgrind's
# one-thread-at-a-time pace makes timing bounds its own question) runs every test binary too.
VALGRIND_EXAMPLES := $(filter-out demo,$(EXAMPLES))
valgrind:
	@command -v valgrind >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get install -y -q valgrind >/dev/null; } || { echo "valgrind is required (apt-get install valgrind)" >&2; exit 1; }
	$(CARGO) build -q --release -p aiothreads-examples --bins
	@set -e; for e in $(VALGRIND_EXAMPLES); do echo "== valgrind $$e"; \
	  timeout 300 valgrind -q --error-exitcode=9 target/release/$$e >/dev/null; done

valgrind-tests: valgrind
	bash scripts/valgrind-tests.sh

loom:
	RUSTFLAGS="--cfg aiothreads_loom" $(CARGO) test -p aiothreads-core --release --test 'loom*' \
	  --target-dir target/loom
	RUSTFLAGS="--cfg aiothreads_loom" $(CARGO) test -p aiothreads --lib --release loom_models \
	  --target-dir target/loom
	$(call drop-scratch,target/loom)

miri: setup-nightly
	MIRIFLAGS="-Zmiri-strict-provenance" $(CARGO) +$(NIGHTLY) miri test -p aiothreads-core --all-features
	MIRIFLAGS="-Zmiri-strict-provenance" $(CARGO) +$(NIGHTLY) miri test -p aiothreads --lib
	# Fault injection: the items after a panicking Drop are leaked by design (RELIABILITY.md).
	MIRIFLAGS="-Zmiri-strict-provenance -Zmiri-ignore-leaks" $(CARGO) +$(NIGHTLY) miri test \
	  -p aiothreads-tests --test faults

# ---- reliability (RELIABILITY.md; not run by CI — the short soak runs inside `cargo test`) --
# The full soak: 1 000 000 calls and 10 000 streams with random fates, every one accounted for.
soak:
	AIOTHREADS_SOAK=full $(CARGO) test --release -p aiothreads-tests --test soak -- --nocapture

# ThreadSanitizer (nightly, std rebuilt with -Zbuild-std): the core's ring and slot tests, then
# the pool, iterable and fault tests of the std backend. Own target dir: the flags differ.
TSAN_TARGET := $(shell rustc -vV | sed -n 's/^host: //p')
TSAN := RUSTFLAGS="-Zsanitizer=thread" RUSTDOCFLAGS="-Zsanitizer=thread" TSAN_OPTIONS="halt_on_error=1" \
	$(CARGO) +$(NIGHTLY) test -Zbuild-std --target $(TSAN_TARGET) --target-dir target/tsan
sanitize: setup-nightly
	$(TSAN) -p aiothreads-core --all-features --test ring --test slot
	$(TSAN) -p aiothreads --lib
	$(TSAN) -p aiothreads-tests --test threaded --test iterable --test faults

# ---- measurements (not run by CI) -----------------------------------------------------------
# Every case, ours and the peers interleaved, in one run (PERFORMANCE.md): the table on stdout,
# target/bench/summary.{json,md}, and docs/bench.svg. Some groups only: make bench BENCH=ring,stream
# (then the chart goes to target/bench/bench.svg). bench-quick is the smaller version (< 1 min).
bench:
	$(CARGO) run --profile bench -p aiothreads-bench -- $(BENCH)

bench-quick:
	AIOTHREADS_BENCH_QUICK=1 $(CARGO) run --profile bench -p aiothreads-bench -- $(BENCH)

# The README's size table: RAM per ring and code size per operation on each target, from the
# `sizes/probe` fixture (opt-level "s") read with the toolchain's llvm-nm/llvm-objdump.
sizes:
	python3 scripts/sizes.py

# Instructions per push+pop of the ring against rtrb and heapless::spsc (callgrind, one run).
ring-instructions:
	scripts/instructions.sh ring

stream-instructions:
	scripts/instructions.sh stream

clean:
	$(CARGO) clean
