//! "Nothing hangs": one regression test per hang (or loss) found by outside stress programs,
//! each bounded by a timeout that fails it (RELIABILITY.md, "Hangs closed").
#![allow(clippy::manual_inspect)] // the iterators under test count inside `map`

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use aiothreads::{Call, IterCall, JoinError, Pool};
use aiothreads_tests::{on_every_executor, wait_until, with_timeout};
use futures::executor::block_on;
use futures::StreamExt;

const LIMIT: Duration = Duration::from_secs(30);

fn bounded<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    with_timeout(what, LIMIT, f)
}

/// A flag a job waits on (bounded, so a failing test leaves no thread behind forever).
#[derive(Clone, Default)]
struct Flag(Arc<AtomicBool>);
impl Flag {
    fn open(&self) {
        self.0.store(true, SeqCst);
    }
    fn is_open(&self) -> bool {
        self.0.load(SeqCst)
    }
    fn wait(&self) {
        let start = Instant::now();
        while !self.is_open() && start.elapsed() < LIMIT {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Polls `fut` once with a no-op waker.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let waker = futures::task::noop_waker();
    Pin::new(fut).poll(&mut Context::from_waker(&waker))
}

/// A bounded pool (1 thread, 1 place) whose worker is held by a job until `release` opens,
/// with its one queue place taken by a second job. Returns the two handles' results' futures.
fn full_bounded_pool(
    release: &Flag,
) -> (
    Pool,
    aiothreads::JoinHandle<u32>,
    aiothreads::JoinHandle<u32>,
) {
    let pool = Pool::builder().max_threads(1).max_queued(Some(1)).build();
    let r = release.clone();
    let running = Flag::default();
    let started = running.clone();
    let long = pool.spawn(move || {
        started.open();
        r.wait();
        0
    });
    running.wait();
    let queued = pool.try_spawn(|| 1).expect("the one place is free");
    assert!(pool.try_spawn(|| 9).is_err(), "the queue should be full");
    (pool, long, queued)
}

/// Item 1: a submitter polled once (its waker stored) and then dropped must pass its turn on;
/// the next one, awaited on another thread, is admitted when the place frees.
#[test]
fn dropped_pending_submitter_passes_its_turn_on() {
    bounded("admission turn passes on", || {
        let release = Flag::default();
        let (pool, long, queued) = full_bounded_pool(&release);
        let mut a = Call::new(|| 2).on(&pool);
        assert!(poll_once(&mut a).is_pending(), "no place: `a` waits");
        drop(a);
        let b = Call::new(|| 3).on(&pool);
        let waiter = thread::spawn(move || block_on(b));
        thread::sleep(Duration::from_millis(20));
        release.open();
        assert_eq!(waiter.join().unwrap(), 3, "`b` was admitted");
        assert_eq!(block_on(long), 0);
        assert_eq!(block_on(queued), 1);
    });
}

/// Item 1, second form: a pending submitter polled by one task and then awaited by another
/// is woken through the task that awaits it now (the stale waker does not take the turn).
#[test]
fn repolled_submitter_is_woken_where_it_is_awaited() {
    bounded("admission re-poll", || {
        let release = Flag::default();
        let (pool, long, queued) = full_bounded_pool(&release);
        let mut a = Call::new(|| 2).on(&pool);
        assert!(poll_once(&mut a).is_pending());
        let waiter = thread::spawn(move || block_on(a));
        thread::sleep(Duration::from_millis(20));
        release.open();
        assert_eq!(waiter.join().unwrap(), 2);
        assert_eq!(block_on(long), 0);
        assert_eq!(block_on(queued), 1);
    });
}

/// Item 1 across the executor matrix: many submitters, some dropped while waiting, all the
/// others admitted in the end, on a pool with one place.
#[test]
fn bounded_admission_with_dropped_waiters_on_every_executor() {
    on_every_executor(|| async {
        let pool = Pool::builder().max_threads(1).max_queued(Some(1)).build();
        let mut keep = Vec::new();
        for i in 0..20u32 {
            let mut call = Call::new(move || {
                thread::sleep(Duration::from_micros(200));
                i
            })
            .on(&pool);
            let _ = poll_once(&mut call);
            if i % 3 != 0 {
                keep.push(call);
            }
        }
        let got = futures::future::join_all(keep).await;
        let want: Vec<u32> = (0..20).filter(|i| i % 3 != 0).collect();
        assert_eq!(got, want);
    });
}

/// Item 2: a stream started while the bounded queue is full starts once a place is free.
#[test]
fn stream_starts_on_a_full_bounded_pool() {
    bounded("stream on a full bounded pool", || {
        let release = Flag::default();
        let (pool, long, queued) = full_bounded_pool(&release);
        let s = IterCall::new(|| 0..5u32).on(&pool);
        let consumer = thread::spawn(move || block_on(s.collect::<Vec<_>>()));
        thread::sleep(Duration::from_millis(20));
        release.open();
        assert_eq!(consumer.join().unwrap(), [0, 1, 2, 3, 4]);
        assert_eq!(block_on(long), 0);
        assert_eq!(block_on(queued), 1);
    });
}

/// Item 3: `close()` of a stream whose producer is still queued cancels it like `drop`: the
/// function never runs, and `close()` resolves at once, while the pool's only worker is busy.
/// (The old deadlock — every worker held by a parked producer of another stream of the same
/// task — cannot arise any more: a backpressured pool producer holds no worker, see
/// `streams_hold_no_thread.rs`.)
#[test]
fn close_of_a_queued_producer_runs_nothing_and_does_not_wait() {
    on_every_executor(|| async {
        let pool = Pool::builder().max_threads(1).build();
        // A blocking job holds the only worker (a backpressured stream would not: its
        // producer gives the worker back), so stream B's producer stays queued.
        let release = Flag::default();
        let (r, running) = (release.clone(), Flag::default());
        let started = running.clone();
        let holder = pool.spawn(move || {
            started.open();
            r.wait();
        });
        running.wait();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let mut b = IterCall::new(move || {
            r.store(true, SeqCst);
            0..3u32
        })
        .on(&pool);
        assert!(poll_once(&mut b.next()).is_pending());
        let start = Instant::now();
        b.close().await.expect("a withdrawn producer is no failure");
        assert!(
            start.elapsed() < aiothreads_tests::prompt(Duration::from_secs(5)),
            "close() waited"
        );
        assert!(!ran.load(SeqCst), "the queued producer ran");
        assert_eq!(b.next().await, None);
        release.open();
        holder.await;
        assert!(!ran.load(SeqCst), "the withdrawn producer ran later");
    });
}

/// Item 3: `close()` of a running producer resolves after the iterator's `Drop` ran.
#[test]
fn close_of_a_running_producer_waits_for_the_iterators_drop() {
    on_every_executor(|| async {
        struct SlowDrop(Arc<AtomicBool>);
        impl Drop for SlowDrop {
            fn drop(&mut self) {
                thread::sleep(Duration::from_millis(20));
                self.0.store(true, SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let d = dropped.clone();
        let mut s = IterCall::new(move || {
            let guard = SlowDrop(d);
            (0u32..).map(move |i| {
                let _ = &guard;
                i
            })
        })
        .max_size(2);
        assert_eq!(s.next().await, Some(0));
        s.close().await.unwrap();
        assert!(
            dropped.load(SeqCst),
            "close() returned before the iterator's Drop"
        );
    });
}

/// Item 5: a pool starts no more threads than jobs in flight (plus its spinners).
#[test]
fn no_thread_over_spawn() {
    bounded("thread accounting", || {
        for (jobs, max_threads) in [(4usize, 32usize), (200, 1000)] {
            let pool = Pool::builder().max_threads(max_threads).build();
            let release = Flag::default();
            let running = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..jobs)
                .map(|_| {
                    let (r, n) = (release.clone(), running.clone());
                    pool.spawn(move || {
                        n.fetch_add(1, SeqCst);
                        r.wait();
                    })
                })
                .collect();
            assert!(
                wait_until(LIMIT, || running.load(SeqCst) == jobs),
                "every job runs on a thread of its own"
            );
            let threads = pool.thread_count();
            release.open();
            block_on(futures::future::join_all(handles));
            assert_eq!(
                threads, jobs,
                "{jobs} blocking jobs on max_threads({max_threads}) started {threads} threads"
            );
        }
    });
}

/// Item 6: a stream of 1 MiB items is produced on a default-sized (2 MiB) worker stack in
/// release builds (the consumer here runs on an 8 MiB thread, as a `main` thread does). Debug
/// builds keep a copy of the item in every frame it passes, so they run the same test with
/// 64 KiB items.
#[test]
fn megabyte_items_pass_on_a_default_stack() {
    const SIZE: usize = if cfg!(debug_assertions) {
        64 << 10
    } else {
        1 << 20
    };
    bounded("1 MiB items", || {
        let consumer = thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(|| {
                let pool = Pool::builder().max_threads(1).build();
                let s = IterCall::new(|| (0..8u8).map(|i| [i; SIZE]))
                    .max_size(2)
                    .on(&pool);
                block_on(s.map(|item| item[SIZE - 1]).collect::<Vec<u8>>())
            })
            .unwrap();
        assert_eq!(consumer.join().unwrap(), (0..8).collect::<Vec<_>>());
    });
}

/// Item 6: separate threads take a stack size.
#[test]
fn separate_threads_take_a_stack_size() {
    bounded("separate stack size", || {
        let call = Call::new_separate("big-stack", || {
            let big = [1u8; 6 << 20];
            big.iter().map(|&b| u64::from(b)).sum::<u64>()
        })
        .stack_size(32 << 20);
        assert_eq!(block_on(call), 6 << 20);
    });
}

/// Item 7: cancelled queued jobs release their closures at once and stop counting against
/// `max_queued`.
#[test]
fn cancelled_queued_jobs_release_closures_and_places() {
    bounded("cancelled queued jobs", || {
        struct Count(Arc<AtomicUsize>);
        impl Drop for Count {
            fn drop(&mut self) {
                self.0.fetch_add(1, SeqCst);
            }
        }
        for bound in [None, Some(1000)] {
            let pool = Pool::builder().max_threads(1).max_queued(bound).build();
            let release = Flag::default();
            let r = release.clone();
            let started = Flag::default();
            let st = started.clone();
            let long = pool.spawn(move || {
                st.open();
                r.wait()
            });
            // The worker holds `long` before the queue fills: until it takes it, `long` has a
            // place of its own (under valgrind, which runs one thread at a time, it had not yet,
            // and the 1000th place below was still taken).
            started.wait();
            assert!(started.is_open(), "the worker never started the long job");
            let dropped = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..1000)
                .map(|_| {
                    let c = Count(dropped.clone());
                    let payload = vec![0u8; 64 << 10];
                    pool.spawn(move || (c, payload).1.len())
                })
                .collect();
            drop(handles);
            assert_eq!(dropped.load(SeqCst), 1000, "closures released at once");
            if bound.is_some() {
                // Their places are free again: 1000 more fit.
                for _ in 0..1000 {
                    pool.try_spawn(|| ())
                        .expect("the cancelled jobs left the queue")
                        .detach();
                }
            }
            release.open();
            block_on(long);
        }
    });
}

/// Item 8: a thread name with a NUL byte is a `SpawnFailed` error, not a panic in the caller.
#[test]
fn nul_in_a_thread_name_is_spawn_failed() {
    bounded("NUL name", || {
        let err =
            block_on(aiothreads::spawn_separate_named("bad\0name", || 1).try_join()).unwrap_err();
        match err {
            JoinError::SpawnFailed(e) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput),
            other => panic!("expected SpawnFailed, got {other:?}"),
        }
        let s = IterCall::new(|| 0..3).name("bad\0stream");
        let items: Vec<_> = block_on(s.try_stream().collect());
        assert!(
            matches!(&items[..], [Err(JoinError::SpawnFailed(_))]),
            "{items:?}"
        );
    });
}

/// `Pool::reserve` on a shut-down pool resolves, and its job reports `Shutdown`.
#[test]
fn reserve_after_shutdown_reports_shutdown() {
    bounded("reserve after shutdown", || {
        let pool = Pool::builder().max_queued(Some(1)).build();
        pool.shutdown(Duration::ZERO);
        let permit = block_on(pool.reserve());
        let err = block_on(permit.spawn(|| 1).try_join()).unwrap_err();
        assert!(matches!(err, JoinError::Shutdown), "{err:?}");
    });
}

/// Jobs that each `sync_await` another call on their own pool, twice as many as the pool has
/// threads: every worker waits for a call queued behind it. Found by a stress run: it hung on
/// every executor (no error, no panic). A worker asleep in one of the crate's blocking waits
/// no longer counts against `max_threads`, so the inner calls get a thread; once the waits
/// are over the pool shrinks back to its bound.
#[test]
fn jobs_awaiting_calls_on_their_own_full_pool_on_every_executor() {
    on_every_executor(|| async {
        let pool = Pool::builder().max_threads(2).build();
        let outer: Vec<_> = (0..4u64)
            .map(|i| {
                let own = pool.clone();
                pool.spawn(move || aiothreads::sync_await(Call::new(move || i * 2).on(&own)) + 1)
            })
            .collect();
        let got = futures::future::join_all(outer).await;
        assert_eq!(got, [1, 3, 5, 7]);
        wait_until(Duration::from_secs(10), || pool.thread_count() <= 2);
        assert!(pool.thread_count() <= 2, "the pool stays above its bound");
    });
}
