//! Iterators as async `Stream`s: [`IterCall`], the closure forms
//! [`threaded_iterable`](fn@threaded_iterable) and
//! [`threaded_iterable_separate`](fn@threaded_iterable_separate), and what the
//! `#[threaded_iterable]` attributes expand to.
//!
//! A sync iterator runs on a pool thread (or a dedicated thread) and hands its items to the
//! async side through the core's bounded SPSC ring:
//!
//! - **Backpressure.** At most `max_size` items exist between the iterator and the consumer:
//!   the producer waits for room *before* it calls `next()` again. A **pool** producer gives
//!   its worker back while the ring is full and is resubmitted to the pool when the consumer
//!   has freed half of it (the ring's lazy checkpoint), so a stream costs a worker only while
//!   `next()` runs or the ring has room: many more streams than pool threads can be open and
//!   backpressured at once (`pool_stream.rs`). A producer on a dedicated thread parks that
//!   thread instead. Nothing is polled.
//! - **Fairness.** A pool producer that never fills its ring offers its worker back after a
//!   ring's worth of items when other jobs are queued.
//! - **Prompt stop.** Dropping the stream (a `break` out of the loop) closes the ring: a
//!   producer not started yet is withdrawn (nothing runs), a producer parked on a full ring is
//!   woken at once, a producer inside `next()` stops before the next one; the iterator is
//!   dropped *on its thread*, so its `Drop` — the Rust `finally` — runs there.
//!   [`is_cancelled`](crate::is_cancelled) turns true inside the iterator as soon as the
//!   consumer has gone.
//! - **One ending.** The producer's outcome (done, panicked, refused, cancelled) is written
//!   in one place beside the ring before the ring closes; the consumer's `poll_next` and
//!   `IterCall::close` watch that one thing.
//! - **`IterCall::close`** closes and resolves only once the iterator has been dropped (at
//!   once for a producer that had not started).
//! - **Bounded pools.** On a pool with `max_queued`, the stream's first poll waits (as
//!   `Pending`) for a place in the queue, like an awaited call.
//! - **Errors.** Items produced before a panic are delivered first, then the panic is re-raised
//!   in the consumer's `poll_next` (or yielded as `Err` by `IterCall::try_stream`).
//!   `Result` items flow as items.
//! - **Lazy.** A stream that is never polled starts no thread and submits no job.
//!
//! # Cost per item (the hot path)
//! Producer (a run of the ring's `send_iter`: its position stays in a register between
//! items): one `Iterator::next`, a relaxed load of the `closed` flag and a room check on its
//! cached limit, one ring push (no atomic RMW: one Release store of the tail) and two relaxed
//! loads to learn whether the consumer sleeps and which wake-up protocol it chose: a `SeqCst`
//! fence in the fence protocol, none in the light one (feature `membarrier`, Linux and
//! Android: the consumer chooses it while it sleeps seldom, and then pays a `membarrier` call
//! when it goes to sleep instead).
//! Consumer: one ring pop (one Release store of the head; on x86_64 a prefetch of the slot two
//! cache lines ahead while it is published). Wake-ups: the consumer is woken
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
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use crate::queue::{self, Rx, Tx};
use aiothreads_core::park;
use aiothreads_core::ring::SendIterEnd;
use aiothreads_core::slot::Slot;
use aiothreads_core::take::TakeCell;
use futures_core::Stream;

use crate::backoff;
use crate::cancel::{self, Cancel};
use crate::context::Captured;
use crate::coop::RunBudget;
use crate::parker::ThreadParker;
use crate::pool::{Pool, Reserve, Shared};
use crate::pool_stream::PoolStreamJob;
use crate::separate::{run_on_new_thread, ThreadSpec};
use crate::task::{drop_quietly, job_addr, Delivery, JoinError, QueueLink, Runnable};

/// Name of the environment variable that sets the default `max_size` of iterables.
pub const MAX_SIZE_ENV: &str = "THREADED_ITERABLE_DEFAULT_MAX_SIZE";

/// The default `max_size` when the environment variable is not set.
pub const DEFAULT_MAX_SIZE: usize = 1024;

/// The default `max_size` of iterables: [`MAX_SIZE_ENV`] when set, else 1024. Read once.
/// `0` (from the variable) means unbounded, as [`IterCall::max_size`]`(0)` does.
///
/// # Panics
/// If the variable is set to something other than a non-negative integer: the message names
/// the variable and the value (a typo must not silently become the default).
///
/// # Examples
/// ```
/// let size = aiothreads::default_max_size(); // 1024 unless the variable says otherwise
/// # let _ = size;
/// ```
pub fn default_max_size() -> usize {
    static SIZE: OnceLock<Result<usize, String>> = OnceLock::new();
    match SIZE.get_or_init(|| parse_max_size(std::env::var_os(MAX_SIZE_ENV))) {
        Ok(size) => *size,
        Err(msg) => panic!("{msg}"),
    }
}

/// Parses the value of [`MAX_SIZE_ENV`].
fn parse_max_size(value: Option<std::ffi::OsString>) -> Result<usize, String> {
    let Some(value) = value else {
        return Ok(DEFAULT_MAX_SIZE);
    };
    match value.to_str().map(|s| s.trim().parse::<usize>()) {
        Some(Ok(n)) => Ok(n),
        _ => Err(format!(
            "{MAX_SIZE_ENV} must be a non-negative integer (the queue size of threaded \
             iterables, 0: unbounded), got {value:?}"
        )),
    }
}

/// A function that makes an iterator: what an iterable call runs on its thread.
///
/// Implemented for every `FnOnce() -> impl IntoIterator` that is `Send + 'static` with `Send`
/// items.
///
/// A **pool** stream ([`IterCall::new`], [`IterCall::on`], [`ThreadedIterable::call`],
/// `#[threaded_iterable]`) also needs a `Send` iterator: its producer gives its worker back
/// while the ring is full and may resume on another worker. A stream on a **dedicated thread**
/// ([`IterCall::new_separate`], `#[threaded_iterable_separate]`) does not: its iterator is
/// created, used and dropped on that one thread.
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
    /// A new thread.
    Separate(ThreadSpec),
}

impl Target {
    fn separate_default() -> Self {
        Self::Separate(ThreadSpec::named(Cow::Borrowed(
            crate::separate::DEFAULT_NAME,
        )))
    }

    /// Names the thread (and makes the stream use one).
    fn set_name(&mut self, name: Cow<'static, str>) {
        match self {
            Self::Separate(spec) => spec.name = name,
            Self::Pool(_) => *self = Self::Separate(ThreadSpec::named(name)),
        }
    }
}

/// One call of an iterable: a `Stream` of the iterator's items, started on first poll.
///
/// Made by the [`#[threaded_iterable]`](macro@crate::threaded_iterable) attributes, by
/// [`ThreadedIterable::call`] and by [`IterCall::new`]. A sync iterator runs on a pool thread
/// (or a dedicated thread) and hands its items to the async side through the core's bounded
/// SPSC ring:
///
/// - **Backpressure.** At most `max_size` items (default [`default_max_size`]: 1024 or
///   `THREADED_ITERABLE_DEFAULT_MAX_SIZE`) exist between the iterator and the consumer: the
///   producer waits for room before it calls `next()` again. On a pool it gives its worker
///   back while the ring is full and is resubmitted when the consumer has freed half of it:
///   a stream costs a worker only while `next()` runs or the ring has room (the synchronous
///   `next()` itself can still block its worker: that is your code). On a dedicated thread it
///   parks that thread.
/// - **Prompt stop.** Dropping the stream (a `break` out of the loop) closes the ring: a
///   producer not started yet is withdrawn (nothing runs), a producer parked on a full ring is
///   woken at once, a producer inside `next()` stops before the next one; the iterator is
///   dropped *on its thread*, so its `Drop` — the Rust `finally` — runs there.
///   [`is_cancelled`](crate::is_cancelled) turns true inside the iterator as soon as the
///   consumer has gone.
/// - **[`close`](IterCall::close)`().await`** does the same and resolves only once the
///   iterator has been dropped (at once if the producer had not started).
/// - **Bounded pools.** On a pool with [`max_queued`](crate::Builder::max_queued) the first
///   poll waits (as `Pending`) for a place in the queue.
/// - **Errors.** Items produced before a panic are delivered first, then the panic is
///   re-raised in `poll_next` (or yielded as `Err` by [`try_stream`](IterCall::try_stream)).
///   `Result` items flow as items.
/// - **Lazy.** A stream that is never polled starts no thread and submits no job.
/// - **Loop and context.** The producer runs under the context captured at the first poll
///   (loop handle, [`ContextVar`](crate::ContextVar)s), like a `threaded` call.
///
/// # Cost per item
/// Producer: one `Iterator::next`, the `closed` flag and a room check on its cached limit
/// (plain loads), one ring push (one Release store, no atomic RMW) and two relaxed loads to
/// learn whether the consumer sleeps and which protocol it chose (plus a fence per item in
/// the fence protocol: always where the `membarrier` feature is off or refused, else while
/// the consumer sleeps every few items). Consumer: one ring pop.
/// Wake-ups happen only for a side that sleeps: the consumer after it found the ring empty
/// (it never spins in `poll_next`), the producer after it found the ring full, then once per
/// half ring. No allocation per item.
#[must_use = "streams do nothing unless polled"]
pub struct IterCall<F: IterFn> {
    state: State<F>,
    /// Whether the producer was ever submitted.
    started: bool,
    max_size: Option<usize>,
    target: Target,
    /// How to start a producer that suspends on a full ring (`pool_stream.rs`): set where the
    /// iterator is known to be `Send` (it moves between workers). Without it a pool stream's
    /// producer parks its worker instead.
    pool_start: Option<PoolStart<F>>,
}

/// Makes a suspending pool producer: the consumer's view of it, and the job to submit.
type PoolStart<F> = fn(
    F,
    Tx<<F as IterFn>::Item>,
    QueueLink,
    Arc<Shared>,
    usize,
) -> (Arc<dyn StreamEnd>, Arc<dyn Runnable>);

/// A [`PoolStart`].
fn start_pool<F>(
    f: F,
    tx: Tx<F::Item>,
    link: QueueLink,
    pool: Arc<Shared>,
    batch: usize,
) -> (Arc<dyn StreamEnd>, Arc<dyn Runnable>)
where
    F: IterFn,
    F::IntoIter: Send,
{
    let job = PoolStreamJob::new(f, tx, link, pool, batch);
    (job.clone(), job)
}

/// A stream's producer as its consumer sees it: the one place where the stream's end is
/// written, and a way to withdraw it.
pub(crate) trait StreamEnd: Send + Sync {
    /// The producer's outcome, written before the ring closes.
    fn outcome(&self) -> &Slot<Result<(), JoinError>>;
    /// The consumer left: a producer that never ran is withdrawn (nothing runs); a running
    /// or suspended one stops and drops its iterator on its thread.
    fn withdraw(&self);
}

enum State<F: IterFn> {
    /// Not polled yet: nothing started.
    Idle(F),
    /// Waiting for a place in a bounded pool's queue.
    Reserving { f: F, reserve: Reserve },
    /// The producer job was submitted.
    Running(Running<F>),
    /// Finished, closed, or failed.
    Done,
}

/// The consumer side of a running stream.
struct Running<F: IterFn> {
    rx: Rx<F::Item>,
    job: Arc<dyn StreamEnd>,
    /// The cooperative budget of the consumer's runs of items (`coop::RunBudget`).
    budget: RunBudget,
}

impl<F: IterFn> Running<F> {
    /// The per-item fast path: an item popped while the run's budget lasts, with no look at
    /// the executor (see `RunBudget::fast`). `None` sends the caller to the slow path, which
    /// handles everything else: the start of a run, tokio's budget, the yield, an empty ring
    /// (the waker), the end.
    ///
    /// Cost: three compares (state, budget, queue kind), the ring's `pop` and an increment;
    /// no thread-local, no atomic RMW. Small enough that the consumer's loop inlines it.
    #[inline(always)]
    fn fast_item(&mut self) -> Option<F::Item> {
        if !self.budget.fast() {
            return None;
        }
        let item = self.rx.pop_fast()?;
        self.budget.delivered();
        Some(item)
    }

    fn new(rx: Rx<F::Item>, job: Arc<dyn StreamEnd>) -> Self {
        Self {
            rx,
            job,
            budget: RunBudget::new(),
        }
    }
}

/// The producer's side of a stream, in one allocation shared with the consumer: the job a
/// worker (or a separate thread) runs, and **the one place where the stream's end is
/// written**.
///
/// Whoever ends the job — the producer after the iterator's `Drop` ran, a failure to start it
/// (`fail`: shutdown, spawn failure), or the consumer withdrawing it before it started — takes
/// the function and the ring's producer half out of `job` (one winner), writes `outcome`,
/// and only then drops the producer half, which closes the ring. So a consumer that finds the
/// ring closed and drained always finds the outcome written, and `close()` waits on the
/// outcome alone.
struct StreamJob<F: IterFn> {
    job: TakeCell<(F, Tx<F::Item>, Captured)>,
    outcome: Slot<Result<(), JoinError>>,
    /// Set by the consumer when it drops or closes the stream; read by `is_cancelled()`
    /// inside the iterator.
    consumer_gone: AtomicBool,
    link: QueueLink,
}

impl<F: IterFn> StreamJob<F> {
    /// Writes the outcome, then closes the ring by dropping the producer half.
    fn finish(&self, outcome: Result<(), JoinError>, tx: Tx<F::Item>) {
        // The slot cannot be full (only the taker of `job` writes it) nor closed (the consumer
        // never closes it); a waker that panics is reported by the panic hook.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| self.outcome.send(outcome)));
        drop(tx);
    }
}

impl<F: IterFn> StreamEnd for StreamJob<F> {
    fn outcome(&self) -> &Slot<Result<(), JoinError>> {
        &self.outcome
    }

    /// A producer not started yet is withdrawn (nothing runs; its function is dropped here
    /// and the outcome says `Cancelled`); a running one stops at its next step and drops the
    /// iterator on its thread.
    fn withdraw(&self) {
        // Relaxed: only a hint for `is_cancelled()`; the ring's close is what stops a push.
        self.consumer_gone.store(true, Ordering::Relaxed);
        if let Some((f, tx, captured)) = self.job.take() {
            drop_quietly((f, captured));
            self.finish(Err(JoinError::Cancelled), tx);
            self.link.withdrawn(job_addr(self));
        }
    }
}

impl<F: IterFn> Cancel for StreamJob<F> {
    fn is_cancelled(&self) -> bool {
        self.consumer_gone.load(Ordering::Relaxed)
    }
}

impl<F: IterFn> Runnable for StreamJob<F> {
    fn run(self: Arc<Self>, _delivering: &dyn Fn(Delivery)) {
        let Some((f, mut tx, captured)) = self.job.take() else {
            // Withdrawn by the consumer, which wrote the outcome.
            return;
        };
        if self.consumer_gone.load(Ordering::Relaxed) {
            drop_quietly((f, captured));
            return self.finish(Err(JoinError::Cancelled), tx);
        }
        let result = {
            let _current = cancel::enter(self.clone());
            panic::catch_unwind(AssertUnwindSafe(|| captured.scope(|| produce(f, &mut tx))))
        };
        self.finish(result.map_err(JoinError::Panicked), tx);
    }

    fn fail(&self, err: JoinError) {
        if let Some((f, tx, captured)) = self.job.take() {
            drop_quietly((f, captured));
            self.finish(Err(err), tx);
        }
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
    pub fn new(f: F) -> Self
    where
        F::IntoIter: Send,
    {
        Self {
            state: State::Idle(f),
            started: false,
            max_size: None,
            target: Target::Pool(None),
            pool_start: Some(start_pool::<F>),
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
            target: Target::Separate(ThreadSpec::named(name.into())),
            pool_start: None,
        }
    }

    /// Sets the queue bound: at most `max_size` items wait between the threads.
    ///
    /// `0` means **unbounded**, as in the original: the producer never waits and runs the
    /// iterator as fast as it goes, so memory grows with a slow consumer (the queue is the
    /// core's linked segments of 64 items, recycled: a consumer that keeps up allocates
    /// nothing after warm-up). Same as [`unbounded`](Self::unbounded).
    ///
    /// # Examples
    /// ```
    /// let s = aiothreads::IterCall::new(|| 0..10).max_size(2);
    /// # drop(s);
    /// ```
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = Some(max_size);
        self
    }

    /// No bound: the producer never waits (see [`max_size`](Self::max_size)`(0)`).
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    ///
    /// let s = aiothreads::IterCall::new(|| 0..100_000u32).unbounded();
    /// let n = aiothreads::block_on(s.count());
    /// assert_eq!(n, 100_000);
    /// ```
    pub fn unbounded(self) -> Self {
        self.max_size(0)
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
    pub fn on(mut self, pool: &Pool) -> Self
    where
        F::IntoIter: Send,
    {
        self.target = Target::Pool(Some(pool.clone()));
        self.pool_start = Some(start_pool::<F>);
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
            self.target = Target::separate_default();
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
        self.target.set_name(name.into());
        self
    }

    /// Stack size in bytes of the dedicated thread of a stream produced on one (default: the
    /// platform's, 2 MiB on Linux); pool streams take their workers' stack
    /// ([`Builder::stack_size`](crate::Builder::stack_size)). Items travel from `next()` into
    /// the ring without a detour through the stack, but each item is on the producer's stack
    /// once (`next()` returns it): items of a large fraction of the stack need a larger one
    /// (or a `Box`).
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// let s = aiothreads::IterCall::new(|| (0..2).map(|_| [7u8; 64 << 10]))
    ///     .separate()
    ///     .stack_size(4 << 20)
    ///     .max_size(2);
    /// assert_eq!(futures::executor::block_on(s.count()), 2);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        if let Target::Separate(spec) = &mut self.target {
            spec.stack_size = Some(bytes);
        }
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
        match &mut self.state {
            // A producer not started yet is withdrawn here and now (nothing runs); a running
            // one is told to stop (the ring's close wakes it if it waits for room), and `Close`
            // waits for its outcome. The stream ends at once, even if `Close` is dropped
            // before it completes.
            State::Running(running) => {
                running.job.withdraw();
                running.rx.close();
                running.budget.stop();
            }
            // Never submitted: nothing ran; the function (or the place it waited for) is
            // dropped here.
            _ => self.state = State::Done,
        }
        Close { call: self }
    }

    /// The ring's capacity.
    fn capacity(&self) -> usize {
        self.max_size.unwrap_or_else(default_max_size)
    }

    /// Makes the queue (a ring: one allocation; unbounded: two).
    fn make_ring(&self) -> (Tx<F::Item>, Rx<F::Item>) {
        match queue::queue(self.capacity()) {
            Ok(halves) => halves,
            Err(e) => panic!("threaded iterable: {e}"),
        }
    }

    /// Makes the ring and a producer job that parks its thread on a full ring (one allocation
    /// each): for separate threads, and for pool streams of non-`Send` iterators.
    fn make_job(&self, f: F, link: QueueLink) -> (Arc<StreamJob<F>>, Rx<F::Item>) {
        let (tx, rx) = self.make_ring();
        let job = Arc::new(StreamJob {
            job: TakeCell::new((f, tx, Captured::capture())),
            outcome: Slot::new(),
            consumer_gone: AtomicBool::new(false),
            link,
        });
        (job, rx)
    }

    /// Starts the producer if it is not running yet: on a separate thread at once; on a pool
    /// once a place in its queue is granted (at once on an unbounded pool). `Pending` while
    /// it waits for a place.
    fn poll_start(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match &mut self.state {
                State::Running(_) | State::Done => return Poll::Ready(()),
                State::Idle(_) => {
                    let State::Idle(f) = std::mem::replace(&mut self.state, State::Done) else {
                        unreachable!()
                    };
                    self.started = true;
                    self.state = match &self.target {
                        Target::Separate(spec) => {
                            let (job, rx) = self.make_job(f, QueueLink::default());
                            run_on_new_thread(spec.clone(), job.clone());
                            State::Running(Running::new(rx, job))
                        }
                        Target::Pool(pool) => {
                            let pool = pool.as_ref().unwrap_or_else(|| crate::default_pool());
                            State::Reserving {
                                f,
                                reserve: pool.reserve(),
                            }
                        }
                    };
                }
                State::Reserving { reserve, .. } => {
                    let Poll::Ready(permit) = reserve.poll_place(cx) else {
                        return Poll::Pending;
                    };
                    let State::Reserving { f, .. } =
                        std::mem::replace(&mut self.state, State::Done)
                    else {
                        unreachable!()
                    };
                    let running = match self.pool_start {
                        Some(start) => {
                            // The producer gives its worker back whenever the ring is full.
                            let (tx, rx) = self.make_ring();
                            // Unbounded: yield to queued jobs after the default ring's worth.
                            let batch = match self.capacity() {
                                0 => DEFAULT_MAX_SIZE,
                                n => n,
                            };
                            let (end, job) = start(f, tx, permit.link(), permit.shared(), batch);
                            permit.submit(job);
                            Running::new(rx, end)
                        }
                        None => {
                            let (job, rx) = self.make_job(f, permit.link());
                            permit.submit(job.clone());
                            Running::new(rx, job)
                        }
                    };
                    self.state = State::Running(running);
                }
            }
        }
    }

    /// [`poll_item`](Self::poll_item) out of line: `TryIterCall`'s slow path.
    #[inline(never)]
    fn poll_item_slow(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<F::Item, JoinError>>> {
        self.poll_item(cx)
    }

    /// The shared `poll_next`, failures as `Err`: the slow path, behind the fast path of
    /// `Running::fast_item` (which delivers most items of a run outside tokio).
    ///
    /// Cost per item taken here: one ring pop when an item is there, plus a per-stream counter
    /// (no thread-local, no atomic), and inside a tokio runtime one thread-local access to
    /// tokio's budget; otherwise one waker registration (and a wake-up of this task by the
    /// producer's next push). No spinning.
    ///
    /// Instructions per `u64` item drained through `StreamExt::next`, loop included, counted
    /// by callgrind (x86_64; the count does not depend on the CPU model): 42.5 outside tokio
    /// (`make stream-instructions`; 69.3 before the fast path), 101 inside a tokio
    /// current-thread runtime (110 before; the same loop in an outside harness).
    #[inline]
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<F::Item, JoinError>>> {
        // `poll_start` only before the producer started.
        if !matches!(self.state, State::Running(_)) && self.poll_start(cx).is_pending() {
            return Poll::Pending;
        }
        let State::Running(running) = &mut self.state else {
            return Poll::Ready(None);
        };
        // The run's budget (`coop::RunBudget`): a consumer that always finds an item still
        // yields now and then, and inside a tokio runtime spends tokio's budget per item.
        let ticket = match running.budget.begin(cx) {
            Poll::Ready(Some(ticket)) => ticket,
            // Closed by the consumer (`close()`, its future perhaps dropped unfinished).
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let polled = running.rx.poll_recv(cx);
        running.budget.end(&polled, ticket);
        match polled {
            Poll::Ready(Some(item)) => Poll::Ready(Some(Ok(item))),
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => self.poll_outcome(cx),
        }
    }

    /// The ring is closed and drained: the producer's outcome, written before it closed. Once
    /// per stream: out of line, so that the per-item loop stays small.
    #[cold]
    #[inline(never)]
    fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<F::Item, JoinError>>> {
        let State::Running(running) = &mut self.state else {
            return Poll::Ready(None);
        };
        let outcome = match running.job.outcome().poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(outcome)) => outcome,
            // Unreachable by construction (the slot is written once, read once, here).
            Poll::Ready(Err(_)) => Err(JoinError::Cancelled),
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
/// It waits for room *before* it asks the iterator for the next item, so a producer never
/// holds an item while it waits (at most `max_size` items exist beyond the consumer), stops
/// without advancing the iterator once the consumer left, and moves each item from `next()`
/// straight into the ring (one copy on this stack, not one per call frame: items of a
/// megabyte pass on a default 2 MiB stack).
///
/// Cost per item (the queue's `send_iter`): one `Iterator::next`, a relaxed load of the
/// `closed` flag and a compare on the producer's cached limit, one push (one Release store, no
/// atomic RMW) and the wake-up check of the consumer (two relaxed loads; plus a fence in the
/// fence protocol).
/// Waits only on a full ring: first a spin for half a ring of room, adaptive and up to this
/// machine's wake-up cost (a consumer that keeps up frees it sooner than a park and a wake-up
/// would take; see `pool_stream.rs`, "Waiting for room"), then a park.
fn produce<F: IterFn>(f: F, tx: &mut Tx<F::Item>) {
    let parker = ThreadParker::new();
    // One waker for the whole run (a clone per item would be two atomic RMWs per item).
    let waker = parker.waker();
    let mut cx = Context::from_waker(&waker);
    let mut iter = f.make();
    let mut room_wait = backoff::Adaptive::new();
    let budget = backoff::spin_budget();
    loop {
        match tx.send_iter(&mut iter, usize::MAX).1 {
            // The iterator ended, or the consumer left (an item refused by a close that raced
            // with it was dropped here, on this thread).
            SendIterEnd::Exhausted | SendIterEnd::Closed => break,
            // `usize::MAX` items sent: a new run (the count is per run).
            SendIterEnd::Limit => continue,
            SendIterEnd::Full => {}
        }
        let room = match tx.poll_ready(&mut cx) {
            Poll::Ready(room) => room,
            Poll::Pending if room_wait.spin(budget, || tx.room_wait_over()) => continue,
            Poll::Pending => {
                let parked_at = Instant::now();
                let room = park::wait(&parker, 0, |cx| tx.poll_ready(cx));
                room_wait.parked(parked_at.elapsed(), budget);
                room
            }
        };
        if room.is_err() {
            // The consumer left.
            break;
        }
    }
    // The iterator is dropped here, on this thread, before the outcome is written.
    drop(iter);
}

impl<F: IterFn> Drop for IterCall<F> {
    fn drop(&mut self) {
        if let State::Running(running) = &mut self.state {
            // A queued producer is withdrawn at once; a running one stops at its next step:
            // closing the ring wakes it if it is parked on a full ring.
            running.job.withdraw();
            running.rx.close();
        }
    }
}

// The function is only ever moved (to its thread, at the first poll), never pinned.
impl<F: IterFn> Unpin for IterCall<F> {}

impl<F: IterFn> Stream for IterCall<F> {
    type Item = F::Item;

    /// # Panics
    /// Re-raises a panic of the iterator (after the items produced before it) and panics with
    /// the [`JoinError`] message if the producer could not run (spawn failure, shutdown).
    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Item>> {
        let this = self.get_mut();
        if !queue::fast_path_for::<F::Item>() {
            // Large items: one frame, as few copies of the item as the compiler can manage.
            return this.poll_next_here(cx);
        }
        if let State::Running(running) = &mut this.state {
            if let Some(item) = running.fast_item() {
                return Poll::Ready(Some(item));
            }
        }
        this.poll_next_slow(cx)
    }
}

impl<F: IterFn> IterCall<F> {
    /// `poll_next` off the fast path (see `Running::fast_item`): out of line, so that the
    /// inline part stays a few instructions around the ring's `pop`.
    #[inline(never)]
    fn poll_next_slow(&mut self, cx: &mut Context<'_>) -> Poll<Option<F::Item>> {
        self.poll_next_here(cx)
    }

    /// `poll_next` without the fast path.
    #[inline(always)]
    fn poll_next_here(&mut self, cx: &mut Context<'_>) -> Poll<Option<F::Item>> {
        match self.poll_item(cx) {
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
            State::Reserving { .. } => "waiting for a place",
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

impl<F: IterFn> Stream for TryIterCall<F> {
    type Item = Result<F::Item, JoinError>;
    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let inner = &mut self.get_mut().inner;
        if !queue::fast_path_for::<F::Item>() {
            return inner.poll_item(cx);
        }
        if let State::Running(running) = &mut inner.state {
            if let Some(item) = running.fast_item() {
                return Poll::Ready(Some(Ok(item)));
            }
        }
        inner.poll_item_slow(cx)
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
        running.rx.close();
        // Items still in the ring are dropped with it; only the producer's outcome matters.
        let outcome = match running.job.outcome().poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(outcome)) => outcome,
            Poll::Ready(Err(_)) => Ok(()),
        };
        call.state = State::Done;
        match outcome {
            // Withdrawn before it started: nothing ran, nothing to drop.
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
        target: Target::separate_default(),
    }
}

impl<G> ThreadedIterable<G> {
    /// Sets the queue bound of every call (see [`IterCall::max_size`]; 0: unbounded).
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = Some(max_size);
        self
    }

    /// No bound for every call: the producer never waits, memory grows with a slow consumer
    /// (see [`IterCall::unbounded`]); same as [`max_size`](Self::max_size)`(0)`.
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    ///
    /// let lines = aiothreads::threaded_iterable(|n: u32| 0..n).unbounded();
    /// assert_eq!(aiothreads::block_on(lines.call(50_000).count()), 50_000);
    /// ```
    pub fn unbounded(self) -> Self {
        self.max_size(0)
    }

    /// Produces on `pool`.
    pub fn on(mut self, pool: &Pool) -> Self {
        self.target = Target::Pool(Some(pool.clone()));
        self
    }

    /// Names the dedicated thread of each call (and makes calls use one).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.target.set_name(name.into());
        self
    }

    /// A stream of the items of `f(arg)`, started on first poll.
    pub fn call<A, I>(&self, arg: A) -> IterCall<impl IterFn<Item = I::Item> + Unpin>
    where
        G: Fn(A) -> I + Clone + Send + Unpin + 'static,
        A: Send + Unpin + 'static,
        I: IntoIterator,
        I::IntoIter: Send,
        I::Item: Send + 'static,
    {
        let f = self.f.clone();
        IterCall {
            state: State::Idle(move || f(arg)),
            started: false,
            max_size: self.max_size,
            target: self.target.clone(),
            pool_start: Some(start_pool),
        }
    }

    /// Same as [`call`](Self::call) (the original's name).
    pub fn async_call<A, I>(&self, arg: A) -> IterCall<impl IterFn<Item = I::Item> + Unpin>
    where
        G: Fn(A) -> I + Clone + Send + Unpin + 'static,
        A: Send + Unpin + 'static,
        I: IntoIterator,
        I::IntoIter: Send,
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
        assert_eq!(parse_max_size(Some("0".into())), Ok(0)); // unbounded
        for bad in ["-1", "lots", ""] {
            let err = parse_max_size(Some(bad.into())).unwrap_err();
            assert!(err.contains(MAX_SIZE_ENV) && err.contains(bad), "{err}");
        }
    }
}
