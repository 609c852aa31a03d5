//! The channel under the iterables, for threads driven by hand ([`FromThreadChannel`]), and the
//! reverse bridge: an async `Stream` consumed as a blocking `Iterator` ([`blocking_iter`]).
//!
//! Both are the core's bounded SPSC ring with a thread parker on the blocking side and a
//! waker on the async side: no lock, no allocation per item, a wake-up only for a side that
//! sleeps (see [`aiothreads_core::ring`]). A cloned [`ThreadSender`] (many producer threads)
//! shares the ring's one producer behind a mutex.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::{poll_fn, Future};
use std::iter::FusedIterator;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use aiothreads_core::park;
use aiothreads_core::ring::{self, Consumer, PopError, Producer, PushError};
use futures_core::Stream;

use crate::block_on::block_on_checked;
use crate::context::ContextSnapshot;
use crate::coop::RunBudget;
use crate::misuse::{check_may_block, ReceiverSeat};
use crate::parker::ThreadParker;
use crate::queue::{self, Closer, Rx, Tx};
use crate::{Loop, SyncAwaitError};

// The cloned sender's mutex and gate word come from loom under `--cfg aiothreads_loom`, so the
// model at the end of this file checks the protocol that ships.
#[cfg(aiothreads_loom)]
use loom::sync::{atomic::AtomicU8, Mutex as TxMutex};
#[cfg(not(aiothreads_loom))]
use std::sync::{atomic::AtomicU8, Mutex as TxMutex};

/// The thread side of a [`FromThreadChannel`]: a blocking `put` with backpressure.
///
/// The sender is `Send` (move it to the thread that produces) but not `Sync`. For several
/// producer threads, [`clone`](Clone::clone) it: one clone per thread, as with
/// `std::sync::mpsc::Sender`. The receiver sees the end after the items already sent, once
/// every clone is dropped or any clone called [`close`](Self::close).
///
/// # Cost of sharing
/// A sender that was never cloned owns the ring's single producer: `put` is the ring's
/// `try_send` (no lock, no read-modify-write unless the receiver sleeps). The first `clone`
/// moves the producer behind a mutex shared by all clones (one allocation, once); from then on
/// every `put` of every clone also pays an uncontended lock and unlock (two atomic
/// read-modify-writes) and two on a flag word that orders puts against another clone's
/// `close` (four in all), and concurrent puts take turns: a producer that finds the mutex
/// taken sleeps until it is free. A `put` waiting for room on a full channel holds the mutex,
/// so the other clones' `put`s wait behind it (in the order the mutex lets them in); `close`
/// and `is_closed` never take it.
///
/// # Examples
/// ```
/// use futures::StreamExt;
///
/// let (mut tx, rx) = aiothreads::FromThreadChannel::new(4);
/// let producer = std::thread::spawn(move || {
///     for i in 0..10 {
///         tx.put(i).unwrap(); // blocks while 4 items wait
///     }
/// }); // `tx` is dropped with the thread: the stream ends after the ten items
/// let all: Vec<i32> = futures::executor::block_on(rx.collect());
/// assert_eq!(all, (0..10).collect::<Vec<_>>());
/// producer.join().unwrap();
/// ```
///
/// Many producers, each with its own clone:
/// ```
/// use futures::StreamExt;
///
/// let (tx, rx) = aiothreads::FromThreadChannel::new(4);
/// let producers: Vec<_> = (0..3)
///     .map(|p| {
///         let mut tx = tx.clone();
///         std::thread::spawn(move || {
///             for i in 0..5 {
///                 tx.put(p * 100 + i).unwrap();
///             }
///         })
///     })
///     .collect();
/// drop(tx); // the stream ends when the last clone is gone
/// let mut all: Vec<i32> = futures::executor::block_on(rx.collect());
/// all.sort();
/// assert_eq!(all.len(), 15);
/// assert_eq!(all[..5], [0, 1, 2, 3, 4]);
/// for p in producers {
///     p.join().unwrap();
/// }
/// ```
pub struct ThreadSender<T> {
    /// The producer, owned or shared. `Some` except inside [`Clone::clone`], which is the
    /// only place that borrows it mutably through `&self` (the sender is not `Sync`, so no
    /// other access can overlap); `put` reaches it with `get_mut`, at no cost.
    mode: RefCell<Option<Mode<T>>>,
    /// Where the receiver last waited: `put` refuses to block that thread.
    seat: Arc<ReceiverSeat>,
}

/// How a [`ThreadSender`] holds the ring's producer.
enum Mode<T> {
    /// Never cloned: this sender owns the producer (the fast path).
    Single(Tx<T>),
    /// Cloned: every clone shares the producer.
    Shared(Arc<SharedTx<T>>),
}

const MODE_MOVED: &str = "ThreadSender: producer is moving (only inside `clone`)";

/// The async side of a thread-to-async channel: `get().await`, or use it as a `Stream`.
///
/// Drain-then-closed semantics: after the sender closes, the items already sent are still
/// delivered, then [`get`](Self::get) returns [`ChannelClosed`] (the stream ends). Dropping
/// the receiver (or [`close`](Self::close)) makes every later `put` fail and wakes a sender
/// blocked on a full channel.
///
/// # Examples
/// ```
/// use aiothreads::FromThreadChannel;
///
/// let (mut tx, mut rx) = FromThreadChannel::new(2);
/// let producer = std::thread::spawn(move || {
///     for i in 0..5 {
///         tx.put(i).unwrap(); // blocks while 2 items wait
///     }
/// });
/// let got = aiothreads::block_on(async {
///     let mut got = Vec::new();
///     while let Ok(item) = rx.get().await {
///         got.push(item);
///     }
///     got
/// });
/// producer.join().unwrap();
/// assert_eq!(got, [0, 1, 2, 3, 4]);
/// ```
pub struct FromThreadChannel<T> {
    rx: Rx<T>,
    /// The timeout of [`get_default`](Self::get_default) (zero: forever).
    default_timeout: Duration,
    /// Recorded at each poll that finds nothing (see [`ThreadSender::put`]).
    seat: Arc<ReceiverSeat>,
    /// The receiver's cooperative budget (yields after a run of items, spends tokio's).
    budget: RunBudget,
    /// The last waker given to the queue: the task's own (to compare with the next poll's) and
    /// the guard around it that the sender wakes (see [`GuardedWaker`]).
    guard: Option<(Waker, Waker)>,
    /// Where a guard leaves a panic of the receiver's waker for the receiver.
    fault: Arc<WakerFault>,
}

/// A panic of the receiver's waker, caught on the sender's side, for the receiver to raise.
#[derive(Default)]
struct WakerFault {
    /// Set (Release) once `payload` holds a panic; read (Acquire) by the receiver's slow path.
    raised: AtomicBool,
    payload: Mutex<Option<Box<dyn Any + Send>>>,
}

/// The guard around `waker` that the receiver's queue registers, kept in `cache` (made again
/// only when the task's waker changes).
fn guarded<'c>(
    cache: &'c mut Option<(Waker, Waker)>,
    fault: &Arc<WakerFault>,
    waker: &Waker,
) -> &'c Waker {
    let fresh = match cache {
        Some((inner, _)) => !inner.will_wake(waker),
        None => true,
    };
    if fresh {
        let guard = Waker::from(Arc::new(GuardedWaker {
            inner: waker.clone(),
            fault: Arc::clone(fault),
        }));
        *cache = Some((waker.clone(), guard));
    }
    match cache {
        Some((_, guard)) => guard,
        None => unreachable!("set above"),
    }
}

/// The receiver's waker as the sender sees it: when the receiver's own waker panics on a wake
/// from the sender's thread (`put`, `try_put`, `close`, or dropping the sender), the panic is
/// caught here and handed to the receiver, which raises it at its next poll off the fast path,
/// on its own side — as a stream delivers its consumer's waker panic. One allocation per
/// distinct waker of the receiver (a task's waker is usually the same at every poll).
struct GuardedWaker {
    inner: Waker,
    fault: Arc<WakerFault>,
}

impl std::task::Wake for GuardedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.inner.wake_by_ref())) {
            let mut slot = self
                .fault
                .payload
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // The first panic is raised; a later one before the receiver looked is dropped here
            // (the panic hook has reported it).
            if slot.is_none() {
                *slot = Some(payload);
            }
            drop(slot);
            self.fault.raised.store(true, Ordering::Release);
        }
    }
}

/// The channel is closed: `put` hands the item back; `get` finds it closed and drained.
///
/// The core ring's [`Closed`](aiothreads_core::ring::Closed) under the name the original
/// uses (`into_inner` gives the item back).
pub use aiothreads_core::ring::Closed as ChannelClosed;

impl<T: Send + 'static> FromThreadChannel<T> {
    /// A channel holding at most `max_size` items: `(thread side, async side)`.
    ///
    /// `max_size` 0 means **unbounded**, as `maxsize <= 0` does in the original: `put` never
    /// blocks and the buffer grows with a slow receiver (memory is the only bound; the queue
    /// is the core's linked, recycled segments of 64 items, see
    /// [`aiothreads_core::unbounded`]). Same as [`FromThreadChannel::unbounded`].
    ///
    /// # Panics
    /// If `max_size` is too large to allocate a ring for.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = aiothreads::FromThreadChannel::<u8>::new(16);
    /// assert_eq!(rx.max_size(), 16);
    /// # drop(tx);
    /// ```
    #[allow(clippy::new_ret_no_self)]
    pub fn new(max_size: usize) -> (ThreadSender<T>, FromThreadChannel<T>) {
        let (tx, rx) = match queue::queue(max_size) {
            Ok(halves) => halves,
            Err(e) => panic!("FromThreadChannel: {e}"),
        };
        let seat = Arc::new(ReceiverSeat::default());
        (
            ThreadSender {
                mode: RefCell::new(Some(Mode::Single(tx))),
                seat: Arc::clone(&seat),
            },
            FromThreadChannel {
                rx,
                seat,
                default_timeout: Duration::ZERO,
                budget: RunBudget::new(),
                guard: None,
                fault: Arc::default(),
            },
        )
    }

    /// An unbounded channel: `put` never blocks, the buffer grows with a slow receiver. Same
    /// as `FromThreadChannel::new(0)`.
    ///
    /// # Examples
    /// ```
    /// let (mut tx, rx) = aiothreads::FromThreadChannel::unbounded();
    /// for i in 0..10_000 {
    ///     tx.put(i).unwrap(); // never waits: nobody receives yet
    /// }
    /// drop(tx);
    /// assert_eq!(rx.max_size(), 0);
    /// let all: Vec<u32> = futures::executor::block_on_stream(rx).collect();
    /// assert_eq!(all.len(), 10_000);
    /// ```
    pub fn unbounded() -> (ThreadSender<T>, FromThreadChannel<T>) {
        Self::new(0)
    }
}

impl<T> FromThreadChannel<T> {
    /// The next item, waiting asynchronously.
    ///
    /// Cancel-safe: dropping the future loses no item.
    ///
    /// # Errors
    /// [`ChannelClosed`] once the sender has gone and every item has been received.
    ///
    /// # Panics
    /// If a waker this receiver was polled with panicked when the sender woke it, that panic
    /// is raised here, on the receiver's side, at a later poll (once; no item is lost), not
    /// on the sender's thread. The same for the other receiving forms and the `Stream`.
    pub fn get(&mut self) -> Get<'_, T> {
        Get { channel: self }
    }

    /// The next item, or `Pending` (registering `cx`'s waker); `Ready(None)` once the sender
    /// has gone and every item has been received. Cooperative like a stream
    /// (`coop::RunBudget`): after a run of items it yields once, and inside a tokio runtime
    /// each item spends tokio's budget.
    ///
    /// The per-item fast path inline: a budget compare and the queue's pop (no thread-local,
    /// no atomic RMW); the rest out of line.
    #[inline]
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if self.budget.fast() {
            if let Some(item) = self.rx.pop_fast() {
                self.budget.delivered();
                return Poll::Ready(Some(item));
            }
        }
        self.poll_recv_slow(cx)
    }

    /// [`poll_recv`](Self::poll_recv) off the fast path, noting the thread when the receiver
    /// goes to sleep (a poll that finds an item records nothing).
    #[inline(never)]
    fn poll_recv_slow(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if self.fault.raised.load(Ordering::Acquire) {
            self.raise_waker_panic();
        }
        let ticket = match self.budget.begin(cx) {
            Poll::Ready(Some(ticket)) => ticket,
            // Never: the receiver does not stop its budget.
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let polled = {
            let waker = guarded(&mut self.guard, &self.fault, cx.waker());
            self.rx.poll_recv(&mut Context::from_waker(waker))
        };
        self.budget.end(&polled, ticket);
        if polled.is_pending() {
            self.seat.record();
        }
        polled
    }

    /// Raises, on the receiver's side, the panic its waker raised on the sender's (if the
    /// flag's panic is still there: a flag set again by a later panic, whose payload was
    /// dropped because the slot was full, finds it empty and raises nothing).
    #[cold]
    fn raise_waker_panic(&mut self) {
        // The flag is cleared before the slot is emptied: a panic stored after the take sets
        // it again and is raised at a later poll, not left in the slot unflagged.
        self.fault.raised.store(false, Ordering::Relaxed);
        let payload = self
            .fault
            .payload
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(payload) = payload {
            // The waker that panicked is not used again.
            self.guard = None;
            std::panic::resume_unwind(payload);
        }
    }

    /// The next item, waiting at most `timeout` (the original's `get(timeout=…)`). A zero
    /// timeout means "wait forever", as in the original; the default set with
    /// [`set_default_timeout`](Self::set_default_timeout) applies to [`get_default`](Self::get_default).
    /// Works on every executor, [`block_on`](crate::block_on) included (the crate's timer).
    ///
    /// Cancel-safe: dropping the future loses no item.
    ///
    /// # Errors
    /// [`GetError::Timeout`] when no item came in time, [`GetError::Closed`] once the sender
    /// has gone and every item has been received.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use aiothreads::{FromThreadChannel, GetError};
    ///
    /// let (_tx, mut rx) = FromThreadChannel::<u32>::new(4);
    /// let r = aiothreads::block_on(rx.get_timeout(Duration::from_millis(5)));
    /// match r {
    ///     Err(GetError::Timeout(t)) => assert_eq!(t.to_string(), "Channel get timed out after 0.005s"),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub async fn get_timeout(&mut self, timeout: Duration) -> Result<T, GetError> {
        let get = poll_fn(|cx| self.poll_recv(cx));
        let got = if timeout.is_zero() {
            Ok(get.await)
        } else {
            crate::timer::timeout(timeout, get).await
        };
        match got {
            Ok(Some(item)) => Ok(item),
            Ok(None) => Err(GetError::Closed),
            Err(_) => Err(GetError::Timeout(ChannelTimeout { after: timeout })),
        }
    }

    /// Sets the timeout [`get_default`](Self::get_default) uses (the original's constructor
    /// argument; zero, the initial value, waits forever).
    ///
    /// # Examples
    /// ```
    /// let (tx, mut rx) = aiothreads::FromThreadChannel::<u32>::new(4);
    /// rx.set_default_timeout(std::time::Duration::from_secs(30));
    /// drop(tx);
    /// assert_eq!(aiothreads::block_on(rx.get_default()), Err(aiothreads::GetError::Closed));
    /// ```
    pub fn set_default_timeout(&mut self, timeout: Duration) {
        self.default_timeout = timeout;
    }

    /// [`get_timeout`](Self::get_timeout) with the default timeout.
    ///
    /// # Errors
    /// As for [`get_timeout`](Self::get_timeout).
    pub async fn get_default(&mut self) -> Result<T, GetError> {
        let timeout = self.default_timeout;
        self.get_timeout(timeout).await
    }

    /// The next item if one is waiting.
    ///
    /// # Errors
    /// [`PopError::Empty`] while the sender may still send, [`PopError::Closed`] once the
    /// sender has gone and every item has been received.
    pub fn try_get(&mut self) -> Result<T, PopError> {
        self.rx.pop()
    }

    /// Closes the channel from the async side: later `put`s fail; items still queued are
    /// dropped with the receiver.
    pub fn close(&mut self) {
        self.rx.close();
    }

    /// Whether the sender has gone (items may still be queued).
    pub fn is_closed(&self) -> bool {
        self.rx.is_closed()
    }

    /// The bound given at creation (0: unbounded).
    pub fn max_size(&self) -> usize {
        self.rx.max_size()
    }
}

impl<T> Stream for FromThreadChannel<T> {
    type Item = T;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<T> fmt::Debug for FromThreadChannel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromThreadChannel")
            .field("max_size", &self.rx.max_size())
            .field("closed", &self.rx.is_closed())
            .finish()
    }
}

/// Future of [`FromThreadChannel::get`]: the next item, or [`ChannelClosed`] once the sender
/// is gone and the items it sent were taken.
///
/// # Examples
/// ```
/// let (mut tx, mut rx) = aiothreads::FromThreadChannel::new(1);
/// std::thread::spawn(move || tx.put("hello").unwrap());
/// futures::executor::block_on(async {
///     let next: aiothreads::Get<'_, &str> = rx.get();
///     assert_eq!(next.await.unwrap(), "hello");
///     assert!(rx.get().await.is_err()); // the sender is gone: closed
/// });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Get<'a, T> {
    channel: &'a mut FromThreadChannel<T>,
}

impl<T> Future for Get<'_, T> {
    type Output = Result<T, ChannelClosed>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut()
            .channel
            .poll_recv(cx)
            .map(|item| item.ok_or(ChannelClosed(())))
    }
}

/// Why [`FromThreadChannel::get_timeout`] gave no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetError {
    /// The sender has gone and every item has been received.
    Closed,
    /// No item came within the time (the original's `ChannelTimeout`).
    Timeout(ChannelTimeout),
}

/// No item came within the time: the original's `ChannelTimeout`, with its message
/// ("Channel get timed out after {t}s").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelTimeout {
    after: Duration,
}

impl ChannelTimeout {
    /// The time that ran out.
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for ChannelTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Channel get timed out after {}s",
            self.after.as_secs_f64()
        )
    }
}

impl core::error::Error for ChannelTimeout {}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("the channel is closed and drained"),
            Self::Timeout(t) => t.fmt(f),
        }
    }
}

impl core::error::Error for GetError {}

impl<T> fmt::Debug for Get<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Get").finish_non_exhaustive()
    }
}

impl<T> ThreadSender<T> {
    /// Sends `item`, blocking this thread while the channel is full (backpressure).
    ///
    /// The parker is made only when the channel is full (one allocation per wait). A clone's
    /// `put` costs more (see [Cost of sharing](Self#cost-of-sharing)) and also waits while
    /// another clone's `put` is in progress.
    ///
    /// # Misuse check
    /// Before it blocks on a full channel, `put` checks that the receiver is not drained by
    /// this very thread: the receiver notes the thread of each poll that finds the channel
    /// empty (a load, and a store when the thread changed; a poll that gets an item pays
    /// nothing), and `put` compares it with its own thread only when it would block. A
    /// receiver that last waited on this thread is run by this thread's executor, which cannot
    /// drain the channel while `put` blocks it. Not seen: a receiver that has not waited yet.
    /// Falsely refused: a receiver moved to another thread after waiting here, and not polled
    /// there yet. A clone's `put` also checks before it waits for another clone's `put` in
    /// progress (which may itself wait for room that only this thread can make), so on the
    /// receiver's thread it is refused then even if that other `put` would have finished.
    ///
    /// # Errors
    /// Hands `item` back in [`ChannelClosed`] once the receiver has gone or a clone called
    /// [`close`](Self::close), including when that happens while this call waits.
    ///
    /// # Panics
    /// With the [`SyncAwaitError::WouldDeadlock`] reason, at once, if this call would have to
    /// wait and the receiver last waited on this thread (see above); `item` is dropped.
    ///
    /// # Examples
    /// On the thread that runs the receiver's task, a full channel is refused, not hung:
    /// ```
    /// use aiothreads::{FromThreadChannel, SyncAwaitError};
    /// use std::panic::{catch_unwind, AssertUnwindSafe};
    ///
    /// let (mut tx, mut rx) = FromThreadChannel::new(1);
    /// aiothreads::block_on(async {
    ///     // The receiver waits on this thread (no item yet).
    ///     let mut get = std::pin::pin!(rx.get());
    ///     assert!(futures::poll!(get.as_mut()).is_pending());
    ///     tx.put(1).unwrap(); // room: fine
    ///     let refused = catch_unwind(AssertUnwindSafe(|| tx.put(2))).unwrap_err();
    ///     let msg = refused.downcast_ref::<String>().unwrap();
    ///     assert_eq!(*msg, SyncAwaitError::WouldDeadlock.to_string());
    ///     assert_eq!(get.await, Ok(1));
    /// });
    /// ```
    #[track_caller]
    pub fn put(&mut self, item: T) -> Result<(), ChannelClosed<T>> {
        match self.mode.get_mut() {
            Some(Mode::Single(tx)) => put_single(tx, &self.seat, item),
            Some(Mode::Shared(shared)) => shared.put(&self.seat, item),
            None => unreachable!("{MODE_MOVED}"),
        }
    }

    /// Sends `item` if there is room now.
    ///
    /// # Errors
    /// [`PushError::Full`] or [`PushError::Closed`], with the item. A clone also gets `Full`
    /// while another clone's `put` is in progress (it does not wait for it).
    pub fn try_put(&mut self, item: T) -> Result<(), PushError<T>> {
        match self.mode.get_mut() {
            Some(Mode::Single(tx)) => tx.try_send(item),
            Some(Mode::Shared(shared)) => shared.try_put(item),
            None => unreachable!("{MODE_MOVED}"),
        }
    }

    /// Ends the stream for every clone: the receiver gets the items already sent, then the
    /// end; later `put`s of every clone fail with the item back, and a clone's `put` waiting
    /// on a full channel returns `Err` at once. Never waits (not even for a clone's `put` in
    /// progress). Idempotent.
    ///
    /// # Examples
    /// ```
    /// let (tx, mut rx) = aiothreads::FromThreadChannel::new(4);
    /// let (mut a, mut b) = (tx.clone(), tx);
    /// a.put(1).unwrap();
    /// b.close();
    /// assert!(a.is_closed());
    /// assert_eq!(a.put(2).unwrap_err().into_inner(), 2);
    /// aiothreads::block_on(async {
    ///     assert_eq!(rx.get().await, Ok(1)); // drained, then the end (`a` is still alive)
    ///     assert!(rx.get().await.is_err());
    /// });
    /// ```
    pub fn close(&mut self) {
        match self.mode.get_mut() {
            Some(Mode::Single(tx)) => tx.close(),
            Some(Mode::Shared(shared)) => shared.close(),
            None => unreachable!("{MODE_MOVED}"),
        }
    }

    /// Whether a `put` would fail: the receiver has gone, or this sender or a clone called
    /// [`close`](Self::close).
    pub fn is_closed(&self) -> bool {
        match &*self.mode.borrow() {
            Some(Mode::Single(tx)) => tx.is_closed(),
            Some(Mode::Shared(shared)) => shared.is_closed(),
            None => unreachable!("{MODE_MOVED}"),
        }
    }
}

/// The never-cloned `put`: the ring's `try_send`, and `push_blocking` when full.
#[track_caller]
fn put_single<T>(tx: &mut Tx<T>, seat: &ReceiverSeat, item: T) -> Result<(), ChannelClosed<T>> {
    match tx.try_send(item) {
        Ok(()) => Ok(()),
        Err(PushError::Closed(item)) => Err(ChannelClosed(item)),
        Err(PushError::Full(item)) => {
            if let Err(refused) = seat.check_may_block() {
                drop(item);
                refused.raise();
            }
            let parker = ThreadParker::new();
            tx.push_blocking(item, &parker)
        }
    }
}

/// A clone for another producer thread. The first clone moves the producer behind a mutex
/// shared by all clones (one allocation); see [Cost of sharing](Self#cost-of-sharing).
impl<T> Clone for ThreadSender<T> {
    fn clone(&self) -> Self {
        let mut mode = self.mode.borrow_mut();
        let shared = match mode.take().expect(MODE_MOVED) {
            Mode::Single(tx) => Arc::new(SharedTx::new(tx)),
            Mode::Shared(shared) => shared,
        };
        *mode = Some(Mode::Shared(Arc::clone(&shared)));
        Self {
            mode: RefCell::new(Some(Mode::Shared(shared))),
            seat: Arc::clone(&self.seat),
        }
    }
}

/// `gate` bit: a clone's `put` is inside a push attempt (set and cleared under the mutex).
const PUSHING: u8 = 1;
/// `gate` bit: a clone called `close` (set once, never cleared).
const CLOSING: u8 = 2;

/// The producer shared by cloned senders.
///
/// # Protocol: `close` without the mutex, and no accepted item lost
/// A `put` holds `producer`'s mutex for its whole call, waiting for room included, so
/// `close` cannot take it. It closes the ring through `closer` instead. Closing beside the
/// producer is sound (the core's [`Closer`] argues it), but a push running at the same
/// moment could succeed after the ring's flag was set, and a receiver that already saw
/// "closed and empty" would miss an item whose `put` returned `Ok`. The `gate` word orders
/// every push attempt against `close`:
///
/// - a push attempt is bracketed by `fetch_or(PUSHING)` / `fetch_and(!PUSHING)`; an attempt
///   whose `fetch_or` finds `CLOSING` pushes nothing and fails;
/// - `close` does `fetch_or(CLOSING)`; if it finds no `PUSHING` it closes the ring itself,
///   else it leaves that to the attempt in progress, whose `fetch_and` finds `CLOSING` and
///   closes the ring after its push.
///
/// All are read-modify-writes of one word, so they are totally ordered: an attempt either
/// comes wholly before `close`'s `fetch_or` or fails at its own `fetch_or`, or straddles it and
/// then closes the ring itself. In the first case the `AcqRel` pair (the attempt's
/// `fetch_and` releases, `close`'s `fetch_or` acquires) makes the push's `tail` store happen
/// before the ring's close (a `Release` store of `closed`), so a receiver that sees the ring
/// closed sees the item; in the last case the push and the close are on one thread. The ring
/// is closed exactly by the side that last touched the gate; a second close is harmless
/// (idempotent, extra wake-ups only).
///
/// A `put` waiting for room is outside any attempt while it sleeps (attempts bracket each
/// poll of the ring, not the sleep): `close` finds no `PUSHING`, closes the ring, which wakes
/// the waiting producer; its next attempt finds `CLOSING` and hands the item back. A waiting
/// producer registered its waker inside an attempt, before the ring's close, so the close's
/// wake-up reaches it (the core's Dekker pair of `poll_ready` and `close`).
struct SharedTx<T> {
    producer: TxMutex<Tx<T>>,
    closer: Closer<T>,
    /// `PUSHING` | `CLOSING`, see above.
    gate: AtomicU8,
}

impl<T> SharedTx<T> {
    fn new(producer: Tx<T>) -> Self {
        Self {
            closer: producer.closer(),
            producer: TxMutex::new(producer),
            gate: AtomicU8::new(0),
        }
    }

    /// A clone's `put`: the mutex (checked for misuse before waiting for it), a first attempt,
    /// then, on a full channel, the misuse check and attempts until room or a close.
    ///
    /// Cost with room and no contention: `try_lock` + unlock (2 RMW), the gate's `fetch_or` +
    /// `fetch_and` (2 RMW), and the ring's `try_send`; no allocation, a wake-up only for a
    /// sleeping receiver.
    #[track_caller]
    fn put(&self, seat: &ReceiverSeat, item: T) -> Result<(), ChannelClosed<T>> {
        let mut producer = match self.producer.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                // Another clone's `put` is in progress, maybe waiting for room that only the
                // receiver can make: do not block the receiver's thread on it.
                if let Err(refused) = seat.check_may_block() {
                    drop(item);
                    refused.raise();
                }
                self.producer.lock().unwrap_or_else(PoisonError::into_inner)
            }
        };
        let item = {
            let Some(_attempt) = self.enter() else {
                return Err(ChannelClosed(item));
            };
            match producer.try_send(item) {
                Ok(()) => return Ok(()),
                Err(PushError::Closed(item)) => return Err(ChannelClosed(item)),
                Err(PushError::Full(item)) => item,
            }
        };
        if let Err(refused) = seat.check_may_block() {
            drop(producer); // not poisoned by the panic (harmless, but needless)
            drop(item);
            refused.raise();
        }
        let parker = ThreadParker::new();
        let mut item = Some(item);
        park::wait(&parker, 0, |cx| {
            let Some(_attempt) = self.enter() else {
                let item = item.take().expect("an item waits until Ready");
                return Poll::Ready(Err(ChannelClosed(item)));
            };
            producer.poll_send(cx, &mut item)
        })
    }

    /// A clone's `try_put`: never waits, not even for the mutex.
    fn try_put(&self, item: T) -> Result<(), PushError<T>> {
        let mut producer = match self.producer.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(PushError::Full(item)),
        };
        let Some(_attempt) = self.enter() else {
            return Err(PushError::Closed(item));
        };
        producer.try_send(item)
    }

    /// Starts a push attempt (see the protocol above), or `None` once a clone closed. Only
    /// called under the mutex, so attempts never overlap.
    fn enter(&self) -> Option<Attempt<'_, T>> {
        // AcqRel: acquire the `close` that set `CLOSING` (nothing to read from it, but the
        // pair keeps the argument uniform); release nothing yet.
        let before = self.gate.fetch_or(PUSHING, Ordering::AcqRel);
        if before & CLOSING != 0 {
            // `close` saw no attempt (only this one could have been) and closed the ring.
            self.gate.fetch_and(!PUSHING, Ordering::Relaxed);
            return None;
        }
        Some(Attempt { shared: self })
    }

    /// Closes the channel for every clone, without the mutex (see the protocol above).
    fn close(&self) {
        // AcqRel: acquires the last finished attempt's release (its push happens before the
        // ring's close below).
        let before = self.gate.fetch_or(CLOSING, Ordering::AcqRel);
        if before & PUSHING == 0 {
            self.closer.close();
        }
    }

    /// `CLOSING` set, or the ring closed (the receiver gone, or a close done). No mutex.
    fn is_closed(&self) -> bool {
        // Relaxed: a snapshot, like the ring's own `is_closed`.
        self.gate.load(Ordering::Relaxed) & CLOSING != 0 || self.closer.is_closed()
    }
}

/// One push attempt of a clone: ends on drop (also when the push panics), closing the ring
/// if a clone called `close` meanwhile.
struct Attempt<'a, T> {
    shared: &'a SharedTx<T>,
}

impl<T> Drop for Attempt<'_, T> {
    fn drop(&mut self) {
        // AcqRel: releases the push (its `tail` store) to a `close` that comes next.
        let before = self.shared.gate.fetch_and(!PUSHING, Ordering::AcqRel);
        if before & CLOSING != 0 {
            // `close` came during the attempt and left the ring's close to us: after our push.
            self.shared.closer.close();
        }
    }
}

impl<T> fmt::Debug for ThreadSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadSender")
            .field("closed", &self.is_closed())
            .field(
                "shared",
                &matches!(&*self.mode.borrow(), Some(Mode::Shared(_))),
            )
            .finish()
    }
}

/// Consumes an async `Stream` from a thread as a blocking `Iterator`.
///
/// - With a loop known on this thread ([`Loop::current`]: the loop that submitted the running
///   `threaded` job, one entered with [`Loop::enter`], or tokio's current runtime), the stream
///   is driven *on that loop* by a spawned task that fills a ring of `max_size` items; the
///   iterator takes items out, parking while the ring is empty. Streams that need the loop's
///   reactor (tokio I/O, timers) work this way.
/// - With no loop, each `next()` drives the stream on this thread with [`block_on`]
///   (no buffer, no reactor).
///
/// Dropping the iterator stops the stream at once: the driving task is woken, stops waiting
/// for the stream's next item, and drops the stream on the loop.
///
/// The stream sees the context of the thread that called `blocking_iter`, captured by that
/// call ([`ContextVar`](crate::ContextVar) values, hook context, the `tracing` span): each of
/// its polls and its drop run inside it, on the loop or here, as [`sync_await`]'s future does.
///
/// Failures reach the iterating thread: `next()` panics (see below), after which the
/// iterator is finished (`None`). [`try_blocking_iter`] gives them as an `Err` item instead.
/// Making the iterator never blocks, so it may be made on the loop's thread and moved to a
/// thread that may block.
///
/// # Panics
/// Here, if `max_size` is 0. From `next()`:
/// - with the [`SyncAwaitError::WouldDeadlock`] reason, at once, when it would have to wait
///   on a thread that drives the loop: the check runs each time `next()` finds no item ready
///   (items already in the ring are still handed out), so the iterator is refused on the
///   loop's thread — inside tokio's `block_on` of a current-thread runtime, in a task on a
///   runtime worker, on a thread marked with [`Loop::enter_driver`] — and fine on `threaded`
///   workers, `spawn_blocking` threads and plain threads. With no loop, `next()` is refused
///   when the stream is pending and this thread drives some loop.
/// - with the stream's own panic (the original payload, re-raised with
///   [`resume_unwind`](std::panic::resume_unwind)) if the stream panicked while producing
///   the next item;
/// - with the [`SyncAwaitError::LoopGone`] reason if the loop refused the task driving the
///   stream or dropped it unfinished (it shut down).
///
/// # Examples
/// ```
/// let stream = futures::stream::iter(vec![1, 2, 3]);
/// let handle = aiothreads::spawn(move || aiothreads::blocking_iter(stream, 8).sum::<i32>());
/// assert_eq!(aiothreads::block_on(handle), 6);
/// ```
///
/// [`block_on`]: crate::block_on()
/// [`sync_await`]: crate::sync_await()
pub fn blocking_iter<S>(stream: S, max_size: usize) -> BlockingIter<S>
where
    S: Stream + Send + Unpin + 'static,
    S::Item: Send + 'static,
{
    assert!(max_size > 0, "blocking_iter: max_size must be at least 1");
    BlockingIter {
        core: IterCore::start(stream, max_size, "blocking_iter"),
    }
}

/// [`blocking_iter`] reporting failures as items: yields `Ok(item)`s, then — if the stream
/// did not end normally — one `Err` saying why, then `None`. The stream sees the caller's
/// context as with [`blocking_iter`].
///
/// The `Err` is [`SyncAwaitError::WouldDeadlock`] (`next()` would have to wait on a thread
/// that drives the loop; checked as in [`blocking_iter`]), [`SyncAwaitError::Panicked`] with
/// the stream's panic payload, or [`SyncAwaitError::LoopGone`] (the loop refused the task
/// driving the stream or dropped it unfinished).
///
/// # Panics
/// If `max_size` is 0.
///
/// # Examples
/// ```
/// use aiothreads::SyncAwaitError;
/// use futures::StreamExt;
///
/// let stream = futures::stream::iter(0..3).map(|i| if i == 2 { panic!("sensor lost") } else { i });
/// let items: Vec<_> = aiothreads::block_on(aiothreads::spawn(move || {
///     aiothreads::try_blocking_iter(stream, 4).collect()
/// }));
/// assert!(matches!(items[..2], [Ok(0), Ok(1)]));
/// match &items[2] {
///     Err(SyncAwaitError::Panicked(p)) => assert_eq!(p.downcast_ref::<&str>(), Some(&"sensor lost")),
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(items.len(), 3);
/// ```
pub fn try_blocking_iter<S>(stream: S, max_size: usize) -> TryBlockingIter<S>
where
    S: Stream + Send + Unpin + 'static,
    S::Item: Send + 'static,
{
    assert!(
        max_size > 0,
        "try_blocking_iter: max_size must be at least 1"
    );
    TryBlockingIter {
        core: IterCore::start(stream, max_size, "try_blocking_iter"),
    }
}

/// Iterator of [`blocking_iter`]: the stream's items; panics on failure (see there).
///
/// # Examples
/// ```
/// let numbers = futures::stream::iter(1..=4);
/// let job = aiothreads::spawn(move || {
///     let items: aiothreads::BlockingIter<_> = aiothreads::blocking_iter(numbers, 2);
///     items.map(|n| n * 10).collect::<Vec<_>>()
/// });
/// assert_eq!(aiothreads::block_on(job), [10, 20, 30, 40]);
/// ```
pub struct BlockingIter<S: Stream> {
    core: IterCore<S>,
}

/// Iterator of [`try_blocking_iter`]: `Ok` items, then at most one `Err`, then `None`.
pub struct TryBlockingIter<S: Stream> {
    core: IterCore<S>,
}

impl<S: Stream + Unpin> Iterator for BlockingIter<S> {
    type Item = S::Item;
    #[track_caller]
    fn next(&mut self) -> Option<S::Item> {
        match self.core.next()? {
            Ok(item) => Some(item),
            Err(err) => err.raise(),
        }
    }
}

impl<S: Stream + Unpin> Iterator for TryBlockingIter<S> {
    type Item = Result<S::Item, SyncAwaitError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.core.next()
    }
}

impl<S: Stream + Unpin> FusedIterator for BlockingIter<S> {}
impl<S: Stream + Unpin> FusedIterator for TryBlockingIter<S> {}

impl<S: Stream> fmt::Debug for BlockingIter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug("BlockingIter", f)
    }
}

impl<S: Stream> fmt::Debug for TryBlockingIter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug("TryBlockingIter", f)
    }
}

/// The shared machinery of both iterators.
struct IterCore<S: Stream> {
    state: State<S>,
    /// The parker of the thread that last waited, with that thread's id.
    parker: Option<(std::thread::ThreadId, ThreadParker)>,
}

enum State<S: Stream> {
    /// Driven on `lp`, items through a ring; `shared` ends the driver when we drop and tells
    /// how it ended.
    Ring {
        rx: Consumer<'static, S::Item>,
        shared: Arc<Shared>,
        lp: Loop,
    },
    /// Driven here with `block_on`.
    Local(InContext<S>),
    /// Failed before the first item (the loop refused the driver); reported by `next()`.
    Failed(SyncAwaitError),
    /// Ended, normally or after reporting a failure.
    Done,
}

impl<S> IterCore<S>
where
    S: Stream + Send + Unpin + 'static,
    S::Item: Send + 'static,
{
    fn start(stream: S, max_size: usize, what: &str) -> Self {
        let stream = InContext::capture(stream);
        let Some(lp) = Loop::current() else {
            return Self {
                state: State::Local(stream),
                parker: None,
            };
        };
        let (tx, rx) = match ring::try_with_capacity(max_size) {
            Ok(halves) => halves,
            Err(e) => panic!("{what}: {e}"),
        };
        let shared = Arc::new(Shared::default());
        let state = match lp.spawn(drive(stream, tx, Arc::clone(&shared))) {
            Ok(()) => State::Ring { rx, shared, lp },
            Err(_) => State::Failed(SyncAwaitError::LoopGone),
        };
        Self {
            state,
            parker: None,
        }
    }
}

/// The task spawned on the loop: moves the stream's items into the ring until the stream
/// ends, panics, or the iterator goes; records which before it drops `tx` (which closes the
/// ring). Dropped unfinished (the loop shut down), it records nothing: the iterator then
/// finds the ring closed with the end still `Running`.
async fn drive<S>(mut stream: InContext<S>, mut tx: Producer<'static, S::Item>, shared: Arc<Shared>)
where
    S: Stream + Unpin,
{
    let end = loop {
        // Each wait for the stream's next item also watches `stop`: a stream that never
        // yields again (an idle socket) is dropped as soon as the iterator is.
        let next = UnlessStopped {
            stop: &shared,
            inner: NextItem {
                stream: &mut stream,
            },
        }
        .await;
        match next {
            Some(Ok(Some(item))) => {
                if tx.send(item).await.is_err() {
                    break End::Finished; // the iterator was dropped while we waited for room
                }
            }
            Some(Ok(None)) | None => break End::Finished,
            Some(Err(payload)) => break End::Panicked(payload),
        }
    };
    *shared.end.lock().unwrap_or_else(PoisonError::into_inner) = end;
    // The ring's close (release) orders the store above before the iterator's read, which
    // follows its sight of the close (acquire).
    drop(tx);
}

/// How the driver ended.
#[derive(Default)]
enum End {
    /// Not ended, or dropped unfinished by the loop.
    #[default]
    Running,
    /// The stream ended, or the iterator went.
    Finished,
    /// The stream panicked; its payload, taken by the iterator.
    Panicked(Box<dyn Any + Send>),
}

/// State shared by the iterator and its driver.
#[derive(Default)]
struct Shared {
    stopped: AtomicBool,
    /// The driver's waker, registered before each check of `stopped`.
    waker: Mutex<Option<Waker>>,
    /// Written by the driver before it closes the ring.
    end: Mutex<End>,
}

impl Shared {
    /// Tells the driver that the iterator is gone.
    fn stop(&self) {
        // No wake-up is lost whatever the orderings: the waker passes through the mutex,
        // whose lock/unlock orders this store before a later registration's re-check (and the
        // other way round). Release/Acquire only make that pairing explicit.
        self.stopped.store(true, Ordering::Release);
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Why the ring closed: `None` for a normal end, the failure otherwise.
    fn failure(&self) -> Option<SyncAwaitError> {
        let end = core::mem::take(&mut *self.end.lock().unwrap_or_else(PoisonError::into_inner));
        match end {
            End::Finished => None,
            End::Panicked(payload) => Some(SyncAwaitError::Panicked(payload)),
            End::Running => Some(SyncAwaitError::LoopGone),
        }
    }
}

impl<S: Stream + Unpin> IterCore<S> {
    /// The next item or failure; `None` (for good) after the end or a failure.
    fn next(&mut self) -> Option<Result<S::Item, SyncAwaitError>> {
        let failure = match &mut self.state {
            State::Done => return None,
            State::Failed(_) => match core::mem::replace(&mut self.state, State::Done) {
                State::Failed(err) => Some(err),
                _ => unreachable!("matched `Failed` above"),
            },
            State::Local(stream) => match next_here(stream) {
                Ok(Some(item)) => return Some(Ok(item)),
                Ok(None) => None,
                Err(err) => Some(err),
            },
            State::Ring { rx, shared, lp } => match rx.pop() {
                Ok(item) => return Some(Ok(item)),
                Err(PopError::Closed) => shared.failure(),
                Err(PopError::Empty) => match check_may_block(Some(lp)) {
                    Err(refused) => Some(refused.into()),
                    Ok(()) => {
                        // The parker belongs to the thread that first waits; an iterator
                        // moved to another thread gets a new one.
                        let me = std::thread::current().id();
                        let parker = match &self.parker {
                            Some((id, p)) if *id == me => p,
                            _ => &self.parker.insert((me, ThreadParker::new())).1,
                        };
                        match rx.pop_blocking(parker, 0) {
                            Some(item) => return Some(Ok(item)),
                            None => shared.failure(),
                        }
                    }
                },
            },
        };
        self.finish();
        failure.map(Err)
    }

    /// Ends the iterator: a driver still running is told to stop.
    fn finish(&mut self) {
        if let State::Ring { shared, .. } = core::mem::replace(&mut self.state, State::Done) {
            shared.stop();
        }
    }
}

impl<S: Stream> IterCore<S> {
    fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.state {
            State::Ring { .. } => "loop",
            State::Local(_) => "block_on",
            State::Failed(_) => "failed",
            State::Done => "done",
        };
        f.debug_struct(name).field("driven_by", &mode).finish()
    }
}

impl<S: Stream> Drop for IterCore<S> {
    fn drop(&mut self) {
        if let State::Ring { shared, .. } = &self.state {
            shared.stop();
        }
    }
}

/// One item of a stream driven on this thread (no loop): `block_on`, refused if the stream is
/// pending and this thread drives a loop; a panic of the stream comes back as `Panicked`.
fn next_here<S: Stream + Unpin>(
    stream: &mut InContext<S>,
) -> Result<Option<S::Item>, SyncAwaitError> {
    let next = NextItem { stream };
    match block_on_checked(next, || check_may_block(None)) {
        Ok(Ok(item)) => Ok(item),
        Ok(Err(payload)) => Err(SyncAwaitError::Panicked(payload)),
        Err(refused) => Err(refused.into()),
    }
}

/// Polls `inner` until it is ready, or resolves to `None` once `stop` is set.
struct UnlessStopped<'a, F> {
    stop: &'a Shared,
    inner: F,
}

impl<F: Future + Unpin> Future for UnlessStopped<'_, F> {
    type Output = Option<F::Output>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(out) = Pin::new(&mut this.inner).poll(cx) {
            return Poll::Ready(Some(out));
        }
        {
            let mut slot = this
                .stop
                .waker
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *slot = Some(cx.waker().clone());
            }
        }
        // Checked after registering: a `stop()` in between finds the waker and wakes us.
        if this.stop.stopped.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

/// The stream of an iterator with the context of the thread that made the iterator: each
/// poll and the drop run inside it, on whichever thread drives the stream (the loop's task, or
/// the iterating thread with no loop), as `sync_await` runs its future.
///
/// Cost: the capture once, when the iterator is made (see [`ContextSnapshot::capture`]: one
/// `Arc` clone when a value is set); per poll, as `sync_await` per poll of its future, two
/// thread-local pointer swaps, plus each registered hook's `scope` and the span's enter and
/// exit only when there are some.
struct InContext<S> {
    /// `None` only during the drop.
    stream: Option<S>,
    context: ContextSnapshot,
}

impl<S> InContext<S> {
    fn capture(stream: S) -> Self {
        Self {
            stream: Some(stream),
            context: ContextSnapshot::capture(),
        }
    }
}

impl<S: Stream + Unpin> InContext<S> {
    /// `poll_next` inside the context; a panic of it comes back as `Err(payload)`, caught
    /// inside the context so that hooks leave it normally.
    fn poll_next_caught(&mut self, cx: &mut Context<'_>) -> Poll<Caught<Option<S::Item>>> {
        let Self { stream, context } = self;
        let Some(stream) = stream else {
            return Poll::Ready(Ok(None));
        };
        context.enter(|| {
            match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *stream).poll_next(cx))) {
                Ok(Poll::Ready(item)) => Poll::Ready(Ok(item)),
                Ok(Poll::Pending) => Poll::Pending,
                Err(payload) => Poll::Ready(Err(payload)),
            }
        })
    }
}

impl<S> Drop for InContext<S> {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            // Caught inside the context and re-raised outside it, as for a poll.
            let dropped = self
                .context
                .enter(|| catch_unwind(AssertUnwindSafe(|| drop(stream))));
            if let Err(payload) = dropped {
                resume_unwind(payload);
            }
        }
    }
}

/// An output, or the payload of the panic that came instead.
type Caught<T> = Result<T, Box<dyn Any + Send>>;

/// The stream's next item, polled in its context; a panic of the poll is `Err(payload)`.
struct NextItem<'a, S> {
    stream: &'a mut InContext<S>,
}

impl<S: Stream + Unpin> Future for NextItem<'_, S> {
    type Output = Caught<Option<S::Item>>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().stream.poll_next_caught(cx)
    }
}

#[cfg(all(test, not(aiothreads_loom)))]
mod tests {
    use super::*;

    /// The first clone moves the producer into the shared mode; clones see one close.
    #[test]
    fn clone_switches_to_shared_mode_once() {
        let (tx, mut rx) = FromThreadChannel::<u32>::new(4);
        assert!(matches!(&*tx.mode.borrow(), Some(Mode::Single(_))));
        let mut a = tx.clone();
        let mut b = a.clone();
        for sender in [&tx, &a, &b] {
            assert!(matches!(&*sender.mode.borrow(), Some(Mode::Shared(_))));
        }
        a.put(1).unwrap();
        b.put(2).unwrap();
        drop(tx);
        assert!(!b.is_closed());
        a.close();
        assert!(b.is_closed() && rx.is_closed());
        assert_eq!(b.put(3), Err(ChannelClosed(3)));
        assert_eq!(b.try_put(4), Err(PushError::Closed(4)));
        assert_eq!(rx.try_get(), Ok(1));
        assert_eq!(rx.try_get(), Ok(2));
        assert_eq!(rx.try_get(), Err(PopError::Closed));
        assert_eq!(a.gate_bits(), CLOSING, "no attempt left open");
    }

    /// `try_put` of a clone never waits for the mutex: `Full` while another clone holds it.
    #[test]
    fn try_put_does_not_wait_for_the_mutex() {
        let (tx, mut rx) = FromThreadChannel::<u32>::new(4);
        let mut a = tx.clone();
        let shared = match &*tx.mode.borrow() {
            Some(Mode::Shared(shared)) => Arc::clone(shared),
            _ => unreachable!("cloned"),
        };
        let held = shared.producer.lock().unwrap();
        assert_eq!(a.try_put(1), Err(PushError::Full(1)));
        drop(held);
        assert_eq!(a.try_put(2), Ok(()));
        assert_eq!(rx.try_get(), Ok(2));
    }

    /// A poisoned mutex (a clone's `put` panicked while holding it) does not stop the others.
    #[test]
    fn poisoned_mutex_is_ignored() {
        let (tx, mut rx) = FromThreadChannel::<u32>::new(4);
        let mut a = tx.clone();
        let shared = match &*tx.mode.borrow() {
            Some(Mode::Shared(shared)) => Arc::clone(shared),
            _ => unreachable!("cloned"),
        };
        let _ = std::thread::spawn(move || {
            let _held = shared.producer.lock().unwrap();
            panic!("poison the mutex");
        })
        .join();
        a.put(1).unwrap();
        assert_eq!(a.try_put(2), Ok(()));
        assert_eq!(rx.try_get(), Ok(1));
        assert_eq!(rx.try_get(), Ok(2));
    }

    impl<T> ThreadSender<T> {
        fn gate_bits(&self) -> u8 {
            match &*self.mode.borrow() {
                Some(Mode::Shared(shared)) => shared.gate.load(Ordering::SeqCst),
                _ => 0,
            }
        }
    }
}

/// Loom models of the cloned sender's protocol (the gate word beside the mutex, and the
/// core's `Closer`). Run:
/// `RUSTFLAGS="--cfg aiothreads_loom" cargo test -p aiothreads --lib --release loom_models`.
#[cfg(all(test, aiothreads_loom))]
mod loom_models {
    use super::*;
    use loom::future::block_on;
    use loom::thread;

    /// A clone's `put` (with room) races another clone's `close`: the `put` either fails with
    /// the item back, or succeeds and the receiver gets the item before the end — never an
    /// accepted item that the receiver misses.
    #[test]
    fn put_races_close_of_a_clone() {
        // Bounded to 5 preemptions: the unbounded model took 161 s (spins of the mutex and
        // the waker cells); 5 takes under a second and still finds the lost item of a `close`
        // that ignores the gate (checked by that mutation, which fails at a bound of 2).
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(5);
        builder.check(|| {
            let (mut a, mut rx) = FromThreadChannel::<u32>::new(2);
            let mut b = a.clone();
            let t = thread::spawn(move || {
                let accepted = a.put(7).is_ok();
                (accepted, a)
            });
            b.close();
            let mut got = Vec::new();
            while let Ok(item) = block_on(rx.get()) {
                got.push(item);
            }
            let (accepted, a) = t.join().unwrap();
            // The receiver ended although `a` is alive: `close` of one clone ends it.
            if accepted {
                assert_eq!(got, [7], "an accepted item must be delivered");
            } else {
                assert!(got.is_empty());
            }
            drop(a);
        });
    }

    /// A clone's `put` waiting on a full channel (holding the mutex) is woken by another
    /// clone's `close`, which does not wait for it, and gets its item back; the receiver
    /// drains the item already sent, then ends.
    #[test]
    fn close_of_a_clone_wakes_a_waiting_put() {
        loom::model(|| {
            let (mut a, mut rx) = FromThreadChannel::<u32>::new(1);
            let mut b = a.clone();
            a.put(0).unwrap();
            let t = thread::spawn(move || a.put(1));
            b.close();
            assert!(b.is_closed());
            assert_eq!(t.join().unwrap(), Err(ChannelClosed(1)));
            assert_eq!(block_on(rx.get()), Ok(0));
            assert!(block_on(rx.get()).is_err());
        });
    }
}
