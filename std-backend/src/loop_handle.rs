//! Loop handles: "run this future on that executor", from any thread.
//!
//! A [`Loop`] names an executor that futures can be sent to from another thread. It is what
//! [`sync_await`](crate::sync_await) uses to run a future "on the event loop" while a worker
//! thread waits for the result, as Python's `asyncio.run_coroutine_threadsafe` does.
//!
//! The details are on [`Loop`].

use core::cell::Cell;
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
    /// handle can't tell — then the mark set by [`Loop::enter_driver`] decides.
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
/// 1. the thread-local current loop: set by [`Loop::enter`] (scoped),
///    [`set_current_loop`] (for a whole thread, e.g. from an executor's thread-start hook),
///    and by `threaded` workers, which install the loop captured when the call was made;
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
///   ([`LoopHandle::drives_current_thread`]); otherwise the threads that run the executor
///   must say so with [`Loop::enter_driver`]. Without that mark a misuse on such a thread
///   is not detected and blocks: [`Loop::enter`] alone (no mark) on an executor's own thread
///   still lets `sync_await` hang there, since nothing else tells that thread apart.
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
    /// Identity of the loop this thread drives, as marked by [`Loop::enter_driver`]; 0: none.
    static DRIVING: Cell<usize> = const { Cell::new(0) };
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
    /// Misuse on the executor's own threads is detected only on threads marked with
    /// [`Loop::enter_driver`].
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
    /// executor that nobody runs cannot be told from a busy one). Mark the threads that run
    /// it with [`Loop::enter_driver`] so that `sync_await` there fails instead of hanging.
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

    /// Makes this the current thread's loop until the guard is dropped (the previous one is
    /// restored then). For a tokio loop it also enters the runtime's context (as
    /// `Handle::enter` does), so tokio constructors such as `tokio::time::sleep` work here.
    /// Does *not* mark the thread as driving the loop: use it on threads that want to
    /// `sync_await` on it.
    ///
    /// # Examples
    /// ```
    /// let lp = aiothreads::Loop::from_spawner(|f| { std::thread::spawn(|| aiothreads::block_on(f)); });
    /// {
    ///     let _guard = lp.enter();
    ///     // `sync_await` here runs on `lp`.
    ///     assert_eq!(aiothreads::sync_await(async { 1 }), 1);
    /// }
    /// assert!(aiothreads::Loop::current().is_none());
    /// ```
    pub fn enter(&self) -> EnterGuard<'_> {
        self.enter_inner(None)
    }

    /// Like [`Loop::enter`], and also marks the current thread as one that drives this loop,
    /// so that `sync_await` on it here fails with `WouldDeadlock` instead of hanging. Call it
    /// on the thread(s) that run an executor given by [`Loop::from_spawner`]; tokio needs
    /// no mark.
    ///
    /// # Examples
    /// ```
    /// use aiothreads::{Loop, SyncAwaitError};
    /// let lp = Loop::from_spawner(|f| { std::thread::spawn(|| aiothreads::block_on(f)); });
    /// let _driver = lp.enter_driver(); // say, this thread runs the executor
    /// assert!(matches!(aiothreads::try_sync_await(async { 1 }), Err(SyncAwaitError::WouldDeadlock)));
    /// ```
    pub fn enter_driver(&self) -> EnterGuard<'_> {
        self.enter_inner(DRIVING.try_with(|d| d.replace(self.identity())).ok())
    }

    fn enter_inner(&self, prev_driving: Option<usize>) -> EnterGuard<'_> {
        EnterGuard {
            prev: replace_current(Some(self.clone())),
            prev_driving,
            #[cfg(feature = "tokio")]
            _runtime: self.tokio_handle().map(tokio::runtime::Handle::enter),
            _not_send: PhantomData,
        }
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
                DRIVING
                    .try_with(|d| d.get() == self.identity())
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

/// Whether the current thread drives *some* loop: it is marked with [`Loop::enter_driver`]
/// (for any loop), or (feature `tokio`) it runs the scheduler of the tokio runtime whose
/// context it is in. Used by the misuse check of waits that run on this thread.
pub(crate) fn drives_some_loop() -> bool {
    DRIVING.try_with(|d| d.get() != 0).unwrap_or(false) || runs_tokio_scheduler()
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
/// one. Meant for an executor's thread-start hook, e.g. tokio's `on_thread_start` (which is
/// not needed with the `tokio` feature) or the threads running a smol executor.
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

/// Restores the previous current loop (and driver mark, and tokio context) when dropped.
/// Returned by [`Loop::enter`] and [`Loop::enter_driver`]; guards must be dropped on the
/// thread that made them, in the reverse order of creation.
///
/// # Examples
/// ```
/// let outer = aiothreads::Loop::from_spawner(|f| { std::thread::spawn(|| aiothreads::block_on(f)); });
/// let inner = aiothreads::Loop::from_spawner(|f| { std::thread::spawn(|| aiothreads::block_on(f)); });
/// let first: aiothreads::EnterGuard<'_> = outer.enter();
/// {
///     let _second = inner.enter();
///     assert_eq!(aiothreads::sync_await(async { 2 }), 2); // runs on `inner`
/// } // `outer` is current again
/// drop(first);
/// assert!(aiothreads::Loop::current().is_none());
/// ```
#[must_use = "the loop is current only while the guard lives"]
pub struct EnterGuard<'a> {
    prev: Option<Loop>,
    prev_driving: Option<usize>,
    /// Dropped after `Drop::drop` restored the thread-locals above.
    #[cfg(feature = "tokio")]
    _runtime: Option<tokio::runtime::EnterGuard<'a>>,
    _not_send: PhantomData<(Rc<()>, &'a Loop)>,
}

impl fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterGuard").finish_non_exhaustive()
    }
}

impl Drop for EnterGuard<'_> {
    fn drop(&mut self) {
        replace_current(self.prev.take());
        if let Some(prev) = self.prev_driving {
            let _ = DRIVING.try_with(|d| d.set(prev));
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
