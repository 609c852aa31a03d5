//! A pool stream's producer that holds no thread while it waits: [`PoolStreamJob`].
//!
//! The producer runs its iterator on a worker **only while the ring has room**. When the ring
//! is full it registers a waker with the ring, leaves its state (the iterator, the ring's
//! producer half, the captured context) beside the ring, and returns the worker to the pool.
//! The waker *is* the job: when the consumer has freed half the ring (the ring's lazy
//! checkpoint) or closed it, waking it re-submits the job to the pool. No thread ever parks
//! for backpressure, so a stream costs a worker only while `next()` runs or the ring has room.
//!
//! # The protocol (one mutex, one ending)
//! [`Stage`] is the job's state under its mutex; whoever moves it does so under the lock, so
//! every transition has one winner:
//!
//! | stage | who leaves it | to |
//! |---|---|---|
//! | `Queued(work)` (in the pool's queue) | a worker's `run` | `Running` |
//! | | `fail` (shutdown, no thread) / the consumer withdrawing a job that never ran | `Done` |
//! | `Running { notified }` | the runner: ring full and not `notified` | `Parked(work)` |
//! | | the runner: ring full but `notified` (a wake came while it ran) | runs on |
//! | | the runner: a ring's worth pushed while other jobs wait (fairness) | `Queued`, resubmitted |
//! | | the runner: iterator done, consumer gone, panic | `Done` |
//! | `Parked(work)` | the waker (the consumer freed room, or closed the ring) | `Queued`, resubmitted |
//!
//! A wake while `Running` sets `notified`, so a wake-up between the runner's last look at the
//! ring and its parking is never lost. The ending is written as for every stream: outcome
//! first (after the iterator was dropped, on the worker), then the ring's producer half is
//! dropped, which closes the ring.
//!
//! # Waiting for room: a short spin first
//! Parking costs a cycle of its own: the stage lock, the worker handed back, and on resume the
//! consumer's wake-up (a lock and a pool submission on the *consumer's* thread) and the job's
//! set-up on a worker again. A consumer that keeps up frees the half ring it needs in a few
//! µs, less than that cycle. So a producer that finds the ring full first spins, up to the
//! pool's spin budget (`Builder::spin`, by default this machine's measured wake-up cost, see
//! `backoff.rs`), until half the ring is free, and parks only if that does not come. The spin
//! is adaptive ([`Adaptive`]): after a wait that outlasted the budget (a slow consumer) the
//! producer parks at once, probing with a spin after 16 waits, then ever more rarely (up to
//! once per 256 waits) while probes fail. And it spins only where the pool has room for
//! one more spinner (`Shared::with_spinner_place`): never while other jobs wait for a worker,
//! and never on the last CPU, which is left to the consumer it waits for.
//!
//! # Cost
//! Per item: as a parked producer's (`iterable.rs`); the room check registers no waker while
//! the ring has room. Per suspension: one lock, one waker registration, and the worker goes
//! back to the pool. Per resume: one lock and one pool submission (about once per half ring,
//! not per item). No allocation after the first run: the waker is the job's own `Arc`.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use crate::backoff::Adaptive;
use crate::queue::Tx;
use aiothreads_core::ring::SendIterEnd;
use aiothreads_core::slot::Slot;

use crate::cancel::{self, Cancel};
use crate::context::Captured;
use crate::iterable::{IterFn, StreamEnd};
use crate::pool::Shared;
use crate::task::{drop_quietly, job_addr, Delivery, JoinError, QueueLink, Runnable};

/// What a producer needs to go on, kept beside the ring between runs.
struct Work<F: IterFn> {
    producer: Producing<F>,
    captured: Captured,
}

/// The iterator side of [`Work`] (apart from the context, which is entered around it).
struct Producing<F: IterFn> {
    /// The function, until the first run makes the iterator.
    f: Option<F>,
    iter: Option<F::IntoIter>,
    tx: Tx<F::Item>,
    /// Whether waiting for room by spinning has paid lately (see "Waiting for room").
    room_wait: Adaptive,
}

/// The job's state; see the module docs.
enum Stage<F: IterFn> {
    Queued(Work<F>),
    Running { notified: bool },
    Parked(Work<F>),
    Done,
}

/// How a run of the producer ended.
enum Segment {
    /// The iterator is exhausted, or the consumer closed the ring.
    Finished,
    /// The ring is full; the waker is registered.
    Full,
    /// A ring's worth was pushed and other jobs wait: give the worker back.
    Yield,
}

/// A pool stream's producer job. See the [module docs](self).
pub(crate) struct PoolStreamJob<F: IterFn> {
    stage: Mutex<Stage<F>>,
    outcome: Slot<Result<(), JoinError>>,
    /// Set by the consumer when it drops or closes the stream.
    consumer_gone: AtomicBool,
    /// The first submission's link to a bounded queue (a never-run job withdrawn by the
    /// consumer leaves it at once).
    link: QueueLink,
    /// Where it is resubmitted.
    pool: Arc<Shared>,
    /// Items pushed per run before the worker is offered back to other jobs.
    batch: usize,
}

impl<F> PoolStreamJob<F>
where
    F: IterFn,
    F::IntoIter: Send,
{
    /// A job producing `f`'s items into `tx`, to be submitted to `pool`.
    pub(crate) fn new(
        f: F,
        tx: Tx<F::Item>,
        link: QueueLink,
        pool: Arc<Shared>,
        batch: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            stage: Mutex::new(Stage::Queued(Work {
                producer: Producing {
                    f: Some(f),
                    iter: None,
                    tx,
                    room_wait: Adaptive::new(),
                },
                captured: Captured::capture(),
            })),
            outcome: Slot::new(),
            consumer_gone: AtomicBool::new(false),
            link,
            pool,
            batch: batch.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Stage<F>> {
        self.stage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the outcome, then closes the ring. The iterator (if any) is dropped first, here.
    fn finish(&self, work: Work<F>, outcome: Result<(), JoinError>) {
        let Work {
            producer: Producing { f, iter, tx, .. },
            mut captured,
        } = work;
        // The iterator's `Drop` is user code: a panic there is the stream's failure. It runs in
        // the stream's context, as the iterator did (and as a separate thread's producer drops
        // its iterator inside its job's context).
        let dropped = panic::catch_unwind(AssertUnwindSafe(|| {
            captured.enter(move || drop((iter, f)));
        }));
        drop_quietly(captured);
        // Also when the consumer closed the stream (`Cancelled`): `close()` reports a panic in
        // the iterator's `Drop`, as it does for a producer on a separate thread.
        let outcome = match (outcome, dropped) {
            (Ok(()) | Err(JoinError::Cancelled), Err(payload)) => Err(JoinError::Panicked(payload)),
            (outcome, _) => outcome,
        };
        // The slot is written once (only the winner of the stage writes it); a waker that
        // panics is reported by the panic hook.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| self.outcome.send(outcome)));
        drop(tx);
    }

    /// Runs the iterator while the ring has room.
    fn segment(&self, producing: &mut Producing<F>, cx: &mut Context<'_>) -> Segment {
        let Producing {
            f,
            iter,
            tx,
            room_wait,
        } = producing;
        let iter = match iter {
            Some(iter) => iter,
            None => iter.insert(f.take().expect("a fresh job has its function").make()),
        };
        // Items sent since the worker was last offered back.
        let mut pushed = 0;
        loop {
            let (sent, end) = tx.send_iter(iter, self.batch - pushed);
            pushed += sent;
            match end {
                SendIterEnd::Exhausted | SendIterEnd::Closed => return Segment::Finished,
                SendIterEnd::Limit => {
                    if self.pool.has_queued() {
                        return Segment::Yield;
                    }
                    pushed = 0;
                }
                SendIterEnd::Full => match tx.poll_ready(cx) {
                    // Room was freed meanwhile (half a ring: the consumer's checkpoint).
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_closed)) => return Segment::Finished,
                    Poll::Pending => {
                        // Full (the waker is registered): spin for half a ring of room before
                        // parking (see "Waiting for room") if the pool has a spinner's place.
                        let spin = |budget| room_wait.spin(budget, || tx.room_wait_over());
                        if self.pool.with_spinner_place(spin) != Some(true) {
                            return Segment::Full;
                        }
                    }
                },
            }
        }
    }
}

impl<F> Cancel for PoolStreamJob<F>
where
    F: IterFn,
    F::IntoIter: Send,
{
    fn is_cancelled(&self) -> bool {
        self.consumer_gone.load(Ordering::Relaxed)
    }
}

impl<F> Runnable for PoolStreamJob<F>
where
    F: IterFn,
    F::IntoIter: Send,
{
    fn run(self: Arc<Self>, _delivering: &dyn Fn(Delivery)) {
        let mut work = {
            let mut stage = self.lock();
            match std::mem::replace(&mut *stage, Stage::Running { notified: false }) {
                Stage::Queued(work) => work,
                other => {
                    // Withdrawn or failed meanwhile: nothing to run.
                    *stage = other;
                    return;
                }
            }
        };
        let waker = Waker::from(self.clone());
        let mut cx = Context::from_waker(&waker);
        loop {
            if self.consumer_gone.load(Ordering::Relaxed) {
                *self.lock() = Stage::Done;
                return self.finish(work, Err(JoinError::Cancelled));
            }
            let segment = {
                let _current = cancel::enter(self.clone());
                // The context is entered per run (`Captured::enter` is reusable).
                let Work { producer, captured } = &mut work;
                panic::catch_unwind(AssertUnwindSafe(|| {
                    captured.enter(|| self.segment(producer, &mut cx))
                }))
            };
            let mut stage = self.lock();
            match segment {
                Err(payload) => {
                    *stage = Stage::Done;
                    drop(stage);
                    return self.finish(work, Err(JoinError::Panicked(payload)));
                }
                Ok(Segment::Finished) => {
                    *stage = Stage::Done;
                    drop(stage);
                    return self.finish(work, Ok(()));
                }
                Ok(Segment::Full) => {
                    if let Stage::Running { notified: true } = *stage {
                        // Room was freed while we looked: go on here.
                        *stage = Stage::Running { notified: false };
                        continue;
                    }
                    *stage = Stage::Parked(work);
                    return;
                }
                Ok(Segment::Yield) => {
                    *stage = Stage::Queued(work);
                    drop(stage);
                    let pool = self.pool.clone();
                    let _ = pool.submit(self, false);
                    return;
                }
            }
        }
    }

    fn fail(&self, err: JoinError) {
        let work = {
            let mut stage = self.lock();
            match std::mem::replace(&mut *stage, Stage::Done) {
                Stage::Queued(work) | Stage::Parked(work) => work,
                other => {
                    *stage = other;
                    return;
                }
            }
        };
        self.finish(work, Err(err));
    }
}

impl<F> Wake for PoolStreamJob<F>
where
    F: IterFn,
    F::IntoIter: Send,
{
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    /// The consumer freed room (or closed the ring): a parked producer goes back to the
    /// pool; a running one is told to look again before it parks.
    fn wake_by_ref(self: &Arc<Self>) {
        let mut stage = self.lock();
        match std::mem::replace(&mut *stage, Stage::Done) {
            Stage::Parked(work) => {
                *stage = Stage::Queued(work);
                drop(stage);
                let _ = self.pool.submit(self.clone(), false);
            }
            Stage::Running { .. } => *stage = Stage::Running { notified: true },
            other => *stage = other,
        }
    }
}

impl<F> StreamEnd for PoolStreamJob<F>
where
    F: IterFn,
    F::IntoIter: Send,
{
    fn outcome(&self) -> &Slot<Result<(), JoinError>> {
        &self.outcome
    }

    /// A producer that never ran is withdrawn here (nothing runs); a parked or running one
    /// learns it through the ring's close (which wakes a parked one back onto a worker) and
    /// drops its iterator there.
    fn withdraw(&self) {
        // Relaxed: a hint for `is_cancelled()` and the runner's check; the ring's close (and
        // the stage mutex) is what orders the ending.
        self.consumer_gone.store(true, Ordering::Relaxed);
        let work = {
            let mut stage = self.lock();
            match std::mem::replace(&mut *stage, Stage::Done) {
                Stage::Queued(work) if work.producer.iter.is_none() => work,
                other => {
                    *stage = other;
                    return;
                }
            }
        };
        self.finish(work, Err(JoinError::Cancelled));
        self.link.withdrawn(job_addr(self));
    }
}
