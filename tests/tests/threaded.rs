//! `threaded`, `threaded_separate`, the pool and cancellation, on every executor.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use aiothreads::{JoinError, Pool};
use common::{on_all_executors, wait_until, with_timeout};
use futures::FutureExt;

const LIMIT: Duration = Duration::from_secs(10);

/// Sleeps, then answers its argument squared.
#[aiothreads::threaded]
fn slow_square(n: u64) -> u64 {
    thread::sleep(Duration::from_millis(100));
    n * n
}

#[aiothreads::threaded]
fn checked_div(a: i32, b: i32) -> Result<i32, String> {
    if b == 0 {
        Err("division by zero".to_owned())
    } else {
        Ok(a / b)
    }
}

#[aiothreads::threaded]
fn explode() -> u32 {
    panic!("boom")
}

#[aiothreads::threaded]
fn current_thread_id() -> thread::ThreadId {
    thread::current().id()
}

#[aiothreads::threaded_separate]
fn my_separate_job() -> Option<String> {
    thread::current().name().map(str::to_owned)
}

#[test]
fn five_sleeping_calls_run_together() {
    on_all_executors(|_| async {
        let pool = Pool::builder().max_threads(8).build();
        let start = Instant::now();
        let handles: Vec<_> = (0..5).map(|i| slow_square(i).on(&pool).call()).collect();
        let results = futures::future::join_all(handles).await;
        let elapsed = start.elapsed();
        assert_eq!(results, [0, 1, 4, 9, 16]);
        assert!(elapsed < Duration::from_millis(400), "took {elapsed:?}");
    });
}

#[test]
fn default_pool_runs_calls_concurrently() {
    on_all_executors(|_| async {
        let start = Instant::now();
        // The default pool has at least 5 threads (min(32, cpus + 4)).
        let results = futures::future::join_all((0..5).map(|i| slow_square(i).call())).await;
        assert_eq!(results, [0, 1, 4, 9, 16]);
        assert!(
            start.elapsed() < Duration::from_millis(400),
            "took {:?}",
            start.elapsed()
        );
    });
}

/// Runs `n` jobs that each record how many run at once; returns the maximum seen.
fn concurrency_probe(running: &Arc<AtomicUsize>, max: &Arc<AtomicUsize>) -> impl FnOnce() + Send {
    let (running, max) = (running.clone(), max.clone());
    move || {
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(30));
        running.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn pool_never_exceeds_its_size_but_separate_threads_do() {
    on_all_executors(|_| async {
        let pool = Pool::builder().max_threads(2).build();
        let (running, max) = (Arc::default(), Arc::default());
        let handles: Vec<_> = (0..6)
            .map(|_| pool.spawn(concurrency_probe(&running, &max)))
            .collect();
        futures::future::join_all(handles).await;
        assert_eq!(max.load(Ordering::SeqCst), 2);

        // Separate threads: all 5 at once (each waits, bounded, for the others).
        let running = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..5)
            .map(|_| {
                let (running, max) = (running.clone(), max.clone());
                aiothreads::spawn_separate(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    let start = Instant::now();
                    while running.load(Ordering::SeqCst) < 5 && start.elapsed() < LIMIT {
                        thread::sleep(Duration::from_millis(1));
                    }
                })
            })
            .collect();
        futures::future::join_all(handles).await;
        assert_eq!(max.load(Ordering::SeqCst), 5);
    });
}

#[test]
fn errors_and_panics_reach_the_awaiter() {
    on_all_executors(|_| async {
        assert_eq!(checked_div(6, 3).await, Ok(2));
        assert_eq!(checked_div(1, 0).await, Err("division by zero".to_owned()));

        match explode().call().try_join().await {
            Err(err @ JoinError::Panicked(_)) => {
                assert_eq!(err.panic_message(), Some("boom"));
                assert!(err.to_string().contains("boom"));
            }
            other => panic!("expected a panic, got {other:?}"),
        }

        // Plain `.await` re-raises the job's panic with its payload.
        let payload = std::panic::AssertUnwindSafe(explode().call())
            .catch_unwind()
            .await
            .unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));

        // Also for a separate thread.
        let err = aiothreads::spawn_separate(|| -> u8 { panic!("separate boom") })
            .try_join()
            .await
            .unwrap_err();
        assert_eq!(err.panic_message(), Some("separate boom"));
    });
}

#[test]
fn a_panic_never_kills_a_worker() {
    on_all_executors(|_| async {
        let pool = Pool::builder().max_threads(1).build();
        for _ in 0..3 {
            assert!(pool.spawn(|| panic!("x")).try_join().await.is_err());
            assert_eq!(pool.spawn(|| 7).await, 7);
        }
        assert_eq!(pool.thread_count(), 1);
    });
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_queued_job_whose_handle_was_dropped_never_runs() {
    on_all_executors(|_| async {
        let pool = Pool::builder().max_threads(1).build();
        let release = Arc::new(AtomicBool::new(false));
        let blocker = {
            let release = release.clone();
            pool.spawn(move || {
                let start = Instant::now();
                while !release.load(Ordering::SeqCst) && start.elapsed() < LIMIT {
                    thread::sleep(Duration::from_millis(1));
                }
            })
        };
        let ran = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicBool::new(false));
        let second = {
            let (ran, flag) = (ran.clone(), DropFlag(dropped.clone()));
            pool.spawn(move || {
                let _flag = flag;
                ran.store(true, Ordering::SeqCst);
            })
        };
        drop(second);
        release.store(true, Ordering::SeqCst);
        blocker.await;
        wait_until("the cancelled closure to be dropped", LIMIT, || {
            dropped.load(Ordering::SeqCst)
        });
        assert!(!ran.load(Ordering::SeqCst), "a cancelled queued job ran");
    });
}

#[test]
fn a_running_job_sees_its_cancellation() {
    on_all_executors(|_| async {
        let started = Arc::new(AtomicBool::new(false));
        let saw = Arc::new(AtomicBool::new(false));
        let token_saw = Arc::new(AtomicBool::new(false));
        let handle = {
            let (started, saw, token_saw) = (started.clone(), saw.clone(), token_saw.clone());
            aiothreads::spawn(move || {
                let token = aiothreads::cancel_token();
                let helper = thread::spawn(move || {
                    let start = Instant::now();
                    while !token.is_cancelled() && start.elapsed() < LIMIT {
                        thread::sleep(Duration::from_millis(1));
                    }
                    token_saw.store(token.is_cancelled(), Ordering::SeqCst);
                });
                started.store(true, Ordering::SeqCst);
                let start = Instant::now();
                while !aiothreads::is_cancelled() && start.elapsed() < LIMIT {
                    thread::sleep(Duration::from_millis(1));
                }
                saw.store(aiothreads::is_cancelled(), Ordering::SeqCst);
                helper.join().unwrap();
            })
        };
        wait_until("the job to start", LIMIT, || started.load(Ordering::SeqCst));
        assert!(!aiothreads::is_cancelled());
        drop(handle);
        wait_until("the job to see is_cancelled()", LIMIT, || {
            saw.load(Ordering::SeqCst)
        });
        wait_until("the token to be cancelled", LIMIT, || {
            token_saw.load(Ordering::SeqCst)
        });
    });
}

#[test]
fn a_detached_job_runs_to_completion() {
    on_all_executors(|_| async {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        aiothreads::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            assert!(!aiothreads::is_cancelled());
            d.store(true, Ordering::SeqCst);
        })
        .detach();
        wait_until("the detached job", LIMIT, || done.load(Ordering::SeqCst));
    });
}

struct Counter {
    base: u64,
}

impl Counter {
    /// Instance method through `Arc<Self>`.
    #[aiothreads::threaded]
    fn add(self: Arc<Self>, x: u64) -> u64 {
        self.base + x
    }
    /// By value.
    #[aiothreads::threaded]
    fn into_base(self) -> u64 {
        self.base
    }
    /// By value, mutable.
    #[aiothreads::threaded]
    fn bumped(mut self, by: u64) -> u64 {
        self.base += by;
        self.base
    }
    /// Static method.
    #[aiothreads::threaded]
    fn double(x: u64) -> u64 {
        x * 2
    }
    /// Class-method-like constructor.
    #[aiothreads::threaded]
    fn from_config(base: u64) -> Self {
        Counter { base }
    }

    #[aiothreads::threaded_separate]
    fn thread_name(self: Arc<Self>) -> Option<String> {
        thread::current().name().map(str::to_owned)
    }
}

#[test]
fn methods_of_every_kind() {
    on_all_executors(|_| async {
        let c = Arc::new(Counter::from_config(10).await);
        assert_eq!(c.clone().add(5).await, 15);
        assert_eq!(c.clone().add(5).async_call().await, 15);
        assert_eq!(c.clone().add(5).sync_call(), 15);
        assert_eq!(Counter { base: 3 }.into_base().await, 3);
        assert_eq!(Counter { base: 3 }.bumped(4).await, 7);
        assert_eq!(Counter::double(21).await, 42);
        assert_eq!(
            c.clone().thread_name().await.as_deref(),
            Some("thread_name")
        );
    });
}

#[test]
fn sync_call_runs_on_the_callers_thread() {
    on_all_executors(|_| async {
        let me = thread::current().id();
        assert_eq!(current_thread_id().sync_call(), me);
        assert_ne!(current_thread_id().await, me);
        let f = aiothreads::threaded(|| thread::current().id());
        assert_eq!(f.sync_call(()), me);
        assert_ne!(f.call(()).await, me);
    });
}

#[test]
fn separate_threads_are_named_after_the_function() {
    on_all_executors(|_| async {
        assert_eq!(my_separate_job().await.as_deref(), Some("my_separate_job"));
        assert_eq!(
            my_separate_job().name("renamed").await.as_deref(),
            Some("renamed")
        );
        assert_eq!(
            my_separate_job().sync_call(),
            thread::current().name().map(str::to_owned)
        );
    });
}

#[test]
fn closure_forms_of_every_arity() {
    on_all_executors(|_| async {
        assert_eq!(aiothreads::threaded(|| 1).call(()).await, 1);
        assert_eq!(aiothreads::threaded(|a: u8| a).call((2,)).await, 2);
        let six =
            aiothreads::threaded(|a: u8, b: u8, c: u8, d: u8, e: u8, f: u8| a + b + c + d + e + f);
        assert_eq!(six.call((1, 2, 3, 4, 5, 6)).await, 21);
        assert_eq!(six.bind((1, 1, 1, 1, 1, 1)).await, 6);
        let sep = aiothreads::threaded_separate(|x: u32| {
            (x, thread::current().name().map(str::to_owned))
        })
        .name("sep");
        assert_eq!(sep.call((4,)).await, (4, Some("sep".to_owned())));
    });
}

#[test]
fn shutdown_with_a_straggler() {
    on_all_executors(|_| async {
        let pool = Pool::builder().max_threads(1).build();
        let started = Arc::new(AtomicBool::new(false));
        let straggler = {
            let started = started.clone();
            pool.spawn(move || {
                started.store(true, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(500));
                "late"
            })
        };
        let queued = pool.spawn(|| "never");
        wait_until("the straggler to start", LIMIT, || {
            started.load(Ordering::SeqCst)
        });

        let t = Instant::now();
        let report = pool.shutdown(Duration::from_millis(100));
        let took = t.elapsed();
        assert_eq!(report.left_running, 1);
        assert_eq!(report.cancelled_queued, 1);
        assert!(
            took >= Duration::from_millis(100),
            "returned early: {took:?}"
        );
        assert!(took < Duration::from_millis(400), "took {took:?}");

        assert!(matches!(queued.try_join().await, Err(JoinError::Shutdown)));
        assert!(matches!(
            pool.spawn(|| 1).try_join().await,
            Err(JoinError::Shutdown)
        ));
        assert!(pool.try_spawn(|| 1).is_err());
        let late = std::panic::AssertUnwindSafe(pool.spawn(|| 1))
            .catch_unwind()
            .await;
        let msg = late.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("shut down"), "{msg}");

        // The straggler still delivers.
        assert_eq!(straggler.await, "late");
        // Idempotent.
        let again = pool.shutdown(Duration::from_secs(1));
        assert_eq!(again, aiothreads::ShutdownReport::default());
    });
}

#[test]
fn spawn_failure_reaches_the_awaiter() {
    on_all_executors(|_| async {
        // A stack no machine can give: `thread::Builder::spawn` fails.
        let pool = Pool::builder().stack_size(usize::MAX / 2).build();
        match pool.spawn(|| 1).try_join().await {
            Err(JoinError::SpawnFailed(_)) => {}
            other => panic!("expected SpawnFailed, got {other:?}"),
        }
        let payload = std::panic::AssertUnwindSafe(pool.spawn(|| 1))
            .catch_unwind()
            .await
            .unwrap_err();
        let msg = payload.downcast::<String>().unwrap();
        assert!(msg.contains("no thread could be started"), "{msg}");
        assert_eq!(pool.thread_count(), 0);
    });
}

#[test]
fn bounded_admission_waits_for_a_place() {
    on_all_executors(|_| async {
        let pool = Pool::builder().max_threads(1).max_queued(Some(1)).build();
        let release = Arc::new(AtomicBool::new(false));
        let blocker = {
            let release = release.clone();
            pool.spawn(move || {
                let start = Instant::now();
                while !release.load(Ordering::SeqCst) && start.elapsed() < LIMIT {
                    thread::sleep(Duration::from_millis(1));
                }
                0
            })
        };
        // Wait until the blocker runs, so the queue is empty again.
        wait_until("the blocker to start", LIMIT, || {
            format!("{pool:?}").contains("queued: 0")
        });
        let second = pool.spawn(|| 2); // takes the one place
        assert!(pool.try_spawn(|| 3).is_err(), "the queue should be full");
        // An awaited call waits (as `Pending`) for a place at its first poll.
        let third = aiothreads::Call::new(|| 3).on(&pool);
        release.store(true, Ordering::SeqCst);
        let (first, second, third) = futures::join!(blocker, second, third);
        assert_eq!((first, second, third), (0, 2, 3));
    });
}

#[test]
fn idle_threads_exit_after_keep_alive() {
    with_timeout("keep-alive", LIMIT, || {
        let pool = Pool::builder()
            .keep_alive(Duration::from_millis(50))
            .build();
        futures::executor::block_on(pool.spawn(|| ()));
        assert_eq!(pool.thread_count(), 1);
        wait_until("the idle worker to exit", LIMIT, || {
            pool.thread_count() == 0
        });
        // And the pool starts a thread again on demand.
        assert_eq!(futures::executor::block_on(pool.spawn(|| 5)), 5);
    });
}

/// Calls awaited one after another are served by the worker that finished the previous one:
/// delivering an outcome, it counts itself as the taker of the next call, so the awaiter's
/// next call (which may come before the worker is back from the wake-up) neither wakes
/// another worker nor starts one. (With `placement` on, a worker whose awaiter sleeps on
/// another CPU may park instead, to let the kernel bring the two together: `placement.rs`
/// tests that; here the claim alone.)
#[test]
fn a_loop_of_awaited_calls_keeps_one_worker() {
    on_all_executors(|_| async {
        // A spin far longer than one turn of the loop: the worker never parks meanwhile.
        let pool = Pool::builder()
            .max_threads(4)
            .spin(Duration::from_secs(2))
            .placement(false)
            .build();
        let mut workers = std::collections::HashSet::new();
        for _ in 0..200 {
            let id = pool
                .spawn(|| {
                    let start = Instant::now();
                    while start.elapsed() < Duration::from_micros(20) {
                        std::hint::spin_loop();
                    }
                    thread::current().id()
                })
                .await;
            workers.insert(id);
        }
        assert_eq!(workers.len(), 1, "every call ran on the same worker");
        assert_eq!(pool.thread_count(), 1, "no other worker was started");
        pool.shutdown(LIMIT);
    });
}

/// A `Call` is a `Future` whatever its function captures (a `!Unpin` value included), and
/// works with the combinators that take futures.
#[test]
fn calls_are_futures_for_combinators() {
    on_all_executors(|_| async {
        let pinned_only = std::marker::PhantomPinned;
        let call = aiothreads::Call::new(move || {
            let _keep = &pinned_only;
            1
        });
        let (a, b) = futures::join!(call, aiothreads::Call::new(|| 2));
        assert_eq!(a + b, 3);
        let mut unordered: futures::stream::FuturesUnordered<_> = (0..10u32)
            .map(|i| aiothreads::Call::new(move || i))
            .collect();
        let mut sum = 0;
        while let Some(v) = futures::StreamExt::next(&mut unordered).await {
            sum += v;
        }
        assert_eq!(sum, 45);
        let buffered: Vec<u32> = futures::StreamExt::collect(futures::StreamExt::buffered(
            futures::stream::iter((0..5u32).map(|i| aiothreads::Call::new(move || i * i))),
            2,
        ))
        .await;
        assert_eq!(buffered, [0, 1, 4, 9, 16]);
    });
}
