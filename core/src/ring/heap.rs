//! Rings with a capacity chosen at run time, their slots on the heap (feature `alloc`).
//!
//! Both halves hold an `Arc` of the storage, so they are `'static`; the last one dropped
//! drops the items still in the ring.

// The loom build compiles this module without the `alloc` feature (its models need `'static`
// halves), so it names the crate itself.
extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::fmt;
use core::ptr::NonNull;

use super::{halves, Consumer, Header, HeavyBarrier, Producer, Raw, Slot};

/// `loom`'s `Arc` in the loom build (so that the reference count is modelled too), else the
/// standard one, or `portable-atomic-util`'s where `alloc::sync` does not exist (see `sync`).
pub(super) use crate::sync::Arc;

/// Header and heap slots, shared by the two halves through an `Arc`.
pub(crate) struct Storage<T> {
    header: Header,
    /// The buffer: `offset` unused slots, then the ring's `cap` slots; ring slot `i` is
    /// initialised exactly when some position in `head .. tail` maps to it.
    slots: Box<[Slot<T>]>,
    /// Unused slots before the ring's first, so that it starts on a 128-byte boundary (see
    /// [`ALIGN`]); 0 where that cannot be done.
    offset: usize,
    /// Number of ring slots.
    cap: usize,
}

/// Where a ring's slots start, when the buffer is large enough for it to matter (at least
/// [`ALIGN_MIN_BYTES`]) and the item size divides it: a multiple of 128 bytes (two cache lines,
/// the unit adjacent-line prefetchers move). Lines of slots then never straddle two groups of
/// items the halves handle at different times, and the consumer's prefetch, made when it
/// enters a line (`Raw::prefetch_ahead`), lands on line starts. Costs at most 127 bytes.
const ALIGN: usize = 128;

/// Buffers smaller than this (a few lines) are not aligned: the padding would cost more memory
/// than the ring uses (many small rings: thousands of open streams with bound 16).
const ALIGN_MIN_BYTES: usize = 1024;

/// Unused slots to allocate before the ring so that it can start on an [`ALIGN`] boundary.
const fn align_pad<T>(capacity: usize) -> usize {
    let size = core::mem::size_of::<T>();
    if cfg!(aiothreads_loom) || size == 0 || !ALIGN.is_multiple_of(size) {
        return 0;
    }
    match capacity.checked_mul(size) {
        Some(bytes) if bytes >= ALIGN_MIN_BYTES => ALIGN / size - 1,
        _ => 0,
    }
}

/// The slots to skip in a buffer at `addr` (with room for `pad` of them) so that the ring
/// starts on an [`ALIGN`] boundary, or 0 if no whole number of slots gets there.
fn align_offset<T>(addr: usize, pad: usize) -> usize {
    let size = core::mem::size_of::<T>();
    if pad == 0 {
        return 0;
    }
    let gap = (ALIGN - addr % ALIGN) % ALIGN;
    if gap.is_multiple_of(size) && gap / size <= pad {
        gap / size
    } else {
        0
    }
}

impl<T> Storage<T> {
    fn raw(&self) -> Raw<T> {
        let slots =
            NonNull::new(self.slots.as_ptr().cast_mut()).expect("Box pointers are non-null");
        // `offset + cap <= slots.len()` (set so in `make`): the ring's slots are in the buffer.
        let ring = slots.as_ptr().wrapping_add(self.offset);
        let ring = NonNull::new(ring).expect("inside a non-null buffer");
        // SAFETY: header and slots live as long as the storage, which the halves keep alive
        // through their `Arc`; `try_with_capacity` creates the only pair of halves; the `cap`
        // slots from `ring` on are inside the buffer.
        unsafe { Raw::new(NonNull::from(&self.header), ring, self.cap) }
    }
}

impl<T> Drop for Storage<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: the last `Arc`, hence the last half, is gone.
        unsafe { self.raw().drop_remaining() }
    }
}

/// `capacity` uninitialised slots, or `None` if the allocator refuses them (a fallible
/// allocation: an absurd capacity is an error, not `handle_alloc_error`'s abort).
#[cfg(not(aiothreads_loom))]
fn new_slots<T>(capacity: usize) -> Option<Box<[Slot<T>]>> {
    let mut slots = Vec::new();
    slots.try_reserve_exact(capacity).ok()?;
    // SAFETY: the capacity was reserved, and `UnsafeCell<MaybeUninit<T>>` is valid
    // uninitialised (no validity invariant).
    unsafe { slots.set_len(capacity) };
    Some(slots.into_boxed_slice())
}

/// `capacity` uninitialised slots (loom build: each loom cell must be constructed).
#[cfg(aiothreads_loom)]
fn new_slots<T>(capacity: usize) -> Option<Box<[Slot<T>]>> {
    use core::mem::MaybeUninit;
    let slots = (0..capacity).map(|_| Slot::new(MaybeUninit::uninit()));
    Some(slots.collect::<Vec<_>>().into_boxed_slice())
}

/// A ring with `capacity` slots on the heap, as `'static` halves.
///
/// A buffer of 1 KiB or more, of items whose size divides 128 bytes, starts on a 128-byte
/// boundary (up to 127 bytes of padding): no cache line holds slots of two groups the halves
/// handle at different times.
///
/// # Errors
/// [`CapacityError`] if `capacity` is 0, larger than `usize::MAX / 2`, makes the buffer
/// larger than `isize::MAX` bytes, or the allocator cannot provide the buffer.
///
/// # Examples
/// ```
/// use aiothreads_core::ring;
///
/// assert!(ring::try_with_capacity::<u64>(0).is_err());
/// let (mut tx, mut rx) = ring::try_with_capacity::<u64>(3).unwrap();
/// assert_eq!(tx.capacity(), 3);
/// std::thread::spawn(move || tx.push(1).unwrap()).join().unwrap();
/// assert_eq!(rx.pop(), Ok(1));
/// ```
pub fn try_with_capacity<T>(
    capacity: usize,
) -> Result<(Producer<'static, T>, Consumer<'static, T>), CapacityError> {
    make(capacity, None)
}

/// Like [`try_with_capacity`], with a heavy barrier for the consumer's *light* wake-up
/// protocol: while it is on, the producer's notifying pushes ([`try_send`](Producer::try_send),
/// [`notify_consumer`](Producer::notify_consumer), the batch pushes) execute no fence, and the
/// consumer calls `barrier` each time it is about to sleep on an empty ring. The consumer
/// turns it on while it takes many items between sleeps (a busy stream, where the producer's
/// fence costs most) and keeps the fence while it sleeps every few items (a slow producer,
/// where a barrier per sleep would cost more); see [`HeavyBarrier`] for the contract, the
/// switching and the costs.
///
/// # Errors
/// As [`try_with_capacity`].
///
/// # Examples
/// ```
/// use aiothreads_core::ring::{self, HeavyBarrier};
///
/// // A barrier that keeps the contract on any system: a `SeqCst` fence on a ring whose
/// // producer and consumer are on the same thread. Real ones come from the OS (Linux
/// // `membarrier`); the `aiothreads` crate provides one.
/// let barrier = HeavyBarrier::new(|| std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst));
/// let (mut tx, mut rx) = ring::try_with_capacity_asymmetric::<u32>(8, barrier).unwrap();
/// futures::executor::block_on(async {
///     tx.try_send(7).unwrap();
///     assert_eq!(rx.recv().await, Some(7));
/// });
/// ```
pub fn try_with_capacity_asymmetric<T>(
    capacity: usize,
    barrier: HeavyBarrier,
) -> Result<(Producer<'static, T>, Consumer<'static, T>), CapacityError> {
    make(capacity, Some(barrier))
}

fn make<T>(
    capacity: usize,
    barrier: Option<HeavyBarrier>,
) -> Result<(Producer<'static, T>, Consumer<'static, T>), CapacityError> {
    if capacity == 0 || capacity > usize::MAX / 2 || Layout::array::<Slot<T>>(capacity).is_err() {
        return Err(CapacityError { capacity });
    }
    let pad = align_pad::<T>(capacity);
    let slots = capacity
        .checked_add(pad)
        .filter(|&n| Layout::array::<Slot<T>>(n).is_ok())
        .and_then(new_slots)
        .ok_or(CapacityError { capacity })?;
    let offset = align_offset::<T>(slots.as_ptr().addr(), pad);
    let mut header = Header::new();
    header.signals.0.heavy_barrier = barrier.map(HeavyBarrier::function);
    let storage = Arc::new(Storage {
        header,
        slots,
        offset,
        cap: capacity,
    });
    storage.header.reopen();
    // SAFETY: each half owns an `Arc` of the storage, which keeps the pointers of `raw` valid;
    // this is the only pair of halves made for it.
    Ok(unsafe { halves(|| storage.raw(), || Some(Arc::clone(&storage))) })
}

/// A ring with `capacity` slots on the heap, as `'static` halves.
///
/// # Panics
/// If `capacity` is 0, larger than `usize::MAX / 2`, makes the buffer larger than
/// `isize::MAX` bytes, or cannot be allocated (see [`try_with_capacity`]).
///
/// # Examples
/// ```
/// let (mut tx, mut rx) = aiothreads_core::ring::with_capacity::<String>(16);
/// tx.push("hi".into()).unwrap();
/// assert_eq!(rx.pop().unwrap(), "hi");
/// ```
pub fn with_capacity<T>(capacity: usize) -> (Producer<'static, T>, Consumer<'static, T>) {
    match try_with_capacity(capacity) {
        Ok(halves) => halves,
        Err(e) => panic!("{e}"),
    }
}

/// The capacity given to [`try_with_capacity`] is 0 or too large (also: too large for the
/// allocator).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CapacityError {
    capacity: usize,
}

impl CapacityError {
    /// The rejected capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl fmt::Debug for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapacityError")
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.capacity == 0 {
            f.write_str("ring capacity must be at least 1")
        } else {
            write!(f, "ring capacity {} is too large", self.capacity)
        }
    }
}

impl core::error::Error for CapacityError {}

#[cfg(all(test, not(aiothreads_loom)))]
mod tests {
    use super::{align_offset, align_pad, ALIGN};

    #[test]
    fn large_buffers_of_items_dividing_the_unit_are_padded() {
        assert_eq!(align_pad::<u64>(1024), ALIGN / 8 - 1);
        assert_eq!(align_pad::<u8>(1024), ALIGN - 1);
        // Too small to be worth it, items that do not divide 128 bytes, zero-sized items.
        assert_eq!(align_pad::<u64>(16), 0);
        assert_eq!(align_pad::<[u8; 24]>(1024), 0);
        assert_eq!(align_pad::<()>(1 << 20), 0);
    }

    #[test]
    fn the_offset_reaches_the_next_boundary_in_whole_slots() {
        // A malloc'ed buffer 16 bytes past a boundary: 14 slots of 8 bytes to the next one.
        assert_eq!(align_offset::<u64>(0x1010, 15), 14);
        assert_eq!((0x1010 + 14 * 8) % ALIGN, 0);
        // Already aligned, no padding, or no whole number of slots gets there.
        assert_eq!(align_offset::<u64>(0x1080, 15), 0);
        assert_eq!(align_offset::<u64>(0x1010, 0), 0);
        assert_eq!(align_offset::<[u8; 32]>(0x1010, 3), 0);
    }

    #[test]
    fn an_aligned_ring_starts_on_the_boundary_and_drops_its_items() {
        use core::sync::atomic::{AtomicUsize, Ordering};
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct Counted(#[allow(dead_code)] u64);
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::Relaxed);
            }
        }
        let (mut tx, rx) = super::with_capacity::<Counted>(1024);
        assert_eq!(tx.raw.slots.as_ptr().addr() % ALIGN, 0, "aligned ring");
        for i in 0..1024 {
            assert!(tx.push(Counted(i)).is_ok());
        }
        drop((tx, rx));
        assert_eq!(
            DROPS.load(Ordering::Relaxed),
            1024,
            "each item dropped once"
        );
    }
}
