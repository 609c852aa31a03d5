//! Iterators as async `Stream`s: [`IterCall`], the closure forms
//! [`threaded_iterable`](fn@threaded_iterable) and
//! [`threaded_iterable_separate`](fn@threaded_iterable_separate), and what the
//! `#[threaded_iterable]` attributes expand to.
//!
//! A sync iterator runs on a pool thread (or a dedicated thread) and hands its items to the
//! async side through the core's bounded SPSC ring:
//!
//! - **Backpressure.** At most `max_size` items are buffered, plus the one the producer holds;
//!   the producer thread parks while the ring is full and is woken when the consumer has freed
//!   half of it (the ring's lazy checkpoint), never polled.
//! - **Prompt stop.** Dropping the stream (a `break` out of the loop) closes the ring and
//!   cancels the job: a producer parked on a full ring is woken at once, a producer inside
//!   `next()` fails its next push; either way the iterator is dropped *on its thread*, so its
//!   `Drop` — the Rust `finally` — runs there. [`is_cancelled`](crate::is_cancelled) turns
//!   true inside the iterator as soon as the consumer has gone.
//! - **`IterCall::close`** closes and resolves only once the iterator has been dropped.
//! - **Errors.** Items produced before a panic are delivered first, then the panic is re-raised
//!   in the consumer's `poll_next` (or yielded as `Err` by `IterCall::try_stream`).
//!   `Result` items flow as items.
//! - **Lazy.** A stream that is never polled starts no thread and submits no job.
//!
//! # Cost per item (the hot path)
//! Producer: one `Iterator::next`, one ring push (no atomic RMW: one Release store of the
//! tail), one `SeqCst` fence and one relaxed load to learn whether the consumer sleeps.
//! Consumer: one ring pop (one Release store of the head). Wake-ups: the consumer is woken
//! only after it found the ring empty and registered its waker; the producer only after it
//! found the ring full, and then once per half ring. No allocation per item.
//!
//! # Examples
//! ```
//! use futures::StreamExt;
//!
//! /// Squares, computed on a pool thread.
//! #[aiothreads::threaded_iterable]
//! fn squares(n: u64) -> impl Iterator<Item = u64> {
//!     (0..n).map(|i| i * i)
//! }
//!
//! # futures::executor::block_on(async {
//! let all: Vec<u64> = squares(5).collect().await;
//! assert_eq!(all, [0, 1, 4, 9, 16]);
//! // The plain iterator, run inline:
//! assert_eq!(squares(3).sync_call().collect::<Vec<_>>(), [0, 1, 4]);
//! # });
//! ```

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use aiothreads_core::ring::{self, Consumer, PopError, Producer};
use futures_core::Stream;

use crate::cancel::{self, Cancel, CancelToken};
use crate::parker::ThreadParker;
use crate::pool::Pool;
use crate::separate::spawn_separate_named;
use crate::task::{JoinError, TryJoin};

/// Rounds of back-off a consumer that found the ring empty spends before it registers its
/// waker and returns `Pending` (each round: `SPIN_PAUSES` pause instructions, then one look).
const CONSUMER_SPIN: u32 = 16;
/// Pause instructions per back-off round.
const SPIN_PAUSES: u32 = 16;

/// Name of the environment variable that sets the default `max_size` of iterables.
pub const MAX_SIZE_ENV: &str = "THREADED_ITERABLE_DEFAULT_MAX_SIZE";

/// The default `max_size` when the environment variable is not set.
pub const DEFAULT_MAX_SIZE: usize = 1024;

/// The default `max_size` of iterables: [`MAX_SIZE_ENV`] when set, else 1024. Read once.
///
/// # Panics
/// If the variable is set to something other than a positive integer: the message names the
/// variable and the value (a typo must not silently become the default).
///
/// # Examples
/// ```
/// assert!(aiothreads::default_max_size() >= 1);
/// ```
pub fn default_max_size() -> usize {
    static SIZE: OnceLock<Result<usize, String>> = OnceLock::new();
    match SIZE.get_or_init(|| parse_max_size(std::env::var_os(MAX_SIZE_ENV))) {
        Ok(size) => *size,
        Err(msg) => panic!("{msg}"),
    }
}

/// `max_size` if it is valid.
///
/// # Panics
/// If `max_size` is 0.
#[track_caller]
fn checked_max_size(max_size: usize) -> usize {
    assert!(
        max_size > 0,
        "max_size must be at least 1 (the queue of an iterable is bounded)"
    );
    max_size
}

/// Parses the value of [`MAX_SIZE_ENV`].
fn parse_max_size(value: Option<std::ffi::OsString>) -> Result<usize, String> {
    let Some(value) = value else {
        return Ok(DEFAULT_MAX_SIZE);
    };
    match value.to_str().map(|s| s.trim().parse::<usize>()) {
        Some(Ok(n)) if n > 0 => Ok(n),
        _ => Err(format!(
            "{MAX_SIZE_ENV} must be a positive integer (the queue size of threaded iterables), \
             got {value:?}"
        )),
    }
}

/// A function that makes an iterator: what an iterable call runs on its thread.
///
/// Implemented for every `FnOnce() -> impl IntoIterator` that is `Send + 'static` with `Send`
/// items. The iterator itself need not be `Send`: it is created, used and dropped on the
/// producer thread.
///
/// # Examples
/// ```
/// use aiothreads::IterFn;
///
/// // A closure returning anything iterable is an `IterFn`; `make` runs it.
/// let make = || vec!["a", "b"];
/// assert_eq!(make.make().collect::<Vec<_>>(), ["a", "b"]);
/// ```
pub trait IterFn: Send + 'static {
    /// The items.
    type Item: Send + 'static;
    /// The iterator.
    type IntoIter: Iterator<Item = Self::Item>;
    /// Makes the iterator.
    fn make(self) -> Self::IntoIter;
}

impl<F, I> IterFn for F
where
    F: FnOnce() -> I + Send + 'static,
    I: IntoIterator,
    I::Item: Send + 'static,
{
    type Item = I::Item;
    type IntoIter = I::IntoIter;
    fn make(self) -> I::IntoIter {
        self().into_iter()
    }
}

/// Where the producer runs.
#[derive(Debug, Clone)]
enum Target {
    /// A pool; `None` is the default pool, resolved when the stream starts.
    Pool(Option<Pool>),
    /// A new thread with this name.
    Separate(Cow<'static, str>),
}

/// One call of an iterable: a `Stream` of the iterator's items, started on first poll.
///
/// Made by the [`#[threaded_iterable]`](macro@crate::threaded_iterable) attributes, by
/// [`ThreadedIterable::call`] and by [`IterCall::new`]. A sync iterator runs on a pool thread
/// (or a dedicated thread) and hands its items to the async side through the core's bounded
/// SPSC ring:
///
/// - **Backpressure.** At most `max_size` items are buffered (default
///   [`default_max_size`]: 1024 or `THREADED_ITERABLE_DEFAULT_MAX_SIZE`), plus the one the
///   producer holds; the producer thread parks while the ring is full and is woken when the
///   consumer has freed half of it, never polled.
/// - **Prompt stop.** Dropping the stream (a `break` out of the loop) closes the ring and
///   cancels the job: a producer parked on a full ring is woken at once, a producer inside
///   `next()` fails its next push; either way the iterator is dropped *on its thread*, so its
///   `Drop` — the Rust `finally` — runs there. [`is_cancelled`](crate::is_cancelled) turns
///   true inside the iterator as soon as the consumer has gone.
/// - **[`close`](IterCall::close)`().await`** closes and resolves only once the iterator has
///   been dropped.
/// - **Errors.** Items produced before a panic are delivered first, then the panic is
///   re-raised in `poll_next` (or yielded as `Err` by [`try_stream`](IterCall::try_stream)).
///   `Result` items flow as items.
/// - **Lazy.** A stream that is never polled starts no thread and submits no job.
/// - **Loop and context.** The producer runs under the context captured at the first poll
///   (loop handle, [`ContextVar`](crate::ContextVar)s), like a `threaded` call.
///
/// # Cost per item
/// Producer: one `Iterator::next`, one ring push (one Release store, no atomic RMW), one
/// fence and one relaxed load to learn whether the consumer sleeps. Consumer: one ring pop.
/// Wake-ups happen only for a side that sleeps: the consumer after it found the ring empty
/// (and spun about a microsecond), the producer after it found the ring full, then once per
/// half ring. No allocation per item.
#[must_use = "streams do nothing unless polled"]
pub struct IterCall<F: IterFn> {
    state: State<F>,
    /// Whether the producer was ever submitted.
    started: bool,
    max_size: Option<usize>,
    target: Target,
}

enum State<F: IterFn> {
    /// Not polled yet: nothing started.
    Idle(F),
    /// The producer job was submitted.
    Running(Running<F::Item>),
    /// Finished, closed, or failed.
    Done,
}

/// The consumer side of a running stream.
struct Running<T> {
    rx: Consumer<'static, T>,
    job: TryJoin<()>,
    shared: Arc<StreamShared>,
}

/// State shared by the two sides of a stream, besides the ring.
#[derive(Debug)]
struct StreamShared {
    /// Set by the consumer when it drops or closes the stream.
    consumer_gone: AtomicBool,
}

/// The cancellation flag seen by [`is_cancelled`](crate::is_cancelled) inside the iterator:
/// the consumer left, or the job's own handle was dropped.
struct IterCancel {
    shared: Arc<StreamShared>,
    job: CancelToken,
}

impl Cancel for IterCancel {
    fn is_cancelled(&self) -> bool {
        self.shared.consumer_gone.load(Ordering::Relaxed) || self.job.is_cancelled()
    }
}

impl<F: IterFn> IterCall<F> {
    /// A stream of `f()`'s items, produced on the default pool.
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// let s = aiothreads::IterCall::new(|| 0..3);
    /// assert_eq!(futures::executor::block_on(s.collect::<Vec<_>>()), [0, 1, 2]);
    /// ```
    pub fn new(f: F) -> Self {
        Self {
            state: State::Idle(f),
            started: false,
            max_size: None,
            target: Target::Pool(None),
        }
    }

    /// A stream of `f()`'s items, produced on a new thread named `name`.
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// let s = aiothreads::IterCall::new_separate("numbers", || {
    ///     std::iter::once(std::thread::current().name().map(str::to_owned))
    /// });
    /// let names: Vec<_> = futures::executor::block_on(s.collect());
    /// assert_eq!(names, [Some("numbers".to_owned())]);
    /// ```
    pub fn new_separate(name: impl Into<Cow<'static, str>>, f: F) -> Self {
        Self {
            state: State::Idle(f),
            started: false,
            max_size: None,
            target: Target::Separate(name.into()),
        }
    }

    /// Sets the queue bound: at most `max_size` items wait between the threads.
    ///
    /// # Panics
    /// If `max_size` is 0 (the queue is bounded; asyncio's "0 means unbounded" is not
    /// offered — give a large value instead).
    ///
    /// # Examples
    /// ```
    /// let s = aiothreads::IterCall::new(|| 0..10).max_size(2);
    /// # drop(s);
    /// ```
    #[track_caller]
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = Some(checked_max_size(max_size));
        self
    }

    /// Produces on `pool` instead of the default pool.
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// let pool = aiothreads::Pool::builder().max_threads(1).build();
    /// let s = aiothreads::IterCall::new(|| 0..2).on(&pool);
    /// assert_eq!(futures::executor::block_on(s.count()), 2);
    /// ```
    pub fn on(mut self, pool: &Pool) -> Self {
        self.target = Target::Pool(Some(pool.clone()));
        self
    }

    /// Produces on a new dedicated thread (named `aiothreads-separate` unless
    /// [`name`](Self::name) is given).
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// let s = aiothreads::IterCall::new(|| 0..2).separate();
    /// assert_eq!(futures::executor::block_on(s.count()), 2);
    /// ```
    pub fn separate(mut self) -> Self {
        if let Target::Pool(_) = self.target {
            self.target = Target::Separate(Cow::Borrowed(crate::separate::DEFAULT_NAME));
        }
        self
    }

    /// Produces on a new dedicated thread named `name`.
    ///
    /// # Examples
    /// ```
    /// let s = aiothreads::IterCall::new(|| 0..2).name("reader");
    /// # drop(s);
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.target = Target::Separate(name.into());
        self
    }

    /// Runs the function inline and returns the plain iterator (no thread, no queue).
    ///
    /// # Panics
    /// If the stream was already polled (the function has been moved to its thread).
    ///
    /// # Examples
    /// ```
    /// let it = aiothreads::IterCall::new(|| 0..3).sync_call();
    /// assert_eq!(it.sum::<i32>(), 3);
    /// ```
    pub fn sync_call(mut self) -> F::IntoIter {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Idle(f) => f.make(),
            _ => panic!("IterCall::sync_call after the stream was polled"),
        }
    }

    /// A stream of `Result`s that yields a failure of the producer (panic, spawn failure,
    /// shutdown) as a last `Err` item instead of panicking in `poll_next`.
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// let s = aiothreads::IterCall::new(|| (0..3).map(|i| if i < 2 { i } else { panic!("bad") }));
    /// let items: Vec<_> = futures::executor::block_on(s.try_stream().collect());
    /// assert_eq!(items.len(), 3);
    /// assert!(matches!(items[..2], [Ok(0), Ok(1)]));
    /// assert!(items[2].as_ref().unwrap_err().is_panic());
    /// ```
    pub fn try_stream(self) -> TryIterCall<F> {
        TryIterCall { inner: self }
    }

    /// Whether the producer was ever started (the stream was polled before it ended or was
    /// closed).
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Closes the stream and resolves once the iterator has been dropped on its thread.
    ///
    /// Resolves at once if the stream was never polled (nothing runs; the function is dropped
    /// here) or is already finished or closed.
    ///
    /// # Errors
    /// The producer's failure if it panicked (also a panic in the iterator's `Drop`) and the
    /// panic was not delivered yet.
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// struct Guard(Arc<AtomicBool>);
    /// impl Drop for Guard {
    ///     fn drop(&mut self) { self.0.store(true, Ordering::SeqCst) }
    /// }
    ///
    /// let dropped = Arc::new(AtomicBool::new(false));
    /// let flag = dropped.clone();
    /// let mut s = aiothreads::IterCall::new(move || {
    ///     let guard = Guard(flag);
    ///     (0..).map(move |i| { let _ = &guard; i })
    /// });
    /// futures::executor::block_on(async {
    ///     assert_eq!(s.next().await, Some(0));
    ///     s.close().await.unwrap();
    /// });
    /// assert!(dropped.load(Ordering::SeqCst), "close() returned after the iterator's Drop");
    /// ```
    pub fn close(&mut self) -> Close<'_, F> {
        if let State::Running(running) = &mut self.state {
            running.shared.consumer_gone.store(true, Ordering::Relaxed);
            running.rx.close();
        } else {
            self.state = State::Done;
        }
        Close { call: self }
    }

    /// Starts the producer: allocates the ring, submits the job.
    fn start(&mut self, f: F) -> Running<F::Item> {
        let capacity = self.max_size.unwrap_or_else(default_max_size);
        let (tx, rx) = match ring::try_with_capacity(capacity) {
            Ok(halves) => halves,
            Err(e) => panic!("threaded iterable: {e}"),
        };
        let shared = Arc::new(StreamShared {
            consumer_gone: AtomicBool::new(false),
        });
        let job_shared = shared.clone();
        let job = move || produce(f, tx, job_shared);
        let handle = match &self.target {
            Target::Pool(Some(pool)) => pool.spawn(job),
            Target::Pool(None) => crate::default_pool().spawn(job),
            Target::Separate(name) => spawn_separate_named(name.clone(), job),
        };
        Running {
            rx,
            job: handle.try_join(),
            shared,
        }
    }

    /// The shared `poll_next`, failures as `Err`.
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<F::Item, JoinError>>> {
        let running = match &mut self.state {
            State::Running(running) => running,
            State::Done => return Poll::Ready(None),
            State::Idle(_) => {
                let State::Idle(f) = std::mem::replace(&mut self.state, State::Done) else {
                    unreachable!()
                };
                let running = self.start(f);
                self.started = true;
                self.state = State::Running(running);
                let State::Running(running) = &mut self.state else {
                    unreachable!()
                };
                running
            }
        };
        // Fast path: an item is there (no waker touched).
        match running.rx.pop() {
            Ok(item) => return Poll::Ready(Some(Ok(item))),
            Err(PopError::Empty) => {
                // The consumer caught up with the producer. Back off briefly *without*
                // touching the ring's shared lines, then look again: a fast producer has
                // pushed a batch by then, so the next pops run from the consumer's cached
                // tail instead of bouncing the tail's cache line once per item. Bounded:
                // at most `CONSUMER_SPIN` rounds (about a microsecond) per empty poll.
                for _ in 0..CONSUMER_SPIN {
                    for _ in 0..SPIN_PAUSES {
                        std::hint::spin_loop();
                    }
                    if let Ok(item) = running.rx.pop() {
                        return Poll::Ready(Some(Ok(item)));
                    }
                }
            }
            Err(PopError::Closed) => {}
        }
        match running.rx.poll_recv(cx) {
            Poll::Ready(Some(item)) => return Poll::Ready(Some(Ok(item))),
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {}
        }
        // The ring is closed and drained: the producer finished; its job result says how.
        let outcome = match Pin::new(&mut running.job).poll(cx) {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => return Poll::Pending,
        };
        self.state = State::Done;
        match outcome {
            Ok(()) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}

/// The producer loop, on the worker thread.
///
/// Items go out one `push_blocking` at a time: a push publishes the item at once (a slow
/// `next()` never holds back items already produced) and wakes the consumer only if it sleeps.
fn produce<F: IterFn>(f: F, mut tx: Producer<'static, F::Item>, shared: Arc<StreamShared>) {
    // `is_cancelled()` inside the iterator: the consumer left, or the job's handle was dropped.
    let _cancel = cancel::enter(Arc::new(IterCancel {
        shared,
        job: crate::cancel_token(),
    }));
    let parker = ThreadParker::new();
    let iter = f.make();
    for item in iter {
        if tx.push_blocking(item, &parker, 0).is_err() {
            // The consumer left: stop. The iterator (and the item handed back) drop here, on
            // this thread.
            break;
        }
    }
    // `tx` is dropped after the iterator (the loop consumed it): the consumer sees the end of
    // the stream only once the iterator is gone.
}

impl<F: IterFn> Drop for IterCall<F> {
    fn drop(&mut self) {
        if let State::Running(running) = &mut self.state {
            // Tell the iterator first, then close the ring: a producer parked on a full ring
            // is woken by the close. Dropping `job` afterwards cancels the pool job too.
            running.shared.consumer_gone.store(true, Ordering::Relaxed);
            running.rx.close();
        }
    }
}

impl<F: IterFn> Stream for IterCall<F>
where
    F: Unpin,
{
    type Item = F::Item;

    /// # Panics
    /// Re-raises a panic of the iterator (after the items produced before it) and panics with
    /// the [`JoinError`] message if the producer could not run (spawn failure, shutdown).
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Item>> {
        match self.get_mut().poll_item(cx) {
            Poll::Ready(Some(Ok(item))) => Poll::Ready(Some(item)),
            Poll::Ready(Some(Err(JoinError::Panicked(payload)))) => panic::resume_unwind(payload),
            Poll::Ready(Some(Err(e))) => panic!("threaded iterable failed: {e}"),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F: IterFn> fmt::Debug for IterCall<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle(_) => "idle",
            State::Running(_) => "running",
            State::Done => "done",
        };
        f.debug_struct("IterCall")
            .field("state", &state)
            .field("max_size", &self.max_size)
            .field("target", &self.target)
            .finish()
    }
}

/// A stream of `Result`s over an [`IterCall`]: see [`IterCall::try_stream`].
///
/// # Examples
/// ```
/// use futures::StreamExt;
///
/// let s = aiothreads::IterCall::new(|| (1..=3).map(|i| if i < 3 { i } else { panic!("disk gone") }));
/// let items: Vec<_> = futures::executor::block_on(s.try_stream().collect());
/// assert!(matches!(items[..], [Ok(1), Ok(2), Err(ref e)] if e.is_panic()));
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct TryIterCall<F: IterFn> {
    inner: IterCall<F>,
}

impl<F: IterFn> TryIterCall<F> {
    /// Closes the stream; see [`IterCall::close`].
    pub fn close(&mut self) -> Close<'_, F> {
        self.inner.close()
    }
}

impl<F: IterFn + Unpin> Stream for TryIterCall<F> {
    type Item = Result<F::Item, JoinError>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().inner.poll_item(cx)
    }
}

impl<F: IterFn> fmt::Debug for TryIterCall<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TryIterCall").field(&self.inner).finish()
    }
}

/// Future of [`IterCall::close`]: resolves once the iterator has been dropped on its thread.
///
/// Cancel-safe: the stream stays closed if this future is dropped; a later `close()` waits
/// again.
///
/// # Examples
/// ```
/// use futures::StreamExt;
///
/// let mut endless = aiothreads::IterCall::new(|| 0u64..);
/// futures::executor::block_on(async {
///     assert_eq!(endless.next().await, Some(0));
///     let closing: aiothreads::Close<'_, _> = endless.close();
///     closing.await.unwrap(); // the iterator has been dropped on its thread
///     assert_eq!(endless.next().await, None);
/// });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Close<'a, F: IterFn> {
    call: &'a mut IterCall<F>,
}

impl<F: IterFn> Future for Close<'_, F> {
    type Output = Result<(), JoinError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let call = &mut *self.get_mut().call;
        let State::Running(running) = &mut call.state else {
            return Poll::Ready(Ok(()));
        };
        // Items still in the ring are dropped with it; only the job's end matters.
        let outcome = match Pin::new(&mut running.job).poll(cx) {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => return Poll::Pending,
        };
        call.state = State::Done;
        match outcome {
            // Closed before the job started: it was skipped, nothing ran, nothing to drop.
            Ok(()) | Err(JoinError::Cancelled) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl<F: IterFn> fmt::Debug for Close<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Close").finish_non_exhaustive()
    }
}

/// A wrapper of an iterator-making function: calling it gives a stream
/// ([`IterCall`]). The closure form of [`#[threaded_iterable]`](macro@crate::threaded_iterable).
///
/// # Examples
/// ```
/// use futures::StreamExt;
///
/// let lines = aiothreads::threaded_iterable(|n: usize| (0..n).map(|i| format!("line {i}")))
///     .max_size(16);
/// # futures::executor::block_on(async {
/// let got: Vec<String> = lines.call(2).collect().await;
/// assert_eq!(got, ["line 0", "line 1"]);
/// assert_eq!(lines.sync_call(1).count(), 1);
/// # });
/// ```
#[derive(Clone)]
pub struct ThreadedIterable<G> {
    f: G,
    max_size: Option<usize>,
    target: Target,
}

/// Wraps `f(arg)` so each call is a stream produced on the default pool.
///
/// For several arguments take a tuple (`|(a, b): (u32, u32)| …`). The closure form of
/// [`#[threaded_iterable]`](macro@crate::threaded_iterable), for builds without the `macros`
/// feature or for iterators made at run time.
///
/// # Examples
/// ```
/// use futures::StreamExt;
///
/// let ranges = aiothreads::threaded_iterable(|(from, to): (u32, u32)| from..to).max_size(8);
/// futures::executor::block_on(async {
///     let got: Vec<u32> = ranges.call((3, 6)).collect().await;
///     assert_eq!(got, [3, 4, 5]);
/// });
/// ```
pub fn threaded_iterable<G>(f: G) -> ThreadedIterable<G> {
    ThreadedIterable {
        f,
        max_size: None,
        target: Target::Pool(None),
    }
}

/// Wraps `f(arg)` so each call is a stream produced on its own new thread.
///
/// # Examples
/// ```
/// use futures::StreamExt;
/// let s = aiothreads::threaded_iterable_separate(|n: u8| 0..n).name("counter");
/// assert_eq!(futures::executor::block_on(s.call(3).count()), 3);
/// ```
pub fn threaded_iterable_separate<G>(f: G) -> ThreadedIterable<G> {
    ThreadedIterable {
        f,
        max_size: None,
        target: Target::Separate(Cow::Borrowed(crate::separate::DEFAULT_NAME)),
    }
}

impl<G> ThreadedIterable<G> {
    /// Sets the queue bound of every call (see [`IterCall::max_size`]).
    ///
    /// # Panics
    /// If `max_size` is 0.
    #[track_caller]
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = Some(checked_max_size(max_size));
        self
    }

    /// Produces on `pool`.
    pub fn on(mut self, pool: &Pool) -> Self {
        self.target = Target::Pool(Some(pool.clone()));
        self
    }

    /// Names the dedicated thread of each call (and makes calls use one).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.target = Target::Separate(name.into());
        self
    }

    /// A stream of the items of `f(arg)`, started on first poll.
    pub fn call<A, I>(&self, arg: A) -> IterCall<impl IterFn<Item = I::Item> + Unpin>
    where
        G: Fn(A) -> I + Clone + Send + Unpin + 'static,
        A: Send + Unpin + 'static,
        I: IntoIterator,
        I::Item: Send + 'static,
    {
        let f = self.f.clone();
        IterCall {
            state: State::Idle(move || f(arg)),
            started: false,
            max_size: self.max_size,
            target: self.target.clone(),
        }
    }

    /// Same as [`call`](Self::call) (the original's name).
    pub fn async_call<A, I>(&self, arg: A) -> IterCall<impl IterFn<Item = I::Item> + Unpin>
    where
        G: Fn(A) -> I + Clone + Send + Unpin + 'static,
        A: Send + Unpin + 'static,
        I: IntoIterator,
        I::Item: Send + 'static,
    {
        self.call(arg)
    }

    /// The plain iterator of `f(arg)`, run inline.
    pub fn sync_call<A, I>(&self, arg: A) -> I::IntoIter
    where
        G: Fn(A) -> I,
        I: IntoIterator,
    {
        (self.f)(arg).into_iter()
    }
}

impl<G> fmt::Debug for ThreadedIterable<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadedIterable")
            .field("max_size", &self.max_size)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_value_parsing() {
        assert_eq!(parse_max_size(None), Ok(DEFAULT_MAX_SIZE));
        assert_eq!(parse_max_size(Some("512".into())), Ok(512));
        assert_eq!(parse_max_size(Some(" 7 ".into())), Ok(7));
        for bad in ["0", "-1", "lots", ""] {
            let err = parse_max_size(Some(bad.into())).unwrap_err();
            assert!(err.contains(MAX_SIZE_ENV) && err.contains(bad), "{err}");
        }
    }
}
