//! Waker-based adapters: `poll_*` methods, the named futures around them, `Stream`, and the
//! blocking wrappers over [`Park`].
//!
//! The protocol is described under [Memory ordering](super#memory-ordering).

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::Stream;

use super::{Closed, Consumer, PopError, Producer, PushError, SendIterEnd};
use crate::park::{self, Park};
use crate::sync::{fence, Ordering};
use crate::wake::wait_or_take;

impl<'a, T> Producer<'a, T> {
    /// Pushes `value` and wakes the consumer if it waits. Wait-free.
    ///
    /// # Errors
    /// As [`push`](Self::push): `Full` or `Closed`, handing `value` back.
    ///
    /// # Examples
    /// ```
    /// use aiothreads_core::ring::Ring;
    ///
    /// let mut ring = Ring::<u32, 2>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// tx.try_send(5).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(5));
    /// ```
    #[inline]
    pub fn try_send(&mut self, value: T) -> Result<(), PushError<T>> {
        self.push(value)?;
        self.notify_consumer();
        Ok(())
    }

    /// Sends items from `iter` one at a time, each as by [`try_send`](Self::try_send)
    /// (published and the consumer's wake-up checked before the next is taken), until the
    /// iterator ends, the ring is full or closed, or `max` items were sent. Returns how many
    /// were sent and why it stopped. Takes an item from `iter` only when there is a slot for
    /// it, so no item is ever held back or lost; the ring's closing is looked at before each
    /// item, so a producer stops within one item of a consumer that left.
    ///
    /// What a thread that turns an iterator into a stream runs: the same per-item work as a
    /// loop of `try_send`, with the producer's position kept in a register across the run
    /// instead of reloaded from memory around each `next()`.
    ///
    /// Cost per item: one Relaxed load of the read-mostly `closed` flag, a compare on the
    /// cached limit (an Acquire load of `head` only when it says full), `next()`, the slot
    /// write, one Release store of `tail`, and the wake-up check (two Relaxed loads; a `SeqCst`
    /// fence in the fence protocol). No atomic RMW unless the consumer sleeps.
    ///
    /// If `iter.next()` panics, the items sent before stay sent (each was published at once)
    /// and the producer stays usable.
    ///
    /// # Examples
    /// ```
    /// use aiothreads_core::ring::{Ring, SendIterEnd};
    ///
    /// let mut ring = Ring::<u32, 4>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// let mut items = 0..10;
    /// assert_eq!(tx.send_iter(&mut items, 2), (2, SendIterEnd::Limit));
    /// assert_eq!(tx.send_iter(&mut items, usize::MAX), (2, SendIterEnd::Full));
    /// assert_eq!(items.next(), Some(4)); // nothing taken that did not fit
    /// assert_eq!(rx.drain().collect::<Vec<_>>(), [0, 1, 2, 3]);
    /// assert_eq!(tx.send_iter(&mut (7..9), usize::MAX), (2, SendIterEnd::Exhausted));
    /// drop(rx);
    /// assert_eq!(tx.send_iter(&mut items, usize::MAX), (0, SendIterEnd::Closed));
    /// ```
    #[inline]
    pub fn send_iter<I: Iterator<Item = T>>(
        &mut self,
        iter: &mut I,
        max: usize,
    ) -> (usize, SendIterEnd) {
        let header = self.raw.header();
        let mut sent = 0;
        // Kept in registers for the run; `self.tail` is written back after each item (a
        // store to this half's own line), so an unwinding `next()` leaves the half consistent.
        let mut tail = self.tail;
        let mut limit = self.limit;
        let end = loop {
            if sent == max {
                break SendIterEnd::Limit;
            }
            if header.signals.closed.load(Ordering::Relaxed) {
                break SendIterEnd::Closed;
            }
            if tail == limit {
                // Acquire: pairs with the consumer's Release store of `head` (as in `push`).
                let head = header.head.load(Ordering::Acquire);
                limit = self.raw.advance(head, self.raw.cap);
                self.limit = limit;
                if tail == limit {
                    break SendIterEnd::Full;
                }
            }
            let Some(value) = iter.next() else {
                break SendIterEnd::Exhausted;
            };
            // SAFETY: `tail != limit`, so `tail` is less than `cap` ahead of head: its slot is
            // vacant, and only the producer writes slots (as in `push`).
            unsafe { self.raw.write(tail, value) };
            tail = self.raw.advance1(tail);
            self.tail = tail;
            // Release: pairs with the consumer's Acquire load of `tail` (as in `push`).
            header.tail.store(tail, Ordering::Release);
            header.signals.rx_side().notify();
            sent += 1;
        };
        (sent, end)
    }

    /// Ready when a slot is free (a following [`try_send`](Self::try_send) cannot fail with
    /// `Full`: only this half fills slots), or when the ring is closed. Otherwise registers
    /// `cx`'s waker, to be woken by the consumer's next checkpoint or a close.
    ///
    /// # Errors
    /// `Ready(Err(Closed))` once the ring is closed.
    ///
    /// # Panics
    /// If cloning `cx`'s waker (or dropping the waker it replaces) panics, the panic
    /// propagates and this side's waker cell stays locked: this side is never woken again
    /// (see the crate docs, [known limitation](crate#known-limitation-a-waker-whose-clone-or-drop-panics)).
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        self.poll_room(cx, 1)
    }

    /// Like [`poll_ready`](Self::poll_ready), with *hysteresis*: once the slots this half
    /// knows to be free are used up, `Ready` only when at least `min` are free again (`min`
    /// clamped to `1 ..= max(1, capacity / 2)`, so the consumer's next checkpoints always
    /// bring it). A producer that keeps the ring full then refills it in runs of `min` items
    /// instead of one freed slot at a time: the two sides work on different cache lines
    /// instead of passing the line of `head` and of the slots back and forth per item.
    ///
    /// # Errors
    /// `Ready(Err(Closed))` once the ring is closed.
    ///
    /// # Panics
    /// As [`poll_ready`](Self::poll_ready).
    ///
    /// # Examples
    /// ```
    /// use aiothreads_core::ring::Ring;
    /// use core::task::{Context, Poll, Waker};
    ///
    /// let mut ring = Ring::<u8, 4>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// let mut cx = Context::from_waker(Waker::noop());
    /// for i in 0..4 {
    ///     tx.try_send(i).unwrap();
    /// }
    /// rx.pop().unwrap(); // one slot free, but the producer asked for two
    /// assert_eq!(tx.poll_room(&mut cx, 2), Poll::Pending);
    /// rx.pop().unwrap(); // the consumer's checkpoint: two free
    /// assert_eq!(tx.poll_room(&mut cx, 2), Poll::Ready(Ok(())));
    /// ```
    pub fn poll_room(&mut self, cx: &mut Context<'_>, min: usize) -> Poll<Result<(), Closed>> {
        if self.is_closed() {
            return Poll::Ready(Err(Closed(())));
        }
        // At most the consumer's checkpoint interval, which is what wakes us.
        let min = min.clamp(1, (self.raw.cap / 2).max(1));
        if self.tail != self.limit || self.slots() >= min {
            return Poll::Ready(Ok(()));
        }
        let s = &self.raw.header().signals;
        s.tx_waker.register(cx.waker());
        s.tx_waiting.store(true, Ordering::Relaxed);
        // Pairs with the fence in `Consumer::notify_producer` (a checkpoint) or in
        // `Consumer::poll_recv`, and with the fence of `close`: either we see the consumer's
        // newer `head` / `closed` below, or it sees `tx_waiting == true` and wakes us. A wake
        // that comes with fewer than `min` slots free leaves us to register again; the
        // consumer holds more than `capacity - min >= capacity / 2` items then, so it reaches
        // its next checkpoint (every `max(1, capacity / 2)` pops) without waiting for us.
        fence(Ordering::SeqCst);
        let result = if self.is_closed() {
            Err(Closed(()))
        } else if self.slots() >= min {
            Ok(())
        } else {
            return Poll::Pending;
        };
        self.raw
            .header()
            .signals
            .tx_waiting
            .store(false, Ordering::Relaxed);
        Poll::Ready(result)
    }

    /// Sends the value in `value` when a slot is free: takes it out of the `Option` once it
    /// is pushed (or handed back in the error); leaves it there while `Pending`.
    ///
    /// # Errors
    /// `Ready(Err(Closed(value)))` if the ring is closed.
    ///
    /// # Panics
    /// If `value` is `None`; and as [`poll_ready`](Self::poll_ready) for a waker that panics.
    pub fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        value: &mut Option<T>,
    ) -> Poll<Result<(), Closed<T>>> {
        assert!(value.is_some(), "poll_send called without a value");
        match self.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                let value = value.take().expect("checked above");
                if result.is_err() {
                    return Poll::Ready(Err(Closed(value)));
                }
                // `poll_ready` saw a free slot and only this half fills slots: not `Full`.
                Poll::Ready(self.try_send(value).map_err(|e| Closed(e.into_inner())))
            }
        }
    }

    /// Sends `value`, waiting asynchronously for a free slot.
    ///
    /// # Cancel safety
    /// The value is held in the future until it is pushed; dropping the future before it
    /// completes drops the value (it is never half-sent).
    ///
    /// # Examples
    /// ```
    /// use aiothreads_core::ring::Ring;
    /// # futures::executor::block_on(async {
    /// let mut ring = Ring::<u32, 2>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// tx.send(1).await.unwrap();
    /// assert_eq!(rx.recv().await, Some(1));
    /// # });
    /// ```
    pub fn send(&mut self, value: T) -> Send<'_, 'a, T> {
        Send {
            producer: self,
            value: Some(value),
        }
    }

    /// Pushes `value`, blocking the calling thread with `parker` while the ring is full
    /// (spinning up to `spin` polls first), and wakes the consumer.
    ///
    /// # Errors
    /// `Err(Closed(value))` if the ring is closed.
    pub fn push_blocking<P: Park + ?Sized>(
        &mut self,
        value: T,
        parker: &P,
        spin: u32,
    ) -> Result<(), Closed<T>> {
        let value = match self.try_send(value) {
            Ok(()) => return Ok(()),
            Err(PushError::Closed(value)) => return Err(Closed(value)),
            Err(PushError::Full(value)) => value,
        };
        let mut value = Some(value);
        park::wait(parker, spin, |cx| self.poll_send(cx, &mut value))
    }
}

impl<'a, T> Consumer<'a, T> {
    /// Pops an item; if none is available, registers `cx`'s waker, to be woken by the
    /// producer's next notifying push or a close. `Ready(None)` once the ring is closed and
    /// drained.
    ///
    /// Going to sleep on an empty ring is also a checkpoint: a waiting producer is woken.
    ///
    /// # Panics
    /// If cloning `cx`'s waker (or dropping the waker it replaces) panics, the panic
    /// propagates and this side's waker cell stays locked: this side is never woken again
    /// (see the crate docs, [known limitation](crate#known-limitation-a-waker-whose-clone-or-drop-panics)).
    #[cfg_attr(any(feature = "alloc", aiothreads_loom), inline)]
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        // The hot path (an item is there) inline; the handshake out of line, so that a
        // consumer's loop keeps its state in registers and pays no call per item.
        match self.pop() {
            Ok(value) => Poll::Ready(Some(value)),
            Err(PopError::Closed) => Poll::Ready(None),
            Err(PopError::Empty) => self.poll_recv_empty(cx),
        }
    }

    /// [`poll_recv`](Self::poll_recv) after a pop found the ring empty: the wake-up handshake.
    /// Out of line where it carries the light protocol's choice (`alloc`); without `alloc`
    /// (firmware) the compiler decides, which keeps the code smaller there (`make sizes`).
    #[cfg_attr(any(feature = "alloc", aiothreads_loom), inline(never))]
    fn poll_recv_empty(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let found = wait_or_take(
            self,
            cx,
            |c| c.raw.header().signals.rx_side(),
            Self::pop,
            Self::barrier_point,
        );
        match found {
            Ok(value) => Poll::Ready(Some(value)),
            Err(PopError::Closed) => Poll::Ready(None),
            Err(PopError::Empty) => {
                // The handshake's fence follows our last `head` store: it serves as a
                // checkpoint.
                self.restart_checkpoint();
                super::wake_producer_if_waiting(self.raw.header());
                Poll::Pending
            }
        }
    }

    /// Receives the next item, waiting asynchronously. `None` once the ring is closed and
    /// drained.
    ///
    /// # Cancel safety
    /// Cancel-safe: an item is only taken out of the ring in the poll that returns it, so
    /// dropping the future loses nothing.
    pub fn recv(&mut self) -> Recv<'_, 'a, T> {
        Recv { consumer: self }
    }

    /// Pops an item, blocking the calling thread with `parker` while the ring is empty
    /// (spinning up to `spin` polls first). `None` once the ring is closed and drained.
    pub fn pop_blocking<P: Park + ?Sized>(&mut self, parker: &P, spin: u32) -> Option<T> {
        match self.pop() {
            Ok(value) => return Some(value),
            Err(PopError::Closed) => return None,
            Err(PopError::Empty) => {}
        }
        park::wait(parker, spin, |cx| self.poll_recv(cx))
    }
}

impl<T> Stream for Consumer<'_, T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let tail = self.raw.header().tail.load(Ordering::Acquire);
        (self.raw.distance(self.head, tail), None)
    }
}

/// Future returned by [`Producer::send`]; resolves to `Err(Closed(value))` if the ring is
/// closed.
///
/// # Cancel safety
/// Dropping it before completion drops the value it holds.
#[must_use = "futures do nothing unless polled"]
pub struct Send<'r, 'a, T> {
    producer: &'r mut Producer<'a, T>,
    /// `Some` until the value is pushed or handed back.
    value: Option<T>,
}

// The value is only ever moved out of the `Option`, never pinned.
impl<T> Unpin for Send<'_, '_, T> {}

impl<T> Future for Send<'_, '_, T> {
    type Output = Result<(), Closed<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(this.value.is_some(), "`Send` polled after completion");
        this.producer.poll_send(cx, &mut this.value)
    }
}

impl<T> fmt::Debug for Send<'_, '_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Send")
            .field("pending", &self.value.is_some())
            .finish_non_exhaustive()
    }
}

/// Future returned by [`Consumer::recv`].
///
/// # Cancel safety
/// Cancel-safe: dropping it loses no item.
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'r, 'a, T> {
    consumer: &'r mut Consumer<'a, T>,
}

impl<T> Future for Recv<'_, '_, T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().consumer.poll_recv(cx)
    }
}

impl<T> fmt::Debug for Recv<'_, '_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv").finish_non_exhaustive()
    }
}
