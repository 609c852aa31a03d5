//! The channel under the iterables, for threads driven by hand ([`FromThreadChannel`]), and the
//! reverse bridge: an async `Stream` consumed as a blocking `Iterator` ([`blocking_iter`]).
//!
//! Both are the core's bounded SPSC ring with a thread parker on the blocking side and a
//! waker on the async side: no lock, no allocation per item, a wake-up only for a side that
//! sleeps (see [`aiothreads_core::ring`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use aiothreads_core::ring::{self, Consumer, PopError, Producer, PushError};
use futures_core::Stream;

use crate::parker::ThreadParker;
use crate::Loop;

/// The thread side of a [`FromThreadChannel`]: a blocking `put` with backpressure.
///
/// One producer: the sender is `Send` (move it to the thread that produces) but not `Clone`
/// or `Sync` — the ring underneath is single-producer. Dropping it (or [`close`](Self::close))
/// ends the stream after the items already sent.
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
pub struct ThreadSender<T> {
    tx: Producer<'static, T>,
}

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
    rx: Consumer<'static, T>,
}

/// The channel is closed: `put` hands the item back; `get` finds it closed and drained.
///
/// The core ring's [`Closed`](aiothreads_core::ring::Closed) under the name the original
/// uses (`into_inner` gives the item back).
pub use aiothreads_core::ring::Closed as ChannelClosed;

impl<T: Send + 'static> FromThreadChannel<T> {
    /// A channel holding at most `max_size` items: `(thread side, async side)`.
    ///
    /// # Panics
    /// If `max_size` is 0 or too large to allocate a ring for.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = aiothreads::FromThreadChannel::<u8>::new(16);
    /// assert_eq!(rx.max_size(), 16);
    /// # drop(tx);
    /// ```
    #[allow(clippy::new_ret_no_self)]
    pub fn new(max_size: usize) -> (ThreadSender<T>, FromThreadChannel<T>) {
        assert!(
            max_size > 0,
            "FromThreadChannel: max_size must be at least 1"
        );
        let (tx, rx) = match ring::try_with_capacity(max_size) {
            Ok(halves) => halves,
            Err(e) => panic!("FromThreadChannel: {e}"),
        };
        (ThreadSender { tx }, FromThreadChannel { rx })
    }
}

impl<T> FromThreadChannel<T> {
    /// The next item, waiting asynchronously.
    ///
    /// Cancel-safe: dropping the future loses no item.
    ///
    /// # Errors
    /// [`ChannelClosed`] once the sender has gone and every item has been received.
    pub fn get(&mut self) -> Get<'_, T> {
        Get { rx: &mut self.rx }
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

    /// The bound given at creation.
    pub fn max_size(&self) -> usize {
        self.rx.capacity()
    }
}

impl<T> Stream for FromThreadChannel<T> {
    type Item = T;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().rx.poll_recv(cx)
    }
}

impl<T> fmt::Debug for FromThreadChannel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromThreadChannel")
            .field("max_size", &self.rx.capacity())
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
    rx: &'a mut Consumer<'static, T>,
}

impl<T> Future for Get<'_, T> {
    type Output = Result<T, ChannelClosed>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut()
            .rx
            .poll_recv(cx)
            .map(|item| item.ok_or(ChannelClosed(())))
    }
}

impl<T> fmt::Debug for Get<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Get").finish_non_exhaustive()
    }
}

impl<T> ThreadSender<T> {
    /// Sends `item`, blocking this thread while the channel is full (backpressure).
    ///
    /// The parker is made only when the channel is full (one allocation per wait).
    ///
    /// # Errors
    /// Hands `item` back in [`ChannelClosed`] once the receiver has gone, including when it
    /// leaves while this call waits.
    pub fn put(&mut self, item: T) -> Result<(), ChannelClosed<T>> {
        match self.tx.try_send(item) {
            Ok(()) => Ok(()),
            Err(PushError::Closed(item)) => Err(ChannelClosed(item)),
            Err(PushError::Full(item)) => {
                let parker = ThreadParker::new();
                self.tx.push_blocking(item, &parker, 0)
            }
        }
    }

    /// Sends `item` if there is room now.
    ///
    /// # Errors
    /// [`PushError::Full`] or [`PushError::Closed`], with the item.
    pub fn try_put(&mut self, item: T) -> Result<(), PushError<T>> {
        self.tx.try_send(item)
    }

    /// Ends the stream: the receiver gets the items already sent, then the end.
    pub fn close(&mut self) {
        self.tx.close();
    }

    /// Whether the receiver has gone (a `put` would fail).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<T> fmt::Debug for ThreadSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadSender")
            .field("closed", &self.tx.is_closed())
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
/// # Panics
/// If `max_size` is 0, or the loop refuses the driving task.
///
/// # Examples
/// ```
/// let stream = futures::stream::iter(vec![1, 2, 3]);
/// let handle = aiothreads::spawn(move || aiothreads::blocking_iter(stream, 8).sum::<i32>());
/// assert_eq!(aiothreads::block_on(handle), 6);
/// ```
///
/// [`block_on`]: crate::block_on
pub fn blocking_iter<S>(stream: S, max_size: usize) -> BlockingIter<S>
where
    S: Stream + Send + Unpin + 'static,
    S::Item: Send + 'static,
{
    assert!(max_size > 0, "blocking_iter: max_size must be at least 1");
    let Some(lp) = Loop::current() else {
        return BlockingIter {
            inner: Inner::Local(stream),
            parker: None,
        };
    };
    let (mut tx, rx) = match ring::try_with_capacity(max_size) {
        Ok(halves) => halves,
        Err(e) => panic!("blocking_iter: {e}"),
    };
    let stop = Arc::new(Stop::default());
    let driver_stop = stop.clone();
    let mut stream = stream;
    let driver = async move {
        // Each wait for the stream's next item also watches `stop`: a stream that never
        // yields again (an idle socket) is dropped as soon as the iterator is.
        while let Some(Some(item)) = (UnlessStopped {
            stop: &driver_stop,
            inner: NextItem {
                stream: &mut stream,
            },
        })
        .await
        {
            if tx.send(item).await.is_err() {
                break; // the iterator was dropped while we waited for room
            }
        }
    };
    if let Err(e) = lp.spawn(driver) {
        panic!("blocking_iter: the loop refused the task driving the stream: {e}");
    }
    BlockingIter {
        inner: Inner::Ring(rx, stop),
        parker: None,
    }
}

/// Tells the task driving a [`blocking_iter`] stream that the iterator is gone.
#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    /// The driver's waker, registered before each check of `stopped`.
    waker: Mutex<Option<Waker>>,
}

impl Stop {
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
}

/// Polls `inner` until it is ready, or resolves to `None` once `stop` is set.
struct UnlessStopped<'a, F> {
    stop: &'a Stop,
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

/// `StreamExt::next` without depending on `futures`.
struct NextItem<'a, S> {
    stream: &'a mut S,
}

impl<S: Stream + Unpin> Future for NextItem<'_, S> {
    type Output = Option<S::Item>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut *self.get_mut().stream).poll_next(cx)
    }
}

/// Iterator of [`blocking_iter`].
pub struct BlockingIter<S: Stream> {
    inner: Inner<S>,
    /// The parker of the thread that last waited, with that thread's id.
    parker: Option<(std::thread::ThreadId, ThreadParker)>,
}

enum Inner<S: Stream> {
    /// Driven on a loop, items through a ring; `Stop` ends the driver when we drop.
    Ring(Consumer<'static, S::Item>, Arc<Stop>),
    /// Driven here with `block_on`.
    Local(S),
}

impl<S: Stream + Unpin> Iterator for BlockingIter<S> {
    type Item = S::Item;
    fn next(&mut self) -> Option<S::Item> {
        match &mut self.inner {
            Inner::Local(stream) => crate::block_on(NextItem { stream }),
            Inner::Ring(rx, _) => {
                // The parker belongs to the thread that first waits; an iterator moved to
                // another thread gets a new one.
                let me = std::thread::current().id();
                let parker = match &self.parker {
                    Some((id, p)) if *id == me => p,
                    _ => &self.parker.insert((me, ThreadParker::new())).1,
                };
                rx.pop_blocking(parker, 0)
            }
        }
    }
}

impl<S: Stream> Drop for BlockingIter<S> {
    fn drop(&mut self) {
        if let Inner::Ring(_, stop) = &self.inner {
            stop.stop();
        }
    }
}

impl<S: Stream> fmt::Debug for BlockingIter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.inner {
            Inner::Ring(..) => "loop",
            Inner::Local(_) => "block_on",
        };
        f.debug_struct("BlockingIter")
            .field("driven_by", &mode)
            .finish()
    }
}
