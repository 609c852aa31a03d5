//! A bounded, lock-free, single-producer single-consumer ring.
//!
//! [`Ring<T, N>`] keeps its `N` slots inline and has a `const fn new`, so it can live in a
//! `static` and be split once with [`Ring::try_split`] (firmware, interrupt handlers), or on
//! the stack and be split with [`Ring::split`]. With the `alloc` feature,
//! `ring::with_capacity` puts the slots on the heap with a capacity chosen at run time and returns
//! `'static` halves.
//!
//! The two halves, [`Producer`] and [`Consumer`], are `Send` (when `T: Send`) but not `Sync`.
//! They offer three layers, each built on the one before:
//!
//! 1. **Raw, wait-free:** [`Producer::push`], [`Consumer::pop`], [`Consumer::peek`] and the
//!    batch operations ([`Producer::push_iter`], [`Producer::push_slice`],
//!    [`Consumer::pop_batch`], [`Consumer::pop_slice`], [`Consumer::drain`]). No waker is
//!    touched by `push`; see [Waking](#waking) for what that means.
//! 2. **Async:** [`Producer::send`] / [`Producer::poll_ready`] / [`Producer::try_send`],
//!    [`Consumer::recv`] / [`Consumer::poll_recv`], and `Stream` for [`Consumer`].
//! 3. **Blocking a thread:** [`Producer::push_blocking`] and [`Consumer::pop_blocking`], over
//!    any [`Park`](crate::park::Park) implementation.
//!
//! Either half can [close](Producer::close) the ring (dropping a half closes it). After a
//! close the producer's pushes fail with [`PushError::Closed`], and the consumer still
//! receives every item that was pushed, then [`PopError::Closed`]. Items still in the ring
//! when the storage goes away are dropped exactly once.
//!
//! # Examples
//!
//! ```
//! use aiothreads_core::ring::{PopError, Ring};
//!
//! static RING: Ring<u32, 4> = Ring::new();
//!
//! let (mut tx, mut rx) = RING.try_split().expect("first split");
//! assert!(RING.try_split().is_none());
//!
//! tx.push(1).unwrap();
//! tx.push(2).unwrap();
//! assert_eq!(rx.pop(), Ok(1));
//! drop(tx); // closes the ring
//! assert_eq!(rx.pop(), Ok(2)); // items pushed before the close are still delivered
//! assert_eq!(rx.pop(), Err(PopError::Closed));
//! ```
//!
//! # Waking
//!
//! A consumer that waits ([`Consumer::poll_recv`], `recv().await`, `pop_blocking`) is woken
//! by [`Producer::try_send`], [`Producer::send`], [`Producer::push_blocking`], the batch
//! pushes, [`Producer::notify_consumer`], and a close. **The raw [`Producer::push`] does not
//! wake anybody**: it is the primitive for producers that push many items and then call
//! [`Producer::notify_consumer`] once, or whose consumer polls.
//!
//! A producer that waits for space ([`Producer::poll_ready`], `send().await`,
//! `push_blocking`) is woken *lazily*: every pop counts, and the consumer looks for a waiting
//! producer only every `max(1, capacity / 2)` popped items (a *checkpoint*), when it is itself
//! about to wait on an empty ring, on [`Consumer::notify_producer`], and on close. Because a
//! producer only waits on a *full* ring, the consumer must pop at least `capacity / 2` items
//! (reaching a checkpoint) before it could find the ring empty, so a consumer that keeps
//! consuming always wakes a waiting producer, and does so with at least half the ring free.
//! A consumer that stops popping before the next checkpoint (while it does something else)
//! delays the producer until it pops again; call [`Consumer::notify_producer`] if that
//! matters.
//!
//! # Use from an interrupt handler
//!
//! The usual firmware shape is a `static` ring split once with [`Ring::try_split`], the
//! producer moved into an interrupt handler (ISR) and the consumer awaited by a task. These
//! operations are **safe in an ISR**: they take no lock, never wait or spin, run a bounded
//! number of steps, allocate nothing, and reach the other side only through the waker it
//! registered:
//!
//! | half | ISR-safe operations |
//! |---|---|
//! | producer | [`push`](Producer::push), [`try_send`](Producer::try_send), [`push_slice`](Producer::push_slice), [`push_iter`](Producer::push_iter) (bounded by the free slots, plus what the iterator does), [`notify_consumer`](Producer::notify_consumer), [`close`](Producer::close), the queries (`slots`, `len`, `is_full`, `is_closed`, `capacity`) |
//! | consumer | [`pop`](Consumer::pop), [`try_recv`](Consumer::try_recv), [`peek`](Consumer::peek), [`pop_slice`](Consumer::pop_slice), [`pop_batch`](Consumer::pop_batch), [`drain`](Consumer::drain), [`notify_producer`](Consumer::notify_producer), [`close`](Consumer::close), the queries |
//!
//! What they cost: `push`, `pop` and `try_send` when nobody waits are loads, stores and (for
//! the notifying ones) one fence, with no read-modify-write. Waking a waiting task adds one
//! `swap` and `atomic-waker`'s `wake`, which never waits either: if the task is registering a
//! new waker at that moment, `wake` leaves a flag that makes the registration wake the task
//! itself. The task's [`Waker::wake`](core::task::Waker::wake) is then called in the ISR, so
//! the executor's wakers must be interrupt-safe; embassy's are (they pend the executor). With
//! the `portable-atomic` feature on a chip without CAS, each of those few read-modify-writes
//! masks interrupts for a handful of instructions (`unsafe-assume-single-core`) or runs in
//! the `critical-section` implementation the binary chose.
//!
//! **Not in an ISR:**
//! - [`Producer::push_blocking`] / [`Consumer::pop_blocking`]: they park until the other
//!   side moves, and the other side cannot run while the ISR waits (a deadlock on a single
//!   core). Nor a loop that retries `push` until it succeeds, for the same reason: on
//!   [`PushError::Full`], count or drop the value, or keep it for the next interrupt.
//! - The async layer ([`Producer::send`], [`Producer::poll_ready`], [`Consumer::recv`],
//!   [`Consumer::poll_recv`], the `Stream`): an ISR is not a task and has no waker of its own
//!   to register; polling with a dummy waker would replace the task's waker (only one waiter
//!   per side is kept).
//! - The same half from an ISR *and* from thread mode: the halves are `Send` but not `Sync`;
//!   sharing one means a `critical_section::Mutex` (or similar) around every use, a lock of
//!   yours in the ISR.
//! - Dropping the last half of a heap ring (`alloc`): it frees memory through the allocator.
//!
//! # Memory ordering
//!
//! - `tail` (producer position) is published with a `Release` store after the slot was
//!   written; the consumer loads it with `Acquire` before reading the slot. `head` (consumer
//!   position) is published with `Release` after the slot was read out; the producer loads it
//!   with `Acquire` before overwriting the slot. Each half caches the other half's position
//!   and reloads it only when the cache says full (producer) or empty (consumer), so the hot
//!   path has no RMW and usually touches no cache line written by the other side.
//! - Waiting is a Dekker pair on each direction. The waiting side registers its waker, sets
//!   its `*_waiting` flag, executes `fence(SeqCst)` and re-checks the ring (the consumer's
//!   side is the crate's shared handshake, module `wake`, also used by the unbounded queue). The notifying side
//!   publishes its position, executes `fence(SeqCst)` and loads the flag. The two `SeqCst`
//!   fences are totally ordered: if the waiter's fence comes first, the notifier sees the
//!   flag and wakes; if the notifier's fence comes first, the waiter's re-check sees the new
//!   position and does not sleep. A wake is therefore never lost, and a side pays for the
//!   wake (one `swap` plus the waker call) only when the other side is actually waiting.
//! - `closed` is stored with `Release` after the closing side's last publication and loaded
//!   with `Acquire` where the consumer decides that an empty ring is finished; closing then
//!   wakes the other side unconditionally (after the same fence).

use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

use crate::sync::{fence, AtomicBool, AtomicUsize, AtomicWaker, CachePadded, Ordering, UnsafeCell};
#[cfg(any(feature = "alloc", aiothreads_loom))]
use crate::wake::Protocol;
use crate::wake::RxSide;

#[cfg(any(feature = "alloc", aiothreads_loom))]
mod barrier;
mod batch;
mod closer;
mod error;
#[cfg(all(test, feature = "alloc"))]
mod event_tests;
mod future;
#[cfg(any(feature = "alloc", aiothreads_loom))]
mod heap;

#[cfg(any(feature = "alloc", aiothreads_loom))]
pub use barrier::HeavyBarrier;
pub use batch::Drain;
pub use closer::Closer;
pub use error::{Closed, PopError, PushError, SendIterEnd};
pub use future::{Recv, Send};
#[cfg(any(feature = "alloc", aiothreads_loom))]
pub use heap::{try_with_capacity, try_with_capacity_asymmetric, with_capacity, CapacityError};

/// One slot of the ring: initialised exactly when its position is in `head .. tail`.
type Slot<T> = UnsafeCell<MaybeUninit<T>>;

/// What keeps the storage of heap halves alive (an `Arc`); nothing for borrowed halves.
#[cfg(any(feature = "alloc", aiothreads_loom))]
type Owner<T> = Option<heap::Arc<heap::Storage<T>>>;
/// What keeps the storage of heap halves alive; without `alloc` halves always borrow.
#[cfg(not(any(feature = "alloc", aiothreads_loom)))]
type Owner<T> = PhantomData<fn() -> T>;

/// The state shared by both halves, apart from the slots.
pub(crate) struct Header {
    /// Consumer position: the next slot to read. Invariant: in `0 .. 2 * cap`, and
    /// `distance(head, tail) <= cap`. Written only by the consumer (`Release`, after the slot
    /// was read out); read by the producer (`Acquire`) when its cached copy says full.
    head: CachePadded<AtomicUsize>,
    /// Producer position: the next slot to write. Invariant: in `0 .. 2 * cap`. Written only
    /// by the producer (`Release`, after the slot was written); read by the consumer
    /// (`Acquire`) when its cached copy says empty.
    tail: CachePadded<AtomicUsize>,
    /// Read-mostly flags and wakers, on their own line so that pushes and pops do not
    /// bounce it.
    signals: CachePadded<Signals>,
}

/// Closing, waiting and splitting state.
struct Signals {
    /// Set (`Release`) by either half's `close` (or drop); cleared only by [`Ring::split`].
    closed: AtomicBool,
    /// The consumer waits for items: set by `Consumer::poll_recv` before its fence, cleared by
    /// the producer's `swap` that decides to wake it.
    rx_waiting: AtomicBool,
    /// The producer waits for space: set by `Producer::poll_ready` before its fence, cleared
    /// by the consumer's `swap` that decides to wake it.
    tx_waiting: AtomicBool,
    /// The light protocol is on (`barrier.rs`): the producer may skip its fence per item.
    /// Written only by the consumer (`wake::Protocol`); stays `false` without a heavy barrier.
    /// Only heap rings can have a barrier, so rings built without `alloc` do not have it.
    #[cfg(any(feature = "alloc", aiothreads_loom))]
    rx_light: AtomicBool,
    /// `true` once [`Ring::try_split`] handed out the halves (or [`Ring::split`] did).
    taken: AtomicBool,
    /// The waiting consumer's waker.
    rx_waker: AtomicWaker,
    /// The waiting producer's waker.
    tx_waker: AtomicWaker,
    /// The consumer's heavy barrier for the light wake-up protocol (see `barrier.rs`), or
    /// `None` for the fence protocol only. Set when the ring is made, never changed. Only
    /// heap rings can have one, so rings built without `alloc` (firmware statics) do not pay
    /// its word of RAM.
    #[cfg(any(feature = "alloc", aiothreads_loom))]
    heavy_barrier: Option<fn()>,
}

impl Signals {
    /// The consumer's half of the wake-up handshake (`crate::wake`).
    #[inline(always)]
    fn rx_side(&self) -> RxSide<'_> {
        RxSide {
            waker: &self.rx_waker,
            waiting: &self.rx_waiting,
            light: self.light(),
            heavy_barrier: self.heavy_barrier(),
        }
    }

    /// The light protocol's flag (none without `alloc`: no barrier, no light protocol).
    #[inline(always)]
    fn light(&self) -> Option<&AtomicBool> {
        #[cfg(any(feature = "alloc", aiothreads_loom))]
        return Some(&self.rx_light);
        #[cfg(not(any(feature = "alloc", aiothreads_loom)))]
        return None;
    }

    /// The light protocol's barrier, if this ring has one (never without `alloc`).
    #[inline(always)]
    fn heavy_barrier(&self) -> Option<fn()> {
        #[cfg(any(feature = "alloc", aiothreads_loom))]
        return self.heavy_barrier;
        #[cfg(not(any(feature = "alloc", aiothreads_loom)))]
        return None;
    }
}

impl Header {
    /// An empty, open, not yet split header.
    #[cfg(not(aiothreads_loom))]
    const fn new() -> Self {
        Self {
            head: CachePadded(AtomicUsize::new(0)),
            tail: CachePadded(AtomicUsize::new(0)),
            signals: CachePadded(Signals {
                closed: AtomicBool::new(false),
                rx_waiting: AtomicBool::new(false),
                tx_waiting: AtomicBool::new(false),
                #[cfg(any(feature = "alloc", aiothreads_loom))]
                rx_light: AtomicBool::new(false),
                taken: AtomicBool::new(false),
                rx_waker: AtomicWaker::new(),
                tx_waker: AtomicWaker::new(),
                #[cfg(any(feature = "alloc", aiothreads_loom))]
                heavy_barrier: None,
            }),
        }
    }

    /// An empty, open, not yet split header (loom build: loom's atomics are not `const`).
    #[cfg(aiothreads_loom)]
    fn new() -> Self {
        Self {
            head: CachePadded(AtomicUsize::new(0)),
            tail: CachePadded(AtomicUsize::new(0)),
            signals: CachePadded(Signals {
                closed: AtomicBool::new(false),
                rx_waiting: AtomicBool::new(false),
                tx_waiting: AtomicBool::new(false),
                #[cfg(any(feature = "alloc", aiothreads_loom))]
                rx_light: AtomicBool::new(false),
                taken: AtomicBool::new(false),
                rx_waker: AtomicWaker::new(),
                tx_waker: AtomicWaker::new(),
                #[cfg(any(feature = "alloc", aiothreads_loom))]
                heavy_barrier: None,
            }),
        }
    }

    /// Reopens the ring for a new pair of halves; the caller has exclusive access (no half
    /// exists), so `Relaxed` is enough and stale wakers are dropped.
    fn reopen(&self) {
        let s = &self.signals;
        s.closed.store(false, Ordering::Relaxed);
        s.rx_waiting.store(false, Ordering::Relaxed);
        s.tx_waiting.store(false, Ordering::Relaxed);
        #[cfg(any(feature = "alloc", aiothreads_loom))]
        s.rx_light.store(false, Ordering::Relaxed);
        s.taken.store(true, Ordering::Relaxed);
        drop(s.rx_waker.take());
        drop(s.tx_waker.take());
    }
}

/// A view of the storage: header, slot buffer and capacity. Both halves hold one.
struct Raw<T> {
    /// Points to the header, valid for as long as the half holding this view exists (the
    /// half borrows the [`Ring`] for `'a`, or owns an `Arc` of the heap storage).
    header: NonNull<Header>,
    /// Points to `cap` slots, valid under the same condition as `header`.
    slots: NonNull<Slot<T>>,
    /// Number of slots. Invariant: `1 <= cap <= usize::MAX / 2`, so `2 * cap` never
    /// overflows.
    cap: usize,
}

impl<T> Raw<T> {
    /// # Safety
    /// `header` and `slots` (`cap` of them) must stay valid while the view is used, and at
    /// most one producer and one consumer view may exist for the same storage at a time.
    unsafe fn new(header: NonNull<Header>, slots: NonNull<Slot<T>>, cap: usize) -> Self {
        debug_assert!((1..=usize::MAX / 2).contains(&cap));
        Self { header, slots, cap }
    }

    #[inline(always)]
    fn header(&self) -> &Header {
        // SAFETY: the header outlives the view (field invariant of `header`).
        unsafe { self.header.as_ref() }
    }

    /// The slot index of position `pos` (no division: positions wrap at `2 * cap`).
    #[inline(always)]
    fn index(&self, pos: usize) -> usize {
        debug_assert!(pos < 2 * self.cap, "position {pos} out of range");
        if pos < self.cap {
            pos
        } else {
            pos - self.cap
        }
    }

    /// Position `pos` advanced by `n <= cap`, wrapped into `0 .. 2 * cap`.
    #[inline(always)]
    fn advance(&self, pos: usize, n: usize) -> usize {
        debug_assert!(pos < 2 * self.cap && n <= self.cap);
        let wrap = 2 * self.cap - n;
        if pos >= wrap {
            pos - wrap
        } else {
            pos + n
        }
    }

    /// Position `pos` advanced by one, wrapped into `0 .. 2 * cap` (the hot-path form of
    /// `advance`).
    #[inline(always)]
    fn advance1(&self, pos: usize) -> usize {
        debug_assert!(pos < 2 * self.cap);
        if pos < 2 * self.cap - 1 {
            pos + 1
        } else {
            0
        }
    }

    /// Number of items between `head` and `tail`.
    #[inline(always)]
    fn distance(&self, head: usize, tail: usize) -> usize {
        debug_assert!(head < 2 * self.cap && tail < 2 * self.cap);
        let d = if tail >= head {
            tail - head
        } else {
            tail + (2 * self.cap - head)
        };
        debug_assert!(
            d <= self.cap,
            "head {head} and tail {tail} are more than cap apart"
        );
        d
    }

    /// A consumer whose position `head` is the first slot of a cache line of slots (a line
    /// event, see `Consumer::next_event`), and which knows the items up to `tail` are
    /// published, asks the CPU to start loading the slot two cache lines ahead
    /// (`sync::prefetch`) when that slot's whole line is published: reading right behind its
    /// producer, it otherwise waits for each line of slots in turn (on the AMD EPYC VM of
    /// PERFORMANCE.md a 1 024-slot stream of `u64` went from about 175 to 220 M items/s). A
    /// line with a slot not yet published is never prefetched: that would pull the line from
    /// the producer while it is still writing it, and it would have to take it back (two
    /// transfers of the line instead of one). The buffer starts where the allocator put it, so
    /// "once per line" counts slot indexes and the target may sit anywhere in its line:
    /// `line_span` covers that.
    ///
    /// Cost: nothing per item; once per cache line of slots (only where the consumer
    /// prefetches at all: x86_64 and AMD processors, `sync::prefetch_pays`; on the Intel Xeon
    /// it cost a one-thread drain a third and gained nothing between threads), the distance
    /// to `tail` and one prefetch instruction.
    #[inline(always)]
    fn prefetch_line(&self, head: usize, tail: usize) {
        let ahead = crate::sync::prefetch_ahead::<T>();
        if ahead > 0 && self.distance(head, tail) > ahead + crate::sync::line_span::<T>() {
            // `ahead + line_span < distance <= cap`: the slot `ahead` positions on and every
            // slot that can share its line after it are published (those before it are too),
            // and its index, wrapped once, is below `cap` (a prefetch never faults anyway).
            let mut next = self.index(head) + ahead;
            if next >= self.cap {
                next -= self.cap;
            }
            crate::sync::prefetch(self.slots.as_ptr().wrapping_add(next));
        }
    }

    /// Positions from `head` to the next one whose slot starts a cache line of slots (an
    /// index that is a multiple of `items_per_line`, or index 0 after the last slot): in
    /// `1 ..= items_per_line`.
    #[inline(always)]
    fn to_next_line(&self, head: usize) -> usize {
        let index = self.index(head);
        let per_line = crate::sync::items_per_line::<T>();
        (per_line - index % per_line).min(self.cap - index)
    }

    /// Writes `value` into the slot of position `pos`.
    ///
    /// # Safety
    /// Only the producer calls this, for a position in `tail .. head + cap` (a vacant slot
    /// the consumer does not read).
    #[inline(always)]
    unsafe fn write(&self, pos: usize, value: T) {
        // SAFETY: forwarded caller contract; `index` maps the position to its slot.
        unsafe { self.write_index(self.index(pos), value) }
    }

    /// Writes `value` into slot `index`.
    ///
    /// # Safety
    /// `index < cap`, and the slot belongs to the producer's vacant region (see `write`).
    #[inline(always)]
    unsafe fn write_index(&self, index: usize, value: T) {
        debug_assert!(index < self.cap);
        // SAFETY: `index < cap`, so the pointer stays inside the buffer (field invariant).
        let slot = unsafe { &*self.slots.as_ptr().add(index) };
        // SAFETY: the slot is vacant and only the producer touches it (caller contract).
        slot.with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) });
    }

    /// Copies `items` into the slots `index .. index + items.len()` (`sync::copy_items`: a slot has
    /// the layout of `T`).
    ///
    /// # Safety
    /// `index + items.len() <= cap`, and the slots belong to the producer's vacant region (see
    /// `write`).
    #[inline(always)]
    unsafe fn copy_in(&self, index: usize, items: &[T])
    where
        T: Copy,
    {
        debug_assert!(index + items.len() <= self.cap);
        #[cfg(not(aiothreads_loom))]
        // SAFETY: `Slot<T>` is `UnsafeCell<MaybeUninit<T>>`, both `repr(transparent)`, so the
        // slots are `cap` consecutive `T`s; the range is inside the buffer and vacant, so
        // nobody reads it meanwhile (caller contract), and `items` is a distinct allocation.
        unsafe {
            crate::sync::copy_items(
                items.as_ptr(),
                self.slots.as_ptr().add(index).cast::<T>(),
                items.len(),
                crate::sync::RingSide::Destination,
            )
        };
        #[cfg(aiothreads_loom)]
        for (i, &item) in items.iter().enumerate() {
            // SAFETY: forwarded caller contract, one slot at a time (loom tracks each cell).
            unsafe { self.write_index(index + i, item) };
        }
    }

    /// Copies the items of slots `index .. index + out.len()` into `out` (`sync::copy_items`).
    ///
    /// # Safety
    /// `index + out.len() <= cap`, and the slots belong to the consumer's initialised region
    /// (see `read`); they are then given up.
    #[inline(always)]
    unsafe fn copy_out(&self, index: usize, out: &mut [T])
    where
        T: Copy,
    {
        debug_assert!(index + out.len() <= self.cap);
        #[cfg(not(aiothreads_loom))]
        // SAFETY: as in `copy_in`: consecutive initialised `T`s inside the buffer that the
        // producer does not write meanwhile (caller contract); `out` is a distinct allocation.
        unsafe {
            crate::sync::copy_items(
                self.slots.as_ptr().add(index).cast::<T>(),
                out.as_mut_ptr(),
                out.len(),
                crate::sync::RingSide::Source,
            )
        };
        #[cfg(aiothreads_loom)]
        for (i, slot) in out.iter_mut().enumerate() {
            // SAFETY: forwarded caller contract, one slot at a time (loom tracks each cell).
            *slot = unsafe { self.read_index(index + i) };
        }
    }

    /// Moves the item out of the slot of position `pos`.
    ///
    /// # Safety
    /// Only the consumer calls this, for a position in `head .. tail` (an initialised slot the
    /// producer does not write), and the position is then given up (head moves past it).
    #[inline(always)]
    unsafe fn read(&self, pos: usize) -> T {
        // SAFETY: forwarded caller contract; `index` maps the position to its slot.
        unsafe { self.read_index(self.index(pos)) }
    }

    /// Moves the item out of slot `index`.
    ///
    /// # Safety
    /// `index < cap`, and the slot belongs to the consumer's initialised region (see `read`).
    #[inline(always)]
    unsafe fn read_index(&self, index: usize) -> T {
        debug_assert!(index < self.cap);
        // SAFETY: `index < cap`, so the pointer stays inside the buffer.
        let slot = unsafe { &*self.slots.as_ptr().add(index) };
        // SAFETY: the slot is initialised and exclusively the consumer's (caller contract).
        slot.with(|p| unsafe { (*p).assume_init_read() })
    }

    /// A reference to the item in the slot of position `pos`.
    ///
    /// # Safety
    /// As for [`Raw::read`], and the consumer must not move past `pos` while the reference
    /// lives.
    #[inline(always)]
    unsafe fn get(&self, pos: usize) -> &T {
        let index = self.index(pos);
        // SAFETY: `index < cap`, so the pointer stays inside the buffer.
        let slot = unsafe { &*self.slots.as_ptr().add(index) };
        // SAFETY: the slot is initialised and the producer does not write it until head moves
        // past it (caller contract).
        slot.with(|p| unsafe { (*p).assume_init_ref() })
    }

    /// Drops the items still in the ring.
    ///
    /// # Safety
    /// No half may use the storage any more (the caller has exclusive access), and the items
    /// must not be used afterwards.
    unsafe fn drop_remaining(&self) {
        if !core::mem::needs_drop::<T>() {
            return;
        }
        // Acquire: pairs with the last Release stores of the halves (the exclusive access was
        // itself established by a join, a `&mut` borrow or the `Arc` count, so this is
        // belt and braces).
        let mut pos = self.header().head.load(Ordering::Acquire);
        let tail = self.header().tail.load(Ordering::Acquire);
        while pos != tail {
            // SAFETY: `pos` is in `head .. tail`, so the slot is initialised; nothing else
            // uses the storage (caller contract).
            drop(unsafe { self.read(pos) });
            pos = self.advance1(pos);
        }
    }
}

/// Makes the two halves over `raw`.
///
/// # Safety
/// The storage behind `raw` must outlive `'a` (or be kept alive by `owner`), and no other
/// half may exist for it.
unsafe fn halves<'a, T>(
    raw: impl Fn() -> Raw<T>,
    owner: impl Fn() -> Owner<T>,
) -> (Producer<'a, T>, Consumer<'a, T>) {
    crate::sync::detect_prefetch();
    let producer_raw = raw();
    let consumer_raw = raw();
    // Acquire: a previous pair of halves may have run on other threads; their last stores
    // are visible through whatever gave us exclusive access, this is belt and braces.
    let head = producer_raw.header().head.load(Ordering::Acquire);
    let tail = producer_raw.header().tail.load(Ordering::Acquire);
    let limit = producer_raw.advance(head, producer_raw.cap);
    let checkpoint = (consumer_raw.cap / 2).max(1);
    let next_checkpoint = consumer_raw.advance(head, checkpoint);
    let mut consumer = Consumer {
        raw: consumer_raw,
        head,
        cached_tail: tail,
        next_checkpoint,
        next_event: next_checkpoint,
        checkpoint,
        prefetches: crate::sync::PREFETCHES
            && crate::sync::prefetch_ahead::<T>() > 0
            && crate::sync::prefetch_pays(),
        #[cfg(any(feature = "alloc", aiothreads_loom))]
        checkpoints: 0,
        #[cfg(any(feature = "alloc", aiothreads_loom))]
        point_head: head,
        #[cfg(any(feature = "alloc", aiothreads_loom))]
        protocol: Protocol::new(),
        _owner: owner(),
        _borrow: PhantomData,
    };
    consumer.set_next_event();
    (
        Producer {
            raw: producer_raw,
            tail,
            limit,
            _owner: owner(),
            _borrow: PhantomData,
        },
        consumer,
    )
}

/// Closes the ring and wakes the other side: the consumer if `wake_consumer`, else the
/// producer. Out of line and taking only the header (see [`notify_producer`]).
#[inline(never)]
fn close(header: &Header, wake_consumer: bool) {
    let s = &header.signals;
    // Release: everything this half published before (tail stores of the producer) is
    // visible to whoever sees the flag with Acquire (`Consumer::finished`).
    s.closed.store(true, Ordering::Release);
    // Pairs with the fence of the waiting side (`poll_recv` / `poll_ready`): either the
    // waiter's re-check sees `closed`, or its waker is registered by now and woken here.
    fence(Ordering::SeqCst);
    if wake_consumer {
        s.rx_waker.wake();
    } else {
        s.tx_waker.wake();
    }
}

/// The consumer's checkpoint: wakes the producer if it waits for space. Out of line, and
/// taking only the header, so that the consumer's fields stay in registers in `pop` loops.
#[inline(never)]
fn notify_producer(header: &Header) {
    // Pairs with the fence in `Producer::poll_ready` (Dekker): either the producer's re-check
    // of `head` sees our last Release store of `head`, or we see `tx_waiting`.
    fence(Ordering::SeqCst);
    wake_producer_if_waiting(header);
}

/// The tail of [`notify_producer`], for callers that just executed the fence.
fn wake_producer_if_waiting(header: &Header) {
    let s = &header.signals;
    if s.tx_waiting.load(Ordering::Relaxed) && s.tx_waiting.swap(false, Ordering::Relaxed) {
        s.tx_waker.wake();
    }
}

/// A bounded SPSC ring with `N` inline slots. See the [module docs](self).
///
/// `N` must be at least 1 (checked at compile time).
///
/// # Examples
///
/// ```
/// use aiothreads_core::ring::Ring;
///
/// let mut ring = Ring::<String, 8>::new();
/// let (mut tx, mut rx) = ring.split();
/// tx.push("hello".to_string()).unwrap();
/// assert_eq!(rx.pop().unwrap(), "hello");
/// ```
///
/// A capacity of zero does not compile:
///
/// ```compile_fail
/// let ring = aiothreads_core::ring::Ring::<u8, 0>::new();
/// ```
pub struct Ring<T, const N: usize> {
    header: Header,
    /// Slot `i` is initialised exactly when some position in `head .. tail` maps to `i`.
    slots: [Slot<T>; N],
}

// SAFETY: through `&Ring` one can only split once (`try_split`, guarded by the atomic `taken`
// flag, so at most one producer and one consumer exist) and read atomics. The halves move `T`
// values between threads, hence `T: Send`; no `&T` is shared between threads except through
// `Consumer::peek`, which only the consumer can call, so `T: Sync` is not needed.
unsafe impl<T: core::marker::Send, const N: usize> Sync for Ring<T, N> {}

impl<T, const N: usize> Ring<T, N> {
    /// Compile-time check of `N`, evaluated when `new` is instantiated.
    const VALID_CAPACITY: () = assert!(
        N >= 1 && N <= usize::MAX / 2,
        "Ring<T, N> needs a capacity N of at least 1"
    );

    /// An empty ring. `const`, so it can initialise a `static`.
    ///
    /// # Examples
    ///
    /// ```
    /// use aiothreads_core::ring::Ring;
    /// static RING: Ring<u32, 64> = Ring::new();
    /// assert_eq!(RING.capacity(), 64);
    /// ```
    #[cfg(not(aiothreads_loom))]
    pub const fn new() -> Self {
        let () = Self::VALID_CAPACITY;
        Self {
            header: Header::new(),
            slots: [const { UnsafeCell::new(MaybeUninit::uninit()) }; N],
        }
    }

    /// An empty ring (loom build: loom's atomics and cells are not `const`).
    #[cfg(aiothreads_loom)]
    pub fn new() -> Self {
        let () = Self::VALID_CAPACITY;
        Self {
            header: Header::new(),
            slots: core::array::from_fn(|_| UnsafeCell::new(MaybeUninit::uninit())),
        }
    }

    /// The number of slots, `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The number of items in the ring right now (a snapshot if halves are in use).
    pub fn len(&self) -> usize {
        let raw = self.raw();
        let head = raw.header().head.load(Ordering::Acquire);
        let tail = raw.header().tail.load(Ordering::Acquire);
        raw.distance(head, tail)
    }

    /// `true` if [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn raw(&self) -> Raw<T> {
        // SAFETY: the header and the `N` slots live as long as `self`; callers create halves
        // only under the exclusivity guaranteed by `split`'s `&mut` or `try_split`'s flag.
        unsafe {
            Raw::new(
                NonNull::from(&self.header),
                NonNull::from(&self.slots).cast(),
                N,
            )
        }
    }

    /// Splits the ring into its two halves. Always succeeds: the `&mut` borrow guarantees
    /// that no other halves exist.
    ///
    /// Reopens a ring whose previous halves closed it; items left in it by previous halves are
    /// delivered to the new consumer. After a `split`, [`try_split`](Self::try_split) returns
    /// `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use aiothreads_core::ring::Ring;
    ///
    /// let mut ring = Ring::<u8, 2>::new();
    /// {
    ///     let (mut tx, _) = ring.split(); // the consumer is dropped: closed
    ///     assert!(tx.push(1).is_err());
    /// }
    /// let (mut tx, mut rx) = ring.split(); // reopened
    /// tx.push(2).unwrap();
    /// assert_eq!(rx.pop(), Ok(2));
    /// ```
    pub fn split(&mut self) -> (Producer<'_, T>, Consumer<'_, T>) {
        self.header.reopen();
        let this = &*self;
        // SAFETY: the halves borrow `self` for their lifetime, and the `&mut` guarantees that
        // no other halves exist.
        unsafe { halves(|| this.raw(), Owner::default) }
    }

    /// Splits a shared ring (a `static`) into its halves, once: the first call returns them,
    /// every later call returns `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use aiothreads_core::ring::Ring;
    ///
    /// static RING: Ring<u32, 16> = Ring::new();
    /// let halves = RING.try_split();
    /// assert!(halves.is_some());
    /// assert!(RING.try_split().is_none());
    /// ```
    pub fn try_split(&self) -> Option<(Producer<'_, T>, Consumer<'_, T>)> {
        // Acquire: a ring that was split with `split` and then shared is seen in its final
        // state (belt and braces: sharing it already synchronised).
        if self.header.signals.taken.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: the halves borrow `self`; the `taken` flag was false and is now true, so this
        // is the only pair ever handed out through `&self` (and `split` needs `&mut`).
        Some(unsafe { halves(|| self.raw(), Owner::default) })
    }
}

impl<T, const N: usize> Default for Ring<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> Drop for Ring<T, N> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no half exists any more.
        unsafe { self.raw().drop_remaining() }
    }
}

impl<T, const N: usize> fmt::Debug for Ring<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &N)
            .field("len", &self.len())
            .finish()
    }
}

/// The writing half of a ring. See the [module docs](crate::ring).
///
/// `Send` when `T: Send`, not `Sync`:
///
/// ```compile_fail
/// fn assert_sync<S: Sync>() {}
/// assert_sync::<aiothreads_core::ring::Producer<'static, u32>>();
/// ```
pub struct Producer<'a, T> {
    raw: Raw<T>,
    /// Own position, the only copy that is ever ahead of the shared `tail` (between a write and
    /// its publication). In `0 .. 2 * cap`.
    tail: usize,
    /// `head + cap` (wrapped) for the last `head` seen: the producer position at which the
    /// ring is full. The real limit is never behind it, so it may only under-report space;
    /// `tail == limit` is the whole "maybe full" test of `push`. In `0 .. 2 * cap`.
    limit: usize,
    _owner: Owner<T>,
    _borrow: PhantomData<&'a Header>,
}

// SAFETY: the producer moves `T` values into the ring for the consumer's thread (hence
// `T: Send`); its raw pointers refer to storage that outlives it (borrowed for `'a` or owned
// through an `Arc`), and all state it shares is atomics or slots it owns by the SPSC protocol.
unsafe impl<T: core::marker::Send> core::marker::Send for Producer<'_, T> {}

impl<T> Producer<'_, T> {
    /// Pushes `value` without waking anybody (see [Waking](crate::ring#waking)). Wait-free.
    ///
    /// # Errors
    /// [`PushError::Full`] if there is no free slot, [`PushError::Closed`] if either half
    /// closed the ring; both hand `value` back.
    ///
    /// # Examples
    ///
    /// ```
    /// use aiothreads_core::ring::{PushError, Ring};
    ///
    /// let mut ring = Ring::<u8, 1>::new();
    /// let (mut tx, _rx) = ring.split();
    /// assert_eq!(tx.push(1), Ok(()));
    /// assert_eq!(tx.push(2), Err(PushError::Full(2)));
    /// ```
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), PushError<T>> {
        // Cost: 1 Relaxed load of the read-mostly `closed` flag, 1 Acquire load of `head` only
        // when the cached limit says full, 1 Release store of `tail`; no RMW, no fence, no wake.
        if self.raw.header().signals.closed.load(Ordering::Relaxed) {
            return Err(PushError::Closed(value));
        }
        if self.tail == self.limit {
            self.reload_limit();
            if self.tail == self.limit {
                return Err(PushError::Full(value));
            }
        }
        // SAFETY: `tail != limit`, so `tail` is less than `cap` ahead of head: its slot is
        // vacant, and only the producer writes slots.
        unsafe { self.raw.write(self.tail, value) };
        self.tail = self.raw.advance1(self.tail);
        // Release: pairs with the consumer's Acquire load of `tail`; the slot write happens
        // before the consumer reads it.
        self.raw.header().tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Reloads `head` and recomputes `limit`.
    #[inline]
    fn reload_limit(&mut self) {
        // Acquire: pairs with the consumer's Release store of `head`, so its reads of the
        // slots it gave up happen before we overwrite them.
        let head = self.raw.header().head.load(Ordering::Acquire);
        self.limit = self.raw.advance(head, self.raw.cap);
    }

    /// Wakes the consumer if it waits for items. Call it after raw [`push`](Self::push)es;
    /// the other producer operations call it themselves.
    ///
    /// Cost: a `SeqCst` fence and a Relaxed load; plus a `swap` and the wake only when the
    /// consumer is waiting.
    #[inline]
    pub fn notify_consumer(&self) {
        // The producer's side of the shared handshake (`crate::wake`): a fence (or, with a
        // heavy barrier, a compiler fence) and the load of the consumer's flag.
        self.raw.header().signals.rx_side().notify();
    }

    /// `true` from a [`poll_ready`](Self::poll_ready) that returned `Pending` until the
    /// consumer wakes this producer (at its next checkpoint: once it has freed
    /// `max(1, capacity / 2)` slots since it last looked) or the ring is closed. What a
    /// producer that registered may spin on for a while before it sleeps, instead of reading
    /// the consumer's position: two relaxed loads of a line the consumer writes only when it
    /// wakes the producer (the producer's per-item wake-up check reads that line anyway), so
    /// the spin does not slow the consumer's pops. A hint: after it turns `false`, call
    /// `poll_ready` again.
    ///
    /// # Examples
    /// ```
    /// use std::task::{Context, Poll};
    ///
    /// let mut ring = aiothreads_core::ring::Ring::<u32, 4>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// let mut cx = Context::from_waker(std::task::Waker::noop());
    /// for i in 0..4 {
    ///     tx.push(i).unwrap();
    /// }
    /// assert!(tx.poll_ready(&mut cx).is_pending());
    /// assert!(tx.is_waiting_for_room());
    /// rx.pop().unwrap();
    /// assert!(tx.is_waiting_for_room(), "one slot is not yet the consumer's checkpoint");
    /// rx.pop().unwrap();
    /// assert!(!tx.is_waiting_for_room(), "half the ring is free: the consumer woke us");
    /// assert!(tx.poll_ready(&mut cx).is_ready());
    /// ```
    pub fn is_waiting_for_room(&self) -> bool {
        let s = &self.raw.header().signals;
        // Relaxed: a hint; `poll_ready` re-checks with the protocol's orderings.
        s.tx_waiting.load(Ordering::Relaxed) && !s.closed.load(Ordering::Relaxed)
    }

    /// The number of slots this half can fill right now (free slots; a lower bound, the
    /// consumer may free more at any time).
    pub fn slots(&mut self) -> usize {
        self.reload_limit();
        self.raw.distance(self.tail, self.limit)
    }

    /// Same as [`slots`](Self::slots).
    pub fn free_slots(&mut self) -> usize {
        self.slots()
    }

    /// The number of items in the ring (an upper bound: the consumer may pop at any time).
    pub fn len(&self) -> usize {
        let head = self.raw.header().head.load(Ordering::Acquire);
        self.raw.distance(head, self.tail)
    }

    /// `true` if the ring holds no item (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `true` if no slot is free (a snapshot).
    pub fn is_full(&mut self) -> bool {
        self.slots() == 0
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.raw.cap
    }

    /// `true` once either half closed the ring (the consumer left, or [`close`](Self::close)
    /// was called).
    pub fn is_closed(&self) -> bool {
        self.raw.header().signals.closed.load(Ordering::Relaxed)
    }

    /// Closes the ring: later pushes fail with `Closed`; the consumer receives the items
    /// already pushed, then `Closed`. Wakes the consumer. Idempotent; dropping the producer
    /// closes too.
    pub fn close(&mut self) {
        close(self.raw.header(), true);
    }
}

impl<T> Drop for Producer<'_, T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T> fmt::Debug for Producer<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.raw.cap)
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// The reading half of a ring. See the [module docs](crate::ring).
///
/// `Send` when `T: Send`, not `Sync`:
///
/// ```compile_fail
/// fn assert_sync<S: Sync>() {}
/// assert_sync::<aiothreads_core::ring::Consumer<'static, u32>>();
/// ```
pub struct Consumer<'a, T> {
    raw: Raw<T>,
    /// Own position, always equal to the shared `head` between calls. In `0 .. 2 * cap`.
    head: usize,
    /// Last `tail` seen; the real tail is never behind it, so it may only under-report items.
    cached_tail: usize,
    /// The head position at which the next checkpoint happens. Invariant: `head + d` (wrapped)
    /// with `d` in `1 ..= checkpoint` between calls, so a pop reaches it exactly when the new
    /// head equals it.
    next_checkpoint: usize,
    /// The head position at which `pop` leaves its fast path: `next_checkpoint`, or before
    /// it the next position whose slot starts a cache line of slots where this consumer
    /// prefetches (`prefetches`). Invariant: `head + d` (wrapped) with `d` in
    /// `1 ..= distance(head, next_checkpoint)` between calls; every move of `head` that can
    /// reach it recomputes it (`set_next_event`). One compare per pop serves both the
    /// checkpoint and the prefetch.
    next_event: usize,
    /// `max(1, cap / 2)`: how many pops make a checkpoint (see [Waking](crate::ring#waking)).
    checkpoint: usize,
    /// `pop` prefetches ahead at each cache line of slots (`Raw::prefetch_line`): the CPU's
    /// answer (`sync::prefetch_pays`), read when the halves were made.
    prefetches: bool,
    /// Checkpoints reached since the last barrier point (saturating): what the light protocol
    /// is judged by (`checkpoints * checkpoint` items at least; see `wake::Protocol`).
    #[cfg(any(feature = "alloc", aiothreads_loom))]
    checkpoints: usize,
    /// `head` at the last barrier point: the items popped since then, exactly, while no
    /// checkpoint was reached (`distance(point_head, head)`).
    #[cfg(any(feature = "alloc", aiothreads_loom))]
    point_head: usize,
    /// The wake-up protocol in use, for a ring with a heavy barrier (`barrier.rs`).
    #[cfg(any(feature = "alloc", aiothreads_loom))]
    protocol: Protocol,
    _owner: Owner<T>,
    _borrow: PhantomData<&'a Header>,
}

// SAFETY: the consumer moves `T` values out of the ring on its thread (hence `T: Send`); its raw
// pointers refer to storage that outlives it, and all state it shares is atomics or slots it
// owns by the SPSC protocol.
unsafe impl<T: core::marker::Send> core::marker::Send for Consumer<'_, T> {}

impl<T> Consumer<'_, T> {
    /// Pops the oldest item. Wait-free. Counts towards the checkpoint that wakes a waiting
    /// producer (see [Waking](crate::ring#waking)), so a producer waiting in `send` is never
    /// stranded by raw pops.
    ///
    /// # Errors
    /// [`PopError::Empty`] if no item is available, [`PopError::Closed`] if the ring is empty
    /// and closed (no item will ever come).
    ///
    /// # Examples
    ///
    /// ```
    /// use aiothreads_core::ring::{PopError, Ring};
    ///
    /// let mut ring = Ring::<u8, 4>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// assert_eq!(rx.pop(), Err(PopError::Empty));
    /// tx.push(7).unwrap();
    /// assert_eq!(rx.pop(), Ok(7));
    /// ```
    #[inline]
    pub fn pop(&mut self) -> Result<T, PopError> {
        // Cost: 1 Acquire load of `tail` only when the cached tail says empty, 1 Release store
        // of `head`, one compare with `next_event`. At an event (`event`): once per cache line
        // of slots where the consumer prefetches (AMD processors), a prefetch of a published
        // slot two lines ahead (`Raw::prefetch_line`); every `max(1, cap / 2)` pops, out of
        // line, a SeqCst fence and a Relaxed load (plus a wake if the producer waits). No
        // RMW otherwise.
        self.ready()?;
        // SAFETY: `ready` established `head != tail`: the slot of `head` is initialised and
        // the producer does not write it until we publish a head past it.
        let value = unsafe { self.raw.read(self.head) };
        self.head = self.raw.advance1(self.head);
        // Release: pairs with the producer's Acquire load of `head`; our read of the slot
        // happens before the producer overwrites it.
        self.raw.header().head.store(self.head, Ordering::Release);
        if self.head == self.next_event {
            self.event();
        }
        Ok(value)
    }

    /// Same as [`pop`](Self::pop) (which already keeps the producer-wake protocol); the name
    /// pairs with [`Producer::try_send`].
    ///
    /// # Errors
    /// As for [`pop`](Self::pop).
    #[inline]
    pub fn try_recv(&mut self) -> Result<T, PopError> {
        self.pop()
    }

    /// A reference to the oldest item, without popping it.
    ///
    /// # Errors
    /// As for [`pop`](Self::pop).
    pub fn peek(&mut self) -> Result<&T, PopError> {
        self.ready()?;
        // SAFETY: `head != tail`; `&mut self` is borrowed for the reference's lifetime, so the
        // consumer cannot move past the slot while it lives.
        Ok(unsafe { self.raw.get(self.head) })
    }

    /// `Ok` if an item is available at `head`.
    #[inline(always)]
    fn ready(&mut self) -> Result<(), PopError> {
        if self.head != self.cached_tail {
            return Ok(());
        }
        // Acquire: pairs with the producer's Release store of `tail`.
        self.cached_tail = self.raw.header().tail.load(Ordering::Acquire);
        if self.head != self.cached_tail {
            return Ok(());
        }
        self.cached_tail = Self::finished(self.raw.header(), self.head)?;
        Ok(())
    }

    /// The ring looked empty: is it closed for good? Returns the tail to cache if an item
    /// arrived meanwhile. Takes no `&mut self`, so that the halves' fields can stay in
    /// registers around the (cold) call.
    #[cold]
    fn finished(header: &Header, head: usize) -> Result<usize, PopError> {
        if !header.signals.closed.load(Ordering::Acquire) {
            return Err(PopError::Empty);
        }
        // The Acquire above pairs with the Release store of `closed` in `Raw::close`: if the
        // producer closed, its last `tail` store is visible to this reload.
        let tail = header.tail.load(Ordering::Acquire);
        if head != tail {
            Ok(tail)
        } else {
            Err(PopError::Closed)
        }
    }

    /// Number of items available now (reloads `tail`).
    #[inline]
    fn available(&mut self) -> usize {
        // Acquire: pairs with the producer's Release store of `tail`.
        self.cached_tail = self.raw.header().tail.load(Ordering::Acquire);
        self.raw.distance(self.head, self.cached_tail)
    }

    /// Number of items available, at least `want` if the cached `tail` already shows that
    /// many (no load of `tail`, whose line the producer writes on every push), else
    /// reloaded.
    #[inline]
    fn available_for(&mut self, want: usize) -> usize {
        let cached = self.raw.distance(self.head, self.cached_tail);
        if cached >= want {
            cached
        } else {
            self.available()
        }
    }

    /// Accounts for `n` items popped from position `old_head` on (head is now past them),
    /// notifying the producer if that reached the checkpoint.
    #[inline]
    fn popped_from(&mut self, old_head: usize, n: usize) {
        if self.raw.distance(old_head, self.next_checkpoint) <= n {
            self.checkpoint_reached();
        } else if self.line_events() {
            // Without line events `next_event` is `next_checkpoint`, which did not move.
            self.set_next_event();
        }
    }

    /// `pop` reached `next_event`: prefetches at a line of slots, notifies the producer at a
    /// checkpoint, then sets the next event. Out of line, so that `pop` stays small enough to
    /// be inlined into its callers' loops: inlined here, this code made `pop` an out-of-line
    /// call in the bench's raw-ring loop (124–129 against 282–289 M items/s on the Intel Xeon
    /// VM, fourteenth session). Reached once per checkpoint (`max(1, cap / 2)` pops), and
    /// where the consumer prefetches (AMD) once per cache line of slots.
    #[inline(never)]
    fn event(&mut self) {
        if self.line_events() {
            self.raw.prefetch_line(self.head, self.cached_tail);
        }
        if self.head == self.next_checkpoint {
            self.checkpoint_reached();
        } else {
            self.set_next_event();
        }
    }

    /// Sets `next_event` from `head` and `next_checkpoint` (see the field).
    #[inline(always)]
    fn set_next_event(&mut self) {
        if !self.line_events() {
            self.next_event = self.next_checkpoint;
            return;
        }
        let d = self
            .raw
            .distance(self.head, self.next_checkpoint)
            .min(self.raw.to_next_line(self.head));
        self.next_event = self.raw.advance(self.head, d);
    }

    /// Whether this consumer has line events: a constant `false` where the CPU never
    /// prefetches (`sync::PREFETCHES`: not x86_64, Miri, loom), so that firmware builds carry
    /// no code for them.
    #[inline(always)]
    fn line_events(&self) -> bool {
        crate::sync::PREFETCHES && self.prefetches
    }

    /// Wakes the producer if it waits for space, and restarts the checkpoint count. Pops do
    /// this every `max(1, capacity / 2)` items; call it to wake the producer earlier.
    ///
    /// Cost: a `SeqCst` fence and a Relaxed load; plus a `swap` and the wake only when the
    /// producer is waiting.
    #[inline]
    pub fn notify_producer(&mut self) {
        self.restart_checkpoint();
        notify_producer(self.raw.header());
    }

    /// Sets the next checkpoint `max(1, capacity / 2)` pops from now, and the next event.
    #[inline]
    fn restart_checkpoint(&mut self) {
        self.next_checkpoint = self.raw.advance(self.head, self.checkpoint);
        self.set_next_event();
    }

    /// A checkpoint reached by popping: counts it for the wake-up protocol, then as
    /// [`notify_producer`](Self::notify_producer).
    ///
    /// Out of line and cold, on purpose: inlined into a caller's `pop` loop, its call of
    /// `notify_producer` made the compiler keep the header pointer for it by storing it to
    /// the stack on every item (a third store per pop, beside `head` and the shared `head`).
    /// On the Intel Xeon VM of PERFORMANCE.md, where the consumer's stores wait for the line
    /// of `head` the producer keeps reading, that one store cost a third of the two-thread
    /// rate (188 against 275–294 M items/s, rtrb 259–297 in the same runs).
    #[cold]
    #[inline(never)]
    fn checkpoint_reached(&mut self) {
        self.count_checkpoint();
        self.notify_producer();
    }

    /// Counts a checkpoint for the wake-up protocol (nothing to count without `alloc`).
    #[inline(always)]
    fn count_checkpoint(&mut self) {
        #[cfg(any(feature = "alloc", aiothreads_loom))]
        {
            self.checkpoints = self.checkpoints.saturating_add(1);
        }
    }

    /// A barrier point of the wake-up handshake (`wake::wait_or_take`): picks the protocol
    /// from the items popped since the previous one; returns whether to run the heavy barrier.
    fn barrier_point(&mut self) -> bool {
        #[cfg(any(feature = "alloc", aiothreads_loom))]
        {
            // Exact below a checkpoint's worth; a lower bound above (within one checkpoint).
            let items = match self.checkpoints {
                0 => self.raw.distance(self.point_head, self.head),
                n => n.saturating_mul(self.checkpoint),
            };
            self.checkpoints = 0;
            self.point_head = self.head;
            self.protocol
                .choose(items, &self.raw.header().signals.rx_side())
        }
        // Without `alloc` no ring has a heavy barrier.
        #[cfg(not(any(feature = "alloc", aiothreads_loom)))]
        false
    }

    /// Whether the light wake-up protocol is on (the producer skips its per-item fence; see
    /// `barrier.rs`). Always `false` for a ring without a heavy barrier. For tests and
    /// diagnostics.
    #[doc(hidden)]
    pub fn is_light_protocol(&self) -> bool {
        #[cfg(any(feature = "alloc", aiothreads_loom))]
        return self.protocol.is_light();
        #[cfg(not(any(feature = "alloc", aiothreads_loom)))]
        return false;
    }

    /// The number of items this half can pop right now (a lower bound).
    pub fn slots(&mut self) -> usize {
        self.available()
    }

    /// Same as [`slots`](Self::slots): the number of items in the ring.
    pub fn len(&mut self) -> usize {
        self.available()
    }

    /// `true` if no item is available right now.
    pub fn is_empty(&mut self) -> bool {
        self.available() == 0
    }

    /// The number of free slots (an upper bound: the producer may push at any time).
    pub fn free_slots(&mut self) -> usize {
        self.raw.cap - self.available()
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.raw.cap
    }

    /// `true` once either half closed the ring. Items pushed before may still be available.
    pub fn is_closed(&self) -> bool {
        self.raw.header().signals.closed.load(Ordering::Relaxed)
    }

    /// Closes the ring: the producer's later pushes fail with `Closed` and a waiting producer
    /// is woken. Items already in the ring can still be popped. Idempotent; dropping the
    /// consumer closes too.
    pub fn close(&mut self) {
        close(self.raw.header(), false);
    }
}

impl<T> Drop for Consumer<'_, T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T> fmt::Debug for Consumer<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = self.raw.header().tail.load(Ordering::Acquire);
        f.debug_struct("Consumer")
            .field("capacity", &self.raw.cap)
            .field("len", &self.raw.distance(self.head, tail))
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}
