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
    /// `cap` slots; slot `i` is initialised exactly when some position in `head .. tail` maps
    /// to it.
    slots: Box<[Slot<T>]>,
}

impl<T> Storage<T> {
    fn raw(&self) -> Raw<T> {
        let slots =
            NonNull::new(self.slots.as_ptr().cast_mut()).expect("Box pointers are non-null");
        // SAFETY: header and slots live as long as the storage, which the halves keep alive
        // through their `Arc`; `try_with_capacity` creates the only pair of halves.
        unsafe { Raw::new(NonNull::from(&self.header), slots, self.slots.len()) }
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
    let slots = new_slots(capacity).ok_or(CapacityError { capacity })?;
    let mut header = Header::new();
    header.signals.0.heavy_barrier = barrier.map(HeavyBarrier::function);
    let storage = Arc::new(Storage { header, slots });
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
