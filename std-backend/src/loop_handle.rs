//! Loop handles: "run this future on that executor", from any thread.
//!
//! A [`Loop`] names an executor that futures can be sent to from another thread. It is what
//! [`sync_await`](crate::sync_await) uses to run a future "on the event loop" while a worker
//! thread waits for the result, as Python's `asyncio.run_coroutine_threadsafe` does.
//!
//! The details are on [`Loop`].

use core::cell::{Cell, RefCell};
use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

/// A boxed, sendable future with no output: what a [`LoopHandle`] spawns.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The loop refused a future (it has shut down, or is full).
///
/// # Examples
/// ```
/// let err = aiothreads::SpawnError::new("executor closed");
/// assert_eq!(err.to_string(), "the loop refused the future: executor closed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnError {
    reason: &'static str,
}

impl SpawnError {
    /// An error with a short reason.
    pub const fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    /// The reason given.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the loop refused the future: {}", self.reason)
    }
}

impl core::error::Error for SpawnError {}

/// An executor that accepts futures from any thread.
///
/// Implement it for an executor that neither the `tokio` feature nor [`Loop::from_spawner`]
/// covers (e.g. one whose spawn can fail), and wrap it with [`Loop::new`].
///
/// # Examples
/// ```
/// use aiothreads::{BoxFuture, Loop, LoopHandle, SpawnError};
///
/// /// Runs every future on a new thread with `aiothreads::block_on` (a toy).
/// #[derive(Debug)]
/// struct ThreadPerTask;
///
/// impl LoopHandle for ThreadPerTask {
///     fn spawn_boxed(&self, fut: BoxFuture) -> Result<(), SpawnError> {
///         std::thread::Builder::new()
///             .spawn(move || aiothreads::block_on(fut))
///             .map(drop)
///             .map_err(|_| SpawnError::new("could not start a thread"))
///     }
/// }
///
/// let lp = Loop::new(ThreadPerTask);
/// assert_eq!(lp.sync_await(async { 1 + 1 }), 2);
/// ```
pub trait LoopHandle: fmt::Debug + Send + Sync + 'static {
    /// Starts running `fut` on the loop; the loop drops it when the loop shuts down.
    ///
    /// # Errors
    /// [`SpawnError`] when the loop refuses the future. A loop that accepts it and then drops
    /// it unfinished (shutdown) is also fine: the waiter sees the drop.
    fn spawn_boxed(&self, fut: BoxFuture) -> Result<(), SpawnError>;

    /// Whether the calling thread drives this loop: `Some(true)` if it does (blocking it on
    /// the loop would hang), `Some(false)` if it certainly does not, `None` (the default) if the
    /// handle can't tell — then [`Loop::enter`] decides (a thread that has the loop entered
    /// drives it).
    fn drives_current_thread(&self) -> Option<bool> {
        None
    }
}

/// A handle to an executor ("event loop") that futures can be sent to from any thread.
///
/// Cheap to clone (one reference count).
///
/// # Finding the current loop
/// [`Loop::current`] looks, in order, at
/// 1. the thread-local current loop: set by [`Loop::enter`] (scoped, or for a whole thread
///    with [`EnterGuard::keep`]), by [`set_current_loop`], and by `threaded` workers, which
///    install the loop captured when the call was made;
/// 2. with the `tokio` feature, `tokio::runtime::Handle::try_current()`: inside a tokio
///    runtime nothing needs to be set up.
///
/// # Misuse detection
/// Blocking a thread that drives the loop you wait on can hang forever (a current-thread
/// runtime can't run the future while its only thread is blocked). [`Loop::drives_current_thread`]
/// tells whether the calling thread is such a thread, and every blocking entry point asks it
/// before it parks — the `sync_await` family, [`blocking_iter`](crate::blocking_iter)'s
/// `next()` (when no item is ready) — and refuses with
/// [`SyncAwaitError::WouldDeadlock`](crate::SyncAwaitError::WouldDeadlock) instead of hanging
/// (the panicking forms panic with its text, the same everywhere).
/// [`ThreadSender::put`](crate::ThreadSender::put) asks the channel instead: it refuses to
/// block the thread its receiver waits on. What a loop's threads are:
/// - **tokio**: detected without setup. The thread must have the runtime's context (same
///   runtime id) *and* be running its scheduler: the thread inside `Runtime::block_on` of a
///   current-thread runtime, or a worker of a multi-thread runtime (blocking one of those is
///   refused even though other workers might finish the job). Threads of `spawn_blocking` and
///   a worker inside `block_in_place` are allowed, as is the thread inside
///   `block_on` of a *multi-thread* runtime (the workers run the future).
/// - **other executors** ([`Loop::from_spawner`], [`LoopHandle`]): a handle may answer itself
///   ([`LoopHandle::drives_current_thread`]); otherwise a thread drives the loop while it has
///   the loop *entered* ([`Loop::enter`]; scoped, or for good with [`EnterGuard::keep`] from
///   an executor's thread-start hook). Entering is the one way to tie a thread to a loop:
///   enter the loop on the threads that run its executor (its current loop is needed there
///   anyway, for the `threaded` calls made there to find it), and blocking waits on it there
///   are refused instead of hanging. A thread that only *waits* on a loop does not enter
///   it: it calls [`Loop::sync_await`] with the loop, or is a `threaded` worker, or sets the
///   loop with [`set_current_loop`] (which ties nothing). Not detected: an executor's thread
///   that did not enter the loop (nothing tells it apart).
///
/// Not detected by anything: waiting on a loop that nobody drives (a current-thread runtime
/// whose `block_on` has returned but which is not dropped yet, an executor whose `run` nobody
/// calls). A loop that is *dropped* is detected: its tasks are dropped, and the waiter gets
/// [`SyncAwaitError::LoopGone`](crate::SyncAwaitError::LoopGone).
///
/// # Examples
/// A tokio runtime (feature `tokio`) is found without setup:
/// ```
/// # #[cfg(feature = "tokio")] {
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let lp = rt.block_on(async { aiothreads::Loop::current() }).expect("inside a tokio runtime");
/// // From another thread: run a future on the runtime and wait for it.
/// let answer = std::thread::spawn(move || {
///     lp.sync_await(async {
///         tokio::time::sleep(std::time::Duration::from_millis(1)).await; // needs the runtime
///         42
///     })
/// });
/// assert_eq!(answer.join().unwrap(), 42);
/// # }
/// ```
/// Any executor with a spawn function:
/// ```
/// use std::sync::Arc;
/// let ex = Arc::new(futures::executor::ThreadPool::new().unwrap());
/// let lp = aiothreads::Loop::from_spawner(move |fut| ex.spawn_ok(fut));
/// assert_eq!(lp.sync_await(async { "ran on the pool" }), "ran on the pool");
/// ```
#[derive(Clone)]
pub struct Loop {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Dyn(Arc<dyn LoopHandle>),
    #[cfg(feature = "tokio")]
    Tokio(tokio::runtime::Handle),
}

impl fmt::Debug for Loop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Dyn(h) => f.debug_tuple("Loop").field(h).finish(),
            #[cfg(feature = "tokio")]
            Inner::Tokio(h) => f
                .debug_struct("Loop")
                .field("tokio_runtime", &h.id())
                .field("flavor", &h.runtime_flavor())
                .finish(),
        }
    }
}

/// [`LoopHandle`] over a spawn function.
struct FnSpawner<F>(F);

impl<F> fmt::Debug for FnSpawner<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnSpawner")
    }
}

impl<F: Fn(BoxFuture) + Send + Sync + 'static> LoopHandle for FnSpawner<F> {
    fn spawn_boxed(&self, fut: BoxFuture) -> Result<(), SpawnError> {
        (self.0)(fut);
        Ok(())
    }
}

thread_local! {
    /// The thread's current loop (see [`Loop::current`]).
    static CURRENT: Cell<Option<Loop>> = const { Cell::new(None) };
    /// The loops this thread has entered and the guards that will restore them.
    static ENTERED: RefCell<Entered> = const {
        RefCell::new(Entered { marks: Vec::new(), guards: Vec::new(), last_id: 0 })
    };
}

/// What [`Loop::enter`] changed on a thread, besides the current loop.
struct Entered {
    /// The entered loops that cannot tell their threads apart, each once, innermost last: the
    /// loops this thread drives. A list, not one slot, so that entering a second loop inside
    /// the first does not make the thread forget that it still drives the first. Clones, not
    /// addresses: a marked loop stays allocated, so no later loop can reuse its address and
    /// be taken for it.
    marks: Vec<Loop>,
    /// Ids of the live [`EnterGuard`]s, in creation order (the innermost last).
    guards: Vec<u64>,
    /// The id of the thread's latest guard (ids are never reused: a guard ended by an
    /// enclosing one can't be mistaken for a later one).
    last_id: u64,
}

impl Loop {
    /// Wraps a custom [`LoopHandle`].
    ///
    /// # Examples
    /// See [`LoopHandle`].
    pub fn new(handle: impl LoopHandle) -> Self {
        Self::from_arc(Arc::new(handle))
    }

    /// Wraps a shared custom [`LoopHandle`].
    ///
    /// # Examples
    /// ```
    /// # use std::sync::Arc;
    /// # #[derive(Debug)] struct Inline;
    /// # impl aiothreads::LoopHandle for Inline {
    /// #     fn spawn_boxed(&self, f: aiothreads::BoxFuture) -> Result<(), aiothreads::SpawnError> {
    /// #         std::thread::spawn(move || aiothreads::block_on(f)); Ok(())
    /// #     }
    /// # }
    /// let shared: Arc<dyn aiothreads::LoopHandle> = Arc::new(Inline);
    /// let lp = aiothreads::Loop::from_arc(shared);
    /// assert_eq!(lp.sync_await(async { 3 }), 3);
    /// ```
    pub fn from_arc(handle: Arc<dyn LoopHandle>) -> Self {
        Self {
            inner: Inner::Dyn(handle),
        }
    }

    /// A loop from any spawn function that runs the future to completion on an executor and
    /// drops it if the executor shuts down first. Fits smol/async-executor
    /// (`move |f| ex.spawn(f).detach()`), async-std (`|f| { async_std::task::spawn(f); }`),
    /// `futures::executor::ThreadPool::spawn_ok`, and tokio without the feature
    /// (`move |f| { handle.spawn(f); }`).
    ///
    /// Misuse on the executor's own threads is detected only on threads that entered the loop
    /// ([`Loop::enter`]).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// let ex = Arc::new(smol::Executor::new());
    /// let lp = aiothreads::Loop::from_spawner({
    ///     let ex = Arc::clone(&ex);
    ///     move |fut| ex.spawn(fut).detach()
    /// });
    /// let worker = std::thread::spawn(move || lp.sync_await(async { 5 }));
    /// let out = smol::block_on(ex.run(async move {
    ///     while !worker.is_finished() { smol::future::yield_now().await; }
    ///     worker.join().unwrap()
    /// }));
    /// assert_eq!(out, 5);
    /// ```
    pub fn from_spawner<F>(spawn: F) -> Self
    where
        F: Fn(BoxFuture) + Send + Sync + 'static,
    {
        Self::new(FnSpawner(spawn))
    }

    /// A loop for an `async_executor::Executor` — smol's executor (feature
    /// `async-executor`). `Loop::from(executor)` does the same. Futures are spawned on it and
    /// detached; they run while some thread runs the executor (`ex.run(..)`). The loop keeps
    /// the executor alive, so a `sync_await` on it waits until some thread runs it (an
    /// executor that nobody runs cannot be told from a busy one). Enter the loop
    /// ([`Loop::enter`]) on the threads that run it, so that `sync_await` there fails instead
    /// of hanging.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// let ex = Arc::new(async_executor::Executor::new());
    /// let lp = aiothreads::Loop::from_async_executor(Arc::clone(&ex));
    /// let worker = std::thread::spawn(move || lp.sync_await(async { 6 }));
    /// let out = smol::block_on(ex.run(async move {
    ///     while !worker.is_finished() {
    ///         smol::future::yield_now().await;
    ///     }
    ///     worker.join().unwrap()
    /// }));
    /// assert_eq!(out, 6);
    /// ```
    #[cfg(feature = "async-executor")]
    pub fn from_async_executor(executor: Arc<async_executor::Executor<'static>>) -> Self {
        Self::from_spawner(move |fut| executor.spawn(fut).detach())
    }

    /// A loop for a tokio runtime (feature `tokio`). `Loop::from(handle)` does the same.
    ///
    /// # Examples
    /// ```
    /// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    /// let lp = aiothreads::Loop::from_tokio(rt.handle().clone());
    /// assert_eq!(lp.sync_await(async { 7 }), 7); // the runtime's worker runs it
    /// ```
    #[cfg(feature = "tokio")]
    pub fn from_tokio(handle: tokio::runtime::Handle) -> Self {
        Self {
            inner: Inner::Tokio(handle),
        }
    }

    /// The current thread's loop: the thread-local one if set (by [`Loop::enter`],
    /// [`set_current_loop`] or a `threaded` worker), otherwise (feature `tokio`) the tokio
    /// runtime whose context the thread is in.
    ///
    /// Cost: one thread-local access and a reference-count increment; no allocation.
    ///
    /// # Examples
    /// ```
    /// assert!(aiothreads::Loop::current().is_none());
    /// let lp = aiothreads::Loop::from_spawner(|f| { std::thread::spawn(|| aiothreads::block_on(f)); });
    /// let _guard = lp.enter();
    /// assert!(aiothreads::Loop::current().unwrap().same_loop(&lp));
    /// ```
    pub fn current() -> Option<Loop> {
        let local = CURRENT
            .try_with(|c| {
                let cur = c.take();
                let out = cur.clone();
                c.set(cur);
                out
            })
            .ok()
            .flatten();
        if local.is_some() {
            return local;
        }
        #[cfg(feature = "tokio")]
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            return Some(Self::from_tokio(handle));
        }
        None
    }

    /// Ties this thread to the loop until the guard is dropped: the loop becomes the current
    /// one, and the thread counts as one that drives it. The previous state is restored when
    /// the guard is dropped; [`EnterGuard::keep`] keeps it for the thread's life instead (an
    /// executor's thread-start hook).
    ///
    /// This is the one way to say "this thread belongs to that loop". What follows from it:
    /// - [`Loop::current`] is this loop: `sync_await`, `blocking_iter` and the `threaded`
    ///   calls made here (which capture the loop for their workers) use it;
    /// - a blocking wait *on this loop* here is refused with
    ///   [`SyncAwaitError::WouldDeadlock`](crate::SyncAwaitError::WouldDeadlock), never left
    ///   to hang — unless the loop itself tells its threads apart: a tokio loop (its scheduler
    ///   threads are found exactly, so a plain thread that entered one may block on it) or a
    ///   [`LoopHandle`] whose [`drives_current_thread`](LoopHandle::drives_current_thread)
    ///   answers. Waits on other loops are not affected.
    ///
    /// So enter a loop on the threads that run its executor. A thread that wants to *block* on
    /// a loop it does not run does not enter it: it passes the loop ([`Loop::sync_await`],
    /// [`sync_wait_coroutine`](crate::sync_wait_coroutine)), or is a `threaded` worker, or
    /// sets the loop with [`set_current_loop`] (which ties nothing).
    ///
    /// The guard owns what it restores (it borrows nothing): it may outlive this `Loop` value.
    /// It is not `Send`; guards of one thread are dropped in the reverse order of their creation
    /// (see [`EnterGuard`]).
    ///
    /// A tokio loop's guard does not enter tokio's own context (tokio's guard borrows its
    /// handle, which an owned guard cannot): to create tokio futures such as
    /// `tokio::time::sleep(..)` on this thread, also hold `handle.enter()`, or create them on the
    /// loop (`sync_await(async move { sleep(d).await })`). `threaded` workers and
    /// [`Snapshot::scope`](crate::Snapshot::scope) enter it for you.
    ///
    /// Cost: two thread-local accesses and two reference-count increments (the loop made
    /// current, the mark); the thread's lists of entered loops allocate only when it first
    /// holds more guards at once than ever before. Dropping the guard: four thread-local
    /// accesses, one more per mark it removes.
    ///
    /// # Examples
    /// A thread that runs a smol executor:
    /// ```
    /// use std::sync::Arc;
    /// use aiothreads::{Loop, SyncAwaitError};
    ///
    /// let ex = Arc::new(smol::Executor::new());
    /// let lp = Loop::from_spawner({
    ///     let ex = Arc::clone(&ex);
    ///     move |fut| ex.spawn(fut).detach()
    /// });
    /// let _guard = lp.enter(); // this thread runs `ex`
    /// smol::block_on(ex.run(async {
    ///     // A `threaded` call made here finds the loop: its `sync_await` runs on `ex`.
    ///     let n = aiothreads::spawn(|| aiothreads::sync_await(async { 20 + 1 })).await;
    ///     assert_eq!(n, 21);
    ///     // Blocking this thread on `ex` would hang (nothing else runs it): refused.
    ///     let refused = aiothreads::try_sync_await(async { 1 });
    ///     assert!(matches!(refused, Err(SyncAwaitError::WouldDeadlock)));
    /// }));
    /// ```
    pub fn enter(&self) -> EnterGuard {
        // Tokio loops find their threads exactly (identity 0): no mark.
        let identity = self.identity();
        // `None`: the thread's locals are being destroyed; the guard will restore nothing.
        let entered = ENTERED
            .try_with(|e| {
                let mut e = e.borrow_mut();
                let marks = e.marks.len();
                // Marked once: entering a loop again (inside, or kept again) adds nothing.
                if identity != 0 && !e.marks.iter().any(|m| m.identity() == identity) {
                    e.marks.push(self.clone());
                }
                e.last_id += 1;
                let id = e.last_id;
                e.guards.push(id);
                (id, marks)
            })
            .ok();
        EnterGuard {
            saved: Some(Saved {
                prev: replace_current(Some(self.clone())),
                entered,
            }),
            _not_send: PhantomData,
        }
    }

    /// The same as [`Loop::enter`], under its former name (from when `enter` made the loop
    /// current without tying the thread to it, and only this form did both).
    ///
    /// # Examples
    /// ```
    /// use aiothreads::{Loop, SyncAwaitError};
    /// let lp = Loop::from_spawner(|f| { std::thread::spawn(|| aiothreads::block_on(f)); });
    /// let _driver = lp.enter_driver(); // say, this thread runs the executor
    /// assert!(matches!(aiothreads::try_sync_await(async { 1 }), Err(SyncAwaitError::WouldDeadlock)));
    /// ```
    pub fn enter_driver(&self) -> EnterGuard {
        self.enter()
    }

    /// Spawns `fut` on the loop without waiting for it.
    ///
    /// # Errors
    /// [`SpawnError`] if the loop refuses it (a custom [`LoopHandle`] may; tokio drops futures
    /// spawned after shutdown instead).
    ///
    /// # Examples
    /// ```
    /// let lp = aiothreads::Loop::from_spawner(|f| { std::thread::spawn(|| aiothreads::block_on(f)); });
    /// let (tx, rx) = aiothreads::aiothreads_core::slot::oneshot();
    /// lp.spawn(async move { tx.send(9).unwrap() }).unwrap();
    /// assert_eq!(aiothreads::block_on(rx), Ok(9));
    /// ```
    pub fn spawn<F>(&self, fut: F) -> Result<(), SpawnError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match &self.inner {
            Inner::Dyn(h) => h.spawn_boxed(Box::pin(fut)),
            #[cfg(feature = "tokio")]
            Inner::Tokio(h) => {
                drop(h.spawn(fut));
                Ok(())
            }
        }
    }

    /// Whether the calling thread drives this loop, so that blocking it to wait for a future
    /// on the loop could hang. See [`Loop`] ("Misuse detection") for what is and is not detected.
    ///
    /// # Examples
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let lp = aiothreads::Loop::from_tokio(rt.handle().clone());
    /// assert!(!lp.drives_current_thread());
    /// rt.block_on(async { assert!(lp.drives_current_thread()) });
    /// # }
    /// ```
    pub fn drives_current_thread(&self) -> bool {
        match &self.inner {
            Inner::Dyn(h) => h.drives_current_thread().unwrap_or_else(|| {
                let identity = self.identity();
                ENTERED
                    .try_with(|e| e.borrow().marks.iter().any(|m| m.identity() == identity))
                    .unwrap_or(false)
            }),
            #[cfg(feature = "tokio")]
            Inner::Tokio(h) => tokio_probe::drives_current_thread(h),
        }
    }

    /// Whether two handles name the same loop (clones of one `Loop`, or two handles of one
    /// tokio runtime).
    ///
    /// # Examples
    /// ```
    /// let a = aiothreads::Loop::from_spawner(|f| drop(f));
    /// let b = aiothreads::Loop::from_spawner(|f| drop(f));
    /// assert!(a.same_loop(&a.clone()));
    /// assert!(!a.same_loop(&b));
    /// ```
    pub fn same_loop(&self, other: &Loop) -> bool {
        match (&self.inner, &other.inner) {
            (Inner::Dyn(_), Inner::Dyn(_)) => self.identity() == other.identity(),
            #[cfg(feature = "tokio")]
            (Inner::Tokio(a), Inner::Tokio(b)) => a.id() == b.id(),
            #[cfg(feature = "tokio")]
            _ => false,
        }
    }

    /// The tokio handle, if this loop is a tokio runtime (feature `tokio`).
    ///
    /// # Examples
    /// ```
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let lp = aiothreads::Loop::from(rt.handle().clone());
    /// assert_eq!(lp.tokio_handle().unwrap().id(), rt.handle().id());
    /// ```
    #[cfg(feature = "tokio")]
    pub fn tokio_handle(&self) -> Option<&tokio::runtime::Handle> {
        match &self.inner {
            Inner::Tokio(h) => Some(h),
            Inner::Dyn(_) => None,
        }
    }

    /// Address of the shared handle (never 0); tokio loops compare by runtime id instead.
    fn identity(&self) -> usize {
        match &self.inner {
            Inner::Dyn(h) => Arc::as_ptr(h).cast::<()>() as usize,
            #[cfg(feature = "tokio")]
            Inner::Tokio(_) => 0,
        }
    }
}

#[cfg(feature = "tokio")]
impl From<tokio::runtime::Handle> for Loop {
    fn from(handle: tokio::runtime::Handle) -> Self {
        Self::from_tokio(handle)
    }
}

/// Whether the current thread drives *some* loop: it has entered one that cannot tell its
/// threads apart ([`Loop::enter`]), or (feature `tokio`) it runs the scheduler of the tokio
/// runtime whose context it is in. Used by the misuse check of waits that run on this thread.
pub(crate) fn drives_some_loop() -> bool {
    ENTERED
        .try_with(|e| !e.borrow().marks.is_empty())
        .unwrap_or(false)
        || runs_tokio_scheduler()
}

/// Whether the current thread runs the scheduler of the tokio runtime whose context it is in
/// (always `false` without the `tokio` feature).
pub(crate) fn runs_tokio_scheduler() -> bool {
    #[cfg(feature = "tokio")]
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        return tokio_probe::drives_current_thread(&handle);
    }
    false
}

/// Replaces the thread's current loop, returning the previous one.
pub(crate) fn replace_current(lp: Option<Loop>) -> Option<Loop> {
    CURRENT.try_with(|c| c.replace(lp)).ok().flatten()
}

/// Sets (or with `None` clears) the current thread's loop for good, returning the previous
/// one. It sets only the current loop: it does not tie the thread to the loop as
/// [`Loop::enter`] does, so a blocking wait on the loop here is not refused. Meant for a
/// thread that *waits* on a loop it does not run (a thread of your own that calls
/// `sync_await`); on the threads that run the loop's executor use `lp.enter().keep()`
/// ([`EnterGuard::keep`]) instead, so that a blocking wait there fails rather than hangs.
///
/// Inside a guard's scope, the guard restores what it replaced when dropped, undoing this.
///
/// # Examples
/// ```
/// let lp = aiothreads::Loop::from_spawner(|f| { std::thread::spawn(|| aiothreads::block_on(f)); });
/// let t = std::thread::spawn(move || {
///     aiothreads::set_current_loop(Some(lp));
///     aiothreads::sync_await(async { "on the loop" })
/// });
/// assert_eq!(t.join().unwrap(), "on the loop");
/// ```
pub fn set_current_loop(lp: Option<Loop>) -> Option<Loop> {
    replace_current(lp)
}

/// The panic message of an [`EnterGuard`] dropped while a guard made after it on the same
/// thread still lives.
const OUT_OF_ORDER: &str = "aiothreads: an `EnterGuard` was dropped while a guard entered after \
     it on this thread still lives; drop a thread's guards in the reverse order of their \
     creation (the inner guards are ended too)";

/// The panic message of [`EnterGuard::keep`] on a guard that is not the innermost one.
const KEEP_NOT_INNERMOST: &str = "aiothreads: `EnterGuard::keep` on a guard that is not the \
     innermost one of this thread; keep the innermost guard, or drop the inner ones first";

/// Ends a [`Loop::enter`]: restores, when dropped, the current loop and the driver marks that
/// the entering replaced.
///
/// It owns what it restores and borrows nothing: it may outlive the `Loop` value it came from
/// and be stored anywhere on the thread. It is not `Send`: what it restores is its thread's.
///
/// # Drop order
/// A thread's guards are dropped in the reverse order of their creation, as scopes drop
/// them (in a struct holding two guards, declare the inner one first: fields drop in
/// declaration order). A guard restores exactly what it replaced, so an enclosing guard
/// also undoes what was set inside its scope: [`set_current_loop`] calls, guards kept with
/// [`EnterGuard::keep`]. Dropping a guard while one entered after it still lives ends that
/// one too (the thread is back to the state before the dropped guard; the later guard then
/// restores nothing) and panics with a message saying so — unless the thread is already
/// panicking.
///
/// # Examples
/// Nested guards, one of which outlives its `Loop` value:
/// ```
/// use aiothreads::Loop;
/// let spawner = |f| { std::thread::spawn(|| aiothreads::block_on(f)); };
/// let outer = Loop::from_spawner(spawner);
/// let first: aiothreads::EnterGuard = outer.enter();
/// let second = {
///     let inner = Loop::from_spawner(spawner);
///     inner.enter() // `inner` is dropped here; the guard and the current loop live on
/// };
/// let current = Loop::current().unwrap();
/// assert!(!current.same_loop(&outer));
/// assert!(current.drives_current_thread() && outer.drives_current_thread());
/// drop(second); // `outer` is current again
/// assert!(Loop::current().unwrap().same_loop(&outer));
/// drop(first);
/// assert!(Loop::current().is_none() && !outer.drives_current_thread());
/// ```
#[must_use = "the thread is tied to the loop only while the guard lives (or use `keep`)"]
pub struct EnterGuard {
    /// What to restore; `None` once restored or kept.
    saved: Option<Saved>,
    /// The thread-locals restored are this thread's.
    _not_send: PhantomData<Rc<()>>,
}

/// The state a guard replaced.
struct Saved {
    /// The previous current loop.
    prev: Option<Loop>,
    /// The guard's id and the length of the thread's list of marks before the guard's own;
    /// `None` if the thread's locals were gone when it was made.
    entered: Option<(u64, usize)>,
}

/// Where a guard stands among its thread's live guards.
enum Place {
    /// It is the innermost live guard, at this index of `Entered::guards`.
    Innermost(usize),
    /// Guards made after it still live; it is at this index.
    Outer(usize),
    /// An enclosing guard has restored past it already (or the thread's locals are gone).
    Ended,
}

impl Saved {
    fn place(&self) -> Place {
        let Some((id, _)) = self.entered else {
            return Place::Ended;
        };
        ENTERED
            .try_with(|e| {
                let guards = &e.borrow().guards;
                // The innermost guard is the last one: found at once in the normal case.
                match guards.iter().rposition(|&g| g == id) {
                    Some(at) if at + 1 == guards.len() => Place::Innermost(at),
                    Some(at) => Place::Outer(at),
                    None => Place::Ended,
                }
            })
            .unwrap_or(Place::Ended)
    }

    /// Puts the thread back as it was before the guard (at index `at`), ending any guard made
    /// after it.
    fn restore(self, at: usize) {
        let ours = replace_current(self.prev);
        if let Some((_, marks)) = self.entered {
            let _ = ENTERED.try_with(|e| e.borrow_mut().guards.truncate(at));
            // The marks made since the guard's own list length (one per guard at most): popped
            // one at a time, each dropped out of the borrow, as dropping a loop may run a
            // handle's own `Drop`. No allocation.
            while let Ok(Some(mark)) = ENTERED.try_with(|e| {
                let mut e = e.borrow_mut();
                if e.marks.len() > marks {
                    e.marks.pop()
                } else {
                    None
                }
            }) {
                drop(mark);
            }
        }
        // Last, for the same reason.
        drop(ours);
    }

    /// Leaves the thread as it is, as if the guard's scope were the thread's whole life; the
    /// guard (the innermost, at index `at`) is no longer live.
    fn forget(self, at: usize) {
        let _ = ENTERED.try_with(|e| e.borrow_mut().guards.truncate(at));
        drop(self.prev);
    }
}

impl EnterGuard {
    /// Ends the guard without restoring anything: the thread stays tied to the loop for good
    /// (until an enclosing guard, if any, restores what it replaced). The owned form of
    /// [`Loop::enter`] for threads that an executor starts and runs itself — call it from the
    /// executor's thread-start hook (`futures::executor::ThreadPoolBuilder::after_start`,
    /// tokio's `on_thread_start`, the start of a thread you spawn to run a smol executor), so
    /// that misuse detection works on those threads as on tokio's.
    ///
    /// The thread's state holds a clone of the loop from then on: a loop whose handle owns
    /// what keeps its threads running (the sending half of their queue, say) is kept alive by
    /// them, so stop such threads by other means than dropping the loop.
    ///
    /// # Panics
    /// If a guard entered after this one on this thread still lives (keep the innermost
    /// guard); the guard is then dropped, restoring as a drop would.
    ///
    /// # Examples
    /// ```
    /// use std::sync::{Arc, OnceLock};
    /// use aiothreads::{Loop, SyncAwaitError};
    ///
    /// // A thread pool whose threads enter its loop when they start.
    /// let pool: Arc<OnceLock<futures::executor::ThreadPool>> = Arc::default();
    /// let lp = Loop::from_spawner({
    ///     let pool = Arc::clone(&pool);
    ///     move |fut| pool.get().expect("the pool").spawn_ok(fut)
    /// });
    /// let hook_loop = lp.clone();
    /// let built = futures::executor::ThreadPool::builder()
    ///     .pool_size(1)
    ///     .after_start(move |_| hook_loop.enter().keep())
    ///     .create()
    ///     .unwrap();
    /// pool.set(built).ok().unwrap();
    ///
    /// // From a plain thread: runs on the pool.
    /// assert_eq!(lp.sync_await(async { 1 }), 1);
    /// // On the pool's own thread: refused, not hung (its only thread would wait for itself).
    /// let on_pool = lp.sync_await(async { aiothreads::try_sync_await(async { 2 }) });
    /// assert!(matches!(on_pool, Err(SyncAwaitError::WouldDeadlock)));
    /// ```
    pub fn keep(mut self) {
        let Some(saved) = self.saved.take() else {
            return;
        };
        match saved.place() {
            Place::Innermost(at) => saved.forget(at),
            Place::Outer(_) => {
                self.saved = Some(saved);
                panic!("{KEEP_NOT_INNERMOST}");
            }
            Place::Ended => drop(saved),
        }
    }
}

impl fmt::Debug for EnterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterGuard")
            .field(
                "id",
                &self.saved.as_ref().and_then(|s| s.entered).map(|e| e.0),
            )
            .finish_non_exhaustive()
    }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let Some(saved) = self.saved.take() else {
            return;
        };
        match saved.place() {
            Place::Innermost(at) => saved.restore(at),
            Place::Outer(at) => {
                saved.restore(at);
                if !std::thread::panicking() {
                    panic!("{OUT_OF_ORDER}");
                }
            }
            Place::Ended => drop(saved),
        }
    }
}

#[cfg(feature = "tokio")]
mod tokio_probe {
    //! Does this thread run a tokio runtime's scheduler?
    //!
    //! `Handle::try_current()` alone is not enough: `spawn_blocking` threads have the runtime's
    //! context too, and blocking them is the *right* way to wait. What only scheduler threads
    //! have is a scheduler context, and tokio's public `yield_now` reveals it: polled on a
    //! thread running the scheduler, it hands its waker to the scheduler (woken later);
    //! anywhere else it wakes it immediately (documented: "When polled from outside a Tokio
    //! runtime, the waker is woken immediately"). One poll with a flag waker tells them
    //! apart. The waker left with the scheduler only sets a flag nobody reads any more when
    //! the scheduler wakes it later.
    //!
    //! A worker of a multi-thread runtime inside `block_in_place` has handed its scheduler
    //! core away; tokio then wakes at once, so the probe (rightly) allows blocking there.

    use core::future::Future;
    use core::sync::atomic::{AtomicBool, Ordering};
    use core::task::{Context, Waker};
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::Wake;

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::Relaxed);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    pub(super) fn drives_current_thread(target: &tokio::runtime::Handle) -> bool {
        match tokio::runtime::Handle::try_current() {
            Ok(current) if current.id() == target.id() => {}
            _ => return false,
        }
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        let probe = pin!(tokio::task::yield_now());
        // First poll of `yield_now` is always `Pending`; what matters is who got the waker.
        let _ = probe.poll(&mut cx);
        // Woken at once: no scheduler here.
        !flag.0.load(Ordering::Relaxed)
    }
}

#[cfg(feature = "async-executor")]
impl From<Arc<async_executor::Executor<'static>>> for Loop {
    fn from(executor: Arc<async_executor::Executor<'static>>) -> Self {
        Self::from_async_executor(executor)
    }
}
