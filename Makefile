# aiothreads for Rust — every target installs what it needs, so a fresh machine with rustup works.
# `make demo` runs the main demonstration; `make test` runs everything CI runs.

CARGO ?= cargo
NIGHTLY ?= nightly
NO_STD_TARGET := thumbv7em-none-eabihf
EXAMPLES := $(basename $(notdir $(wildcard examples/src/bin/*.rs)))

.PHONY: demo test setup setup-nightly fmt-check clippy test-debug test-release doc nostd loom miri \
        examples bench bench-quick soak sanitize clean

demo:
	$(CARGO) run -q --release -p aiothreads-examples --bin demo

# ---- set-up -------------------------------------------------------------------------------
setup:
	rustup component add rustfmt clippy
	rustup target add $(NO_STD_TARGET)

setup-nightly:
	rustup toolchain install $(NIGHTLY) --profile minimal --component miri,rust-src
	$(CARGO) +$(NIGHTLY) miri setup

# ---- the CI suite ---------------------------------------------------------------------------
test: setup fmt-check clippy test-debug test-release doc nostd examples loom miri
	@echo "make test: all checks passed"

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

test-debug:
	$(CARGO) test --workspace --all-features

test-release:
	$(CARGO) test --workspace --all-features --release

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --all-features

# The no_std proof: a plain cross build of the core, without dev-dependencies.
nostd:
	$(CARGO) build -p aiothreads-core --target $(NO_STD_TARGET)
	$(CARGO) build -p aiothreads-core --target $(NO_STD_TARGET) --features alloc

# Every example runs and exits 0 (the demo included).
examples:
	$(CARGO) build -q --release -p aiothreads-examples --bins
	@set -e; for e in $(EXAMPLES); do echo "== example $$e"; timeout 120 target/release/$$e > /dev/null; done

loom:
	RUSTFLAGS="--cfg aiothreads_loom" $(CARGO) test -p aiothreads-core --release --test 'loom*' \
	  --target-dir target/loom

miri: setup-nightly
	MIRIFLAGS="-Zmiri-strict-provenance" $(CARGO) +$(NIGHTLY) miri test -p aiothreads-core --all-features

# ---- measurements (not run by CI) -----------------------------------------------------------
bench:
	$(CARGO) run --release -p aiothreads-bench

bench-quick:
	AIOTHREADS_BENCH_QUICK=1 $(CARGO) run --release -p aiothreads-bench

clean:
	$(CARGO) clean
