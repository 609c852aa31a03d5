//! A oneshot slot: one value from one side to the other, with a waker.
//!
//! [`Slot`] is the allocation-free primitive (`const fn new`, so it can be a `static`, and
//! embeddable in a larger allocation, which is how the std backend keeps one allocation per
//! call). All its methods take `&self` and arbitrate with atomic bits, so misuse is never
//! undefined behaviour: a second `send` is refused (the value is handed back), and the value
//! leaves the slot exactly once. With the `alloc` feature, [`oneshot`] makes an owned
//! [`Sender`]/[`Receiver`] pair whose `Drop`s abandon and close the slot.
//!
//! # One receiver at a time
//! The slot has room for **one** waker. Receivers that follow one another are fine (a
//! dropped [`Recv`] future, then a new one: each poll registers its own waker). Two receivers
//! *waiting at the same time* with different wakers are not refused, and one of them may wait
//! forever:
//! - each pending [`poll_recv`](Slot::poll_recv) replaces the registered waker, so `send` and
//!   `abandon` wake only the receiver that polled last; the other is never woken and hangs
//!   unless something else polls it again;
//! - if the two polls register at the very same instant, `atomic-waker` keeps one waker and
//!   silently drops the other registration, with the same result.
//!
//! The value itself is still safe: whichever receiver polls first after the send gets it, the
//! other then gets [`RecvError::AlreadyTaken`]. Sharing one receive between tasks therefore
//! needs a layer above the slot (one task receives and forwards); the owned [`Receiver`] is
//! not `Clone` for that reason.
//!
//! - The receiver side is a `Future` ([`Slot::recv`], [`Receiver`]).
//! - The sender sees that the receiver has gone ([`Slot::is_closed`]): that is how
//!   cancellation works — a queued job whose handle was dropped is skipped, a running one can
//!   stop early.
//! - A sender that leaves without a value ([`Slot::abandon`], or dropping a [`Sender`]) is seen
//!   by the receiver as [`RecvError::SenderGone`].
//!
//! # State machine
//! One `AtomicU8` of independent bits, each set once and never cleared:
//!
//! | bit | set by | meaning |
//! |---|---|---|
//! | `WRITING` | `send` | a sender claimed the slot; later sends fail |
//! | `READY` | `send` | the value is fully written |
//! | `TAKEN` | whoever moves the value out | the value left the slot (read, dropped or handed back) |
//! | `RX_CLOSED` | `close` | the receiver is no longer interested |
//! | `TX_GONE` | `abandon` | the sender left; no value will come unless one is `READY` |
//!
//! Every exit of the value goes through `fetch_or(TAKEN)`: the one caller that finds `TAKEN`
//! clear owns the value, so it is delivered or dropped exactly once, whatever interleaving.
//!
//! # Memory ordering
//! - `fetch_or(READY, AcqRel)` in `send`: *Release* publishes the value write to whoever
//!   observes `READY`; *Acquire* lets the sender see a concurrent `RX_CLOSED`.
//! - `fetch_or(TAKEN, AcqRel)`: *Acquire* pairs with the Release of `READY`, so the winner
//!   reads a fully written value.
//! - The waker is registered before the state is re-checked (the `atomic-waker` rule), and the
//!   sender wakes after setting `READY`/`TX_GONE`, so no wake-up is lost.
//!
//! # Cost
//! A send is two atomic RMWs and one `AtomicWaker::wake` (one more RMW; a wake-up only if a
//! waker is registered). A receive that finds the value ready is one load and one RMW.
//!
//! # Examples
//! ```
//! use aiothreads_core::slot::{RecvError, Slot, TryRecvError};
//!
//! static ANSWER: Slot<u32> = Slot::new();
//!
//! std::thread::spawn(|| ANSWER.send(42).unwrap()).join().unwrap();
//! assert_eq!(futures::executor::block_on(ANSWER.recv()), Ok(42));
//! // The value has left: a second receive says so.
//! assert_eq!(ANSWER.try_recv(), Err(TryRecvError::Failed(RecvError::AlreadyTaken)));
//! ```

use core::fmt;
use core::future::Future;
use core::mem::MaybeUninit;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::sync::{AtomicU8, AtomicWaker, Ordering, UnsafeCell};

const WRITING: u8 = 1;
const READY: u8 = 2;
const TAKEN: u8 = 4;
const RX_CLOSED: u8 = 8;
const TX_GONE: u8 = 16;

/// Why a receive gave no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecvError {
    /// The sender left without sending (in the std backend: the job was skipped, its thread
    /// could not start, or the pool shut down).
    SenderGone,
    /// The value was already taken by an earlier receive.
    AlreadyTaken,
    /// The receiving side closed the slot before a value was taken.
    Closed,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SenderGone => "the sender left without sending a value",
            Self::AlreadyTaken => "the value was already taken from the slot",
            Self::Closed => "the slot was closed by its receiver",
        })
    }
}

impl core::error::Error for RecvError {}

/// Why [`Slot::try_recv`] gave no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TryRecvError {
    /// No value yet; the sender may still send.
    Empty,
    /// No value will ever come to this receive (see [`RecvError`]).
    Failed(RecvError),
}

/// A oneshot slot. See the [module docs](self).
pub struct Slot<T> {
    /// Bits `WRITING | READY | TAKEN | RX_CLOSED | TX_GONE`, each set at most once.
    state: AtomicU8,
    /// Initialised iff `READY` is set and `TAKEN` is not (or while the sender writes it).
    value: UnsafeCell<MaybeUninit<T>>,
    /// The receiver's waker.
    waker: AtomicWaker,
}

// SAFETY: the value is moved in by one sender and out by one owner (arbitrated by the
// `WRITING` and `TAKEN` bits); moving it between threads needs `T: Send`, and no `&T` is ever
// shared, so `T: Sync` is not needed.
unsafe impl<T: Send> Sync for Slot<T> {}
// SAFETY: owning the slot owns at most one `T`.
unsafe impl<T: Send> Send for Slot<T> {}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Slot<T> {
    /// An empty slot.
    #[cfg(not(aiothreads_loom))]
    pub const fn new() -> Self {
        Self {
            state: AtomicU8::new(0),
            value: UnsafeCell::new(MaybeUninit::uninit()),
            waker: AtomicWaker::new(),
        }
    }

    /// An empty slot (loom build: loom's atomics are not `const`).
    #[cfg(aiothreads_loom)]
    pub fn new() -> Self {
        Self {
            state: AtomicU8::new(0),
            value: UnsafeCell::new(MaybeUninit::uninit()),
            waker: AtomicWaker::new(),
        }
    }

    /// Sends `value` and wakes the receiver.
    ///
    /// # Errors
    /// Hands `value` back if the slot was already sent to or abandoned, or if the receiver has
    /// closed it (also when the close races with this send).
    pub fn send(&self, value: T) -> Result<(), T> {
        let prev = self.state.fetch_or(WRITING, Ordering::Acquire);
        if prev & (WRITING | TX_GONE | RX_CLOSED) != 0 {
            return Err(value);
        }
        // SAFETY: we are the only caller that saw `WRITING` clear, so nobody else writes the
        // value, and nobody reads it before `READY` is set below.
        self.value.with_mut(|ptr| unsafe { (*ptr).write(value) });
        // Release: publishes the write above to the `Acquire` of whoever takes it.
        let prev = self.state.fetch_or(READY, Ordering::AcqRel);
        if prev & RX_CLOSED != 0 {
            // The receiver left while we wrote. Take the value back unless its close already
            // did (it only does once it sees `READY`).
            if let Some(value) = self.take_value() {
                return Err(value);
            }
            return Ok(());
        }
        self.waker.wake();
        Ok(())
    }

    /// The sender leaves without a value (no-op after a successful `send`); wakes the
    /// receiver, which then gets [`RecvError::SenderGone`].
    pub fn abandon(&self) {
        let prev = self.state.fetch_or(TX_GONE, Ordering::Release);
        if prev & WRITING == 0 {
            self.waker.wake();
        }
    }

    /// The receiver leaves: later sends fail and a value already sent is dropped here.
    pub fn close(&self) {
        let prev = self.state.fetch_or(RX_CLOSED, Ordering::AcqRel);
        if prev & READY != 0 {
            drop(self.take_value());
        }
        // Drop the registered waker now rather than with the slot: it may keep a task alive.
        drop(self.waker.take());
    }

    /// Whether the receiver has closed the slot (the cancellation flag seen by a sender).
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Relaxed) & RX_CLOSED != 0
    }

    /// Whether a value has been sent and not yet taken.
    pub fn is_ready(&self) -> bool {
        self.state.load(Ordering::Acquire) & (READY | TAKEN) == READY
    }

    /// Whether the slot will never produce a value to a receive any more.
    pub fn is_terminated(&self) -> bool {
        let s = self.state.load(Ordering::Acquire);
        s & (TAKEN | RX_CLOSED) != 0 || s & (TX_GONE | READY) == TX_GONE
    }

    /// Moves the value out if this caller is the first to set `TAKEN`.
    fn take_value(&self) -> Option<T> {
        // Acquire: pairs with the Release of `READY` in `send`.
        let prev = self.state.fetch_or(TAKEN, Ordering::AcqRel);
        if prev & TAKEN != 0 {
            return None;
        }
        debug_assert!(prev & READY != 0, "take_value called before READY");
        // SAFETY: `READY` was set (callers check it) so the value is initialised, and we are
        // the only caller that saw `TAKEN` clear, so nobody else reads or drops it.
        Some(self.value.with(|ptr| unsafe { (*ptr).assume_init_read() }))
    }

    /// The terminal error a state stands for, if any, ignoring `READY`.
    fn failure(state: u8) -> Option<RecvError> {
        if state & RX_CLOSED != 0 {
            Some(RecvError::Closed)
        } else if state & TAKEN != 0 {
            Some(RecvError::AlreadyTaken)
        } else if state & TX_GONE != 0 {
            Some(RecvError::SenderGone)
        } else {
            None
        }
    }

    /// Takes the value if it is there, without registering a waker.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] while the sender may still send; otherwise the reason no value
    /// will come.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let state = self.state.load(Ordering::Acquire);
        if state & (READY | TAKEN | RX_CLOSED) == READY {
            if let Some(value) = self.take_value() {
                return Ok(value);
            }
            return Err(TryRecvError::Failed(RecvError::AlreadyTaken));
        }
        match Self::failure(state) {
            Some(err) => Err(TryRecvError::Failed(err)),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Polls for the value, registering `cx`'s waker when it is not there yet.
    ///
    /// The registered waker replaces the one of any other receiver that is waiting: only one
    /// receiver may wait at a time (see [One receiver at a time](self#one-receiver-at-a-time)).
    ///
    /// # Panics
    /// If cloning `cx`'s waker (or dropping the waker it replaces) panics, the panic
    /// propagates and the slot's waker cell stays locked: the receiver is never woken again
    /// (see the crate docs, [known limitation](crate#known-limitation-a-waker-whose-clone-or-drop-panics)).
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<T, RecvError>> {
        match self.try_recv() {
            Ok(value) => return Poll::Ready(Ok(value)),
            Err(TryRecvError::Failed(err)) => return Poll::Ready(Err(err)),
            Err(TryRecvError::Empty) => {}
        }
        // Register, then re-check: a send between the check above and the registration would
        // otherwise wake nobody.
        self.waker.register(cx.waker());
        match self.try_recv() {
            Ok(value) => Poll::Ready(Ok(value)),
            Err(TryRecvError::Failed(err)) => Poll::Ready(Err(err)),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }

    /// A future of the value.
    ///
    /// Cancel-safe: dropping the future takes nothing out of the slot; a later `recv` still
    /// gets the value. Only one `Recv` may wait at a time (see
    /// [One receiver at a time](self#one-receiver-at-a-time)).
    pub fn recv(&self) -> Recv<'_, T> {
        Recv { slot: self }
    }
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        let state = self.state.load(Ordering::Relaxed);
        if state & (READY | TAKEN) == READY {
            // SAFETY: `&mut self` excludes other accesses; `READY` without `TAKEN` means the
            // value is initialised and owned by the slot.
            self.value
                .with_mut(|ptr| unsafe { (*ptr).assume_init_drop() });
        }
    }
}

impl<T> fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Future returned by [`Slot::recv`]. Cancel-safe.
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'a, T> {
    slot: &'a Slot<T>,
}

impl<T> Future for Recv<'_, T> {
    type Output = Result<T, RecvError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.slot.poll_recv(cx)
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv").field("slot", self.slot).finish()
    }
}

#[cfg(feature = "alloc")]
pub use owned::{oneshot, Receiver, Sender};

#[cfg(feature = "alloc")]
mod owned {
    use super::{RecvError, Slot};
    use crate::sync::Arc;
    use core::future::Future;
    use core::pin::Pin;
    use core::task::{Context, Poll};

    /// An owned oneshot pair over one heap-allocated [`Slot`].
    ///
    /// Dropping the [`Sender`] without sending makes the receiver see
    /// [`RecvError::SenderGone`]; dropping the [`Receiver`] makes [`Sender::is_closed`] true and
    /// [`Sender::send`] fail.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = aiothreads_core::slot::oneshot::<&str>();
    /// std::thread::spawn(move || tx.send("hi").unwrap());
    /// assert_eq!(futures::executor::block_on(rx), Ok("hi"));
    /// ```
    pub fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
        let slot = Arc::new(Slot::new());
        (Sender { slot: slot.clone() }, Receiver { slot })
    }

    /// Sending half of [`oneshot`].
    #[derive(Debug)]
    pub struct Sender<T> {
        slot: Arc<Slot<T>>,
    }

    impl<T> Sender<T> {
        /// Sends the value.
        ///
        /// # Errors
        /// Hands the value back if the receiver has gone.
        pub fn send(self, value: T) -> Result<(), T> {
            // Drop (abandon) after a successful send is a no-op.
            self.slot.send(value)
        }

        /// Whether the receiver has gone.
        pub fn is_closed(&self) -> bool {
            self.slot.is_closed()
        }
    }

    impl<T> Drop for Sender<T> {
        fn drop(&mut self) {
            self.slot.abandon();
        }
    }

    /// Receiving half of [`oneshot`]: a `Future` of the value.
    ///
    /// Cancel-safe while it lives; dropping it closes the slot (a sent value is dropped).
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Receiver<T> {
        slot: Arc<Slot<T>>,
    }

    impl<T> Receiver<T> {
        /// Takes the value if it is there.
        ///
        /// # Errors
        /// See [`Slot::try_recv`].
        pub fn try_recv(&self) -> Result<T, super::TryRecvError> {
            self.slot.try_recv()
        }
    }

    impl<T> Future for Receiver<T> {
        type Output = Result<T, RecvError>;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            self.slot.poll_recv(cx)
        }
    }

    impl<T> Drop for Receiver<T> {
        fn drop(&mut self) {
            self.slot.close();
        }
    }
}
