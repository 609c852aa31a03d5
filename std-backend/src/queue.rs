//! The queue between a thread and an async task: the core's bounded ring, or (with
//! `max_size` 0) its unbounded queue of linked segments.
//!
//! One enum per half, so streams and channels keep one type whatever the bound: a branch per
//! operation (always the same way for a given queue, so predicted), no allocation, no
//! indirection. Everything else (wake-up protocol, close and drop rules) is the core's, and is
//! the same for both kinds.

use std::task::{Context, Poll};

use aiothreads_core::park::Park;
use aiothreads_core::ring::{
    CapacityError, Closed, Closer as RingCloser, Consumer, PopError, Producer, PushError,
    SendIterEnd,
};
use aiothreads_core::unbounded::{UnboundedCloser, UnboundedConsumer, UnboundedProducer};

/// The sending half.
pub(crate) enum Tx<T> {
    /// At most `capacity` items wait; the producer waits for room.
    Bounded(Producer<'static, T>),
    /// Never full: memory grows with a slow consumer.
    Unbounded(UnboundedProducer<T>),
}

/// The receiving half.
pub(crate) enum Rx<T> {
    /// See [`Tx::Bounded`].
    Bounded(Consumer<'static, T>),
    /// See [`Tx::Unbounded`].
    Unbounded(UnboundedConsumer<T>),
}

/// The largest item, in bytes, that a stream's per-item fast path moves (see
/// [`Rx::pop_fast`]): four cache lines.
pub(crate) const FAST_PATH_MAX_ITEM: usize = 256;

/// Whether items of `T` take a stream's per-item fast path (a constant per `T`: the compiler
/// removes the path it does not take).
#[inline(always)]
pub(crate) const fn fast_path_for<T>() -> bool {
    core::mem::size_of::<T>() <= FAST_PATH_MAX_ITEM
}

/// Closes the queue from any thread, without the sending half (see the core's `Closer`s).
pub(crate) enum Closer<T> {
    /// A ring's.
    Bounded(RingCloser<'static, T>),
    /// An unbounded queue's.
    Unbounded(UnboundedCloser<T>),
}

impl<T> Closer<T> {
    /// Closes the queue and wakes both sides.
    pub(crate) fn close(&self) {
        match self {
            Closer::Bounded(c) => c.close(),
            Closer::Unbounded(c) => c.close(),
        }
    }

    /// Whether the queue is closed.
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Closer::Bounded(c) => c.is_closed(),
            Closer::Unbounded(c) => c.is_closed(),
        }
    }
}

/// A queue for a thread producer and an async consumer: unbounded when `max_size` is 0,
/// else a ring of `max_size` slots (with the asymmetric wake-up protocol where the process
/// has it, see [`crate::barrier`]). One allocation (the unbounded queue: its first segment
/// and its shared state, two).
///
/// # Errors
/// [`CapacityError`] if `max_size` is too large for a ring.
pub(crate) fn queue<T>(max_size: usize) -> Result<(Tx<T>, Rx<T>), CapacityError> {
    if max_size == 0 {
        let (tx, rx) = crate::barrier::stream_unbounded();
        return Ok((Tx::Unbounded(tx), Rx::Unbounded(rx)));
    }
    let (tx, rx) = crate::barrier::stream_ring(max_size)?;
    Ok((Tx::Bounded(tx), Rx::Bounded(rx)))
}

impl<T> Tx<T> {
    /// Ready when a push cannot fail with `Full` (always, unbounded), or when closed. A
    /// bounded queue found full is ready again once half of it is free (the core's
    /// `Producer::poll_room`): a stream's producer that outruns its consumer refills the ring
    /// in runs of half a ring, not one freed slot at a time, so the two threads do not pass
    /// the cache lines of `head` and of the slots back and forth per item.
    #[inline]
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        match self {
            Tx::Bounded(tx) => {
                let half = tx.capacity() / 2;
                tx.poll_room(cx, half)
            }
            Tx::Unbounded(tx) if tx.is_closed() => Poll::Ready(Err(Closed(()))),
            Tx::Unbounded(_) => Poll::Ready(Ok(())),
        }
    }

    /// Whether a producer that found the queue full (a `Pending` [`poll_ready`](Self::poll_ready))
    /// should look again: the consumer has woken it (half the ring is free: its checkpoint)
    /// or the queue is closed. What a producer spins on before it parks: two relaxed loads of
    /// a line the consumer writes only then (see the core's `Producer::is_waiting_for_room`).
    /// Always `true` unbounded.
    pub(crate) fn room_wait_over(&self) -> bool {
        match self {
            Tx::Bounded(tx) => !tx.is_waiting_for_room(),
            Tx::Unbounded(_) => true,
        }
    }

    /// Pushes `item` and wakes the consumer if it waits.
    ///
    /// # Errors
    /// `Full` (bounded only) or `Closed`, handing `item` back.
    #[inline]
    pub(crate) fn try_send(&mut self, item: T) -> Result<(), PushError<T>> {
        match self {
            Tx::Bounded(tx) => tx.try_send(item),
            Tx::Unbounded(tx) => tx
                .push(item)
                .map_err(|Closed(item)| PushError::Closed(item)),
        }
    }

    /// Sends items from `iter` one at a time, each published and the consumer's wake-up
    /// checked before the next is taken, until the iterator ends, a bounded queue is full,
    /// the queue is closed or `max` items were sent (the core's `Producer::send_iter`; the
    /// unbounded queue is never full). Takes an item only when it can be pushed; an item
    /// taken and then refused by a close that raced with it is dropped here, on this thread.
    #[inline]
    pub(crate) fn send_iter<I: Iterator<Item = T>>(
        &mut self,
        iter: &mut I,
        max: usize,
    ) -> (usize, SendIterEnd) {
        match self {
            Tx::Bounded(tx) => tx.send_iter(iter, max),
            Tx::Unbounded(tx) => {
                let mut sent = 0;
                let end = loop {
                    if sent == max {
                        break SendIterEnd::Limit;
                    }
                    if tx.is_closed() {
                        break SendIterEnd::Closed;
                    }
                    let Some(item) = iter.next() else {
                        break SendIterEnd::Exhausted;
                    };
                    if tx.push(item).is_err() {
                        break SendIterEnd::Closed;
                    }
                    sent += 1;
                };
                (sent, end)
            }
        }
    }

    /// Sends the item in `item` when a push cannot fail with `Full` (at once, unbounded):
    /// takes it out of the `Option` once pushed or handed back; leaves it there while
    /// `Pending`.
    ///
    /// # Errors
    /// `Ready(Err(Closed(item)))` once the queue is closed.
    pub(crate) fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        item: &mut Option<T>,
    ) -> Poll<Result<(), Closed<T>>> {
        match self {
            Tx::Bounded(tx) => tx.poll_send(cx, item),
            Tx::Unbounded(tx) => {
                Poll::Ready(tx.push(item.take().expect("poll_send called without an item")))
            }
        }
    }

    /// Pushes `item`, blocking this thread with `parker` while a bounded queue is full.
    ///
    /// # Errors
    /// `Closed(item)` once the queue is closed.
    pub(crate) fn push_blocking<P: Park + ?Sized>(
        &mut self,
        item: T,
        parker: &P,
    ) -> Result<(), Closed<T>> {
        match self {
            Tx::Bounded(tx) => tx.push_blocking(item, parker, 0),
            Tx::Unbounded(tx) => tx.push(item),
        }
    }

    /// A handle closing the queue from any thread.
    pub(crate) fn closer(&self) -> Closer<T> {
        match self {
            Tx::Bounded(tx) => Closer::Bounded(tx.closer()),
            Tx::Unbounded(tx) => Closer::Unbounded(tx.closer()),
        }
    }

    /// Closes the queue: the consumer gets what was sent, then the end.
    pub(crate) fn close(&mut self) {
        match self {
            Tx::Bounded(tx) => tx.close(),
            Tx::Unbounded(tx) => tx.close(),
        }
    }

    /// Whether either half closed the queue.
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Tx::Bounded(tx) => tx.is_closed(),
            Tx::Unbounded(tx) => tx.is_closed(),
        }
    }
}

impl<T> Rx<T> {
    /// The next item, or registers `cx`'s waker; `Ready(None)` once closed and drained.
    #[inline(always)]
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self {
            Rx::Bounded(rx) => rx.poll_recv(cx),
            Rx::Unbounded(rx) => rx.poll_recv(cx),
        }
    }

    /// The next item if there is one now.
    ///
    /// # Errors
    /// `Empty`, or `Closed` once closed and drained.
    pub(crate) fn pop(&mut self) -> Result<T, PopError> {
        match self {
            Rx::Bounded(rx) => rx.pop(),
            Rx::Unbounded(rx) => rx.pop(),
        }
    }

    /// The next item if there is one now, for a stream's per-item fast path: the ring's pop
    /// inline, the unbounded queue's out of line (the ring's is the hot path the consumer's
    /// loop inlines; see `iterable.rs`, `Running::fast_item`).
    ///
    /// `None` for items larger than [`FAST_PATH_MAX_ITEM`] bytes: those take the slow path.
    /// Inlined into the caller's loop, each layer of the fast path keeps its own copy of the
    /// item in the caller's frame (a stream of 1 MiB items needed 10 MiB of the consumer's
    /// stack with it, 8 without it), and for such items the copies cost far more than the
    /// checks the fast path saves.
    #[inline(always)]
    pub(crate) fn pop_fast(&mut self) -> Option<T> {
        if !fast_path_for::<T>() {
            return None;
        }
        match self {
            Rx::Bounded(rx) => rx.pop().ok(),
            Rx::Unbounded(rx) => Self::pop_unbounded(rx),
        }
    }

    #[inline(never)]
    fn pop_unbounded(rx: &mut UnboundedConsumer<T>) -> Option<T> {
        rx.pop().ok()
    }

    /// Closes the queue: later pushes fail; a producer waiting for room is woken.
    pub(crate) fn close(&mut self) {
        match self {
            Rx::Bounded(rx) => rx.close(),
            Rx::Unbounded(rx) => rx.close(),
        }
    }

    /// Whether either half closed the queue.
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Rx::Bounded(rx) => rx.is_closed(),
            Rx::Unbounded(rx) => rx.is_closed(),
        }
    }

    /// The bound (`0`: unbounded).
    pub(crate) fn max_size(&self) -> usize {
        match self {
            Rx::Bounded(rx) => rx.capacity(),
            Rx::Unbounded(_) => 0,
        }
    }
}
