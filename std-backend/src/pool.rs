//! The thread pool: [`Pool`], its [`Builder`], the default pool, bounded admission
//! ([`Pool::reserve`], [`Permit`]) and [`ShutdownReport`].
//!
//! # Design
//! One `Mutex<State>` (the queue and the thread counters) and a `Condvar` for idle workers, as
//! in smol's `blocking` and tokio's blocking pool, plus two atomics read without the lock:
//! `queued` (non-zero while jobs are queued) and `spinning`.
//!
//! - **Workers spin before they park**, for [`Builder::spin`] (default: about one measured
//!   sleep/wake cycle of this machine; the crate's one spin policy, see `backoff.rs`),
//!   watching `queued`, and only then park on the `Condvar`. The spin is **adaptive**: a score
//!   per pool (spins that found work, parks whose work was announced within a spin's time)
//!   decides whether workers spin the full budget or not at all, so jobs that come further
//!   apart than a wake-up cycle stop paying for spins they cannot win; a pool that stopped
//!   spins one full budget in 16 decisions, a probe that brings the spin back where it pays
//!   again.
//!   Back-to-back calls therefore rarely pay for a futex wake-up on the worker side. At most
//!   as many workers as there are CPUs spin at once, and an idle pool burns no CPU once the
//!   spin has run out.
//! - **A worker claims the next call before it delivers.** Just before it stores a job's
//!   outcome and wakes the awaiter, a worker that will spin counts itself in `spinning`
//!   (`Shared::announce_spinner`): the awaiter, woken, often submits its next call while the
//!   worker is still returning from the wake-up's system call, and would otherwise find no
//!   spinner, wake a parked worker (≈ 5 µs on the AMD EPYC VM) and leave this one spinning
//!   for nothing. The claim is taken back before anything that may wait (an outcome dropped
//!   unclaimed, a blocking wait of this crate entered from inside the wake-up). Wakers must
//!   not block otherwise: one that blocks for a call on the same pool by other means holds
//!   the claim while it blocks.
//! - **Where the awaiter sleeps decides how the worker waits for its next call**
//!   (`placement.rs`, feature `placement`): a handle that goes to sleep notes its CPU; a worker
//!   delivering to it on the same CPU claims the next call and yields to the awaiter instead
//!   of spinning; on another CPU it parks instead of spinning while the pool *explores* (the
//!   kernel may then put the worker on the awaiter's CPU when the next call wakes it, after
//!   which wake-ups across CPUs become rare), and spins where exploring fails.
//! - **Submitters notify only when needed.** A submission wakes a parked worker (or starts a
//!   new one, up to `max_threads`) only when the queue holds more jobs than there are workers
//!   about to take one: spinning, notified, or still *starting*. Counting starting threads is
//!   what keeps the pool from starting more threads than jobs: a submission never starts more
//!   threads than jobs in flight plus its spinners. (One exception, bounded: a pool exploring
//!   where its workers run keeps a second worker, `Shared::second_worker`.)
//! - **Spread.** A worker that takes a job while more are queued than takers wakes one more.
//! - **Wake-up accounting** (from tokio): `notified` counts real notifications, so a worker
//!   tells them apart from spurious `Condvar` wake-ups and keep-alive time-outs.
//! - **Bounded admission** (`max_queued`) is a [`Gate`] in front of the queue: a job in the
//!   queue holds a place; an async submitter without a place waits as an owned waiter that
//!   deregisters itself when dropped (see `admission.rs`). The [`JoinHandle`] is a pure
//!   receiver and knows nothing of this.
//! - **Withdrawn jobs leave at once.** A handle dropped before its job started drops the
//!   closure there and then; in a bounded pool the job also leaves the queue and frees its
//!   place.
//! - **Blocked workers step aside.** A worker that goes to sleep in one of the crate's
//!   blocking waits (`ThreadParker::park`: `sync_await`, `block_on`, `blocking_iter`, `put`)
//!   stops counting against `max_threads` until it wakes ([`Blocked`]), and queued jobs get a
//!   worker: jobs that each wait for another call on their own pool cannot starve it. A worker
//!   that finds more non-blocked workers than `max_threads` exits after its current job.
//! - **Robustness**: `catch_unwind` around each job (a panic never kills a worker), poisoned
//!   locks are recovered, the thread count is rolled back when `thread::Builder::spawn` fails,
//!   and when no thread at all can run the queued jobs they fail with
//!   [`JoinError::SpawnFailed`](crate::JoinError::SpawnFailed) instead of hanging.
//!
//! # Per-call cost
//! Submit: 1 lock/unlock, 1 relaxed load, 1 relaxed store only when the queue was empty, no
//! notify when a worker spins (a bounded pool adds its gate's lock). Worker: 1 lock/unlock
//! to pop, 1 relaxed store only when it empties the queue; claiming the next call costs 2
//! relaxed loads and 1 relaxed read-modify-write (the same one its spin would have paid, done
//! earlier).

use core::num::NonZeroUsize;
use core::panic::AssertUnwindSafe;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use core::task::{Context, Poll};
use core::time::Duration;
use crossbeam_utils::CachePadded;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::thread;
use std::time::Instant;

use crate::admission::{Gate, Waiter};
use crate::backoff;
use crate::placement::{self, Explorer, Place};
use crate::task::{job_addr, Delivery, JoinError, JoinHandle, QueueLink, Runnable, Task, Withdraw};

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
    /// `None`: the measured budget of `backoff`.
    spin: Option<Duration>,
    max_spinners: usize,
    /// Whether deliveries look at where the awaiter sleeps (`placement.rs`).
    placement: bool,
}

/// The scale of `Shared::spin_score`.
const SCORE_MAX: u32 = 8;
/// A pool that stopped spinning spins one full budget in this many decisions (a probe).
const PROBE_EVERY: u32 = 16;

/// A job in the queue, and whether it holds a place of the admission gate.
struct Queued {
    job: Arc<dyn Runnable>,
    place: bool,
}

/// Everything under the pool's lock. `repr(C)`, in this order: what every submission and
/// every pop reads or writes (the queue's header, `shutdown`, `notified`, `starting`) comes
/// first, so that with the lock word it fills the first cache line of `Shared::state` (which
/// is cache-line aligned): a lock hand-off between threads then moves one line, not two.
/// (Measured on x86_64 Linux: std's `Mutex` puts its data 8 bytes after the lock word, and
/// `State` is 104 bytes, its last field `notified_at` in the second line; with another layout
/// this is a hint, not a guarantee.)
#[repr(C)]
struct State {
    queue: VecDeque<Queued>,
    shutdown: bool,
    /// Notifications sent and not yet consumed by a worker.
    notified: usize,
    /// Threads spawned that have not yet taken the lock for the first time: each will take a
    /// queued job, so submitters count them as takers.
    starting: usize,
    /// Workers parked on `work_cv` and not yet notified.
    sleeping: usize,
    /// Threads alive (starting, running, spinning or parked); incremented before a spawn.
    threads: usize,
    /// Workers asleep in one of this crate's blocking waits ([`Blocked`]): counted in
    /// `threads`, but not against `max_threads`, so the jobs they may wait for get a thread.
    blocked: usize,
    next_id: usize,
    /// When the last notification was sent (`wake_or_spawn`): a woken worker compares it with
    /// when it parked, to learn whether a spin would have caught the work (`spin_score`).
    notified_at: Instant,
}

/// The state shared by the pool handles and the workers.
pub(crate) struct Shared {
    /// Aligned to a cache line (and its neighbour, as `CachePadded` does), so that the lock
    /// word and `State`'s first fields share a line, and nothing else does.
    state: CachePadded<Mutex<State>>,
    work_cv: Condvar,
    exit_cv: Condvar,
    /// Non-zero exactly when `state.queue` holds a job: written under the lock, and only
    /// when the queue turns empty or non-empty (`set_queued`), so that a deep queue's pushes
    /// and pops leave the line alone; read by spinning workers. Its value is not the length.
    queued: AtomicUsize,
    /// Workers currently spinning (not holding the lock, not parked).
    spinning: AtomicUsize,
    /// Stream producers currently spinning for room (`with_spinner_place`). Kept apart from
    /// `spinning`: those threads take no job while they spin, so `submit` must not count them
    /// as idle workers about to take one.
    producer_spinning: AtomicUsize,
    /// Mirror of `state.shutdown` for spinning workers.
    shutdown: AtomicBool,
    /// Admission to a bounded queue (`None`: unbounded).
    gate: Option<Gate>,
    /// Whether workers spin (above zero: the full budget; zero: only probes, see
    /// `spin_budget`), from 0 to `SCORE_MAX`: a spin that finds work scores one up, a spin
    /// that runs out one down, and a parked worker whose work was announced within a full
    /// spin's time of its parking one up. A pool whose jobs come further apart than a wake-up
    /// cycle stops spinning after `SCORE_MAX` spins that ran out; back-to-back tiny jobs keep
    /// the spin.
    spin_score: AtomicU32,
    /// Counts the decisions not to spin of a pool whose score is zero (`spin_budget`).
    probe_tick: AtomicU32,
    /// Whether workers park after delivering to an awaiter asleep on another CPU
    /// (`placement.rs`).
    explorer: Explorer,
    config: Config,
}

/// Work to do after the lock is released: failing jobs and freeing places never happen under
/// the lock (they run arbitrary code: a closure's `Drop`, a waker).
#[derive(Default)]
struct Deferred {
    fail: Vec<Arc<dyn Runnable>>,
    spawn_error: Option<io::Error>,
    /// Places of the gate to give back.
    leave: usize,
}

impl Shared {
    fn run_deferred(&self, deferred: Deferred) {
        if let Some(gate) = &self.gate {
            for _ in 0..deferred.leave {
                gate.leave();
            }
        }
        if let Some(e) = deferred.spawn_error {
            for job in deferred.fail {
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
    /// What this worker does after the outcome it is delivering: while it is `Spin` or
    /// `Yield` it counts itself in its pool's `spinning` (`Shared::announce_spinner`). No
    /// destructor, so no registration on thread start.
    static CLAIM: core::cell::Cell<Claim> = const { core::cell::Cell::new(Claim::None) };
    /// The pool this thread works for, for [`Blocked`] (empty: none).
    static POOL_OF: core::cell::RefCell<std::sync::Weak<Shared>> =
        const { core::cell::RefCell::new(std::sync::Weak::new()) };
}

/// What a worker does after delivering an outcome (set by `Shared::announce_spinner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// Nothing announced: spin if nothing is queued, as after any job.
    None,
    /// Counted in `spinning`: spin for the next call.
    Spin,
    /// Counted in `spinning`: the awaiter sleeps on this CPU; yield to it once, then look
    /// at the queue without spinning (`placement.rs`).
    Yield,
    /// Not counted: the awaiter sleeps on another CPU and the pool explores; park without
    /// spinning (`placement.rs`).
    Park,
}

/// A pool worker asleep in one of this crate's blocking waits (`sync_await`, `block_on`,
/// `blocking_iter`, a full channel's `put`: every wait parks through `ThreadParker::park`).
///
/// While the guard lives the worker does not count against its pool's `max_threads`: if jobs
/// wait in the queue, the pool wakes or starts another worker for them. Without it, jobs that
/// each wait for another call on their own pool (`sync_await(inner(x))` in a pooled `outer`)
/// could occupy every worker and wait for ever for calls that no worker was left to run.
/// When the wait ends the pool may run more than `max_threads` jobs for a while: a worker
/// that finds its pool over the bound exits after its current job instead of taking another
/// (`Shared::surplus`). On any other thread the guard does nothing.
///
/// Cost: nothing on the way in unless the thread is a pool worker; then the pool's lock twice
/// per sleep (not per spin: waits that end within their spin never sleep).
pub(crate) struct Blocked(Option<Arc<Shared>>);

impl Blocked {
    /// Counts this thread out of its pool's bound until the guard is dropped.
    pub(crate) fn enter() -> Self {
        let shared = POOL_OF.try_with(|p| p.borrow().upgrade()).ok().flatten();
        if let Some(shared) = &shared {
            shared.block();
        }
        Blocked(shared)
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if let Some(shared) = &self.0 {
            shared.lock().blocked -= 1;
        }
    }
}

impl Withdraw for Shared {
    fn withdraw(&self, job: usize) {
        let mut st = self.lock();
        let Some(i) = st.queue.iter().position(|q| job_addr(&*q.job) == job) else {
            // A worker took it already (and found nothing to run).
            return;
        };
        let Some(q) = st.queue.remove(i) else {
            return;
        };
        self.set_queued(st.queue.len() + 1, st.queue.len());
        drop(st);
        if q.place {
            if let Some(gate) = &self.gate {
                gate.leave();
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The link a job made for this pool keeps to its queue: only bounded pools want to hear
    /// of withdrawn jobs (their places count).
    pub(crate) fn link(self: &Arc<Self>) -> QueueLink {
        QueueLink::new(
            self.gate
                .as_ref()
                .map(|_| Arc::downgrade(self) as Weak<dyn Withdraw>),
        )
    }

    /// Takes a place for a job that must be queued now (a plain `spawn`): past the bound if
    /// none is free.
    fn force_place(&self) -> bool {
        match &self.gate {
            Some(gate) => {
                gate.force_enter();
                true
            }
            None => false,
        }
    }

    /// Whether jobs wait in the queue (a hint: one relaxed load).
    pub(crate) fn has_queued(&self) -> bool {
        self.queued.load(Ordering::Relaxed) > 0
    }

    /// Runs `spin` (a stream producer's wait for room, see `pool_stream.rs`) with the pool's
    /// spin budget if this pool may have one more spinning thread now, and returns its
    /// result; `None` if not. A place exists while no job waits in the queue and fewer than
    /// `max_spinners - 1` of the pool's threads spin (idle workers and producers together), so
    /// one CPU is always left for the thread the producer waits for, its consumer: on one CPU
    /// a producer never spins. Cost: three relaxed loads and two relaxed read-modify-writes.
    pub(crate) fn with_spinner_place<R>(&self, spin: impl FnOnce(Duration) -> R) -> Option<R> {
        if self.has_queued() {
            return None;
        }
        let places = self.config.max_spinners.saturating_sub(1);
        // Relaxed: a heuristic bound on the number of spinners; nothing is published through
        // these counters.
        let others = self.spinning.load(Ordering::Relaxed);
        let result = if self.producer_spinning.fetch_add(1, Ordering::Relaxed) + others < places {
            // The measured budget without `calibrate` (an idle worker measures it).
            Some(spin(self.config.spin.unwrap_or_else(backoff::spin_budget)))
        } else {
            None
        };
        self.producer_spinning.fetch_sub(1, Ordering::Relaxed);
        result
    }

    /// Makes the task of `f` and queues it; `place`: it holds a place of the gate.
    fn spawn_with_place<F, R>(self: &Arc<Self>, f: F, place: bool) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (job, mut handle) = Task::new(f, self.link()).split();
        // A job a spinning worker takes at once is awaited by yielding, if that has paid on
        // this thread lately (`backoff::yield_window`).
        if self.submit(job, place) && backoff::await_should_yield() {
            handle.yield_while_running();
        }
        handle
    }

    /// Queues `job` (which holds a place of the gate if `place`), or fails it with
    /// [`JoinError::Shutdown`] after a shutdown. Returns whether a spinning worker is there to
    /// take it at once (no worker needs waking or starting).
    pub(crate) fn submit(self: &Arc<Self>, job: Arc<dyn Runnable>, place: bool) -> bool {
        let mut st = self.lock();
        let mut deferred = Deferred::default();
        if st.shutdown {
            drop(st);
            deferred.leave = usize::from(place);
            self.run_deferred(deferred);
            job.fail(JoinError::Shutdown);
            return false;
        }
        st.queue.push_back(Queued { job, place });
        let len = st.queue.len();
        // The spinners are counted *before* the job is published to them (the queue turning
        // non-empty, `set_queued`; a queue that held jobs was published): a spinner that sees
        // `queued` rise stops counting itself at once, and counted after the store it would
        // look absent, so that the submission woke or started a worker for a job the spinner
        // then takes (a needless thread, seen in debug builds). Counted before, it is still
        // spinning or about to take the lock we hold; either way it takes the queue's jobs
        // after us (see `untaken`). Relaxed: a hint; a wrong guess costs one window of yields.
        let spinning = self.spinning.load(Ordering::Relaxed);
        self.set_queued(len - 1, len);
        let spinner_takes_it = len <= spinning;
        if self.untaken_with(&st, spinning) {
            self.wake_or_spawn(&mut st, &mut deferred);
        }
        drop(st);
        self.run_deferred(deferred);
        spinner_takes_it
    }

    /// More jobs queued than workers about to take one (spinning, notified or starting): one
    /// more taker is needed.
    fn untaken(&self, st: &State) -> bool {
        // Relaxed: a spinner decrements `spinning` before it takes the lock we hold, so we
        // either see its decrement or it will see the queued jobs.
        self.untaken_with(st, self.spinning.load(Ordering::Relaxed))
    }

    /// [`untaken`](Self::untaken) with `spinning` read by the caller (under the lock).
    fn untaken_with(&self, st: &State, spinning: usize) -> bool {
        st.queue.len() > spinning + st.notified + st.starting
    }

    /// Keeps `queued` non-zero exactly while the queue holds a job, after the queue (under the
    /// lock, as every change of it) went from `before` to `after` jobs. Stores only when the
    /// queue turns empty or non-empty: a submission to a queue that already holds jobs, or a
    /// pop that leaves some, touches nothing but the lock's lines (with 100 000 calls in
    /// flight, one shared line less per push and per pop).
    fn set_queued(&self, before: usize, after: usize) {
        if (before == 0) != (after == 0) {
            // Relaxed: read by spinners as a hint; they take the lock before acting on it.
            self.queued.store(after, Ordering::Relaxed);
        }
    }

    /// Wakes a parked worker, or starts a new one if none is parked and the pool may grow.
    fn wake_or_spawn(self: &Arc<Self>, st: &mut State, deferred: &mut Deferred) {
        if st.sleeping > 0 {
            st.sleeping -= 1;
            st.notified += 1;
            // One clock read per notification, which also costs a futex wake-up.
            st.notified_at = Instant::now();
            self.work_cv.notify_one();
            return;
        }
        if st.threads - st.blocked >= self.config.max_threads {
            return;
        }
        st.threads += 1;
        st.starting += 1;
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
            st.starting -= 1;
            if st.threads == 0 {
                let before = st.queue.len();
                for q in st.queue.drain(..) {
                    deferred.leave += usize::from(q.place);
                    deferred.fail.push(q.job);
                }
                self.set_queued(before, 0);
                deferred.spawn_error = Some(e);
            }
        }
    }

    /// A worker about to park after a delivery across CPUs (`Claim::Park`) makes sure the
    /// pool has a second worker: the kernel places a thread when it wakes it, and with one
    /// worker the thread the awaiter's next call wakes is always the one that last ran on the
    /// other CPU. With two parked workers the calls wake them in turn (on Linux the `Condvar`
    /// wakes its longest waiter in practice), and on the Intel Xeon VM of PERFORMANCE.md the
    /// kernel then put one of them on the awaiter's CPU within a few dozen calls, where with
    /// one worker it took hundreds, or more than 512 (`placement.rs`). Only from the second
    /// park of an exploration on, when the pool has one thread, none parked or starting,
    /// nothing queued, and room for a second one; the new worker spins its budget and then
    /// parks like any idle worker, and leaves after the keep-alive if unused.
    fn second_worker(self: &Arc<Self>, st: &mut MutexGuard<'_, State>) {
        // Not for the first park of an exploration: one call awaited alone (a test's, a
        // program's only one) starts no thread for it.
        if self.explorer.parks_in_a_row() < 2
            || st.shutdown
            || st.threads - st.blocked != 1
            || st.sleeping > 0
            || st.starting > 0
            || !st.queue.is_empty()
            || self.config.max_threads < 2
        {
            return;
        }
        let mut deferred = Deferred::default();
        // Nobody sleeps: this starts a thread (or fails quietly; no job depends on it).
        self.wake_or_spawn(st, &mut deferred);
        debug_assert!(deferred.fail.is_empty());
    }

    /// A worker of this pool goes to sleep in a blocking wait ([`Blocked`]): it stops
    /// counting against `max_threads`, and queued jobs without a taker get a worker.
    fn block(self: &Arc<Self>) {
        // A worker that waits inside a delivery (a waker that polls the awaiting task in
        // place, and that task blocks) takes back its claim to be free first.
        self.withdraw_announcement();
        let mut st = self.lock();
        st.blocked += 1;
        let mut deferred = Deferred::default();
        if self.untaken(&st) {
            self.wake_or_spawn(&mut st, &mut deferred);
        }
        drop(st);
        self.run_deferred(deferred);
    }

    /// More workers outside blocking waits than `max_threads` (a worker woke from its wait
    /// while the one started in its place still runs): the worker that sees it exits.
    fn surplus(&self, st: &State) -> bool {
        st.threads - st.blocked > self.config.max_threads
    }

    /// The body of a worker thread.
    fn worker(self: Arc<Self>) {
        WORKER_OF.with(|w| w.set(Arc::as_ptr(&self) as usize));
        let _ = POOL_OF.try_with(|p| *p.borrow_mut() = Arc::downgrade(&self));
        let mut st = self.lock();
        st.starting -= 1;
        'outer: loop {
            // Whether this worker spun since it last ran out of queued work.
            let mut spun = false;
            // Run what is queued, unless the pool has a worker too many: then this one exits.
            while let Some(Queued { job, place }) = match self.surplus(&st) {
                true => None,
                false => st.queue.pop_front(),
            } {
                let left = st.queue.len();
                self.set_queued(left + 1, left);
                let mut deferred = Deferred {
                    leave: usize::from(place),
                    ..Deferred::default()
                };
                if self.untaken(&st) {
                    // Spread: more work than takers.
                    self.wake_or_spawn(&mut st, &mut deferred);
                }
                drop(st);
                // The job left the queue: its place goes to the next waiting submitter.
                self.run_deferred(deferred);
                // `run` catches the job's panic; this also catches a panicking drop.
                let delivering = |delivery: Delivery| match delivery {
                    Delivery::Ready { awaiter_cpu } => self.announce_spinner(awaiter_cpu),
                    Delivery::Unclaimed => self.withdraw_announcement(),
                };
                let _ = panic::catch_unwind(AssertUnwindSafe(|| job.run(&delivering)));
                // Nothing queued: spin *before* taking the lock again. In the sequential
                // pattern the next call is on its way, and taking the lock now would only pull
                // its cache line away from the submitter (one lock per call saved).
                // Whether this worker parks after a delivery across CPUs (`Claim::Park`).
                let exploring = match CLAIM.replace(Claim::None) {
                    Claim::Spin => {
                        spun = true;
                        self.spin_announced();
                        false
                    }
                    Claim::Yield => {
                        // The awaiter was woken on this CPU: let it run and submit (it finds
                        // this worker counted), then look once; no spin and no second look.
                        spun = true;
                        thread::yield_now();
                        // Before the lock is taken again: pairs with the load in `submit`.
                        self.spinning.fetch_sub(1, Ordering::Relaxed);
                        false
                    }
                    Claim::Park => {
                        spun = true;
                        true
                    }
                    Claim::None => {
                        spun = self.queued.load(Ordering::Relaxed) == 0;
                        if spun {
                            self.spin_for_work();
                        }
                        false
                    }
                };
                st = self.lock();
                if exploring {
                    self.second_worker(&mut st);
                }
            }
            if st.shutdown || self.surplus(&st) {
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
            let parked_at = Instant::now();
            let deadline = parked_at.checked_add(self.config.keep_alive);
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
                    // A real wake-up (the notifier already took us off `sleeping`). Work that
                    // came within a full spin would have been caught by spinning: score it, so
                    // a pool that stopped spinning learns to spin again. Timed by when the
                    // work was announced, not by when this thread runs again: where a wake-up
                    // takes longer than the spin budget (a halted vCPU: 30–40 µs on the Intel
                    // Xeon VM of PERFORMANCE.md) the latter never scored, and a pool whose
                    // spins once ran out could stay without spinning for good.
                    st.notified -= 1;
                    if st.notified_at.saturating_duration_since(parked_at) < self.full_spin() {
                        self.score(true);
                    }
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
        // A surplus worker may leave jobs queued: they need a taker among those that stay.
        let mut deferred = Deferred::default();
        if !st.shutdown && self.untaken(&st) {
            self.wake_or_spawn(&mut st, &mut deferred);
        }
        drop(st);
        self.run_deferred(deferred);
        self.exit_cv.notify_all();
    }

    /// Spins up to the pool's budget while the queue is empty; returns early on work or
    /// shutdown. The first idle worker of the process measures the machine's wake-up cost
    /// (`backoff::calibrate`, once) — it has nothing else to do.
    fn spin_for_work(&self) {
        let budget = self.spin_budget();
        if budget.is_zero() {
            return;
        }
        if self.spinning.fetch_add(1, Ordering::Relaxed) < self.config.max_spinners {
            self.spin_counted(budget);
        }
        // Before the lock is taken again: pairs with the load in `submit`.
        self.spinning.fetch_sub(1, Ordering::Relaxed);
    }

    /// The budget of the next spin: the full one while spins pay (`spin_score` above zero);
    /// once they stopped paying, nothing, except one full spin in [`PROBE_EVERY`] — a probe:
    /// if it finds work, the score rises and the pool spins again. All or nothing, not a
    /// fraction of the budget: the wait a spin covers (the gap until the next call) does not
    /// shrink with the budget, so a shortened spin only runs out sooner and scores lower.
    /// Call it once per decision to spin (each call may be the probe).
    fn spin_budget(&self) -> Duration {
        // Relaxed: heuristic counters.
        if self.spin_score.load(Ordering::Relaxed) > 0
            || self.probe_tick.fetch_add(1, Ordering::Relaxed) % PROBE_EVERY == PROBE_EVERY - 1
        {
            self.full_spin()
        } else {
            Duration::ZERO
        }
    }

    /// Spins (already counted in `spinning`) for up to `budget` (not zero) until work comes
    /// or shutdown; scores the outcome.
    fn spin_counted(&self, budget: Duration) {
        let won = backoff::spin_until(budget, || {
            self.queued.load(Ordering::Relaxed) > 0 || self.shutdown.load(Ordering::Relaxed)
        });
        self.score(won);
    }

    /// Counts this worker as spinning *before* it delivers a job's outcome (sets [`CLAIM`]),
    /// so that the call its awaiter submits next finds a taker and wakes or starts nobody.
    /// Without it the awaiter, woken by the delivery, often submits while this worker is
    /// still on its way back from the wake-up system call: the submitter then sees no spinner
    /// and wakes a parked worker (a futex wake-up and a reschedule, about 5 µs on the AMD EPYC
    /// VM) while this one spins for nothing. Not when jobs are queued (this worker takes one
    /// anyway), or when `max_spinners` spin already.
    ///
    /// When the awaiter went to sleep (`awaiter_cpu` is known) the worker's CPU decides how
    /// it waits for that call (`placement.rs`): on the awaiter's CPU it claims the call and
    /// yields instead of spinning ([`Claim::Yield`], even in a pool that stopped spinning);
    /// on another CPU, while the pool explores, it claims nothing and parks ([`Claim::Park`]);
    /// otherwise it spins if the pool still spins ([`Claim::Spin`]).
    ///
    /// Cost: two relaxed loads and, when it applies, one relaxed read-modify-write (plus one
    /// to undo it if the spinner places are taken); with a sleeping awaiter, one `getcpu` and
    /// a few relaxed loads and stores more.
    fn announce_spinner(&self, awaiter_cpu: Option<u32>) {
        // Relaxed: `queued`, `spin_score` and `spinning` are hints, as in `spin_for_work`.
        if self.queued.load(Ordering::Relaxed) > 0 {
            return;
        }
        let place = awaiter_cpu
            .filter(|_| self.config.placement)
            .zip(placement::current_cpu())
            .map(|(awaiter, here)| self.explorer.place(here, awaiter));
        let claim = match place {
            Some(Place::Together) => Claim::Yield,
            Some(Place::ApartPark) => {
                CLAIM.set(Claim::Park);
                return;
            }
            Some(Place::ApartSpin) | None if self.spin_budget().is_zero() => return,
            Some(Place::ApartSpin) | None => Claim::Spin,
        };
        if self.spinning.fetch_add(1, Ordering::Relaxed) < self.config.max_spinners {
            CLAIM.set(claim);
        } else {
            self.spinning.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Takes back [`announce_spinner`](Self::announce_spinner) before this worker does
    /// something that may wait (dropping an outcome nobody awaits, entering a blocking wait):
    /// jobs submitted meanwhile must not count on it.
    fn withdraw_announcement(&self) {
        if matches!(CLAIM.replace(Claim::None), Claim::Spin | Claim::Yield) {
            // Relaxed: as in `spin_for_work`, the lock `untaken` is read under orders it.
            self.spinning.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The spin of a worker that [announced](Self::announce_spinner) it: [`spin_for_work`]'s
    /// without the increment, which was done then.
    ///
    /// [`spin_for_work`]: Self::spin_for_work
    fn spin_announced(&self) {
        // The announcement decided to spin (the score was above zero, or it was a probe).
        self.spin_counted(self.full_spin());
        // Before the lock is taken again: pairs with the load in `submit`.
        self.spinning.fetch_sub(1, Ordering::Relaxed);
    }

    /// The pool's full spin budget: the builder's, or the measured one.
    fn full_spin(&self) -> Duration {
        match self.config.spin {
            Some(budget) => budget,
            None => {
                backoff::calibrate();
                backoff::spin_budget()
            }
        }
    }

    /// Records whether a spin would have paid: one step up or down of the score.
    fn score(&self, won: bool) {
        // Relaxed: a heuristic score; no data is published through it.
        let _ = self
            .spin_score
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| match won {
                true if s < SCORE_MAX => Some(s + 1),
                false if s > 0 => Some(s - 1),
                _ => None,
            });
    }

    fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        // `None`: a timeout too long to express as an `Instant` (`Duration::MAX`) never runs out.
        let deadline = Instant::now().checked_add(timeout);
        let mut st = self.lock();
        let mut cancelled = Vec::new();
        if !st.shutdown {
            st.shutdown = true;
            self.shutdown.store(true, Ordering::Relaxed);
            let before = st.queue.len();
            cancelled.extend(st.queue.drain(..));
            self.set_queued(before, 0);
            self.work_cv.notify_all();
        }
        drop(st);
        if let Some(gate) = &self.gate {
            // Waiting submitters learn of the shutdown; their jobs fail with `Shutdown`.
            gate.close();
        }
        let cancelled_queued = cancelled.len();
        for q in cancelled {
            q.job.fail(JoinError::Shutdown);
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

/// Future of [`Pool::reserve`]: waits for a place in a bounded queue.
///
/// Dropping it gives up its turn; a place already granted to it passes to the next waiter.
#[must_use = "futures do nothing unless polled"]
pub struct Reserve {
    /// `None` once resolved.
    shared: Option<Arc<Shared>>,
    waiter: Waiter,
}

impl fmt::Debug for Reserve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reserve")
            .field("waiter", &self.waiter)
            .finish_non_exhaustive()
    }
}

impl Reserve {
    /// Polls for a place without consuming the future (for callers that own it by value).
    pub(crate) fn poll_place(&mut self, cx: &mut Context<'_>) -> Poll<Permit> {
        let Some(shared) = self.shared.as_ref() else {
            panic!("Reserve polled after it completed");
        };
        let place = match &shared.gate {
            None => false,
            Some(gate) => match gate.poll_enter(&mut self.waiter, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => true,
                // Shut down: the permit's job fails with `Shutdown`.
                Poll::Ready(Err(_)) => false,
            },
        };
        Poll::Ready(Permit {
            shared: self.shared.take(),
            place,
        })
    }
}

impl Future for Reserve {
    type Output = Permit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        self.get_mut().poll_place(cx)
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        if let Some(gate) = self.shared.as_ref().and_then(|s| s.gate.as_ref()) {
            gate.cancel(&mut self.waiter);
        }
    }
}

/// A place in a pool's queue, granted by [`Pool::reserve`]: [`spawn`](Self::spawn) queues one
/// job into it. Dropping an unused permit gives the place back (to the next waiter).
#[must_use = "dropping a Permit gives its place back unused"]
pub struct Permit {
    shared: Option<Arc<Shared>>,
    /// Whether it holds a place of the gate (false on unbounded or shut-down pools).
    place: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("place", &self.place)
            .finish_non_exhaustive()
    }
}

impl Permit {
    /// Queues `f` into the place this permit holds and returns the handle of its result.
    ///
    /// # Examples
    /// See [`Pool::reserve`].
    pub fn spawn<F, R>(mut self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let shared = self.shared.take().expect("a permit is used once");
        shared.spawn_with_place(f, core::mem::take(&mut self.place))
    }

    /// Queues a job made elsewhere (a stream's producer) into this permit's place.
    pub(crate) fn submit(mut self, job: Arc<dyn Runnable>) {
        let shared = self.shared.take().expect("a permit is used once");
        let _ = shared.submit(job, core::mem::take(&mut self.place));
    }

    /// The pool this permit queues into.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone().expect("a permit is used once")
    }

    /// The link jobs for this permit's pool keep to its queue.
    pub(crate) fn link(&self) -> QueueLink {
        self.shared
            .as_ref()
            .map_or_else(QueueLink::default, Shared::link)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.place {
            if let Some(gate) = self.shared.as_ref().and_then(|s| s.gate.as_ref()) {
                gate.leave();
            }
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
    /// `spawn` never waits and never refuses: on a pool with a bounded queue
    /// ([`Builder::max_queued`]) that is full, the job is queued past the bound. Submitters
    /// that should wait for a place use [`reserve`](Self::reserve) (an awaited
    /// [`Call`](crate::Call) does so by itself); [`try_spawn`](Self::try_spawn) refuses
    /// instead. After [`shutdown`](Self::shutdown), awaiting the handle gives
    /// [`JoinError::Shutdown`].
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
        let shared = &self.owner.shared;
        let place = shared.force_place();
        shared.spawn_with_place(f, place)
    }

    /// Submits `f` only if it can be queued right now.
    ///
    /// # Errors
    /// [`TrySpawnError::Shutdown`] after [`shutdown`](Self::shutdown),
    /// [`TrySpawnError::Full`] when a bounded queue is full (or submitters wait for a place
    /// already: nobody jumps the line); both hand `f` back.
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
        if shared.shutdown.load(Ordering::Relaxed) {
            return Err(TrySpawnError::Shutdown(f));
        }
        let place = match &shared.gate {
            None => false,
            Some(gate) => match gate.try_enter() {
                Ok(true) => true,
                Ok(false) => return Err(TrySpawnError::Full(f)),
                Err(_) => return Err(TrySpawnError::Shutdown(f)),
            },
        };
        Ok(shared.spawn_with_place(f, place))
    }

    /// Waits for a place in this pool's queue: the future resolves to a [`Permit`] that
    /// submits one job into the place it holds. This is how a submitter feels the
    /// backpressure of a bounded queue ([`Builder::max_queued`]) without blocking a thread;
    /// on an unbounded pool it is ready at once.
    ///
    /// Places go to waiting submitters in arrival order, one freed place to one waiter.
    /// Cancel-safe: dropping the future gives up its turn (a place already granted to it goes
    /// to the next waiter); polling it from another task moves the wake-up there.
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder().max_threads(1).max_queued(Some(2)).build();
    /// futures::executor::block_on(async {
    ///     let permit = pool.reserve().await;
    ///     assert_eq!(permit.spawn(|| 40 + 2).await, 42);
    /// });
    /// ```
    pub fn reserve(&self) -> Reserve {
        Reserve {
            shared: Some(self.owner.shared.clone()),
            waiter: Waiter::default(),
        }
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

    /// Whether the queue is bounded ([`Builder::max_queued`]).
    ///
    /// # Examples
    /// ```
    /// assert!(!aiothreads::Pool::new().is_bounded());
    /// ```
    pub fn is_bounded(&self) -> bool {
        self.owner.shared.gate.is_some()
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
    /// a keep-alive of 10 s, an unbounded queue, and a worker spin of about one wake-up cycle
    /// of this machine (measured once per process, 5–100 µs; 20 µs until measured).
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
                spin: None,
                max_spinners: cpus(),
                placement: true,
            },
        }
    }

    /// The most threads the pool runs at once. The pool starts with none and grows on backlog.
    ///
    /// A worker asleep in one of this crate's blocking waits (`sync_await` and its family,
    /// [`block_on`](crate::block_on), a blocking iterator's `next()`, a full channel's `put`)
    /// does not count: while it sleeps, queued jobs get another worker, so jobs that wait for
    /// other calls on their own pool cannot take every thread and starve those calls. When
    /// such waits end the pool may run more than `n` jobs at once for a while; a worker that
    /// finds the pool over its bound exits after its current job. Waits of other code (a
    /// `Mutex`, `std::sync::mpsc`, I/O) count as running. `max_threads(1)` therefore does not
    /// make jobs mutually exclusive: while one waits in those calls, the next may start.
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
    /// The bound holds for submitters that can wait or be refused, and no thread is ever
    /// blocked for it:
    /// - an awaited [`Call`](crate::Call) (what `#[threaded]` functions return), a stream's
    ///   producer and [`Pool::reserve`] wait as `Pending` until a place is granted to them —
    ///   in arrival order, one freed place to one waiter; a waiter dropped while it waits
    ///   gives up its turn;
    /// - [`Pool::try_spawn`] refuses with [`TrySpawnError::Full`];
    /// - [`Pool::spawn`] and [`Call::call`](crate::Call::call) (which must return a handle at
    ///   once) queue past the bound; their jobs count against it while they wait.
    ///
    /// A job whose handle is dropped before it started leaves the queue at once and frees its
    /// place.
    ///
    /// A place granted to a waiter is held for it until its task polls it again. A task that
    /// blocks its thread while one of its own futures waits for a place (blocking inside one
    /// branch of a `join!`: `tokio::task::block_in_place`, a nested `block_on`) never takes
    /// the place it was granted, and every submitter after it waits too — a hang, as with
    /// tokio's semaphore in the same shape. Do not block a task that also waits for this
    /// pool's admission.
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

    /// How long a worker that ran out of work spins before it parks (zero parks at once). The
    /// default is about one timer-based sleep/wake cycle of this machine, measured once per
    /// process (a 1 µs `park_timeout`, timer slack included: about 58 µs on the AMD EPYC VM of
    /// PERFORMANCE.md; clamped to 5–100 µs; 20 µs until measured): spinning lets back-to-back calls skip the futex
    /// wake-up of a parked worker where that pays, and it is bounded, so an idle pool burns no
    /// CPU. The pool stops spinning once its spins keep running out (eight in a row, net of
    /// those that found work), and then spins one full budget in 16 chances, which brings the
    /// spin back when work arrives within it again (a spin cut short would only run out
    /// sooner: the wait it covers does not shrink with it). The same budget
    /// bounds how long a stream's producer on this pool, finding its queue full, spins for the
    /// consumer to free half of it before it gives its worker back (also adaptive; never while
    /// other jobs wait). A job a spinning worker takes at once is awaited by yielding for up
    /// to a quarter of the measured cycle (see the crate docs); with zero no worker spins, so
    /// no awaited job yields either. This is the crate's one spin knob.
    ///
    /// After a delivery to an awaiter that went to sleep, where the two threads run decides
    /// whether the worker spins at all ([`placement`](Self::placement), on by default on
    /// Linux). Without it, on the Intel Xeon VM of PERFORMANCE.md (idle vCPUs halt at once;
    /// waking a thread on one takes 30–40 µs) a worker spinning after its delivery stays on its
    /// vCPU, so the awaiting thread is woken on the other one, and 100 µs jobs took 1.14–1.3×
    /// as long per call as with `spawn_blocking`; with it, 0.902–0.905× in three full runs.
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder().spin(std::time::Duration::ZERO).build();
    /// # drop(pool);
    /// ```
    pub fn spin(mut self, spin: Duration) -> Self {
        self.config.spin = Some(spin);
        self
    }

    /// Whether a worker that delivers a result to an awaiter that went to sleep waits for
    /// that awaiter's next call according to where the two threads run (default: `true`;
    /// needs the `placement` feature, on by default, and Linux or Android; elsewhere it has no
    /// effect). On the awaiter's CPU the worker claims the next call and yields to the awaiter
    /// instead of spinning; on another CPU it parks instead of spinning while that brings the
    /// two onto one CPU, and spins again where it does not (see the feature in the README).
    /// `false`: workers spin after every delivery, as [`spin`](Self::spin) says, wherever the
    /// threads run; for example when the caller pins threads to CPUs itself.
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder().placement(false).build();
    /// # drop(pool);
    /// ```
    pub fn placement(mut self, on: bool) -> Self {
        self.config.placement = on;
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
            state: CachePadded::new(Mutex::new(State {
                queue: VecDeque::new(),
                shutdown: false,
                notified: 0,
                starting: 0,
                sleeping: 0,
                threads: 0,
                blocked: 0,
                next_id: 0,
                notified_at: Instant::now(),
            })),
            work_cv: Condvar::new(),
            exit_cv: Condvar::new(),
            queued: AtomicUsize::new(0),
            spinning: AtomicUsize::new(0),
            producer_spinning: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            gate: self.config.max_queued.map(Gate::new),
            spin_score: AtomicU32::new(SCORE_MAX),
            probe_tick: AtomicU32::new(0),
            explorer: Explorer::new(),
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

#[cfg(all(test, not(aiothreads_loom)))]
mod spinner_place_tests {
    use super::*;

    fn pool_with_spinners(max_spinners: usize) -> Pool {
        let mut builder = Builder::new().spin(Duration::from_micros(7));
        builder.config.max_spinners = max_spinners;
        builder.build()
    }

    #[test]
    fn a_producer_never_spins_on_the_last_cpu() {
        let pool = pool_with_spinners(1);
        assert_eq!(pool.owner.shared.with_spinner_place(|_| ()), None);
    }

    #[test]
    fn a_producer_spins_with_the_pools_budget_where_a_place_is_left() {
        let pool = pool_with_spinners(3);
        let shared = &pool.owner.shared;
        assert_eq!(
            shared.with_spinner_place(|budget| budget),
            Some(Duration::from_micros(7))
        );
        // Two producers may spin at once (3 spinners, one CPU left), not a third.
        let nested = shared.with_spinner_place(|_| {
            shared.with_spinner_place(|_| shared.with_spinner_place(|_| ()))
        });
        assert_eq!(nested, Some(Some(None)));
        // Idle workers that spin take places too.
        shared.spinning.store(2, Ordering::Relaxed);
        assert_eq!(shared.with_spinner_place(|_| ()), None);
        shared.spinning.store(0, Ordering::Relaxed);
        assert_eq!(shared.producer_spinning.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_producer_never_spins_while_jobs_are_queued() {
        let pool = pool_with_spinners(3);
        let shared = &pool.owner.shared;
        shared.queued.store(1, Ordering::Relaxed);
        assert_eq!(shared.with_spinner_place(|_| ()), None);
        shared.queued.store(0, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(aiothreads_loom)))]
mod spin_policy_tests {
    use super::*;

    /// All or nothing: the full budget while the score is above zero; at zero, one probe of
    /// the full budget in `PROBE_EVERY` decisions, and a probe that finds work restores the
    /// spin.
    #[test]
    fn a_pool_that_stopped_spinning_probes_and_recovers() {
        let full = Duration::from_millis(1);
        let pool = Builder::new().spin(full).build();
        let shared = &pool.owner.shared;
        assert_eq!(
            shared.spin_budget(),
            full,
            "a new pool spins the full budget"
        );
        for _ in 0..SCORE_MAX {
            shared.score(false);
        }
        assert_eq!(shared.spin_score.load(Ordering::Relaxed), 0);
        let budgets: Vec<Duration> = (0..2 * PROBE_EVERY).map(|_| shared.spin_budget()).collect();
        assert!(
            budgets.iter().all(|b| b.is_zero() || *b == full),
            "{budgets:?}"
        );
        assert_eq!(
            budgets.iter().filter(|b| **b == full).count(),
            2,
            "one probe in {PROBE_EVERY}"
        );
        shared.score(true);
        assert_eq!(
            shared.spin_budget(),
            full,
            "a probe that found work restores the spin"
        );
        shared.score(false);
        assert!(
            (0..PROBE_EVERY - 1).any(|_| shared.spin_budget().is_zero()),
            "back at zero: no spin between probes"
        );
    }
}

#[cfg(all(test, not(aiothreads_loom)))]
mod queued_flag_tests {
    use super::*;
    use std::sync::mpsc;

    /// `queued` is written only when the queue turns empty or non-empty: it must still be
    /// non-zero exactly while jobs wait, through submissions, withdrawals, pops and shutdown.
    #[test]
    fn queued_is_nonzero_exactly_while_jobs_wait() {
        let pool = Builder::new()
            .max_threads(1)
            .max_queued(Some(8))
            .spin(Duration::ZERO)
            .build();
        let shared = pool.owner.shared.clone();
        let queued = || shared.queued.load(Ordering::Relaxed) != 0;
        let block = |pool: &Pool| {
            let (started_tx, started) = mpsc::channel();
            let (release, release_rx) = mpsc::channel::<()>();
            let h = pool.spawn(move || {
                started_tx.send(()).unwrap();
                let _ = release_rx.recv();
            });
            started.recv().unwrap();
            (h, release)
        };

        let (blocker, release) = block(&pool);
        assert!(!queued(), "the worker took the only job");
        let h1 = pool.spawn(|| 1);
        let h2 = pool.spawn(|| 2);
        let h3 = pool.spawn(|| 3);
        assert!(queued());
        drop(h2); // withdrawn from the middle
        assert!(queued());
        drop(h1);
        assert!(queued(), "one job still waits");
        drop(h3);
        assert!(!queued(), "the last withdrawal emptied the queue");
        let h4 = pool.spawn(|| 4);
        let h5 = pool.spawn(|| 5);
        assert!(queued());
        release.send(()).unwrap();
        crate::block_on(blocker);
        assert_eq!(crate::block_on(h4), 4);
        assert_eq!(crate::block_on(h5), 5);
        assert!(!queued(), "the worker emptied the queue");

        let (_blocker, _release) = block(&pool);
        let h6 = pool.spawn(|| 6);
        assert!(queued());
        let report = pool.shutdown(Duration::ZERO);
        assert!(!queued(), "shutdown emptied the queue: {report:?}");
        drop(h6);
    }
}

#[cfg(all(test, not(aiothreads_loom)))]
mod await_yield_tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::task::{Wake, Waker};

    /// Counts wake-ups given by the test's own thread (yields) and by others.
    struct Counting {
        home: thread::ThreadId,
        own: AtomicU64,
        foreign: AtomicU64,
    }

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            let counter = if thread::current().id() == self.home {
                &self.own
            } else {
                &self.foreign
            };
            counter.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A pool with one idle worker spinning (for up to 10 s) when this returns. Its first job
    /// is detached: a delivery to a sleeping awaiter may make the worker park instead
    /// (`placement.rs`), one with nobody waiting never does.
    fn pool_with_a_spinner() -> Pool {
        let mut builder = Builder::new().spin(Duration::from_secs(10));
        builder.config.max_spinners = 2;
        let pool = builder.build();
        pool.spawn(|| ()).detach();
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.owner.shared.spinning.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "no worker started spinning");
            thread::sleep(Duration::from_millis(1));
        }
        pool
    }

    #[test]
    fn a_job_taken_by_a_spinner_is_awaited_by_yielding_then_sleeping_and_the_thread_learns() {
        let pool = pool_with_a_spinner();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let mut handle = pool.spawn(move || wait.recv().map(|()| 5));
        assert!(
            handle.is_yielding(),
            "a spinner took it: yield while it runs"
        );

        let counts = Arc::new(Counting {
            home: thread::current().id(),
            own: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
        });
        let waker = Waker::from(counts.clone());
        let mut cx = Context::from_waker(&waker);
        // Each pending poll inside the window wakes its own task and registers nothing; the
        // first one after it registers the waker (no self-wake), and the handle stops yielding.
        let mut yields = 0;
        loop {
            let before = counts.own.load(Ordering::SeqCst);
            assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
            if counts.own.load(Ordering::SeqCst) == before {
                break;
            }
            yields += 1;
        }
        assert!(yields >= 1, "the first poll yields");
        assert!(!handle.is_yielding(), "the window is over: it sleeps now");
        // The job outlasted the window: this thread's next awaits sleep at once.
        assert!(!backoff::await_should_yield());

        release.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while counts.foreign.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "the completion never woke the task"
            );
            thread::sleep(Duration::from_millis(1));
        }
        assert!(matches!(
            Pin::new(&mut handle).poll(&mut cx),
            Poll::Ready(Ok(5))
        ));
    }

    /// Runs `case` on a thread of its own: a fresh thread has not learnt anything yet (the
    /// yield policy is per thread), so a spinner-taken job is awaited by yielding there.
    fn on_a_fresh_thread(case: impl FnOnce() + Send) {
        thread::scope(|s| s.spawn(case).join().unwrap());
    }

    #[test]
    fn a_yielding_handle_delivers_values_panics_and_cancels() {
        on_a_fresh_thread(|| {
            let pool = pool_with_a_spinner();
            let handle = pool.spawn(|| 7);
            assert!(handle.is_yielding());
            assert_eq!(crate::block_on(handle), 7);
        });
        on_a_fresh_thread(|| {
            let pool = pool_with_a_spinner();
            let handle = pool.spawn(|| -> u8 { panic!("inside a yielding wait") });
            assert!(handle.is_yielding());
            let err = crate::block_on(handle.try_join()).unwrap_err();
            assert_eq!(err.panic_message(), Some("inside a yielding wait"));
        });
        // Dropped while it yields: the job sees the cancellation.
        on_a_fresh_thread(|| {
            let pool = pool_with_a_spinner();
            let (started_tx, started) = std::sync::mpsc::channel();
            let (saw_tx, saw) = std::sync::mpsc::channel();
            let mut handle = pool.spawn(move || {
                started_tx.send(()).unwrap();
                while !crate::is_cancelled() {
                    thread::sleep(Duration::from_millis(1));
                }
                saw_tx.send(()).unwrap();
            });
            assert!(handle.is_yielding());
            assert!(Pin::new(&mut handle)
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending());
            started.recv().unwrap();
            drop(handle);
            saw.recv_timeout(Duration::from_secs(10))
                .expect("the running job saw its handle dropped");
        });
    }
}
