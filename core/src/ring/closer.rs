//! [`Closer`]: closes a ring from any thread, without the producer.
//!
//! A backend that shares one [`Producer`] between several threads keeps it behind a lock,
//! and a thread that waits for space in `push_blocking` holds that lock while it waits. A
//! `Closer` lets any other thread close the ring meanwhile (and wake the waiting producer)
//! without taking the lock.
//!
//! # Why closing beside the producer is sound
//! A `Closer` touches only the `closed` flag (an atomic store) and the two waker cells (whose
//! `wake` may run on any thread, concurrently with the owner side's `register`: that is
//! `atomic-waker`'s contract). It never reads or writes a slot, `head` or `tail`, so the
//! SPSC ownership of slots is untouched. A close that lands while the producer is anywhere
//! inside a push is the situation the protocol already allows for the consumer's close,
//! which may happen at any time: the push either sees `closed` and hands its value back, or
//! completes; a completed item is either popped or left in the ring and dropped exactly once
//! by the last owner of the storage (`drop_remaining`). The wake-ups follow the same `Release`
//! store and `SeqCst` fence as the halves' own close, so a side that registered its waker and
//! re-checks `closed` after its own fence either sees the flag or is woken.
//!
//! What a `Closer` does *not* give: an order between its close and a push running at the
//! same moment on another thread. Such a push may succeed after the flag was stored, and a
//! consumer that already saw "closed and empty" does not receive it (it is dropped with the
//! ring). A backend that needs "every accepted item is delivered" orders its pushes against
//! its closes itself (the std backend's shared sender does, with a flag word beside its lock).

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use super::{close, Header, Owner, Producer};
use crate::sync::Ordering;

/// Closes a ring from any thread: a `Send + Sync + Clone` handle made by
/// [`Producer::closer`].
///
/// [`close`](Self::close) has the effect of the producer's own close (later pushes fail with
/// `Closed`; the consumer receives the items already pushed, then the end) and also wakes a
/// producer waiting for space, which then gets its value back. The handle keeps a heap
/// ring's storage alive (it holds an `Arc` of it, like the halves) and borrows an inline
/// ring for `'a`.
///
/// Like the halves' close it takes no lock, never waits, and is safe in an interrupt
/// handler (a store, a fence and two waker calls).
///
/// A push running on another thread *at the same moment* as `close` is not ordered against
/// it: it may succeed and its item be left in the ring after the consumer saw the end (it is
/// then dropped with the ring, exactly once). Pushes that happen before the close (on the
/// closing thread, or ordered by a lock) are delivered. Closing beside the producer never
/// breaks the ring: the handle touches only the `closed` flag and the waker cells, never a
/// slot or a position (the full argument is in the source).
///
/// # Examples
/// ```
/// use aiothreads_core::ring::{PopError, PushError, Ring};
///
/// let mut ring = Ring::<u32, 2>::new();
/// let (mut tx, mut rx) = ring.split();
/// let closer = tx.closer();
/// tx.push(1).unwrap();
/// std::thread::scope(|s| {
///     s.spawn(|| closer.close()); // another thread, no access to `tx`
/// });
/// assert!(tx.is_closed());
/// assert_eq!(tx.push(2), Err(PushError::Closed(2)));
/// assert_eq!(rx.pop(), Ok(1)); // drained, then the end
/// assert_eq!(rx.pop(), Err(PopError::Closed));
/// ```
pub struct Closer<'a, T> {
    /// The ring's header, valid for as long as this handle exists: the ring is borrowed for
    /// `'a`, or its heap storage is kept alive by `_owner`.
    header: NonNull<Header>,
    _owner: Owner<T>,
    _borrow: PhantomData<&'a Header>,
}

// SAFETY: through a `Closer` only the header's atomics and waker cells are used (all of them
// `Sync`), never a slot. The owned `Arc` (heap rings) may be the last one and then drops the
// items left in the ring on the thread that drops the handle, hence `T: Send`; `T: Sync` is
// not needed because no `&T` is ever formed through a `Closer`.
unsafe impl<T: core::marker::Send> core::marker::Send for Closer<'_, T> {}
// SAFETY: as for `Send`: `&Closer` allows `close` / `is_closed` (atomics and `AtomicWaker::wake`,
// which may run on several threads at once) and `clone` (an `Arc` count increment).
unsafe impl<T: core::marker::Send> Sync for Closer<'_, T> {}

impl<'a, T> Producer<'a, T> {
    /// A handle that closes this ring from any thread (see [`Closer`]).
    ///
    /// Cost: an `Arc` count increment for a heap ring, nothing for an inline one.
    pub fn closer(&self) -> Closer<'a, T> {
        Closer {
            header: self.raw.header,
            _owner: share(&self._owner),
            _borrow: PhantomData,
        }
    }
}

impl<T> Closer<'_, T> {
    fn header(&self) -> &Header {
        // SAFETY: the header outlives the handle (field invariant of `header`).
        unsafe { self.header.as_ref() }
    }

    /// Closes the ring and wakes both sides: later pushes fail with `Closed`, a producer
    /// waiting for space gets its value back, the consumer receives the items already in the
    /// ring, then the end. Idempotent.
    pub fn close(&self) {
        let header = self.header();
        // The producer's close: Release store of `closed`, `SeqCst` fence, wake the consumer.
        close(header, true);
        // What the consumer's close adds: wake the producer. The fence inside `close` already
        // separates the store of `closed` from this wake, which is all the Dekker pair with
        // `Producer::poll_ready` needs (it registers, fences, then re-checks `closed`).
        header.signals.tx_waker.wake();
    }

    /// `true` once the ring is closed (by either half or a `Closer`).
    pub fn is_closed(&self) -> bool {
        self.header().signals.closed.load(Ordering::Relaxed)
    }
}

/// Another owner of the same storage: an `Arc` clone for heap rings, else the `PhantomData`
/// (which is `Copy` in a build without `alloc`, hence the `allow`).
#[allow(clippy::clone_on_copy)]
fn share<T>(owner: &Owner<T>) -> Owner<T> {
    owner.clone()
}

impl<T> Clone for Closer<'_, T> {
    fn clone(&self) -> Self {
        Self {
            header: self.header,
            _owner: share(&self._owner),
            _borrow: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Closer<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Closer")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(aiothreads_loom)))]
mod tests {
    extern crate alloc;
    extern crate std;

    use super::super::{PopError, PushError, Ring};
    use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::thread;

    struct Counted<'a>(&'a AtomicUsize);
    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// A close from another thread: the producer's pushes fail with the value back, the
    /// consumer drains then sees the end, a clone sees the same flag.
    #[test]
    fn close_from_another_thread() {
        let mut ring = Ring::<u32, 2>::new();
        let (mut tx, mut rx) = ring.split();
        let closer = tx.closer();
        let other = closer.clone();
        assert!(!other.is_closed());
        tx.push(1).unwrap();
        thread::scope(|s| {
            s.spawn(move || closer.close());
        });
        assert!(other.is_closed() && tx.is_closed() && rx.is_closed());
        assert_eq!(tx.push(2), Err(PushError::Closed(2)));
        assert_eq!(rx.pop(), Ok(1));
        assert_eq!(rx.pop(), Err(PopError::Closed));
        other.close(); // idempotent
        assert_eq!(rx.pop(), Err(PopError::Closed));
    }

    /// A producer blocked in `push_blocking` on a full ring is woken by a `Closer` and gets
    /// its value back; the consumer still receives the item already in the ring.
    #[test]
    fn close_wakes_blocked_producer() {
        struct ThreadPark(thread::Thread);
        impl alloc::task::Wake for ThreadPark {
            fn wake(self: alloc::sync::Arc<Self>) {
                self.0.unpark();
            }
        }
        impl crate::park::Park for alloc::sync::Arc<ThreadPark> {
            fn waker(&self) -> core::task::Waker {
                core::task::Waker::from(self.clone())
            }
            fn park(&self) {
                thread::park();
            }
        }
        let mut ring = Ring::<u32, 1>::new();
        let (mut tx, mut rx) = ring.split();
        tx.push(0).unwrap();
        let closer = tx.closer();
        let got = thread::scope(|s| {
            let producer = s.spawn(move || {
                let parker = alloc::sync::Arc::new(ThreadPark(thread::current()));
                tx.push_blocking(1, &parker, 0)
            });
            closer.close();
            producer.join().unwrap()
        });
        assert_eq!(got.map_err(|e| e.into_inner()), Err(1));
        assert_eq!(rx.pop(), Ok(0));
        assert_eq!(rx.pop(), Err(PopError::Closed));
    }

    /// A heap ring outlives its halves while a `Closer` holds it; the last owner drops the
    /// items left in it exactly once.
    #[cfg(feature = "alloc")]
    #[test]
    fn closer_keeps_heap_storage_alive() {
        let drops = AtomicUsize::new(0);
        let (mut tx, rx) = super::super::with_capacity::<Counted<'_>>(2);
        tx.push(Counted(&drops)).unwrap();
        let closer = tx.closer();
        drop(tx);
        drop(rx);
        assert!(closer.is_closed());
        assert_eq!(
            drops.load(SeqCst),
            0,
            "the storage is still owned by the closer"
        );
        closer.close();
        drop(closer);
        assert_eq!(drops.load(SeqCst), 1);
    }

    /// Inline rings: the item left after a close is dropped with the ring.
    #[test]
    fn inline_ring_drops_leftover_once() {
        let drops = AtomicUsize::new(0);
        {
            let mut ring = Ring::<Counted<'_>, 2>::new();
            let (mut tx, rx) = ring.split();
            tx.push(Counted(&drops)).unwrap();
            tx.closer().close();
            assert!(tx.push(Counted(&drops)).is_err()); // dropped at once: 1
            drop((tx, rx));
            assert_eq!(drops.load(SeqCst), 1);
        }
        assert_eq!(drops.load(SeqCst), 2);
    }
}
