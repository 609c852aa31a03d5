//! Fault injection: thread spawn failure, panicking `Drop`s, panicking wakers, a runtime that
//! goes away under `sync_await`, shutdown with streams in flight. Each fault must end with a
//! clear error to the caller and no hang, and the pool must keep its workers: every test is
//! bounded by a timeout that fails it.
#![allow(clippy::manual_inspect)] // the iterators under test hold guards inside `map`

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use aiothreads::{IterCall, JoinError, Pool, SyncAwaitError};
use aiothreads_tests::wait_until;
use futures::executor::block_on;
use futures::{FutureExt, StreamExt};

const LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on its own thread; fails the test if it takes longer than [`LIMIT`].
fn bounded<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    aiothreads_tests::with_timeout(what, LIMIT, f)
}

fn message(payload: &(dyn Any + Send)) -> String {
    aiothreads_tests::panic_message(payload)
}

/// Waits (bounded) for `cond`; fails the test naming `what` otherwise.
fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    assert!(
        wait_until(Duration::from_secs(10), cond),
        "timed out waiting for {what}"
    );
}

/// A gate a job waits on (bounded, so a failing test cannot leave a thread behind forever).
#[derive(Clone, Default)]
struct Gate(Arc<AtomicBool>);
impl Gate {
    fn open(&self) {
        self.0.store(true, SeqCst);
    }
    fn wait(&self) {
        let start = Instant::now();
        while !self.0.load(SeqCst) && start.elapsed() < LIMIT {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A waker whose `wake` panics (after counting the call).
struct PanickingWaker(AtomicUsize);
impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
        panic!("injected waker panic");
    }
}

fn panicking_waker() -> (Arc<PanickingWaker>, Waker) {
    let w = Arc::new(PanickingWaker(AtomicUsize::new(0)));
    (w.clone(), Waker::from(w))
}

/// Polls `fut` once with `waker`.
fn poll_with<F: std::future::Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

/// Polls until ready with a no-op waker (bounded).
fn poll_until_ready<F: std::future::Future + Unpin>(fut: &mut F) -> F::Output {
    let waker = futures::task::noop_waker();
    let start = Instant::now();
    loop {
        if let Poll::Ready(v) = poll_with(fut, &waker) {
            return v;
        }
        assert!(start.elapsed() < LIMIT, "never became ready");
        thread::sleep(Duration::from_millis(1));
    }
}

/// The pool still runs `max` jobs at once: all of them meet at a barrier.
fn assert_pool_intact(pool: &Pool, max: usize) {
    let barrier = Arc::new(std::sync::Barrier::new(max));
    let handles: Vec<_> = (0..max)
        .map(|i| {
            let b = barrier.clone();
            pool.spawn(move || {
                b.wait();
                i
            })
        })
        .collect();
    let got = block_on(futures::future::join_all(handles));
    assert_eq!(got, (0..max).collect::<Vec<_>>());
    assert!(pool.thread_count() <= max);
}

// ---- thread spawn failure ---------------------------------------------------------------------

#[test]
#[cfg_attr(
    miri,
    ignore = "Miri ignores the stack size: the spawn cannot be made to fail"
)]
fn spawn_failure_reaches_calls_and_streams() {
    bounded("spawn failure", || {
        // A stack no machine can give: `std::thread::Builder::spawn` fails every time.
        let pool = Pool::builder().stack_size(usize::MAX / 2).build();
        let handles: Vec<_> = (0..20).map(|i| pool.spawn(move || i)).collect();
        for h in handles {
            match block_on(h.try_join()) {
                Err(JoinError::SpawnFailed(e)) => assert!(!e.to_string().is_empty()),
                other => panic!("expected SpawnFailed, got {other:?}"),
            }
        }
        // A stream on that pool ends with the error.
        let items: Vec<_> = block_on(IterCall::new(|| 0..10).on(&pool).try_stream().collect());
        assert!(
            matches!(&items[..], [Err(JoinError::SpawnFailed(_))]),
            "{items:?}"
        );
        let f = aiothreads::threaded_iterable(|n: u32| 0..n).on(&pool);
        let items: Vec<_> = block_on(f.call(5).try_stream().collect());
        assert!(
            matches!(&items[..], [Err(JoinError::SpawnFailed(_))]),
            "{items:?}"
        );
        // The plain stream panics with the reason.
        let p = catch_unwind(|| block_on(IterCall::new(|| 0..10).on(&pool).count())).unwrap_err();
        let msg = message(&*p);
        assert!(
            msg.starts_with("threaded iterable failed: no thread could be started"),
            "{msg}"
        );
        assert_eq!(
            pool.thread_count(),
            0,
            "no thread is counted that did not start"
        );
    });
}

// ---- panicking Drop --------------------------------------------------------------------------

/// An item that counts its drops and panics in `Drop` when asked to.
struct Bomb {
    id: usize,
    panics: bool,
    drops: Arc<Vec<AtomicUsize>>,
}
impl Drop for Bomb {
    fn drop(&mut self) {
        self.drops[self.id].fetch_add(1, SeqCst);
        if self.panics {
            panic!("injected drop panic {}", self.id);
        }
    }
}

fn drop_counters(n: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect())
}

#[test]
fn panicking_item_drop_in_the_ring_when_the_consumer_drops_last() {
    bounded("drop panic, consumer side", || {
        let pool = Pool::builder().max_threads(1).build();
        let drops = drop_counters(4);
        let iter_done = Gate::default();
        let (d, done) = (drops.clone(), iter_done.clone());
        let mut s = IterCall::new(move || {
            let guard = OnDrop(done);
            (0..4).map(move |id| {
                let _ = &guard;
                Bomb {
                    id,
                    panics: id == 1,
                    drops: d.clone(),
                }
            })
        })
        .max_size(8)
        .on(&pool);
        let first = block_on(s.next()).unwrap();
        assert_eq!(first.id, 0);
        drop(first);
        // The producer finished: items 1, 2, 3 wait in the ring, owned by the consumer alone
        // once the producer half is dropped too — a few instructions after the iterator's
        // `Drop` (not observable from here; if the producer half were last, the items would
        // drop on the worker instead, which `make sanitize`'s slower threads once showed).
        wait_for("the producer to finish", || iter_done.0.load(SeqCst));
        std::thread::sleep(Duration::from_millis(100));
        let p = catch_unwind(AssertUnwindSafe(|| drop(s))).expect_err("the drop panic surfaces");
        assert_eq!(message(&*p), "injected drop panic 1");
        // Nothing dropped twice; the items after the panicking one are leaked, not dropped.
        let counts: Vec<usize> = drops.iter().map(|c| c.load(SeqCst)).collect();
        assert_eq!(&counts[..2], [1, 1]);
        assert!(counts.iter().all(|&c| c <= 1), "{counts:?}");
        assert_pool_intact(&pool, 1);
    });
}

/// Waits for its gate when dropped.
struct WaitOnDrop(Gate);
impl Drop for WaitOnDrop {
    fn drop(&mut self) {
        self.0.wait();
    }
}

/// Opens its gate when dropped.
struct OnDrop(Gate);
impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

#[test]
fn panicking_item_drop_in_the_ring_when_the_producer_drops_last() {
    bounded("drop panic, producer side", || {
        let pool = Pool::builder().max_threads(1).build();
        let drops = drop_counters(64);
        let made = Arc::new(AtomicUsize::new(0));
        let (iter_dropped, consumer_gone) = (Gate::default(), Gate::default());
        let (d, m, gate, gone) = (
            drops.clone(),
            made.clone(),
            iter_dropped.clone(),
            consumer_gone.clone(),
        );
        let mut s = IterCall::new(move || {
            // The iterator is dropped before the producer's half of the ring: holding its
            // `Drop` until the consumer is gone makes the producer's side the last owner.
            let guard = (OnDrop(gate), WaitOnDrop(gone));
            (0..64).map(move |id| {
                let _ = &guard;
                m.fetch_add(1, SeqCst);
                Bomb {
                    id,
                    panics: id == 1,
                    drops: d.clone(),
                }
            })
        })
        .max_size(2)
        .on(&pool);
        assert_eq!(block_on(s.next()).unwrap().id, 0);
        // Items 1 and 2 fill the ring; the producer waits for room before it makes item 3.
        wait_for("the producer to park", || made.load(SeqCst) == 3);
        thread::sleep(Duration::from_millis(20));
        // The consumer leaves first; the producer's side frees the ring, on the worker.
        drop(s);
        consumer_gone.open();
        wait_for("the iterator's drop", || iter_dropped.0.load(SeqCst));
        wait_for("item 1's drop", || drops[1].load(SeqCst) == 1);
        let counts: Vec<usize> = drops.iter().map(|c| c.load(SeqCst)).collect();
        assert_eq!(&counts[..2], [1, 1], "{counts:?}");
        assert!(counts.iter().all(|&c| c <= 1), "{counts:?}");
        assert_eq!(made.load(SeqCst), 3, "the producer stopped");
        // The worker caught the panic and lives on.
        assert_pool_intact(&pool, 1);
    });
}

#[test]
fn panicking_result_drop_in_the_slot() {
    bounded("drop panic in a slot", || {
        let pool = Pool::builder().max_threads(1).build();
        let drops = drop_counters(2);
        let worker = block_on(pool.spawn(|| thread::current().id()));

        // The handle is dropped while the job runs: the result is dropped on the worker,
        // whose panic is caught there.
        let (gate, started) = (Gate::default(), Gate::default());
        let (g, st, d) = (gate.clone(), started.clone(), drops.clone());
        let h = pool.spawn(move || {
            st.open();
            g.wait();
            Bomb {
                id: 0,
                panics: true,
                drops: d,
            }
        });
        wait_for("the job to start", || started.0.load(SeqCst));
        drop(h);
        gate.open();
        wait_for("the result's drop", || drops[0].load(SeqCst) == 1);
        assert_eq!(block_on(pool.spawn(|| thread::current().id())), worker);

        // The handle is dropped after the result arrived: the panic surfaces in the dropper,
        // once.
        let d = drops.clone();
        let h = pool.spawn(move || Bomb {
            id: 1,
            panics: true,
            drops: d,
        });
        wait_for("the result", || h.is_finished());
        let p = catch_unwind(AssertUnwindSafe(|| drop(h))).expect_err("drop panic");
        assert_eq!(message(&*p), "injected drop panic 1");
        assert_eq!(drops[1].load(SeqCst), 1);
        assert_eq!(block_on(pool.spawn(|| thread::current().id())), worker);
        assert_eq!(pool.thread_count(), 1);
    });
}

/// `detach` promises fire-and-forget: a finished job's result dropped inside it (the handle
/// held the last reference) must not unwind into the caller; found by a stress program whose
/// detaching task died of it.
#[test]
fn panicking_result_drop_after_detach_stays_out_of_the_caller() {
    bounded("drop panic after detach", || {
        let pool = Pool::builder().max_threads(1).build();
        let drops = drop_counters(2);
        for id in 0..2 {
            let d = drops.clone();
            let h = pool.spawn(move || Bomb {
                id,
                panics: true,
                drops: d,
            });
            wait_for("the result", || h.is_finished());
            if id == 1 {
                // Let the worker drop its reference, so that the handle's is the last one
                // (the other case, id 0, usually leaves the drop to the worker).
                thread::sleep(Duration::from_millis(50));
            }
            catch_unwind(AssertUnwindSafe(|| h.detach())).expect("detach() must not unwind");
            wait_for("the result's drop", || drops[id].load(SeqCst) == 1);
        }
        // From inside a task: the task lives on.
        let d = drops.clone();
        let out = block_on(async move {
            let h = aiothreads::spawn(move || Bomb {
                id: 0,
                panics: true,
                drops: d,
            });
            while !h.is_finished() {
                // Yield once: wake this task and return `Pending`.
                let mut yielded = false;
                futures::future::poll_fn(|cx| {
                    if std::mem::replace(&mut yielded, true) {
                        return Poll::Ready(());
                    }
                    cx.waker().wake_by_ref();
                    Poll::Pending
                })
                .await;
            }
            thread::sleep(Duration::from_millis(50));
            h.detach();
            "the task finished"
        });
        assert_eq!(out, "the task finished");
        assert_pool_intact(&pool, 1);
    });
}

#[test]
fn panicking_closure_drop_when_queued_jobs_are_cancelled() {
    bounded("closure drop panic at shutdown", || {
        let pool = Pool::builder().max_threads(1).build();
        let drops = drop_counters(3);
        let gate = Gate::default();
        let g = gate.clone();
        let blocker = pool.spawn(move || g.wait());
        wait_for("the blocker to run", || {
            format!("{pool:?}").contains("queued: 0")
        });
        // Queued behind the blocker: a job whose closure panics when dropped unrun, then an
        // ordinary one.
        let bomb = Bomb {
            id: 0,
            panics: true,
            drops: drops.clone(),
        };
        let a = pool.spawn(move || drop(bomb));
        let b = pool.spawn(|| 2);
        // Cancelling a queued job whose handle was dropped drops its closure on the worker.
        let bomb = Bomb {
            id: 1,
            panics: true,
            drops: drops.clone(),
        };
        drop(pool.spawn(move || drop(bomb)));
        // Shutdown fails the queued jobs: one closure's panic must not stop the others from
        // being failed, nor escape into the caller of `shutdown`.
        let report = catch_unwind(AssertUnwindSafe(|| pool.shutdown(Duration::ZERO)));
        let report = report.expect("shutdown does not panic");
        assert_eq!(report.cancelled_queued, 3);
        assert!(matches!(block_on(a.try_join()), Err(JoinError::Shutdown)));
        assert!(matches!(block_on(b.try_join()), Err(JoinError::Shutdown)));
        assert_eq!(drops[0].load(SeqCst), 1);
        assert_eq!(drops[1].load(SeqCst), 1);
        gate.open();
        block_on(blocker);
        assert_eq!(pool.shutdown(Duration::from_secs(5)).left_running, 0);
        assert_eq!(pool.thread_count(), 0);
    });
}

// ---- panicking waker -------------------------------------------------------------------------

/// A job of `pool` that returns 42 once the returned gate opens, and its result's future.
fn gated_42(pool: &Pool) -> (Gate, aiothreads::TryJoin<i32>) {
    let gate = Gate::default();
    let g = gate.clone();
    let job = pool.spawn(move || {
        g.wait();
        42
    });
    (gate, job.try_join())
}

/// A job of `pool` awaited with a waker that panics: its result is still delivered, and the
/// pool keeps its one worker. The first poll may itself panic if the handle yields (wakes its
/// own task) while a spinning worker runs the job; else the wake panics on the worker.
fn result_survives_a_panicking_waker(pool: &Pool) {
    let (gate, mut h) = gated_42(pool);
    let (count, waker) = panicking_waker();
    let first = catch_unwind(AssertUnwindSafe(|| poll_with(&mut h, &waker)));
    assert!(
        !matches!(first, Ok(Poll::Ready(_))),
        "the job waits at the gate"
    );
    gate.open();
    wait_for("the wake", || count.0.load(SeqCst) == 1);
    assert_eq!(
        poll_until_ready(&mut h).unwrap(),
        42,
        "the result is not lost"
    );
    assert_eq!(pool.thread_count(), 1);
}

#[test]
fn panicking_waker_of_an_awaiter_loses_no_result_and_no_worker() {
    bounded("waker panic in Slot::send", || {
        // No spinning worker: the handle registers its waker at the first poll, and the
        // worker's `Slot::send` stores the value, then the wake panics on the worker.
        let pool = Pool::builder().max_threads(1).spin(Duration::ZERO).build();
        let worker = block_on(pool.spawn(|| thread::current().id()));
        result_survives_a_panicking_waker(&pool);
        // Same worker, still alive.
        assert_eq!(block_on(pool.spawn(|| thread::current().id())), worker);
    });
}

#[test]
fn panicking_waker_of_an_awaiter_that_may_yield_loses_no_result() {
    bounded("waker panic, spinning worker", || {
        // A spinning worker (likely here) takes the job at once: the handle yields.
        let pool = Pool::builder().max_threads(1).build();
        block_on(pool.spawn(|| ()));
        result_survives_a_panicking_waker(&pool);
    });
}

#[test]
fn panicking_waker_waiting_for_admission_does_not_kill_the_worker() {
    bounded("waker panic in admission", || {
        let pool = Pool::builder().max_threads(1).max_queued(Some(1)).build();
        let gate = Gate::default();
        let g = gate.clone();
        let blocker = pool.spawn(move || {
            g.wait();
            0
        });
        wait_for("the blocker to run", || {
            format!("{pool:?}").contains("queued: 0")
        });
        let a = pool.spawn(|| 1); // takes the one place
        let mut b = aiothreads::Call::new(|| 2).on(&pool); // waits for a place at its first poll
        let (count, waker) = panicking_waker();
        assert!(poll_with(&mut b, &waker).is_pending());
        // The worker takes `a` and wakes `b`'s waker, which panics on the worker.
        gate.open();
        assert_eq!(block_on(blocker), 0);
        assert_eq!(block_on(a), 1, "the job taken before the wake still runs");
        wait_for("the wake", || count.0.load(SeqCst) >= 1);
        assert_eq!(poll_until_ready(&mut b), 2);
        assert_pool_intact(&pool, 1);
    });
}

/// A `FromThreadChannel` receiver whose waker panics: the panic does not come out on the
/// sender's thread (`put` and dropping the sender return normally, so a sender dropped while
/// unwinding cannot abort the process); the receiver raises it at a later poll, and no item
/// is lost.
#[test]
fn panicking_waker_of_a_channel_receiver_reaches_the_receiver() {
    bounded("channel waker panic", || {
        let (mut tx, mut rx) = aiothreads::FromThreadChannel::<u32>::new(4);
        let (count, waker) = panicking_waker();
        {
            let mut get = rx.get();
            assert!(poll_with(&mut get, &waker).is_pending());
        }
        let sender = thread::spawn(move || {
            let put = catch_unwind(AssertUnwindSafe(|| tx.put(1)));
            assert!(
                matches!(put, Ok(Ok(()))),
                "put: {:?}",
                put.map_err(|p| message(&*p))
            );
            let dropped = catch_unwind(AssertUnwindSafe(move || drop(tx)));
            assert!(dropped.is_ok(), "dropping the sender panicked");
        });
        sender.join().expect("the sender's thread");
        assert_eq!(
            count.0.load(SeqCst),
            1,
            "the receiver's waker was called once"
        );
        let (mut items, mut raised) = (Vec::new(), Vec::new());
        loop {
            let mut get = rx.get();
            match catch_unwind(AssertUnwindSafe(|| poll_until_ready(&mut get))) {
                Ok(Ok(item)) => items.push(item),
                Ok(Err(_closed)) => break,
                Err(payload) => raised.push(message(&*payload)),
            }
        }
        assert_eq!(items, [1], "no item is lost");
        assert_eq!(
            raised,
            ["injected waker panic"],
            "raised once, on the receiver's side"
        );
    });
}

#[test]
fn panicking_waker_of_a_stream_consumer() {
    bounded("waker panic in the ring", || {
        let pool = Pool::builder().max_threads(1).build();
        let gate = Gate::default();
        let iter_dropped = Arc::new(AtomicUsize::new(0));
        let (g, dropped) = (gate.clone(), iter_dropped.clone());
        let mut s = IterCall::new(move || {
            let guard = CountDrop(dropped);
            (0..3).map(move |i| {
                let _ = &guard;
                if i == 0 {
                    g.wait();
                }
                i
            })
        })
        .max_size(4)
        .on(&pool)
        .try_stream();
        let (count, waker) = panicking_waker();
        let mut next = s.next();
        assert!(poll_with(&mut next, &waker).is_pending());
        drop(next);
        // The producer's first push wakes the consumer: the wake panics in the producer.
        gate.open();
        wait_for("the wake", || count.0.load(SeqCst) == 1);
        let mut rest = Vec::new();
        loop {
            let mut next = s.next();
            match poll_until_ready(&mut next) {
                Some(item) => rest.push(item),
                None => break,
            }
        }
        // The item pushed before the wake is delivered; the producer's failure is the waker's
        // panic, reported once; the iterator was dropped once.
        assert!(matches!(rest[0], Ok(0)), "{rest:?}");
        assert_eq!(rest.len(), 2, "{rest:?}");
        match &rest[1] {
            Err(e @ JoinError::Panicked(_)) => {
                assert_eq!(e.panic_message(), Some("injected waker panic"))
            }
            other => panic!("expected the waker's panic, got {other:?}"),
        }
        assert_eq!(iter_dropped.load(SeqCst), 1);
        assert_pool_intact(&pool, 1);
    });
}

struct CountDrop(Arc<AtomicUsize>);
impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

// ---- the loop goes away under sync_await -----------------------------------------------------

#[test]
fn runtime_dropped_while_workers_sync_await_on_it() {
    bounded("runtime dropped under sync_await", || {
        let pool = Pool::builder().max_threads(3).build();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let waiting = Arc::new(AtomicUsize::new(0));
        // Submitted inside the runtime's context: each job captures it as its loop.
        let enter = rt.enter();
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let w = waiting.clone();
                pool.spawn(move || {
                    aiothreads::try_sync_await(async move {
                        w.fetch_add(1, SeqCst);
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    })
                })
            })
            .collect();
        drop(enter);
        wait_for("three futures on the loop", || waiting.load(SeqCst) == 3);
        let dropped_at = Instant::now();
        drop(rt);
        for h in handles {
            let r = block_on(h);
            assert!(matches!(r, Err(SyncAwaitError::LoopGone)), "{r:?}");
        }
        let took = dropped_at.elapsed();
        assert!(took < Duration::from_secs(5), "LoopGone took {took:?}");
        // The workers are free again.
        assert_pool_intact(&pool, 3);
    });
}

// ---- shutdown while streams are in flight ----------------------------------------------------

#[test]
fn shutdown_while_streams_are_mid_flight() {
    bounded("shutdown mid-stream", || {
        let pool = Pool::builder().max_threads(2).build();
        let iter_drops = Arc::new(AtomicUsize::new(0));
        // Iterators made (the `later` streams make theirs only if they started).
        let made_count = Arc::new(AtomicUsize::new(0));
        let make = |pool: &Pool| {
            let d = iter_drops.clone();
            let n = made_count.clone();
            IterCall::new(move || {
                n.fetch_add(1, SeqCst);
                let guard = CountDrop(d);
                (0u64..).map(move |i| {
                    let _ = &guard;
                    i
                })
            })
            .max_size(4)
            .on(pool)
            .try_stream()
        };
        // Two streams start; their producers fill their rings and give their workers back (no
        // thread is held by a backpressured pool stream), so two more start too.
        let mut running: Vec<_> = (0..2).map(|_| make(&pool)).collect();
        for s in &mut running {
            assert!(matches!(block_on(s.next()), Some(Ok(0))));
        }
        let mut later: Vec<_> = (0..2).map(|_| make(&pool)).collect();
        // The first poll starts each producer; if a worker was quick, it already returns item 0.
        let mut first_of_rest = Vec::new();
        for s in &mut later {
            let mut next = s.next();
            let got_first = matches!(
                poll_with(&mut next, &futures::task::noop_waker()),
                Poll::Ready(Some(Ok(0)))
            );
            first_of_rest.push(u64::from(got_first));
        }
        thread::sleep(Duration::from_millis(20));
        let report = pool.shutdown(Duration::from_millis(50));
        assert!(report.cancelled_queued <= 2, "{report:?}");
        assert!(report.left_running <= 2, "{report:?}");
        // A stream whose producer had not run, or suspended on a full ring, cannot go on on a
        // shut-down pool: it delivers, in order, what was made, then ends with `Shutdown`.
        for (mut s, first) in later.into_iter().zip(first_of_rest) {
            let rest: Vec<_> = block_on(s.by_ref().collect());
            let (last, items) = rest.split_last().expect("at least the ending");
            assert!(matches!(last, Err(JoinError::Shutdown)), "{rest:?}");
            for (i, item) in items.iter().enumerate() {
                assert!(matches!(item, Ok(v) if *v == i as u64 + first), "{rest:?}");
            }
        }
        let mut closed = running.pop().unwrap();
        let mut read = running.pop().unwrap();
        let rest: Vec<_> = block_on(read.by_ref().collect());
        let (last, items) = rest.split_last().expect("at least the ending");
        assert!(matches!(last, Err(JoinError::Shutdown)), "{rest:?}");
        for (i, item) in items.iter().enumerate() {
            assert!(matches!(item, Ok(v) if *v == i as u64 + 1), "{rest:?}");
        }
        assert!(matches!(block_on(closed.next()), Some(Ok(1))));
        let _ = block_on(closed.close());
        drop(closed);
        let report = pool.shutdown(Duration::from_secs(10));
        assert_eq!(report.left_running, 0);
        assert!(wait_until(Duration::from_secs(10), || pool.thread_count() == 0));
        let made = made_count.load(SeqCst);
        assert!(
            wait_until(Duration::from_secs(10), || iter_drops.load(SeqCst) == made),
            "each iterator made ({made}) dropped once: {}",
            iter_drops.load(SeqCst)
        );
        // A new stream on the shut-down pool fails at once.
        let items: Vec<_> = block_on(make(&pool).collect());
        assert!(
            matches!(&items[..], [Err(JoinError::Shutdown)]),
            "{items:?}"
        );
        // The plain future form too.
        let r = block_on(AssertUnwindSafe(pool.spawn(|| 1)).catch_unwind());
        assert_eq!(
            message(&*r.unwrap_err()),
            "the thread pool was shut down; the job did not run"
        );
    });
}

/// A waker that, woken on a pool worker, blocks in `aiothreads::block_on` for another call on
/// the same pool: a waker that runs its task in place, and the task blocks.
struct BlockingWaker {
    pool: Pool,
    got: AtomicUsize,
}
impl Wake for BlockingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let value = aiothreads::block_on(self.pool.spawn(|| 7));
        self.got.store(value, SeqCst);
    }
}

#[test]
fn a_waker_that_blocks_on_the_same_pool_during_delivery_does_not_hang() {
    bounded("a blocking waker", || {
        // One worker, which spins after its jobs. Delivering the outcome, it counts itself as
        // the taker of the next call (so that the awaiter's next call wakes nobody); its
        // waker then blocks for a call on the same pool. Its blocking wait must take that
        // claim back, or nobody would be started to run the call.
        let pool = Pool::builder()
            .max_threads(1)
            .spin(Duration::from_millis(200))
            .build();
        // The first job of a new pool finds no spinning worker: its handle registers the
        // waker at the first poll instead of yielding.
        let (gate, mut h) = gated_42(&pool);
        let state = Arc::new(BlockingWaker {
            pool: pool.clone(),
            got: AtomicUsize::new(0),
        });
        let waker = Waker::from(state.clone());
        assert!(poll_with(&mut h, &waker).is_pending(), "the job waits");
        gate.open();
        wait_for("the waker's call", || state.got.load(SeqCst) == 7);
        assert_eq!(poll_until_ready(&mut h).unwrap(), 42);
    });
}
