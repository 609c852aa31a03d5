//! Waker-based adapters of the consumer: `poll_recv`, the `Recv` future, `Stream`, and the
//! blocking wrapper over [`Park`]. The producer never waits, so it has none.
//!
//! The protocol is described under [Memory ordering](super#memory-ordering).

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::Stream;

use super::{PopError, UnboundedConsumer};
use crate::park::{self, Park};
use crate::wake::wait_or_take;

impl<T> UnboundedConsumer<T> {
    /// Pops an item; if none is available, registers `cx`'s waker, to be woken by the
    /// producer's next [`push`](super::UnboundedProducer::push) (or
    /// [`notify_consumer`](super::UnboundedProducer::notify_consumer)) or its close.
    /// `Ready(None)` once the queue is closed and drained.
    ///
    /// # Panics
    /// If cloning `cx`'s waker (or dropping the waker it replaces) panics, the panic
    /// propagates and this side's waker cell stays locked: this side is never woken again
    /// (see the crate docs, [known limitation](crate#known-limitation-a-waker-whose-clone-or-drop-panics)).
    ///
    /// # Examples
    /// ```
    /// use core::task::{Context, Poll, Waker};
    ///
    /// let (mut tx, mut rx) = aiothreads_core::unbounded::channel();
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
    /// tx.push(1).unwrap();
    /// assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
    /// drop(tx);
    /// assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
    /// ```
    #[inline]
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        // The hot path inline, the handshake out of line (as the ring's `poll_recv`).
        match self.pop() {
            Ok(value) => Poll::Ready(Some(value)),
            Err(PopError::Closed) => Poll::Ready(None),
            Err(PopError::Empty) => self.poll_recv_empty(cx),
        }
    }

    /// [`poll_recv`](Self::poll_recv) after a pop found the queue empty: the handshake.
    #[inline(never)]
    fn poll_recv_empty(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let found = wait_or_take(
            self,
            cx,
            |c| c.shared.signals.rx_side(),
            Self::pop,
            Self::barrier_point,
        );
        match found {
            Ok(value) => Poll::Ready(Some(value)),
            Err(PopError::Closed) => Poll::Ready(None),
            Err(PopError::Empty) => Poll::Pending,
        }
    }

    /// Receives the next item, waiting asynchronously. `None` once the queue is closed and
    /// drained.
    ///
    /// # Cancel safety
    /// Cancel-safe: an item is only taken out of the queue in the poll that returns it, so
    /// dropping the future loses nothing.
    ///
    /// # Examples
    /// ```
    /// # futures::executor::block_on(async {
    /// let (mut tx, mut rx) = aiothreads_core::unbounded::channel();
    /// tx.push(1).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.recv().await, Some(1));
    /// assert_eq!(rx.recv().await, None);
    /// # });
    /// ```
    pub fn recv(&mut self) -> Recv<'_, T> {
        Recv { consumer: self }
    }

    /// Pops an item, blocking the calling thread with `parker` while the queue is empty
    /// (spinning up to `spin` polls first). `None` once the queue is closed and drained.
    ///
    /// # Examples
    /// ```
    /// use core::task::Waker;
    /// use aiothreads_core::park::Park;
    ///
    /// // A parker for one thread whose items are already there (the std backend has a real one).
    /// struct NoPark;
    /// impl Park for NoPark {
    ///     fn waker(&self) -> Waker { Waker::noop().clone() }
    ///     fn park(&self) {}
    /// }
    ///
    /// let (mut tx, mut rx) = aiothreads_core::unbounded::channel();
    /// tx.push("x").unwrap();
    /// drop(tx);
    /// assert_eq!(rx.pop_blocking(&NoPark, 0), Some("x"));
    /// assert_eq!(rx.pop_blocking(&NoPark, 0), None);
    /// ```
    pub fn pop_blocking<P: Park + ?Sized>(&mut self, parker: &P, spin: u32) -> Option<T> {
        match self.pop() {
            Ok(value) => return Some(value),
            Err(PopError::Closed) => return None,
            Err(PopError::Empty) => {}
        }
        park::wait(parker, spin, |cx| self.poll_recv(cx))
    }
}

impl<T> Stream for UnboundedConsumer<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), None)
    }
}

/// Future returned by [`UnboundedConsumer::recv`].
///
/// # Cancel safety
/// Cancel-safe: dropping it loses no item.
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'r, T> {
    consumer: &'r mut UnboundedConsumer<T>,
}

impl<T> Future for Recv<'_, T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().consumer.poll_recv(cx)
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv").finish_non_exhaustive()
    }
}
