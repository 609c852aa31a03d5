//! The consumer wake-up handshake, shared by the bounded ring and the unbounded queue.
//!
//! A consumer that finds its queue empty must either see the producer's next item or be woken
//! by the producer that pushes it, never neither (a lost wake-up). Both queues solve it the
//! same way, with a waiting flag, a waker cell and a Dekker pair of fences:
//!
//! | consumer ([`wait_or_take`]) | producer ([`RxSide::notify`]) |
//! |---|---|
//! | register the waker; pop once more; `waiting.swap(true)` | publish the item (`tail`, Release) |
//! | `fence(SeqCst)` | `fence(SeqCst)` |
//! | pop again | `waiting.load()`; if set, `swap(false)` and wake |
//!
//! Either the consumer's pop after its fence sees the item, or the producer's load sees the
//! flag (the two fences are ordered in the single total order of `SeqCst` operations). With a *heavy
//! barrier* (the asymmetric protocol of `ring/barrier.rs`), the producer's fence is only a
//! compiler fence and the consumer, when its pop after the fence still finds nothing, runs
//! the barrier (which orders the producer's store and load for it) and pops once more.
//!
//! Every write of the flag is a read-modify-write (`swap`), on both sides, so that all of
//! them sit in one chain of the flag's modification order, in loom's model as in the C++
//! model. With a plain `store(true)` loom (whose modification order is partial) reports a lost
//! wake-up that the C++ model rules out; the cost is one RMW on the way to sleep, next to the
//! several of the waker registration, and one when a consumer that announced itself finds the
//! item after all.
//!
//! Cost, producer, per notify: one fence (or a compiler fence with a heavy barrier) and one
//! Relaxed load of a line the consumer writes only when it waits; a `swap` and the wake only
//! when the consumer waits. Consumer, per empty poll: the waker registration and one more pop;
//! only if that pop finds nothing, two `swap`s at most, one fence, one or two more pops (and
//! the heavy barrier if it has one and the pop after the fence found nothing).

use core::sync::atomic::compiler_fence;
use core::task::Context;

use crate::ring::PopError;
use crate::sync::{fence, AtomicBool, AtomicWaker, Ordering};

/// The consumer's half of the handshake's shared state: its waker cell, its waiting flag, and
/// the queue's heavy barrier, if it has one.
pub(crate) struct RxSide<'s> {
    pub(crate) waker: &'s AtomicWaker,
    pub(crate) waiting: &'s AtomicBool,
    pub(crate) heavy_barrier: Option<fn()>,
}

impl RxSide<'_> {
    /// The producer's side: call after publishing items. Wakes the consumer if it announced
    /// that it waits.
    #[inline]
    pub(crate) fn notify(&self) {
        if self.heavy_barrier.is_none() {
            // Pairs with the fence in `wait_or_take` (Dekker): either the consumer's re-check
            // sees our last Release store of `tail`, or we see its `waiting` swap.
            fence(Ordering::SeqCst);
        } else {
            // Asymmetric protocol (`ring/barrier.rs`): the consumer's heavy barrier stands in
            // for our fence; only the compiler must keep the `tail` store before the load.
            compiler_fence(Ordering::SeqCst);
        }
        if self.waiting.load(Ordering::Relaxed) && self.waiting.swap(false, Ordering::Relaxed) {
            self.waker.wake();
        }
    }
}

/// The consumer's side, after a pop of `consumer` found the queue empty: registers `cx`'s
/// waker, pops once more, and if that finds nothing announces that it waits and pops again
/// (after the heavy barrier too, if the queue has one). An item found after the announcement
/// clears it; an item found by any of these pops is returned;
/// `Err(Empty)` means the consumer may sleep: the producer's next notify wakes it.
///
/// `side` and `pop` take the consumer in turn, so that the handshake's state can live inside
/// the consumer's storage.
#[inline]
pub(crate) fn wait_or_take<C, T>(
    consumer: &mut C,
    cx: &mut Context<'_>,
    side: for<'c> fn(&'c C) -> RxSide<'c>,
    pop: fn(&mut C) -> Result<T, PopError>,
) -> Result<T, PopError> {
    side(consumer).waker.register(cx.waker());
    // One look before announcing: a consumer that merely caught up with a busy producer
    // often finds the next item here, once the waker registration is done.
    // It then leaves the flag (a line the producer reads per item) unwritten, pays no fence,
    // and costs the producer no wake-up. The registered waker stays unused: the producer
    // wakes only a consumer whose flag is set.
    let early = pop(consumer);
    if !matches!(early, Err(PopError::Empty)) {
        return early;
    }
    side(consumer).waiting.swap(true, Ordering::Relaxed);
    // Pairs with the fence in `RxSide::notify` and with the fence of the producer's `close`:
    // either the pop below sees the producer's newer `tail` / `closed`, or the producer sees
    // `waiting == true` and wakes us.
    fence(Ordering::SeqCst);
    let mut found = pop(consumer);
    if let (Err(PopError::Empty), Some(barrier)) = (&found, side(consumer).heavy_barrier) {
        // Asymmetric protocol: the producer's notify has no fence; this barrier orders its
        // `tail` store or its `waiting` load for it. Paid only when the cheap re-check above
        // found nothing: a consumer that merely caught up with a busy producer finds the next
        // item there, without the barrier (a system call that interrupts the producer's CPU).
        barrier();
        found = pop(consumer);
    }
    if found.is_ok() {
        side(consumer).waiting.swap(false, Ordering::Relaxed);
    }
    found
}
