//! The thread pool: [`Pool`], its [`Builder`], the default pool and [`ShutdownReport`].
//!
//! # Design
//! One `Mutex<State>` (the queue `VecDeque<Arc<dyn Runnable>>` and the thread counters) and a
//! `Condvar` for idle workers, as in smol's `blocking` and tokio's blocking pool, plus two
//! atomics read without the lock: `queued` (a mirror of the queue length) and `spinning`.
//!
//! - **Workers spin before they park.** A worker that finds the queue empty spins for up to
//!   [`Builder::spin`] (default 20 µs) watching `queued`, with `spin_loop` and an occasional
//!   `yield_now`, and only then parks on the `Condvar`. Back-to-back calls therefore never
//!   pay for a futex wake-up on the worker side. At most as many workers as there are CPUs
//!   spin at once, and an idle pool burns no CPU once the spin has run out.
//! - **Submitters notify only when needed.** A submission wakes a parked worker (or starts a
//!   new one, up to `max_threads`) only when the queue holds more jobs than there are spinning
//!   workers. The spinner decrements `spinning` *before* it takes the lock and re-checks the
//!   queue under the lock before it parks, so a job pushed under the lock is always seen.
//! - **Spread.** A worker that takes a job while more are queued than workers spin or have
//!   been notified wakes one more worker.
//! - **Wake-up accounting** (from tokio): `notified` counts real notifications, so a worker
//!   tells them apart from spurious `Condvar` wake-ups and keep-alive time-outs.
//! - **Robustness**: `catch_unwind` around each job (a panic never kills a worker), poisoned
//!   locks are recovered, the thread count is rolled back when `thread::Builder::spawn` fails,
//!   and when no thread at all can run the queued jobs they fail with
//!   [`JoinError::SpawnFailed`](crate::JoinError::SpawnFailed) instead of hanging.
//!
//! # Per-call cost
//! Submit: 1 lock/unlock, 1 relaxed store, 1 relaxed load, no notify when a worker spins.
//! Worker: 1 lock/unlock to pop. Awaiter: see [`Builder::poll_spin`] — when a spinning worker
//! takes the call at once, the first poll spins a few µs on the result slot instead of
//! registering a waker and being woken through the executor.

use core::num::NonZeroUsize;
use core::panic::AssertUnwindSafe;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::panic;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::Instant;

use crate::task::{JoinError, JoinHandle, Output, Runnable, Task};

/// Name of the environment variable that sets the default maximum number of threads. Read
/// once, when the first pool is configured; a value that is not a positive integer panics
/// there, naming the variable and the value (as `THREADED_ITERABLE_DEFAULT_MAX_SIZE` does).
///
/// # Examples
/// ```
/// assert_eq!(aiothreads::MAX_THREADS_ENV, "AIOTHREADS_MAX_THREADS");
/// ```
pub const MAX_THREADS_ENV: &str = "AIOTHREADS_MAX_THREADS";

/// Configuration shared by the workers; fixed at `build()`.
#[derive(Debug, Clone)]
struct Config {
    max_threads: usize,
    name_prefix: String,
    stack_size: Option<usize>,
    keep_alive: Duration,
    max_queued: Option<usize>,
    spin: Duration,
    poll_spin: Duration,
    max_spinners: usize,
}

/// Everything under the pool's lock.
struct State {
    queue: VecDeque<Arc<dyn Runnable>>,
    /// Threads alive (running, spinning or parked); incremented before a spawn.
    threads: usize,
    /// Workers parked on `work_cv` and not yet notified.
    sleeping: usize,
    /// Notifications sent and not yet consumed by a worker.
    notified: usize,
    shutdown: bool,
    next_id: usize,
    /// Tasks waiting for a place in a bounded queue.
    admission: Vec<Waker>,
}

/// The state shared by the pool handles, the workers and pending [`JoinHandle`]s.
pub(crate) struct Shared {
    state: Mutex<State>,
    work_cv: Condvar,
    exit_cv: Condvar,
    /// Mirror of `state.queue.len()`, written under the lock, read by spinning workers.
    queued: AtomicUsize,
    /// Workers currently spinning (not holding the lock, not parked).
    spinning: AtomicUsize,
    /// Mirror of `state.shutdown` for spinning workers.
    shutdown: AtomicBool,
    config: Config,
}

/// Work to do after the lock is released: waking and failing never happen under the lock
/// (a waker may run arbitrary code).
#[derive(Default)]
struct Deferred {
    wake: Vec<Waker>,
    fail: Vec<Arc<dyn Runnable>>,
    spawn_error: Option<io::Error>,
}

/// Wakes `w`; a panic of the waker is reported by the panic hook and goes no further. The
/// pool wakes other tasks' wakers from its workers and from other callers: one faulty waker
/// must not kill a worker (losing the job it had just taken) or stop the remaining wake-ups.
fn wake_quietly(w: Waker) {
    let _ = panic::catch_unwind(AssertUnwindSafe(|| w.wake()));
}

impl Deferred {
    fn run(self) {
        for w in self.wake {
            wake_quietly(w);
        }
        if let Some(e) = self.spawn_error {
            for job in self.fail {
                job.fail(JoinError::SpawnFailed(io::Error::new(
                    e.kind(),
                    e.to_string(),
                )));
            }
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// Address of the `Shared` of the pool this thread works for (0: none). Lets `shutdown`
    /// called from a job not wait for its own thread.
    static WORKER_OF: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Submits a task; the handle is returned in every case (failed, pending admission or
    /// queued).
    pub(crate) fn submit<R: Send + 'static>(
        self: &Arc<Self>,
        task: Arc<dyn Output<R>>,
    ) -> JoinHandle<R> {
        let mut st = self.lock();
        if st.shutdown {
            drop(st);
            task.fail(JoinError::Shutdown);
            return JoinHandle::new(task, None, Duration::ZERO);
        }
        if let Some(max) = self.config.max_queued {
            if st.queue.len() >= max {
                // No place: the handle's first poll waits for one (it never blocks a thread).
                return JoinHandle::new(task, Some(self.clone()), Duration::ZERO);
            }
        }
        let mut deferred = Deferred::default();
        let spin = self.push_locked(&mut st, task.clone().runnable(), &mut deferred);
        drop(st);
        deferred.run();
        JoinHandle::new(task, None, spin)
    }

    /// Pushes a job and wakes or starts a worker when no spinning worker will take it.
    /// Returns the spin budget for the awaiter's first poll.
    fn push_locked(
        self: &Arc<Self>,
        st: &mut State,
        job: Arc<dyn Runnable>,
        deferred: &mut Deferred,
    ) -> Duration {
        st.queue.push_back(job);
        let len = st.queue.len();
        // Relaxed: read by spinners as a hint; they take the lock before acting on it.
        self.queued.store(len, Ordering::Relaxed);
        // Relaxed: a spinner decrements `spinning` before it takes this lock, so under the
        // lock we either see its decrement or it will see our push.
        let spinning = self.spinning.load(Ordering::Relaxed);
        if len > spinning + st.notified {
            self.wake_or_spawn(st, deferred);
        }
        if spinning > 0 && len <= spinning {
            self.config.poll_spin
        } else {
            Duration::ZERO
        }
    }

    /// Wakes a parked worker, or starts a new one if none is parked and the pool may grow.
    fn wake_or_spawn(self: &Arc<Self>, st: &mut State, deferred: &mut Deferred) {
        if st.sleeping > 0 {
            st.sleeping -= 1;
            st.notified += 1;
            self.work_cv.notify_one();
            return;
        }
        if st.threads >= self.config.max_threads {
            return;
        }
        st.threads += 1;
        let id = st.next_id;
        st.next_id += 1;
        let mut builder = thread::Builder::new().name(format!("{}-{id}", self.config.name_prefix));
        if let Some(size) = self.config.stack_size {
            builder = builder.stack_size(size);
        }
        let shared = self.clone();
        if let Err(e) = builder.spawn(move || shared.worker()) {
            // Roll the count back; if no thread is left to run the queue, fail its jobs now.
            st.threads -= 1;
            if st.threads == 0 {
                deferred.fail.extend(st.queue.drain(..));
                self.queued.store(0, Ordering::Relaxed);
                deferred.spawn_error = Some(e);
            }
        }
    }

    /// The body of a worker thread.
    fn worker(self: Arc<Self>) {
        WORKER_OF.with(|w| w.set(Arc::as_ptr(&self) as usize));
        let mut st = self.lock();
        'outer: loop {
            // Whether this worker spun since it last ran out of queued work.
            let mut spun = false;
            // Run what is queued.
            while let Some(job) = st.queue.pop_front() {
                let left = st.queue.len();
                self.queued.store(left, Ordering::Relaxed);
                let mut deferred = Deferred::default();
                if left > self.spinning.load(Ordering::Relaxed) + st.notified {
                    // Spread: more work than takers.
                    self.wake_or_spawn(&mut st, &mut deferred);
                }
                if self.config.max_queued.is_some() && !st.admission.is_empty() {
                    // A place was freed: let one waiting submitter in.
                    deferred.wake.push(st.admission.swap_remove(0));
                }
                drop(st);
                deferred.run();
                // `run` catches the job's panic; this also catches a panicking drop.
                let _ = panic::catch_unwind(AssertUnwindSafe(|| job.run()));
                // Nothing queued: spin *before* taking the lock again. In the sequential
                // pattern the next call is on its way, and taking the lock now would only pull
                // its cache line away from the submitter (one lock per call saved).
                spun = self.queued.load(Ordering::Relaxed) == 0;
                if spun {
                    self.spin_for_work();
                }
                st = self.lock();
            }
            if st.shutdown {
                break;
            }
            if !spun {
                // Spin a little before parking: the next call is often already on its way.
                drop(st);
                self.spin_for_work();
                st = self.lock();
                if !st.queue.is_empty() {
                    continue;
                }
            }
            if st.shutdown {
                break;
            }
            // Park until notified, shut down, or the keep-alive runs out (`None`: a
            // keep-alive too long to express as an `Instant` never runs out).
            st.sleeping += 1;
            let deadline = Instant::now().checked_add(self.config.keep_alive);
            loop {
                let now = Instant::now();
                let timed_out = deadline.is_some_and(|d| now >= d);
                if !timed_out {
                    st = match deadline {
                        Some(d) => {
                            self.work_cv
                                .wait_timeout(st, d - now)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0
                        }
                        None => self
                            .work_cv
                            .wait(st)
                            .unwrap_or_else(PoisonError::into_inner),
                    };
                }
                if st.notified > 0 {
                    // A real wake-up (the notifier already took us off `sleeping`).
                    st.notified -= 1;
                    continue 'outer;
                }
                if st.shutdown || timed_out || deadline.is_some_and(|d| Instant::now() >= d) {
                    st.sleeping -= 1;
                    if !st.queue.is_empty() && !st.shutdown {
                        continue 'outer;
                    }
                    break 'outer;
                }
                // Spurious wake-up: park again.
            }
        }
        st.threads -= 1;
        drop(st);
        self.exit_cv.notify_all();
    }

    /// Spins up to `config.spin` while the queue is empty; returns early on work or shutdown.
    fn spin_for_work(&self) {
        let budget = self.config.spin;
        if budget.is_zero() {
            return;
        }
        if self.spinning.fetch_add(1, Ordering::Relaxed) >= self.config.max_spinners {
            self.spinning.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let start = Instant::now();
        let mut rounds = 0u32;
        loop {
            if self.queued.load(Ordering::Relaxed) > 0 || self.shutdown.load(Ordering::Relaxed) {
                break;
            }
            rounds = rounds.wrapping_add(1);
            if rounds.is_multiple_of(64) {
                if start.elapsed() >= budget {
                    break;
                }
                if rounds.is_multiple_of(1024) {
                    // Let a descheduled submitter or awaiter run on a busy machine.
                    thread::yield_now();
                }
            }
            core::hint::spin_loop();
        }
        // Before the lock is taken again: pairs with the load in `push_locked`.
        self.spinning.fetch_sub(1, Ordering::Relaxed);
    }

    /// Admission for a handle that found the bounded queue full.
    pub(crate) fn poll_admit<R: Send + 'static>(
        self: &Arc<Self>,
        task: &Arc<dyn Output<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Duration, JoinError>> {
        let mut st = self.lock();
        if st.shutdown {
            return Poll::Ready(Err(JoinError::Shutdown));
        }
        let max = self.config.max_queued.unwrap_or(usize::MAX);
        if st.queue.len() < max {
            let mut deferred = Deferred::default();
            let spin = self.push_locked(&mut st, task.clone().runnable(), &mut deferred);
            drop(st);
            deferred.run();
            return Poll::Ready(Ok(spin));
        }
        if !st.admission.iter().any(|w| w.will_wake(cx.waker())) {
            st.admission.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// A pending handle went away: if a place is free, wake another waiter in its stead.
    pub(crate) fn admission_pass_on(&self) {
        let mut st = self.lock();
        let max = self.config.max_queued.unwrap_or(usize::MAX);
        if st.queue.len() < max && !st.admission.is_empty() {
            let w = st.admission.swap_remove(0);
            drop(st);
            wake_quietly(w);
        }
    }

    /// Queues a detached job past the bound.
    pub(crate) fn admit_forced(self: &Arc<Self>, job: Arc<dyn Runnable>) {
        let mut st = self.lock();
        if st.shutdown {
            drop(st);
            job.fail(JoinError::Shutdown);
            return;
        }
        let mut deferred = Deferred::default();
        self.push_locked(&mut st, job, &mut deferred);
        drop(st);
        deferred.run();
    }

    fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        // `None`: a timeout too long to express as an `Instant` (`Duration::MAX`) never runs out.
        let deadline = Instant::now().checked_add(timeout);
        let mut st = self.lock();
        let mut cancelled = Vec::new();
        let mut waiters = Vec::new();
        if !st.shutdown {
            st.shutdown = true;
            self.shutdown.store(true, Ordering::Relaxed);
            cancelled.extend(st.queue.drain(..));
            self.queued.store(0, Ordering::Relaxed);
            waiters = core::mem::take(&mut st.admission);
            self.work_cv.notify_all();
        }
        drop(st);
        let cancelled_queued = cancelled.len();
        for job in cancelled {
            job.fail(JoinError::Shutdown);
        }
        for w in waiters {
            wake_quietly(w);
        }
        // Do not wait for the calling thread if it is one of our workers.
        let own = usize::from(WORKER_OF.with(|w| w.get()) == core::ptr::from_ref(self) as usize);
        let mut st = self.lock();
        while st.threads > own {
            let now = Instant::now();
            st = match deadline {
                Some(d) if now >= d => break,
                Some(d) => {
                    self.exit_cv
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .exit_cv
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
        ShutdownReport {
            left_running: st.threads.saturating_sub(own),
            cancelled_queued,
        }
    }
}

/// What [`Pool::shutdown`] left behind.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let pool = aiothreads::Pool::builder().max_threads(1).build();
/// let report = pool.shutdown(Duration::from_secs(5));
/// assert_eq!(report.left_running, 0); // nothing was running
/// assert_eq!(report.cancelled_queued, 0); // nothing was queued
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Worker threads still running a job when the timeout ran out (they finish it and exit;
    /// nothing waits for them).
    pub left_running: usize,
    /// Jobs that were queued but not started, cancelled by this call (their awaiters get
    /// [`JoinError::Shutdown`]). Zero on a repeated call.
    pub cancelled_queued: usize,
}

/// Why [`Pool::try_spawn`] refused a job; the closure is handed back.
pub enum TrySpawnError<F> {
    /// The bounded queue is full (see [`Builder::max_queued`]).
    Full(F),
    /// The pool has been shut down.
    Shutdown(F),
}

impl<F> TrySpawnError<F> {
    /// The closure that was not submitted.
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder().build();
    /// pool.shutdown(std::time::Duration::ZERO);
    /// let err = pool.try_spawn(|| 5).unwrap_err();
    /// assert_eq!((err.into_inner())(), 5);
    /// ```
    pub fn into_inner(self) -> F {
        match self {
            Self::Full(f) | Self::Shutdown(f) => f,
        }
    }
}

impl<F> fmt::Debug for TrySpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full(_) => "Full(..)",
            Self::Shutdown(_) => "Shutdown(..)",
        })
    }
}

impl<F> fmt::Display for TrySpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full(_) => "the pool's queue is full",
            Self::Shutdown(_) => "the thread pool was shut down",
        })
    }
}

impl<F> core::error::Error for TrySpawnError<F> {}

/// Owner of a pool's shared state; the last [`Pool`] clone to go shuts the pool down.
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.shutdown(Duration::ZERO);
    }
}

/// A pool of worker threads that run blocking jobs for async code.
///
/// `Pool` is a cheap handle (`Clone` shares the same pool). When the last handle is dropped
/// the pool is shut down without waiting: queued jobs are cancelled (their awaiters get
/// [`JoinError::Shutdown`]), running ones finish and their threads exit.
///
/// # Examples
/// ```
/// use aiothreads::Pool;
///
/// let pool = Pool::builder().max_threads(2).thread_name_prefix("io").build();
/// let name = futures::executor::block_on(pool.spawn(|| {
///     std::thread::current().name().unwrap().to_owned()
/// }));
/// assert!(name.starts_with("io-"));
/// ```
#[derive(Clone)]
pub struct Pool {
    owner: Arc<Owner>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.owner.shared;
        let st = shared.lock();
        f.debug_struct("Pool")
            .field("max_threads", &shared.config.max_threads)
            .field("threads", &st.threads)
            .field("queued", &st.queue.len())
            .field("shutdown", &st.shutdown)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A [`Builder`] with the default settings.
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder().max_threads(4).build();
    /// assert_eq!(pool.max_threads(), 4);
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A pool with the default settings (same as `Pool::builder().build()`).
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::new();
    /// assert_eq!(futures::executor::block_on(pool.spawn(|| 2 + 2)), 4);
    /// ```
    pub fn new() -> Self {
        Builder::new().build()
    }

    /// The process-wide default pool, started lazily on first use (see [`default_pool`]).
    ///
    /// # Examples
    /// ```
    /// assert!(aiothreads::Pool::default_pool().max_threads() >= 1);
    /// ```
    pub fn default_pool() -> &'static Pool {
        default_pool()
    }

    /// Submits `f` to this pool at once and returns the handle of its result.
    ///
    /// If the pool is shut down, awaiting the handle gives [`JoinError::Shutdown`]; with a
    /// bounded queue that is full, the job is admitted when the handle is first polled and a
    /// place is free (see [`Builder::max_queued`]).
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::new();
    /// let handle = pool.spawn(|| "done");
    /// assert_eq!(futures::executor::block_on(handle), "done");
    /// ```
    pub fn spawn<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.owner.shared.submit(Task::new(f))
    }

    /// Submits `f` only if it can be queued right now.
    ///
    /// # Errors
    /// [`TrySpawnError::Shutdown`] after [`shutdown`](Self::shutdown),
    /// [`TrySpawnError::Full`] when a bounded queue is full; both hand `f` back.
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::new();
    /// let handle = pool.try_spawn(|| 1).unwrap();
    /// assert_eq!(futures::executor::block_on(handle), 1);
    /// ```
    pub fn try_spawn<F, R>(&self, f: F) -> Result<JoinHandle<R>, TrySpawnError<F>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let shared = &self.owner.shared;
        let mut st = shared.lock();
        let full = shared
            .config
            .max_queued
            .is_some_and(|max| st.queue.len() >= max);
        if st.shutdown || full {
            drop(st);
            return Err(if full {
                TrySpawnError::Full(f)
            } else {
                TrySpawnError::Shutdown(f)
            });
        }
        let task = Task::new(f);
        let mut deferred = Deferred::default();
        let spin = shared.push_locked(&mut st, task.clone(), &mut deferred);
        drop(st);
        deferred.run();
        Ok(JoinHandle::new(task, None, spin))
    }

    /// Shuts the pool down: refuses new work, cancels queued jobs that have not started, and
    /// waits up to `timeout` for running jobs to finish (`Duration::MAX`: however long they
    /// take). Idempotent: a later call only waits
    /// again and reports.
    ///
    /// Blocks the calling thread up to `timeout` — from async code, call it with a zero
    /// timeout or from a blocking context. Called from one of this pool's own jobs it does not
    /// wait for its own thread.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = aiothreads::Pool::new();
    /// let report = pool.shutdown(Duration::from_millis(100));
    /// assert_eq!(report.left_running, 0);
    /// let late = pool.spawn(|| 1);
    /// assert!(matches!(
    ///     futures::executor::block_on(late.try_join()),
    ///     Err(aiothreads::JoinError::Shutdown)
    /// ));
    /// ```
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        self.owner.shared.shutdown(timeout)
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::new();
    /// assert!(!pool.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.owner.shared.shutdown.load(Ordering::Relaxed)
    }

    /// The most threads this pool runs at once.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(aiothreads::Pool::builder().max_threads(3).build().max_threads(), 3);
    /// ```
    pub fn max_threads(&self) -> usize {
        self.owner.shared.config.max_threads
    }

    /// The number of worker threads alive right now (busy, spinning or parked).
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::new();
    /// assert_eq!(pool.thread_count(), 0); // threads start on demand
    /// ```
    pub fn thread_count(&self) -> usize {
        self.owner.shared.lock().threads
    }
}

impl Default for Pool {
    fn default() -> Self {
        Self::new()
    }
}

/// Configures a [`Pool`].
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let pool = aiothreads::Pool::builder()
///     .max_threads(8)
///     .thread_name_prefix("db")
///     .stack_size(256 * 1024)
///     .keep_alive(Duration::from_secs(5))
///     .max_queued(Some(1000))
///     .spin(Duration::from_micros(20))
///     .poll_spin(Duration::from_micros(4))
///     .build();
/// # drop(pool);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    config: Config,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// The defaults: `max_threads` from [`AIOTHREADS_MAX_THREADS`](MAX_THREADS_ENV) or
    /// min(32, cpus + 4), thread names `aiothreads-N`, the platform's default stack size,
    /// a keep-alive of 10 s, an unbounded queue, 20 µs of worker spin and 4 µs of poll spin.
    ///
    /// # Panics
    /// If `AIOTHREADS_MAX_THREADS` is set to anything but a positive integer (read once).
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder().build();
    /// assert!(pool.max_threads() >= 1);
    /// ```
    pub fn new() -> Self {
        Self {
            config: Config {
                max_threads: default_max_threads(),
                name_prefix: "aiothreads".to_owned(),
                stack_size: None,
                keep_alive: Duration::from_secs(10),
                max_queued: None,
                spin: Duration::from_micros(20),
                poll_spin: Duration::from_micros(4),
                max_spinners: cpus(),
            },
        }
    }

    /// The most threads the pool runs at once. The pool starts with none and grows on backlog.
    ///
    /// # Panics
    /// If `n` is zero.
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder().max_threads(1).build();
    /// # drop(pool);
    /// ```
    #[track_caller]
    pub fn max_threads(mut self, n: usize) -> Self {
        assert!(
            n > 0,
            "aiothreads::Builder::max_threads: the pool needs at least one thread"
        );
        self.config.max_threads = n;
        self
    }

    /// Threads are named `{prefix}-{n}`.
    ///
    /// # Panics
    /// If `prefix` contains a NUL byte (no thread could be given that name).
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder().thread_name_prefix("fs").build();
    /// # drop(pool);
    /// ```
    #[track_caller]
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        assert!(
            !prefix.contains('\0'),
            "aiothreads::Builder::thread_name_prefix: a thread name may not contain a NUL byte"
        );
        self.config.name_prefix = prefix;
        self
    }

    /// Stack size of the worker threads in bytes (default: the platform's, as
    /// `std::thread::Builder` uses).
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder().stack_size(512 * 1024).build();
    /// # drop(pool);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.config.stack_size = Some(bytes);
        self
    }

    /// How long an idle worker waits for work before its thread exits (default 10 s;
    /// `Duration::MAX`: idle workers never exit).
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder()
    ///     .keep_alive(std::time::Duration::from_millis(500))
    ///     .build();
    /// # drop(pool);
    /// ```
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.config.keep_alive = keep_alive;
        self
    }

    /// Bounded admission: at most `max` jobs wait in the queue (`None`, the default: no bound).
    ///
    /// A call still returns its [`JoinHandle`] at once. If the queue is full at that moment,
    /// the job is not queued yet: the handle's first poll queues it as soon as a place is
    /// free, and until then the awaiting task waits as `Pending` (its waker is woken when a
    /// worker takes a job) — no thread is ever blocked. So with a bound, a job whose queue was
    /// full starts only once its handle is awaited (or [`detach`](JoinHandle::detach)ed, which
    /// queues it past the bound).
    ///
    /// # Panics
    /// If `max` is `Some(0)`: a job must be able to wait in the queue, or no call would ever
    /// be admitted.
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder().max_threads(1).max_queued(Some(2)).build();
    /// # drop(pool);
    /// ```
    #[track_caller]
    pub fn max_queued(mut self, max: Option<usize>) -> Self {
        assert!(
            max != Some(0),
            "aiothreads::Builder::max_queued: the bound must be at least 1 (None: unbounded)"
        );
        self.config.max_queued = max;
        self
    }

    /// How long a worker that ran out of work spins before it parks (default 20 µs; zero
    /// parks at once). Spinning lets back-to-back calls skip the futex wake-up of a parked
    /// worker; it is bounded, so an idle pool burns no CPU.
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder().spin(std::time::Duration::ZERO).build();
    /// # drop(pool);
    /// ```
    pub fn spin(mut self, spin: Duration) -> Self {
        self.config.spin = spin;
        self
    }

    /// How long the first poll of a [`JoinHandle`] may spin on the result (default 4 µs; zero
    /// disables it).
    ///
    /// The spin happens only when, at submission, a spinning worker was ready to take the job
    /// at once and the queue held no more jobs than spinning workers — the sequential
    /// round-trip case, where the result typically arrives in well under a microsecond and
    /// waiting for it here avoids registering a waker and waking the executor thread (several
    /// µs). It never happens with many calls in flight. The trade-off: for a job that runs
    /// longer than the budget, the executor thread is busy for the budget in vain, once.
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder()
    ///     .poll_spin(std::time::Duration::ZERO)
    ///     .build();
    /// # drop(pool);
    /// ```
    pub fn poll_spin(mut self, spin: Duration) -> Self {
        self.config.poll_spin = spin;
        self
    }

    /// Builds the pool. No thread is started until the first job arrives.
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder().build();
    /// assert_eq!(pool.thread_count(), 0);
    /// ```
    pub fn build(self) -> Pool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                threads: 0,
                sleeping: 0,
                notified: 0,
                shutdown: false,
                next_id: 0,
                admission: Vec::new(),
            }),
            work_cv: Condvar::new(),
            exit_cv: Condvar::new(),
            queued: AtomicUsize::new(0),
            spinning: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            config: self.config,
        });
        Pool {
            owner: Arc::new(Owner { shared }),
        }
    }
}

fn cpus() -> usize {
    thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// min(32, cpus + 4), or [`MAX_THREADS_ENV`] when it is set. Read once.
///
/// # Panics
/// If the variable is set to anything but a positive integer, naming the variable and the
/// value — the same policy as `THREADED_ITERABLE_DEFAULT_MAX_SIZE`: a typo must not silently
/// become the default (`64k` would give a 6-thread pool where 64 were asked for).
fn default_max_threads() -> usize {
    static VALUE: OnceLock<Result<usize, String>> = OnceLock::new();
    let computed = || (cpus() + 4).min(32);
    match VALUE.get_or_init(|| parse_max_threads(std::env::var_os(MAX_THREADS_ENV), computed)) {
        Ok(n) => *n,
        Err(msg) => panic!("{msg}"),
    }
}

/// Parses the value of [`MAX_THREADS_ENV`]; `computed` gives the default when it is not set.
fn parse_max_threads(
    value: Option<std::ffi::OsString>,
    computed: impl FnOnce() -> usize,
) -> Result<usize, String> {
    let Some(value) = value else {
        return Ok(computed());
    };
    match value.to_str().map(|s| s.trim().parse::<usize>()) {
        Some(Ok(n)) if n > 0 => Ok(n),
        _ => Err(format!(
            "{MAX_THREADS_ENV} must be a positive integer (the size of the default thread \
             pool), got {value:?}"
        )),
    }
}

static DEFAULT: OnceLock<Pool> = OnceLock::new();

/// The process-wide default pool, used by [`spawn`](crate::spawn), `#[threaded]` and
/// [`threaded`](crate::threaded()) unless another pool is chosen. Started lazily on first use,
/// with [`Builder::new`]'s settings (so its size follows
/// [`AIOTHREADS_MAX_THREADS`](MAX_THREADS_ENV)).
///
/// # Examples
/// ```
/// let pool = aiothreads::default_pool();
/// assert_eq!(futures::executor::block_on(pool.spawn(|| 1)), 1);
/// ```
pub fn default_pool() -> &'static Pool {
    DEFAULT.get_or_init(Pool::new)
}

/// Makes `pool` the default pool — the analogue of asyncio's `loop.set_default_executor`.
///
/// # Errors
/// Hands `pool` back if the default pool was already set or already used (it is fixed on
/// first use).
///
/// # Examples
/// ```
/// let pool = aiothreads::Pool::builder().max_threads(2).build();
/// aiothreads::set_default_pool(pool).unwrap();
/// assert_eq!(aiothreads::default_pool().max_threads(), 2);
/// // Too late now:
/// assert!(aiothreads::set_default_pool(aiothreads::Pool::new()).is_err());
/// ```
pub fn set_default_pool(pool: Pool) -> Result<(), Pool> {
    DEFAULT.set(pool)
}

/// Runs `f` on the default pool; the handle is a `Future` of its result. Dropping the handle
/// cancels the job (see [`JoinHandle`]).
///
/// The job is submitted, and the caller's context (its [`Loop`](crate::Loop),
/// [`ContextVar`](crate::ContextVar)s) captured, when `spawn` is *called*, as with
/// `tokio::spawn`: `rt.block_on(aiothreads::spawn(f))` calls it before `block_on` enters the
/// runtime, so the job sees no loop; write `rt.block_on(async { aiothreads::spawn(f).await })`.
///
/// # Examples
/// ```
/// # futures::executor::block_on(async {
/// let sum = aiothreads::spawn(|| (1..=10).sum::<u32>()).await;
/// assert_eq!(sum, 55);
/// # });
/// ```
pub fn spawn<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    default_pool().spawn(f)
}
