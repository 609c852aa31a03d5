//! An unbounded, lock-free, single-producer single-consumer queue (feature `alloc`).
//!
//! [`channel`] returns an [`UnboundedProducer`] and an [`UnboundedConsumer`]: the unbounded
//! counterpart of the bounded [`ring`](crate::ring). The producer never waits and never fails
//! for lack of space: [`UnboundedProducer::push`] fails only once the queue is closed. The
//! consumer pops ([`UnboundedConsumer::pop`]), awaits ([`UnboundedConsumer::recv`], `Stream`)
//! or blocks a thread ([`UnboundedConsumer::pop_blocking`]). Both halves own an `Arc` of the
//! shared state, so they are `'static`; they are `Send` (when `T: Send`) but not `Sync`.
//!
//! Closing follows the ring's rules. Either half can [close](UnboundedProducer::close) the
//! queue, and dropping a half closes it. After a close the producer's pushes fail with
//! [`Closed`], handing the value back, and the consumer still receives every item pushed
//! before, then [`PopError::Closed`] (`None` from the async and blocking forms). Items still
//! queued when the last half goes are dropped then, exactly once, and every segment is freed.
//!
//! # Examples
//!
//! ```
//! use aiothreads_core::unbounded::{self, PopError};
//!
//! let (mut tx, mut rx) = unbounded::channel::<u32>();
//! for i in 0..1000 {
//!     tx.push(i).unwrap(); // never full
//! }
//! assert_eq!(rx.pop(), Ok(0));
//! drop(tx); // closes the queue
//! assert_eq!((1..1000).map(|_| rx.pop().unwrap()).last(), Some(999));
//! assert_eq!(rx.pop(), Err(PopError::Closed));
//! ```
//!
//! # Layout: a linked list of recycled segments
//!
//! Items live in *segments* of [`SEGMENT_LEN`] slots, linked into a list. The producer writes
//! into the last segment; when it is full, the producer links a new one behind it. The
//! consumer reads the first segment; once it has read it out and the next item is in the
//! following segment, it moves on and hands the drained segment back: into a one-place
//! *spare* mailbox if that is empty, else to the allocator. The producer takes the spare,
//! when there is one, before it allocates. A stream whose consumer keeps within one segment
//! of the producer therefore cycles through two segments and allocates nothing after the
//! second segment (the first is allocated by [`channel`]); a burst allocates as many
//! segments as it needs, and when the consumer catches up all but one spare go back to the
//! allocator, so an idle queue holds at most two segments.
//!
//! Why 64 slots per segment: the segment switch (a pointer chase, two plain stores and the
//! spare handoff, sometimes an allocation) is paid once every 64 items, under 2 % of the
//! per-item work; a segment of `u64` is half a KiB, and a 64-byte `T` makes a 4 KiB segment,
//! so an idle queue stays small even for large items, while a burst needs one allocation per
//! 64 items. (Under `cfg(aiothreads_loom)` a segment has 2 slots, so that the models cross
//! segments and recycle them.)
//!
//! # Cost per item
//!
//! - [`push`](UnboundedProducer::push): a Relaxed load of the `closed` flag, the slot write,
//!   a Release store of `tail`, a `SeqCst` fence and a Relaxed load of `rx_waiting`; no
//!   read-modify-write, no allocation. The wake (one `swap` and the waker call) only when
//!   the consumer waits. [`push_no_notify`](UnboundedProducer::push_no_notify) is the same
//!   without the fence and the flag.
//! - [`pop`](UnboundedConsumer::pop): the slot read and a Relaxed store of `head`; an Acquire
//!   load of `tail` only when the consumer's cached copy says empty. No read-modify-write.
//! - Once every [`SEGMENT_LEN`] items each side switches segments: the producer loads and
//!   clears the spare pointer (Acquire load, Relaxed store) and writes two `next` pointers;
//!   the consumer reads one `next` pointer and loads and fills the spare (Relaxed load,
//!   Release store). Still no read-modify-write. An allocation happens only when there is no
//!   spare (the consumer lags by more than a segment), a free only when the spare is full.
//!
//! A failed allocation aborts through `handle_alloc_error`, as `Vec::push` does.
//!
//! # Waking
//!
//! The producer never waits, so only the consumer is ever woken. A consumer that waits
//! ([`UnboundedConsumer::poll_recv`], `recv().await`, `pop_blocking`) is woken by
//! [`UnboundedProducer::push`], [`UnboundedProducer::notify_consumer`] and the producer's
//! close (or drop). [`UnboundedProducer::push_no_notify`] wakes nobody: push a batch with it,
//! then call `notify_consumer` once.
//!
//! # Memory ordering
//!
//! - `tail` (the count of pushed items, wrapping) is published with a Release store after
//!   the slot was written (and, for the first item of a segment, after the segment was
//!   linked); the consumer loads it with Acquire before reading the slot (or following the
//!   link). `head` is the consumer's count; it only feeds the producer's [`len`]
//!   snapshot, so it is stored and loaded Relaxed: the producer
//!   never reuses a slot because of `head`, only a segment handed over through the spare.
//! - The spare pointer is a mailbox for one segment: only the consumer fills it, and only
//!   when it saw it empty; only the producer empties it, and only when it saw it full. The
//!   consumer fills it with a Release store after its last reads of the segment (its slots
//!   and its `next`); the producer loads it with Acquire before writing the segment again.
//!   Neither side reads anything of the other through the other direction, so those
//!   accesses are Relaxed. A stale view costs at most a free and a later allocation, never a
//!   shared segment: a side can only overwrite the value the other side wrote last.
//! - Waiting is the ring's Dekker pair, one handshake for both (module `wake`): the consumer
//!   registers its waker, looks once more, sets `rx_waiting` (a `swap`), executes
//!   `fence(SeqCst)` and re-checks the queue; the producer publishes
//!   `tail`, executes `fence(SeqCst)` and loads `rx_waiting`. Either the consumer's re-check
//!   sees the item, or the producer sees the flag and wakes it.
//! - `closed` is stored by the producer with Release after its last `tail` store and loaded
//!   by the consumer with Acquire where it decides that an empty queue is finished; the
//!   producer's close then executes the same fence and wakes the consumer.
//!
//! [`len`]: UnboundedProducer::len

// The loom build compiles this module without the `alloc` feature (its models need `'static`
// halves), so it names the crate itself.
extern crate alloc;

use crate::wake::{Protocol, RxSide};
use alloc::boxed::Box;
use core::fmt;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};

use crate::sync::{
    fence, Arc, AtomicBool, AtomicPtr, AtomicUsize, AtomicWaker, CachePadded, Ordering, UnsafeCell,
};

mod future;

use crate::ring::HeavyBarrier;
pub use crate::ring::{Closed, PopError};
pub use future::Recv;

/// The number of slots in a segment: 64 (2 under `cfg(aiothreads_loom)`, so that the models
/// cross segment boundaries). See [the layout](self#layout-a-linked-list-of-recycled-segments).
///
/// # Examples
/// ```
/// assert!(aiothreads_core::unbounded::SEGMENT_LEN.is_power_of_two());
/// ```
#[cfg(not(aiothreads_loom))]
pub const SEGMENT_LEN: usize = 64;

/// The number of slots in a segment (2 in the loom build, so that the models cross
/// segment boundaries with a handful of items).
#[cfg(aiothreads_loom)]
pub const SEGMENT_LEN: usize = 2;

// Positions wrap at `usize::MAX + 1`; a power of two keeps `pos % SEGMENT_LEN` continuous
// across that wrap, so positions never need resetting.
const _: () = assert!(SEGMENT_LEN.is_power_of_two());

/// One slot: initialised exactly when its position is in `head .. tail`.
type Slot<T> = UnsafeCell<MaybeUninit<T>>;

/// A fixed-size piece of the queue, on the heap.
struct Segment<T> {
    /// The segment after this one, null until the producer links one. The producer writes it
    /// (a) to null when it takes the segment for itself (fresh or from the spare), and (b) to
    /// the next segment before the Release store of `tail` that publishes the first item of
    /// that next segment. The consumer reads it only after its Acquire load of `tail` showed
    /// that item, and before it hands the segment back through the spare (Release).
    next: UnsafeCell<*mut Segment<T>>,
    /// The slots; slot `i` holds the position `p` of this segment with `p % SEGMENT_LEN == i`.
    slots: [Slot<T>; SEGMENT_LEN],
}

impl<T> Segment<T> {
    /// A fresh segment on the heap: `next` null, every slot vacant. Built in place (no
    /// `SEGMENT_LEN * size_of::<T>()` bytes on the stack). Aborts through `handle_alloc_error`
    /// if the allocator fails.
    #[cfg(not(aiothreads_loom))]
    fn allocate() -> NonNull<Self> {
        let mut segment = Box::<Self>::new_uninit();
        // SAFETY: the pointer is to the box's allocation, which is valid for writes and
        // aligned for `Segment<T>`; `addr_of_mut!` makes no reference to uninitialised memory.
        unsafe {
            ptr::addr_of_mut!((*segment.as_mut_ptr()).next).write(UnsafeCell::new(ptr::null_mut()));
        }
        // SAFETY: `next` was initialised above; the slots are `UnsafeCell<MaybeUninit<T>>`
        // (our `UnsafeCell` is `repr(transparent)`), which has no validity invariant.
        let segment = unsafe { segment.assume_init() };
        NonNull::from(Box::leak(segment))
    }

    /// A fresh segment on the heap (loom build: each loom cell must be constructed).
    #[cfg(aiothreads_loom)]
    fn allocate() -> NonNull<Self> {
        let segment = Box::new(Self {
            next: UnsafeCell::new(ptr::null_mut()),
            slots: core::array::from_fn(|_| UnsafeCell::new(MaybeUninit::uninit())),
        });
        NonNull::from(Box::leak(segment))
    }

    /// Gives the segment back to the allocator. Its slots are not dropped.
    ///
    /// # Safety
    /// `segment` came from [`Segment::allocate`], is not freed yet, and nobody uses it any
    /// more (its live items, if any, were moved out or dropped).
    unsafe fn free(segment: NonNull<Self>) {
        // SAFETY: allocated as a `Box<Self>` and leaked; the caller hands us ownership.
        drop(unsafe { Box::from_raw(segment.as_ptr()) });
    }

    /// The segment linked after `segment`, or null.
    ///
    /// # Safety
    /// `segment` is live, and the last write of its `next` happens before this read (see the
    /// field's docs).
    unsafe fn next(segment: NonNull<Self>) -> *mut Self {
        // SAFETY: the segment is live (caller contract).
        let segment = unsafe { segment.as_ref() };
        // SAFETY: no write of `next` races with this read (caller contract).
        segment.next.with(|p| unsafe { *p })
    }

    /// Sets `segment`'s `next` to `next`.
    ///
    /// # Safety
    /// Only the producer calls this, on a segment it owns (fresh, from the spare, or its
    /// current one, whose `next` the consumer reads only after a later `tail` publication).
    unsafe fn set_next(segment: NonNull<Self>, next: *mut Self) {
        // SAFETY: the segment is live (caller contract).
        let segment = unsafe { segment.as_ref() };
        // SAFETY: no other access of `next` races with this write (caller contract).
        segment.next.with_mut(|p| unsafe { *p = next });
    }
}

/// A position in the list: the segment that holds it, or, when `pos == end`, the segment
/// just before it (the next one may not be linked yet).
struct Cursor<T> {
    /// The current segment; live while the cursor is in use.
    segment: NonNull<Segment<T>>,
    /// The position (a count of items, wrapping).
    pos: usize,
    /// The first position after `segment` (wrapping). Invariant: `end - pos` (wrapping) is in
    /// `0 ..= SEGMENT_LEN`; 0 means that `pos` belongs to the next segment.
    end: usize,
}

impl<T> Clone for Cursor<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Cursor<T> {}

impl<T> Cursor<T> {
    /// Position 0 in `segment`.
    fn new(segment: NonNull<Segment<T>>) -> Self {
        Self {
            segment,
            pos: 0,
            end: SEGMENT_LEN,
        }
    }

    /// The slot of `pos` in the current segment.
    ///
    /// # Safety
    /// `pos != end` (so `pos` is inside `segment`), and `segment` is live.
    #[inline(always)]
    unsafe fn slot(&self) -> &Slot<T> {
        debug_assert!(self.end.wrapping_sub(self.pos) <= SEGMENT_LEN && self.pos != self.end);
        // SAFETY: the segment is live (caller contract); the index is below `SEGMENT_LEN`.
        unsafe { &self.segment.as_ref().slots[self.pos % SEGMENT_LEN] }
    }

    /// Moves to the segment after the current one, which must be linked; returns the one
    /// left behind.
    ///
    /// # Safety
    /// `pos == end`, and the write of the current segment's `next` happens before this call.
    #[inline(never)]
    unsafe fn enter_next(&mut self) -> NonNull<Segment<T>> {
        debug_assert_eq!(self.pos, self.end);
        let old = self.segment;
        // SAFETY: forwarded caller contract.
        let next = unsafe { Segment::next(old) };
        self.segment = NonNull::new(next)
            .expect("an item past a segment's end implies that the producer linked the next");
        self.end = self.end.wrapping_add(SEGMENT_LEN);
        old
    }
}

/// The state shared by the two halves (through an `Arc`).
struct Shared<T> {
    /// Producer position: the number of items ever pushed (wrapping). Written only by the
    /// producer (Release, after the slot was written); read by the consumer (Acquire) when its
    /// cached copy says empty.
    tail: CachePadded<AtomicUsize>,
    /// Consumer position: the number of items ever popped (wrapping). Written only by the
    /// consumer; read only for [`UnboundedProducer::len`]. Relaxed both ways (see [Memory
    /// ordering](self#memory-ordering)).
    head: CachePadded<AtomicUsize>,
    /// Segment recycling, touched once per segment by each side.
    recycling: CachePadded<Recycling<T>>,
    /// Read-mostly flags and the consumer's waker.
    signals: CachePadded<Signals>,
    /// The consumer's cursor as of its drop (initially position 0 in the first segment).
    /// Written by `channel` and by the consumer's `Drop`, read by `Shared`'s `Drop`; the `Arc`
    /// orders these, nothing else touches it.
    consumer_cursor: UnsafeCell<Cursor<T>>,
}

/// The spare segment and the allocation count.
struct Recycling<T> {
    /// Null or a drained segment that nobody references, on its way from the consumer to the
    /// producer (a one-place mailbox: see [Memory ordering](self#memory-ordering)).
    spare: AtomicPtr<Segment<T>>,
    /// Segments allocated so far, the first one included. Written only by the producer
    /// (load + store, no RMW), Relaxed: a statistic that orders nothing.
    allocated: AtomicUsize,
}

/// Closing and waiting state.
struct Signals {
    /// Set by either half's `close` (or drop); never cleared.
    closed: AtomicBool,
    /// The consumer waits for items: set by `poll_recv` before its fence, cleared by the
    /// producer's `swap` that decides to wake it (or by the consumer's successful re-check).
    rx_waiting: AtomicBool,
    /// The light protocol is on (`ring/barrier.rs`): the producer may skip its fence per item.
    /// Written only by the consumer (`wake::Protocol`); stays `false` without a heavy barrier.
    rx_light: AtomicBool,
    /// The waiting consumer's waker.
    rx_waker: AtomicWaker,
    /// The consumer's heavy barrier for the light wake-up protocol (see [`HeavyBarrier`]), or
    /// `None` for the fence pair only. Set by the constructor, never changed.
    heavy_barrier: Option<fn()>,
}

impl Signals {
    /// The consumer's half of the wake-up handshake (`crate::wake`).
    #[inline(always)]
    fn rx_side(&self) -> RxSide<'_> {
        RxSide {
            waker: &self.rx_waker,
            waiting: &self.rx_waiting,
            light: Some(&self.rx_light),
            heavy_barrier: self.heavy_barrier,
        }
    }
}

impl<T> Shared<T> {
    /// Takes the spare segment, if there is one.
    #[inline]
    fn take_spare(&self) -> Option<NonNull<Segment<T>>> {
        let r = &self.recycling;
        // Acquire: pairs with the consumer's Release store in `recycle`; its reads of the
        // segment happen before our writes to it.
        let spare = NonNull::new(r.spare.load(Ordering::Acquire))?;
        // Relaxed: we publish nothing through the emptied mailbox; the consumer only needs to
        // see it empty eventually (until then it frees instead of recycling).
        r.spare.store(ptr::null_mut(), Ordering::Relaxed);
        Some(spare)
    }

    /// Hands a drained segment to the producer through the spare, or frees it if the spare
    /// is taken.
    ///
    /// # Safety
    /// Only the consumer calls this, with a segment whose slots it has all read out, which
    /// neither half references any more.
    #[inline]
    unsafe fn recycle(&self, segment: NonNull<Segment<T>>) {
        let r = &self.recycling;
        // Relaxed: only we fill the mailbox, so a null seen here stays null until our store;
        // we read nothing of the producer's through it.
        if r.spare.load(Ordering::Relaxed).is_null() {
            // Release: pairs with the producer's Acquire load in `take_spare`; our reads of
            // the segment's slots and `next` happen before it writes them again.
            r.spare.store(segment.as_ptr(), Ordering::Release);
        } else {
            // SAFETY: the segment is unreferenced (caller contract).
            unsafe { Segment::free(segment) };
        }
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // `&mut self`: both halves are gone; the `Arc` count ordered their last accesses
        // before this, so Relaxed loads and plain cell reads see their final values.
        // SAFETY: nothing else accesses the cell (exclusive access).
        let consumer = self.consumer_cursor.with(|p| unsafe { *p });
        let tail = self.tail.load(Ordering::Relaxed);
        if core::mem::needs_drop::<T>() {
            let mut cursor = consumer;
            while cursor.pos != tail {
                if cursor.pos == cursor.end {
                    // SAFETY: an item exists at `end`, so the producer linked the next segment.
                    unsafe { cursor.enter_next() };
                }
                // SAFETY: `pos` is in `head .. tail`: its slot is initialised, and nobody else
                // uses it; the item is dropped once, here.
                unsafe { cursor.slot().with_mut(|p| (*p).assume_init_drop()) };
                cursor.pos = cursor.pos.wrapping_add(1);
            }
        }
        // The list runs from the consumer's segment to the producer's, whose `next` is null
        // (the producer clears it when it takes a segment). The spare is not in the list.
        let mut segment = Some(consumer.segment);
        while let Some(current) = segment {
            // SAFETY: live list segment; exclusive access.
            segment = NonNull::new(unsafe { Segment::next(current) });
            // SAFETY: in the list, so allocated and not freed; nothing uses it any more.
            unsafe { Segment::free(current) };
        }
        if let Some(spare) = NonNull::new(self.recycling.spare.load(Ordering::Relaxed)) {
            // SAFETY: the spare is unreferenced and drained; exclusive access.
            unsafe { Segment::free(spare) };
        }
    }
}

/// Makes a new, empty, open unbounded queue and returns its two halves. Allocates the first
/// segment (the only allocation until more than [`SEGMENT_LEN`] items are queued).
///
/// # Examples
///
/// ```
/// use aiothreads_core::unbounded;
///
/// let (mut tx, mut rx) = unbounded::channel::<String>();
/// std::thread::spawn(move || {
///     for word in ["never", "full"] {
///         tx.push(word.to_string()).unwrap();
///     }
/// });
/// let words: Vec<String> = futures::executor::block_on_stream(rx).collect();
/// assert_eq!(words, ["never", "full"]);
/// ```
pub fn channel<T>() -> (UnboundedProducer<T>, UnboundedConsumer<T>) {
    make(None)
}

/// Like [`channel`], with a heavy barrier for the consumer's light wake-up protocol, as the
/// ring's [`try_with_capacity_asymmetric`](crate::ring::try_with_capacity_asymmetric): while
/// the consumer has it on, the producer's [`push`](UnboundedProducer::push) and
/// [`notify_consumer`](UnboundedProducer::notify_consumer) execute no fence, and the consumer
/// calls `barrier` each time it is about to sleep. See [`HeavyBarrier`] for the contract, the
/// switching and the costs.
///
/// # Examples
/// ```
/// use aiothreads_core::{ring::HeavyBarrier, unbounded};
/// use std::sync::atomic::{fence, Ordering};
///
/// // Keeps the contract here: producer and consumer are the same thread.
/// let barrier = HeavyBarrier::new(|| fence(Ordering::SeqCst));
/// let (mut tx, mut rx) = unbounded::channel_asymmetric::<u8>(barrier);
/// tx.push(3).unwrap();
/// assert_eq!(futures::executor::block_on(rx.recv()), Some(3));
/// ```
pub fn channel_asymmetric<T>(
    barrier: HeavyBarrier,
) -> (UnboundedProducer<T>, UnboundedConsumer<T>) {
    make(Some(barrier.function()))
}

fn make<T>(heavy_barrier: Option<fn()>) -> (UnboundedProducer<T>, UnboundedConsumer<T>) {
    crate::sync::detect_prefetch();
    let first = Segment::allocate();
    let cursor = Cursor::new(first);
    let shared = Arc::new(Shared {
        tail: CachePadded(AtomicUsize::new(0)),
        head: CachePadded(AtomicUsize::new(0)),
        recycling: CachePadded(Recycling {
            spare: AtomicPtr::new(ptr::null_mut()),
            allocated: AtomicUsize::new(1),
        }),
        signals: CachePadded(Signals {
            closed: AtomicBool::new(false),
            rx_waiting: AtomicBool::new(false),
            rx_light: AtomicBool::new(false),
            rx_waker: AtomicWaker::new(),
            heavy_barrier,
        }),
        consumer_cursor: UnsafeCell::new(cursor),
    });
    (
        UnboundedProducer {
            shared: Arc::clone(&shared),
            cursor,
        },
        UnboundedConsumer {
            shared,
            cursor,
            cached_tail: 0,
            last_point: 0,
            protocol: Protocol::new(),
        },
    )
}

/// The writing half of an unbounded queue. See the [module docs](self).
///
/// `Send` when `T: Send`, not `Sync`:
///
/// ```compile_fail
/// fn assert_sync<S: Sync>() {}
/// assert_sync::<aiothreads_core::unbounded::UnboundedProducer<u32>>();
/// ```
pub struct UnboundedProducer<T> {
    shared: Arc<Shared<T>>,
    /// Own position (ahead of the shared `tail` only between a write and its publication) and
    /// the last segment of the list.
    cursor: Cursor<T>,
}

// SAFETY: the producer moves `T` values into the queue for the consumer's thread (hence
// `T: Send`); its segment pointer refers to a segment kept alive by the shared state it owns
// an `Arc` of, and all state it shares is atomics or memory it owns by the SPSC protocol.
unsafe impl<T: core::marker::Send> core::marker::Send for UnboundedProducer<T> {}

impl<T> UnboundedProducer<T> {
    /// Pushes `value` and wakes the consumer if it waits. Never full; lock-free, and
    /// wait-free apart from the allocator (one allocation per [`SEGMENT_LEN`] items at most,
    /// none while the consumer keeps within a segment of the producer).
    ///
    /// # Errors
    /// `Err(Closed(value))` if either half closed the queue.
    ///
    /// # Examples
    /// ```
    /// use aiothreads_core::unbounded::{self, Closed};
    ///
    /// let (mut tx, rx) = unbounded::channel();
    /// assert_eq!(tx.push(1), Ok(()));
    /// drop(rx);
    /// assert_eq!(tx.push(2), Err(Closed(2)));
    /// ```
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), Closed<T>> {
        // Cost: `push_no_notify`, then a SeqCst fence and a Relaxed load (a swap and the wake
        // only when the consumer waits).
        self.push_no_notify(value)?;
        self.notify_consumer();
        Ok(())
    }

    /// Pushes `value` without waking anybody (see [Waking](self#waking)); call
    /// [`notify_consumer`](Self::notify_consumer) after a batch.
    ///
    /// # Errors
    /// `Err(Closed(value))` if either half closed the queue.
    ///
    /// # Examples
    /// ```
    /// use aiothreads_core::unbounded;
    ///
    /// let (mut tx, mut rx) = unbounded::channel();
    /// for i in 0..100 {
    ///     tx.push_no_notify(i).unwrap();
    /// }
    /// tx.notify_consumer(); // one wake-up check for the whole batch
    /// assert_eq!(rx.len(), 100);
    /// ```
    #[inline]
    pub fn push_no_notify(&mut self, value: T) -> Result<(), Closed<T>> {
        // Cost: a Relaxed load of the read-mostly `closed` flag, the slot write, a Release
        // store of `tail`; no RMW, no fence. Every SEGMENT_LEN pushes `link_segment`.
        if self.shared.signals.closed.load(Ordering::Relaxed) {
            return Err(Closed(value));
        }
        if self.cursor.pos == self.cursor.end {
            self.link_segment();
        }
        // SAFETY: `pos != end`, so the slot is in our current segment, which the list keeps
        // alive. It is vacant: the segment is fresh or was drained before the consumer gave it
        // back (Release/Acquire through the spare), we fill each slot once per lap, and the
        // consumer reads it only after our `tail` store below.
        unsafe {
            self.cursor.slot().with_mut(|p| (*p).write(value));
        }
        self.cursor.pos = self.cursor.pos.wrapping_add(1);
        // Release: pairs with the consumer's Acquire load of `tail`; the slot write (and the
        // link of a new segment) happens before the consumer reads it.
        self.shared.tail.store(self.cursor.pos, Ordering::Release);
        Ok(())
    }

    /// The current segment is full: takes the spare (or allocates a segment) and links it
    /// behind the current one.
    #[cold]
    #[inline(never)]
    fn link_segment(&mut self) {
        let next = match self.shared.take_spare() {
            Some(spare) => spare,
            None => {
                let r = &self.shared.recycling;
                // Load + store: only the producer writes the count.
                let allocated = r.allocated.load(Ordering::Relaxed);
                r.allocated.store(allocated + 1, Ordering::Relaxed);
                Segment::allocate()
            }
        };
        // SAFETY: `next` is ours alone (fresh, or taken out of the spare after the consumer
        // let go of it), so clearing its stale `next` races with nothing. Our current segment
        // is the last of the list: the consumer reads its `next` only after seeing a `tail`
        // past `end`, which we publish after this link.
        unsafe {
            Segment::set_next(next, ptr::null_mut());
            Segment::set_next(self.cursor.segment, next.as_ptr());
        }
        self.cursor.segment = next;
        self.cursor.end = self.cursor.end.wrapping_add(SEGMENT_LEN);
    }

    /// Wakes the consumer if it waits for items. Call it after
    /// [`push_no_notify`](Self::push_no_notify); [`push`](Self::push) calls it itself.
    ///
    /// Cost: a `SeqCst` fence and a Relaxed load; plus a `swap` and the wake only when the
    /// consumer is waiting.
    ///
    /// # Examples
    /// ```
    /// let (mut tx, _rx) = aiothreads_core::unbounded::channel();
    /// tx.push_no_notify(1u8).unwrap();
    /// tx.notify_consumer();
    /// ```
    #[inline]
    pub fn notify_consumer(&self) {
        // The producer's side of the shared handshake (`crate::wake`): a fence (or, with a
        // heavy barrier, a compiler fence) and the load of the consumer's flag.
        self.shared.signals.rx_side().notify();
    }

    /// The number of items queued (an upper bound: the consumer may pop at any time, and its
    /// count is read Relaxed, so it may be slightly behind).
    ///
    /// # Examples
    /// ```
    /// let (mut tx, mut rx) = aiothreads_core::unbounded::channel();
    /// tx.push('a').unwrap();
    /// tx.push('b').unwrap();
    /// assert_eq!(tx.len(), 2);
    /// rx.pop().unwrap();
    /// assert_eq!(tx.len(), 1); // same thread: the pop is visible
    /// ```
    pub fn len(&self) -> usize {
        // Relaxed: a snapshot; `head` never passes our `tail`, so the difference is exact or
        // larger than the truth, never negative.
        let head = self.shared.head.load(Ordering::Relaxed);
        self.cursor.pos.wrapping_sub(head)
    }

    /// `true` if [`len`](Self::len) is 0 (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `true` once either half closed the queue (the consumer left, or
    /// [`close`](Self::close) was called).
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = aiothreads_core::unbounded::channel::<u8>();
    /// assert!(!tx.is_closed());
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        // Relaxed: a snapshot; the flag carries nothing the producer then reads.
        self.shared.signals.closed.load(Ordering::Relaxed)
    }

    /// Closes the queue: later pushes fail with `Closed`; the consumer receives the items
    /// already pushed, then the end. Wakes the consumer. Idempotent; dropping the producer
    /// closes too.
    ///
    /// # Examples
    /// ```
    /// use aiothreads_core::unbounded::{self, PopError};
    ///
    /// let (mut tx, mut rx) = unbounded::channel();
    /// tx.push(1).unwrap();
    /// tx.close();
    /// assert!(tx.push(2).is_err());
    /// assert_eq!(rx.pop(), Ok(1));
    /// assert_eq!(rx.pop(), Err(PopError::Closed));
    /// ```
    pub fn close(&mut self) {
        close_for_consumer(&self.shared);
    }

    /// A handle that closes the queue from any thread, without the producer: see
    /// [`UnboundedCloser`].
    ///
    /// # Examples
    /// ```
    /// let (mut tx, mut rx) = aiothreads_core::unbounded::channel::<u8>();
    /// let closer = tx.closer();
    /// tx.push(1).unwrap();
    /// std::thread::spawn(move || closer.close()).join().unwrap();
    /// assert!(tx.push(2).is_err());
    /// assert_eq!(rx.pop(), Ok(1));
    /// assert!(rx.pop().is_err());
    /// ```
    pub fn closer(&self) -> UnboundedCloser<T> {
        UnboundedCloser {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Segments allocated by this queue so far, the first one included (a statistic for
    /// tests of the recycling; not part of the stable API).
    #[doc(hidden)]
    pub fn segments_allocated(&self) -> usize {
        self.shared.recycling.allocated.load(Ordering::Relaxed)
    }
}

/// The producer's close: the flag, then the consumer's wake-up. Also [`UnboundedCloser`]'s.
fn close_for_consumer<T>(shared: &Shared<T>) {
    let s = &shared.signals;
    // Release: the producer's `tail` stores (when the producer closes) happen before whatever
    // sees the flag with Acquire (`finished`), so an empty queue seen after the flag is empty
    // for good.
    s.closed.store(true, Ordering::Release);
    // Pairs with the fence of `poll_recv`: either the consumer's re-check sees `closed`, or its
    // waker is registered by now and woken here.
    fence(Ordering::SeqCst);
    s.rx_waker.wake();
}

/// Closes an unbounded queue from any thread: a `Send + Sync + Clone` handle made by
/// [`UnboundedProducer::closer`], the counterpart of the ring's
/// [`Closer`](crate::ring::Closer).
///
/// [`close`](Self::close) has the effect of the producer's own close: later pushes fail with
/// `Closed`, the consumer receives the items already pushed, then the end. It touches only
/// the `closed` flag and the consumer's waker cell, never a slot, a segment or a position,
/// so closing beside a producer that pushes is sound (the consumer may close at any time
/// too). As with the ring's handle, a push running on another thread at the same moment is
/// not ordered against the close: it may succeed after the consumer saw the end, and its item
/// is then dropped with the queue, exactly once. The handle keeps the queue's memory alive.
///
/// # Examples
/// ```
/// let (tx, rx) = aiothreads_core::unbounded::channel::<u8>();
/// let closer = tx.closer();
/// assert!(!closer.is_closed());
/// drop(rx);
/// assert!(closer.is_closed());
/// ```
pub struct UnboundedCloser<T> {
    shared: Arc<Shared<T>>,
}

// SAFETY: through the handle only the shared atomics and the waker cell are used (all `Sync`),
// never a slot or a segment. Its `Arc` may be the last one and then drops the items left in
// the queue on the thread that drops the handle, hence `T: Send`; no `&T` is ever formed
// through it, so `T: Sync` is not needed.
unsafe impl<T: core::marker::Send> core::marker::Send for UnboundedCloser<T> {}
// SAFETY: as for `Send`: `&UnboundedCloser` reaches only atomics and the waker cell.
unsafe impl<T: core::marker::Send> Sync for UnboundedCloser<T> {}

impl<T> UnboundedCloser<T> {
    /// Closes the queue and wakes the consumer. Idempotent; never waits.
    pub fn close(&self) {
        close_for_consumer(&self.shared);
    }

    /// Whether either half (or a closer) closed the queue.
    pub fn is_closed(&self) -> bool {
        // Relaxed: a snapshot, like the halves' `is_closed`.
        self.shared.signals.closed.load(Ordering::Relaxed)
    }
}

impl<T> Clone for UnboundedCloser<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for UnboundedCloser<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnboundedCloser")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> Drop for UnboundedProducer<T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T> fmt::Debug for UnboundedProducer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnboundedProducer")
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// The reading half of an unbounded queue. See the [module docs](self).
///
/// `Send` when `T: Send`, not `Sync`:
///
/// ```compile_fail
/// fn assert_sync<S: Sync>() {}
/// assert_sync::<aiothreads_core::unbounded::UnboundedConsumer<u32>>();
/// ```
pub struct UnboundedConsumer<T> {
    shared: Arc<Shared<T>>,
    /// Own position (equal to the shared `head` between calls) and the first segment of the
    /// list.
    cursor: Cursor<T>,
    /// Last `tail` seen; the real tail is never behind it.
    cached_tail: usize,
    /// The position at the last barrier point (wrapping): what the light protocol is judged
    /// by (see `wake::Protocol`).
    last_point: usize,
    /// The wake-up protocol in use, for a queue with a heavy barrier (`ring/barrier.rs`).
    protocol: Protocol,
}

// SAFETY: the consumer moves `T` values out of the queue on its thread (hence `T: Send`); its
// segment pointer refers to a segment kept alive by the shared state it owns an `Arc` of, and
// all state it shares is atomics or memory it owns by the SPSC protocol.
unsafe impl<T: core::marker::Send> core::marker::Send for UnboundedConsumer<T> {}

impl<T> UnboundedConsumer<T> {
    /// A barrier point of the wake-up handshake (`wake::wait_or_take`): picks the protocol
    /// from the items popped since the previous one; returns whether to run the heavy barrier.
    fn barrier_point(&mut self) -> bool {
        let items = self.cursor.pos.wrapping_sub(self.last_point);
        self.last_point = self.cursor.pos;
        self.protocol.choose(items, &self.shared.signals.rx_side())
    }

    /// Whether the light wake-up protocol is on (the producer skips its per-item fence; see
    /// `ring/barrier.rs`). Always `false` for a queue without a heavy barrier. For tests and
    /// diagnostics.
    #[doc(hidden)]
    pub fn is_light_protocol(&self) -> bool {
        self.protocol.is_light()
    }

    /// Pops the oldest item. Lock-free; wait-free apart from the allocator (handing back a
    /// drained segment may free one when the spare is taken).
    ///
    /// # Errors
    /// [`PopError::Empty`] if no item is available, [`PopError::Closed`] if the queue is
    /// empty and closed (no item will ever come).
    ///
    /// # Examples
    /// ```
    /// use aiothreads_core::unbounded::{self, PopError};
    ///
    /// let (mut tx, mut rx) = unbounded::channel();
    /// assert_eq!(rx.pop(), Err(PopError::Empty));
    /// tx.push(7).unwrap();
    /// assert_eq!(rx.pop(), Ok(7));
    /// ```
    #[inline]
    pub fn pop(&mut self) -> Result<T, PopError> {
        // Cost: an Acquire load of `tail` only when the cached tail says empty, the slot read,
        // a Relaxed store of `head`; on x86_64 two compares and a prefetch of a published slot
        // two cache lines ahead; no RMW, no fence. Every SEGMENT_LEN pops `enter_next` and
        // `recycle`.
        self.ready()?;
        // SAFETY: `ready` established `pos != tail` and `pos != end`: the slot is in our
        // segment, initialised (published by the producer's Release store of `tail`, which
        // we loaded with Acquire), and the producer does not write it again before we hand
        // the segment back.
        let value = unsafe { self.cursor.slot().with(|p| (*p).assume_init_read()) };
        self.prefetch_ahead();
        self.cursor.pos = self.cursor.pos.wrapping_add(1);
        // Relaxed: `head` only feeds `UnboundedProducer::len` (see Memory ordering).
        self.shared.head.store(self.cursor.pos, Ordering::Relaxed);
        Ok(value)
    }

    /// Asks the CPU to start loading the slot two cache lines ahead, once per cache line of
    /// slots, when it is published and in the current segment (as the ring's consumer does;
    /// `sync::prefetch`). Cost per item: a compare on the position; once per line two more
    /// and one prefetch instruction. x86_64 and AMD only, as in the ring
    /// (`sync::prefetch_pays`).
    #[inline(always)]
    fn prefetch_ahead(&self) {
        let ahead = crate::sync::prefetch_ahead::<T>();
        let pos = self.cursor.pos;
        if crate::sync::PREFETCHES
            && ahead > 0
            && pos.is_multiple_of(crate::sync::items_per_line::<T>())
            && self.cached_tail.wrapping_sub(pos) > ahead + crate::sync::line_span::<T>()
            && self.cursor.end.wrapping_sub(pos) > ahead
            && crate::sync::prefetch_pays()
        {
            // `pos + ahead` is inside the current segment, which is live, and its whole line
            // is published (as in the ring: never pull a line the producer is still writing).
            // SAFETY: the cursor's segment is live while the consumer uses it (field
            // invariant); only the slot's address is taken, nothing is read.
            let slots = unsafe { &self.cursor.segment.as_ref().slots };
            crate::sync::prefetch(&slots[pos.wrapping_add(ahead) % SEGMENT_LEN]);
        }
    }

    /// A reference to the oldest item, without popping it.
    ///
    /// # Errors
    /// As for [`pop`](Self::pop).
    ///
    /// # Examples
    /// ```
    /// let (mut tx, mut rx) = aiothreads_core::unbounded::channel();
    /// tx.push(3).unwrap();
    /// assert_eq!(rx.peek(), Ok(&3));
    /// assert_eq!(rx.pop(), Ok(3));
    /// ```
    pub fn peek(&mut self) -> Result<&T, PopError> {
        self.ready()?;
        // SAFETY: as in `pop`; `&mut self` is borrowed for the reference's lifetime, so the
        // consumer cannot move past the slot (or give its segment back) while it lives.
        Ok(unsafe { self.cursor.slot().with(|p| (*p).assume_init_ref()) })
    }

    /// `Ok` if an item is available at `pos`; then also `pos != end` (the cursor entered the
    /// segment that holds it).
    #[inline(always)]
    fn ready(&mut self) -> Result<(), PopError> {
        if self.cursor.pos == self.cached_tail {
            // Acquire: pairs with the producer's Release store of `tail`.
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
            if self.cursor.pos == self.cached_tail {
                self.cached_tail = finished(&self.shared, self.cursor.pos)?;
            }
        }
        if self.cursor.pos == self.cursor.end {
            self.next_segment();
        }
        Ok(())
    }

    /// Enters the next segment and hands the drained one back.
    #[cold]
    #[inline(never)]
    fn next_segment(&mut self) {
        // SAFETY: `pos == end` and an item at `pos` is published (`pos != tail`): the
        // producer linked the next segment before its Release store of `tail`, which we
        // loaded with Acquire.
        let drained = unsafe { self.cursor.enter_next() };
        // SAFETY: we read every slot of `drained` (the cursor passed its end); the producer's
        // cursor is in a later segment, and ours has moved on: nobody references it.
        unsafe { self.shared.recycle(drained) };
    }

    /// The number of items available now (a lower bound: the producer may push at any time).
    ///
    /// # Examples
    /// ```
    /// let (mut tx, rx) = aiothreads_core::unbounded::channel();
    /// tx.push(()).unwrap();
    /// assert_eq!(rx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        // Acquire: pairs with the producer's Release store of `tail` (a snapshot; Acquire
        // keeps it consistent with what a following `pop` sees).
        let tail = self.shared.tail.load(Ordering::Acquire);
        tail.wrapping_sub(self.cursor.pos)
    }

    /// `true` if no item is available right now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `true` once either half closed the queue. Items pushed before may still be available.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = aiothreads_core::unbounded::channel::<u8>();
    /// drop(tx);
    /// assert!(rx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        // Relaxed: a snapshot; `pop` re-reads the flag with Acquire before it reports the end.
        self.shared.signals.closed.load(Ordering::Relaxed)
    }

    /// Closes the queue: the producer's later pushes fail with `Closed`, handing the value
    /// back. Items already queued can still be popped. Idempotent; dropping the consumer
    /// closes too.
    ///
    /// # Examples
    /// ```
    /// let (mut tx, mut rx) = aiothreads_core::unbounded::channel();
    /// tx.push(1).unwrap();
    /// rx.close();
    /// assert!(tx.push(2).is_err());
    /// assert_eq!(rx.pop(), Ok(1));
    /// ```
    pub fn close(&mut self) {
        // Relaxed: the producer only stops pushing when it sees the flag; it reads nothing of
        // ours through it. (The producer never waits, so there is nobody to wake.)
        self.shared.signals.closed.store(true, Ordering::Relaxed);
    }

    /// Segments allocated by this queue so far, the first one included (a statistic for
    /// tests of the recycling; not part of the stable API).
    #[doc(hidden)]
    pub fn segments_allocated(&self) -> usize {
        self.shared.recycling.allocated.load(Ordering::Relaxed)
    }
}

/// The queue looked empty at `pos`: is it closed for good? Returns the tail to cache if an item
/// arrived meanwhile.
#[cold]
fn finished<T>(shared: &Shared<T>, pos: usize) -> Result<usize, PopError> {
    if !shared.signals.closed.load(Ordering::Acquire) {
        return Err(PopError::Empty);
    }
    // The Acquire above pairs with the Release store of `closed` in the producer's `close`:
    // if the producer closed, its last `tail` store is visible to this reload.
    let tail = shared.tail.load(Ordering::Acquire);
    if tail != pos {
        Ok(tail)
    } else {
        Err(PopError::Closed)
    }
}

impl<T> Drop for UnboundedConsumer<T> {
    fn drop(&mut self) {
        self.close();
        let cursor = self.cursor;
        // SAFETY: only `channel`, this drop and `Shared`'s drop access the cell; `Shared` is
        // dropped after us (we still hold an `Arc`), and the `Arc` count orders our write
        // before its read.
        self.shared
            .consumer_cursor
            .with_mut(|p| unsafe { *p = cursor });
    }
}

impl<T> fmt::Debug for UnboundedConsumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnboundedConsumer")
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}
