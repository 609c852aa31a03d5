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

/// Which side of a [`copy_items`] is the ring's slot buffer, whose cache lines the other
/// thread uses: the copy aligns its blocks to that side.
#[derive(Clone, Copy)]
pub(crate) enum RingSide {
    /// Copying out of the ring (`pop_slice`).
    Source,
    /// Copying into the ring (`push_slice`).
    Destination,
}

/// Copies `len` items from `src` to `dst` for the rings' slice operations: on x86_64 in
/// 32-byte blocks the compiler keeps inline, aligned on the ring's side; elsewhere (and under
/// Miri) with `copy_nonoverlapping`.
///
/// Why not always `copy_nonoverlapping`: for a batch of 256 `u64`s it becomes a call of the C
/// library's `memcpy`, and on the Intel Xeon VM of PERFORMANCE.md glibc's AVX-512 variant
/// (`__memmove_avx512_unaligned_erms`) made the two-thread batched case run at 0.65× rtrb's
/// chunk API (380 against 540–730 M items/s), where the same copies as a loop of 32-byte
/// blocks ran at 740–830 (64-byte blocks: 520–650, 16-byte: 560–620). Why the blocks are
/// aligned on the ring's side: the slot buffer starts wherever the allocator put it (16-byte
/// alignment), and when it is not 32-byte aligned every other block straddles two cache lines
/// of the ring, which the other thread is writing or reading: 243–276 M items/s against 588
/// for the same loop on a buffer at 32 modulo 64 (before this alignment; the full bench runs S
/// and U fell into it, the filtered runs did not). Cost: two 16-byte loads and stores per 32
/// bytes, a compare and an add; up to 31 bytes before the first block and the tail are one
/// `copy_nonoverlapping` each.
///
/// # Safety
/// As for `copy_nonoverlapping`: `src` valid for reads and `dst` for writes of `len` items,
/// the two ranges disjoint. `T: Copy`, so a bitwise copy is a copy.
#[inline(always)]
pub(crate) unsafe fn copy_items<T: Copy>(src: *const T, dst: *mut T, len: usize, ring: RingSide) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        /// 32 bytes that may hold anything, padding and pointers included (no validity
        /// requirement, and a typed copy of `MaybeUninit` keeps provenance).
        type Block = core::mem::MaybeUninit<[u64; 4]>;
        const BLOCK: usize = core::mem::size_of::<Block>();
        let bytes = len * core::mem::size_of::<T>();
        let (src, dst) = (src.cast::<u8>(), dst.cast::<u8>());
        // Bytes before the ring's side reaches a 32-byte boundary (all of them if fewer).
        let to_boundary = match ring {
            RingSide::Source => src.align_offset(BLOCK),
            RingSide::Destination => dst.align_offset(BLOCK),
        };
        let mut done = to_boundary.min(bytes);
        if done > 0 {
            // SAFETY: the first `done <= bytes` bytes of both ranges (caller contract).
            unsafe { core::ptr::copy_nonoverlapping(src, dst, done) };
        }
        while bytes - done >= BLOCK {
            // SAFETY: `done + BLOCK <= bytes`, inside both ranges (caller contract); unaligned
            // accesses, so any item alignment is fine.
            unsafe {
                let block = src.add(done).cast::<Block>().read_unaligned();
                dst.add(done).cast::<Block>().write_unaligned(block);
                // An empty statement the compiler must keep in order: it stops the loop from
                // being turned back into a `memcpy` call. It touches no memory, flags or stack.
                core::arch::asm!("", options(nomem, nostack, preserves_flags));
            }
            done += BLOCK;
        }
        if done < bytes {
            // SAFETY: the rest of both ranges (caller contract).
            unsafe { core::ptr::copy_nonoverlapping(src.add(done), dst.add(done), bytes - done) };
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    {
        let _ = ring;
        // SAFETY: caller contract.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
    }
}

/// Whether the consumer's prefetch (`Raw::prefetch_ahead`) is issued on this CPU: on AMD
/// processors only, read from `cpuid` (the vendor string) by [`detect_prefetch`] when a ring
/// or queue is made, and cached in a static.
///
/// Measured in the same bench on both machines of PERFORMANCE.md: on the AMD EPYC VM the
/// prefetch took a 1 024-slot stream of `u64` from about 175 to 220 M items/s; on the Intel
/// Xeon VM it gained nothing between two threads (stream 230–236 against 238–248 M items/s,
/// within the noise) and cost a one-thread drain a third (ring pop 774–818 against
/// 526–546 M items/s, push + pop 497–506 against 390–405). Other vendors were not measured,
/// so they get no prefetch.
///
/// Cost: one relaxed load of a static, only when a prefetch would be issued (once per line
/// of slots), and no call: a call in a consumer's loop, even a cold one, changed how the
/// compiler kept the consumer's fields and cost the two-thread rate a third on the Xeon.
pub(crate) use vendor::{detect_prefetch, prefetch_pays};

/// [`prefetch_pays`] and [`detect_prefetch`] where `cpuid` can be read: x86_64, not under
/// Miri or loom, and not in an SGX enclave (where `cpuid` is not allowed).
#[cfg(all(
    target_arch = "x86_64",
    not(miri),
    not(aiothreads_loom),
    not(target_env = "sgx")
))]
mod vendor {
    use core::sync::atomic::{AtomicU8, Ordering};

    /// Not read yet: no prefetch meanwhile.
    const UNKNOWN: u8 = 0;
    /// An AMD processor: prefetch.
    const PREFETCH: u8 = 1;
    /// Any other vendor: no prefetch.
    const NO_PREFETCH: u8 = 2;

    /// The cached answer (Relaxed everywhere: a hint that guards no other memory).
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// See [`super::prefetch_pays`].
    #[inline(always)]
    pub(crate) fn prefetch_pays() -> bool {
        STATE.load(Ordering::Relaxed) == PREFETCH
    }

    /// Reads the CPU vendor if no ring did yet. Called where rings and queues are made, never
    /// per item. Racing first calls store the same value. Cost after the first call: one
    /// relaxed load; the first `cpuid` is a hypervisor exit under a VM (about a microsecond).
    #[inline]
    pub(crate) fn detect_prefetch() {
        if STATE.load(Ordering::Relaxed) == UNKNOWN {
            read_vendor();
        }
    }

    /// [`detect_prefetch`] the first time.
    #[cold]
    #[inline(never)]
    fn read_vendor() {
        // Leaf 0: EBX, EDX, ECX spell the vendor ("AuthenticAMD": "Auth", "enti", "cAMD").
        #[allow(unused_unsafe)]
        // SAFETY: `cpuid` exists on every x86_64 CPU, and leaf 0 on every CPU that has it;
        // SGX enclaves, which forbid it, are excluded by this module's cfg.
        let leaf = unsafe { core::arch::x86_64::__cpuid(0) };
        let amd = leaf.ebx == u32::from_le_bytes(*b"Auth")
            && leaf.edx == u32::from_le_bytes(*b"enti")
            && leaf.ecx == u32::from_le_bytes(*b"cAMD");
        STATE.store(if amd { PREFETCH } else { NO_PREFETCH }, Ordering::Relaxed);
    }
}

/// Everywhere else: never a prefetch ([`PREFETCHES`] is false off x86_64, under Miri and
/// under loom anyway), nothing to detect.
#[cfg(not(all(
    target_arch = "x86_64",
    not(miri),
    not(aiothreads_loom),
    not(target_env = "sgx")
)))]
mod vendor {
    /// See [`super::prefetch_pays`].
    #[inline(always)]
    pub(crate) fn prefetch_pays() -> bool {
        false
    }

    /// See [`super::detect_prefetch`].
    #[inline(always)]
    pub(crate) fn detect_prefetch() {}
}

#[cfg(test)]
mod copy_tests {
    use super::{copy_items, RingSide};

    /// Copies `len` items of `T` made by `item` from every start offset within a block
    /// (0–31 items on the source side, so every byte offset for `u8`; a handful under Miri,
    /// which takes the `copy_nonoverlapping` path anyway) into several destination offsets,
    /// aligning either side, and checks every item arrived and nothing around the range moved.
    fn check<T: Copy + PartialEq + core::fmt::Debug>(len: usize, item: impl Fn(usize) -> T) {
        let src: [T; 72] = core::array::from_fn(&item);
        let guard = item(999);
        let (froms, tos): (_, &[usize]) = if cfg!(miri) {
            (0..2, &[0, 5])
        } else {
            (0..32, &[0, 1, 5, 17, 31])
        };
        for from in froms {
            for &to in tos {
                for ring in [RingSide::Source, RingSide::Destination] {
                    let mut dst = [guard; 80];
                    // SAFETY: `from + len <= 71` and `to + len <= 71`: both ranges are inside
                    // their arrays, which are distinct.
                    unsafe { copy_items(src[from..].as_ptr(), dst[to..].as_mut_ptr(), len, ring) };
                    assert_eq!(&dst[to..to + len], &src[from..from + len], "len {len}");
                    assert!(
                        dst[..to]
                            .iter()
                            .chain(&dst[to + len..])
                            .all(|&x| x == guard),
                        "len {len} from {from} to {to}: wrote outside the range"
                    );
                }
            }
        }
    }

    #[test]
    fn copies_every_length_and_item_size_exactly() {
        for len in 0..=40 {
            check(len, |i| i as u8);
            check(len, |i| [i as u8, (i * 7) as u8, (i * 13) as u8]);
            check(len, |i| i as u64 * 0x0101_0101_0101);
            check(len, |i| (i as u128) << 70 | i as u128);
            check(len, |i| (i as u16, i as u8));
        }
    }
}
