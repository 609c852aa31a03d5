//! The one place that chooses where the crate's atomics come from.
//!
//! Every lock-free type of the crate takes its atomics, `UnsafeCell`, `AtomicWaker` and
//! `Arc` from here, so `RUSTFLAGS="--cfg aiothreads_loom" cargo test --test loom` model-checks
//! the very code that ships. In order of priority:
//!
//! 1. `cfg(aiothreads_loom)`: loom's modelled atomics, `AtomicWaker` and `Arc`, whatever the
//!    features (the models must see every access).
//! 2. feature `portable-atomic`: `portable-atomic`'s types, which are the native instructions
//!    where the target has them and a critical section (or interrupt masking, with
//!    `unsafe-assume-single-core`) for the read-modify-writes where it does not. The
//!    `atomic-waker` dependency is switched the same way by the feature.
//! 3. otherwise `core::sync::atomic`.
//!
//! The `fence` is `core`'s outside loom, also with `portable-atomic`: a fence needs no
//! compare-and-swap, every target we build for has it (`dmb` on Cortex-M, `fence` on
//! RISC-V), and `core`'s is the one that Miri and ThreadSanitizer understand.

#[cfg(aiothreads_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU8, AtomicUsize, Ordering};

#[cfg(all(not(aiothreads_loom), feature = "portable-atomic"))]
pub(crate) use portable_atomic::{AtomicBool, AtomicU8, AtomicUsize};

#[cfg(all(not(aiothreads_loom), not(feature = "portable-atomic")))]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize};

#[cfg(not(aiothreads_loom))]
pub(crate) use core::sync::atomic::{fence, Ordering};

/// The spare-segment pointer of the unbounded queue.
#[cfg(all(
    not(aiothreads_loom),
    feature = "alloc",
    not(feature = "portable-atomic")
))]
pub(crate) use core::sync::atomic::AtomicPtr;
/// The spare-segment pointer of the unbounded queue (`alloc` only; loads and stores, no RMW).
#[cfg(aiothreads_loom)]
pub(crate) use loom::sync::atomic::AtomicPtr;
/// The spare-segment pointer of the unbounded queue, from `portable-atomic`.
#[cfg(all(not(aiothreads_loom), feature = "alloc", feature = "portable-atomic"))]
pub(crate) use portable_atomic::AtomicPtr;

/// The `Arc` of the heap rings and the owned oneshot: loom's in the loom build.
#[cfg(aiothreads_loom)]
pub(crate) use loom::sync::Arc;

/// The `Arc` of the heap rings and the owned oneshot: `portable-atomic-util`'s on targets
/// without pointer-sized compare-and-swap, where `alloc::sync` does not exist.
#[cfg(all(
    not(aiothreads_loom),
    feature = "alloc",
    feature = "portable-atomic",
    not(target_has_atomic = "ptr")
))]
pub(crate) use portable_atomic_util::Arc;

/// The `Arc` of the heap rings and the owned oneshot: the standard one.
#[cfg(all(
    not(aiothreads_loom),
    feature = "alloc",
    not(all(feature = "portable-atomic", not(target_has_atomic = "ptr")))
))]
pub(crate) use alloc::sync::Arc;

/// `AtomicWaker` from the `atomic-waker` crate, or loom's model of the same protocol.
#[cfg(not(aiothreads_loom))]
pub(crate) use atomic_waker::AtomicWaker;

/// Loom's `AtomicWaker` under the loom cfg, wrapped to the `atomic-waker` API.
#[cfg(aiothreads_loom)]
#[derive(Debug, Default)]
pub(crate) struct AtomicWaker(loom::future::AtomicWaker);

#[cfg(aiothreads_loom)]
impl AtomicWaker {
    pub(crate) fn new() -> Self {
        Self(loom::future::AtomicWaker::new())
    }
    pub(crate) fn register(&self, waker: &core::task::Waker) {
        self.0.register_by_ref(waker);
    }
    pub(crate) fn wake(&self) {
        self.0.wake();
    }
    pub(crate) fn take(&self) -> Option<core::task::Waker> {
        self.0.take_waker()
    }
}

/// `UnsafeCell` with loom's closure-based access API, so the same code compiles both ways.
#[cfg(not(aiothreads_loom))]
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(aiothreads_loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }
    /// Runs `f` with a shared raw pointer to the contents.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    /// Runs `f` with an exclusive raw pointer to the contents.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(aiothreads_loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Pads and aligns a value to the coherence granule of the target, so that the producer's and
/// the consumer's hot indices never share a cache line (no false sharing between cores).
///
/// | target | alignment | why |
/// |---|---|---|
/// | x86_64, aarch64, arm64ec, powerpc64 | 128 | adjacent-line prefetch pairs 64-byte lines (x86_64); 128-byte lines (Apple M, POWER) |
/// | s390x | 256 | 256-byte lines |
/// | arm (A/R profile with an OS), mips, sparc, hexagon | 32 | 32-byte lines |
/// | m68k | 16 | 16-byte lines |
/// | bare-metal arm (`target_os = "none"`), bare-metal riscv32 | none | microcontrollers: no data cache, or one core behind it, so nothing to share falsely |
/// | everything else (x86, riscv64, wasm, loongarch64, ...) | 64 | 64-byte lines |
///
/// Bare-metal 32-bit ARM is Cortex-M in practice (stable Rust exposes no cfg that tells the
/// M profile from a bare-metal Cortex-A/R); on a multi-core bare-metal A/R system the missing
/// padding costs speed, never correctness. Without padding a `Ring<u32, 16>` takes 100 bytes
/// on a Cortex-M instead of 512 (asserted at compile time by `sizes/probe`, which `make nostd`
/// builds for each microcontroller target).
#[derive(Debug, Default)]
#[cfg_attr(
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "arm64ec",
        target_arch = "powerpc64",
    ),
    repr(align(128))
)]
#[cfg_attr(target_arch = "s390x", repr(align(256)))]
#[cfg_attr(
    any(
        all(target_arch = "arm", not(target_os = "none")),
        target_arch = "mips",
        target_arch = "mips32r6",
        target_arch = "mips64",
        target_arch = "mips64r6",
        target_arch = "sparc",
        target_arch = "hexagon",
    ),
    repr(align(32))
)]
#[cfg_attr(target_arch = "m68k", repr(align(16)))]
#[cfg_attr(
    not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "arm64ec",
        target_arch = "powerpc64",
        target_arch = "s390x",
        target_arch = "arm",
        target_arch = "mips",
        target_arch = "mips32r6",
        target_arch = "mips64",
        target_arch = "mips64r6",
        target_arch = "sparc",
        target_arch = "hexagon",
        target_arch = "m68k",
        all(target_arch = "riscv32", target_os = "none"),
    )),
    repr(align(64))
)]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> core::ops::Deref for CachePadded<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Whether [`prefetch`] does anything: x86_64 (its prefetch instruction is in the baseline),
/// and not under Miri or loom.
pub(crate) const PREFETCHES: bool =
    cfg!(all(target_arch = "x86_64", not(miri), not(aiothreads_loom)));

/// Items of `T` per cache line of 64 bytes (at least one): a consumer prefetches once per
/// line, when its position enters one (`position % items_per_line == 0`; a multiple of a
/// constant, so a mask or a multiply, no division).
pub(crate) const fn items_per_line<T>() -> usize {
    match core::mem::size_of::<T>() {
        0 => 1,
        size if size >= 64 => 1,
        size => 64 / size,
    }
}

/// Items of `T` that make two cache lines of 64 bytes (at least one; none for zero-sized items,
/// which occupy no memory): how far ahead of its position a consumer prefetches.
pub(crate) const fn prefetch_ahead<T>() -> usize {
    match core::mem::size_of::<T>() {
        0 => 0,
        size if size >= 128 => 1,
        size => 128 / size,
    }
}

/// Slots, counted from one slot on, that can share its cache line of 64 bytes: `ceil(64 /
/// size)` (1 for items of 64 bytes or more). A consumer prefetches the line of the slot
/// [`prefetch_ahead`] positions on only when this many slots after that one are published too,
/// so that it never pulls a line its producer is still writing, whatever the buffer's
/// alignment (see `Raw::prefetch_ahead`).
pub(crate) const fn line_span<T>() -> usize {
    match core::mem::size_of::<T>() {
        0 => 1,
        size if size >= 64 => 1,
        size => 64usize.div_ceil(size),
    }
}

/// Asks the CPU to start loading the cache line at `ptr`, and returns at once. A hint: it
/// reads nothing the program observes and never faults, whatever `ptr` is. Nothing where
/// [`PREFETCHES`] is false.
///
/// Consumers call it for a published slot a little ahead of the one they read: one that reads
/// right behind its producer otherwise waits for each cache line of slots in turn, one
/// cross-core transfer at a time, instead of having the next one on its way.
#[inline(always)]
pub(crate) fn prefetch<T>(ptr: *const T) {
    #[cfg(all(target_arch = "x86_64", not(miri), not(aiothreads_loom)))]
    // SAFETY: a prefetch reads nothing the program observes and cannot fault for any address;
    // SSE, which has it, is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(ptr.cast::<i8>())
    };
    #[cfg(not(all(target_arch = "x86_64", not(miri), not(aiothreads_loom))))]
    let _ = ptr;
}
