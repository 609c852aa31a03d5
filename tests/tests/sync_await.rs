//! `sync_await` and loop handles: a worker thread running async code on its caller's loop,
//! on tokio (current-thread and multi-thread), smol, `futures::executor` and our `block_on`;
//! errors and panics in both directions; misuse that must fail fast instead of hanging.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use aiothreads::{sync_await, try_sync_await, Loop, SyncAwaitError};

/// Runs `f` on a fresh thread and fails the test if it takes longer than `limit`.
fn bounded<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    aiothreads_tests::with_timeout("sync_await test", limit, f)
}

const LIMIT: Duration = Duration::from_secs(20);

fn current_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The worker's body: waits for a tokio timer through the captured loop.
fn worker_awaits_tokio_timer() -> (u32, Duration) {
    let start = Instant::now();
    // Created in the worker: the worker has the runtime's context entered.
    let v = sync_await(async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        7
    });
    sync_await(tokio::time::sleep(Duration::from_millis(1)));
    (v, start.elapsed())
}

#[test]
fn tokio_current_thread_worker_awaits_timer() {
    bounded(LIMIT, || {
        let (v, took) = current_thread_rt()
            .block_on(async { aiothreads::spawn(worker_awaits_tokio_timer).await });
        assert_eq!(v, 7);
        assert!(took >= Duration::from_millis(30));
    });
}

#[test]
fn tokio_multi_thread_worker_awaits_timer() {
    bounded(LIMIT, || {
        let (v, _) = multi_thread_rt()
            .block_on(async { aiothreads::spawn(worker_awaits_tokio_timer).await });
        assert_eq!(v, 7);
    });
}

#[test]
fn threaded_separate_and_spawn_blocking_also_see_the_loop() {
    bounded(LIMIT, || {
        let rt = multi_thread_rt();
        let (a, b) = rt.block_on(async {
            let a = aiothreads::spawn_separate(worker_awaits_tokio_timer).await;
            // tokio's own blocking threads: found through `Handle::try_current`.
            let b = tokio::task::spawn_blocking(worker_awaits_tokio_timer)
                .await
                .unwrap();
            (a.0, b.0)
        });
        assert_eq!((a, b), (7, 7));
    });
}

#[test]
fn smol_executor_through_the_async_executor_feature() {
    bounded(LIMIT, || {
        // smol's `Executor` is async-executor's: the feature's `From` impl takes it as is.
        let ex = Arc::new(smol::Executor::new());
        let lp = Loop::from(Arc::clone(&ex));
        let _driver = lp.enter_driver();
        let out = smol::block_on(ex.run(async {
            aiothreads::spawn(|| sync_await(async { thread::current().id() })).await
        }));
        assert_eq!(out, thread::current().id(), "ran on the executor's thread");
        assert!(matches!(
            try_sync_await(async { 1 }),
            Err(SyncAwaitError::WouldDeadlock)
        ));
    });
}

#[test]
fn smol_executor_through_from_spawner() {
    bounded(LIMIT, || {
        let ex = Arc::new(smol::Executor::new());
        let lp = Loop::from_spawner({
            let ex = Arc::clone(&ex);
            move |fut| ex.spawn(fut).detach()
        });
        let _driver = lp.enter_driver();
        let out = smol::block_on(ex.run(async {
            aiothreads::spawn(|| {
                let on = thread::current().id();
                let loop_thread = sync_await(async {
                    smol::Timer::after(Duration::from_millis(10)).await;
                    thread::current().id()
                });
                (on, loop_thread)
            })
            .await
        }));
        // The future ran on the executor's thread (this one), not on the worker.
        assert_ne!(out.0, out.1);
        assert_eq!(out.1, thread::current().id());
        // On the driver thread itself: refused.
        assert!(matches!(
            try_sync_await(async { 1 }),
            Err(SyncAwaitError::WouldDeadlock)
        ));
    });
}

#[test]
fn futures_executor_and_our_block_on_fall_back_or_use_a_loop() {
    bounded(LIMIT, || {
        // No loop known: `sync_await` runs the future on the worker; the strict form refuses.
        let job = || {
            (
                sync_await(async { 1 }),
                try_sync_await(async { 2 }).is_err(),
            )
        };
        assert_eq!(
            futures::executor::block_on(aiothreads::spawn(job)),
            (1, true)
        );
        assert_eq!(aiothreads::block_on(aiothreads::spawn(job)), (1, true));

        // With a loop entered on the caller, the worker uses it.
        let rt = multi_thread_rt();
        let lp = Loop::from_spawner({
            let handle = rt.handle().clone();
            move |f| drop(handle.spawn(f))
        });
        let _g = lp.enter();
        let job = || try_sync_await(async { tokio::runtime::Handle::try_current().is_ok() });
        assert!(aiothreads::block_on(aiothreads::spawn(job)).unwrap());
        assert!(futures::executor::block_on(aiothreads::spawn(job)).unwrap());
    });
}

#[test]
fn nested_threaded_inside_sync_await() {
    bounded(LIMIT, || {
        let rt = current_thread_rt();
        // Submitted inside the runtime (`spawn` captures the loop when called).
        let out = rt.block_on(async {
            aiothreads::spawn(|| {
                sync_await(async {
                    // On the loop again: submit another job and await it there.
                    let inner = aiothreads::spawn(|| {
                        // ...which itself calls back into the loop.
                        sync_await(async {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            20
                        })
                    })
                    .await;
                    inner + 1
                })
            })
            .await
        });
        assert_eq!(out, 21);
    });
}

#[test]
fn errors_and_panics_cross_both_ways() {
    bounded(LIMIT, || {
        let rt = multi_thread_rt();
        rt.block_on(async {
            // An error of the future comes back as a value.
            let r = aiothreads::spawn(|| sync_await(async { Err::<u8, _>("bad input") })).await;
            assert_eq!(r, Err("bad input"));

            // A panic in the future (on the loop) is re-raised in the worker, and from there
            // reaches the async caller through the pool's handle.
            let r = aiothreads::spawn(|| {
                sync_await(async {
                    if true {
                        panic!("panic on the loop");
                    }
                    0
                })
            })
            .try_join()
            .await;
            let err = r.unwrap_err();
            assert!(err.is_panic(), "the worker's panic reaches the awaiter");
            assert_eq!(err.panic_message(), Some("panic on the loop"));

            // The strict form hands the payload over instead.
            let r = aiothreads::spawn(|| {
                match try_sync_await(async {
                    if true {
                        panic!("payload");
                    }
                    0
                }) {
                    Err(SyncAwaitError::Panicked(p)) => p.downcast_ref::<&str>().copied(),
                    other => panic!("unexpected {other:?}"),
                }
            })
            .await;
            assert_eq!(r, Some("payload"));

            // The loop survived the panics.
            let r = aiothreads::spawn(|| sync_await(async { 5 })).await;
            assert_eq!(r, 5);
        });
    });
}

#[test]
fn sync_await_on_the_loop_thread_errors_fast() {
    bounded(LIMIT, || {
        // Current-thread runtime: the thread inside `block_on` drives it.
        current_thread_rt().block_on(async {
            let start = Instant::now();
            let r = try_sync_await(async { 1 });
            assert!(matches!(r, Err(SyncAwaitError::WouldDeadlock)), "{r:?}");
            let p = catch_unwind(|| sync_await(async { 1 })).unwrap_err();
            let msg = p.downcast_ref::<String>().unwrap();
            assert!(msg.contains("drives the event loop"), "{msg}");
            // Refused at once: a deadlock would hang (caught by `bounded`). The bound is loose
            // because the caught panic above may capture a backtrace (`RUST_BACKTRACE=1`: over
            // 100 ms in a debug build under nextest).
            assert!(start.elapsed() < aiothreads_tests::prompt(Duration::from_secs(2)));
        });
        // Multi-thread runtime: a task on a worker is refused; a blocking thread is not.
        let rt = multi_thread_rt();
        rt.block_on(async {
            let on_worker = tokio::spawn(async { try_sync_await(async { 1 }) })
                .await
                .unwrap();
            assert!(matches!(on_worker, Err(SyncAwaitError::WouldDeadlock)));
            let in_block_in_place =
                tokio::spawn(async { tokio::task::block_in_place(|| try_sync_await(async { 2 })) })
                    .await
                    .unwrap();
            assert_eq!(in_block_in_place.unwrap(), 2);
            let blocking = tokio::task::spawn_blocking(|| try_sync_await(async { 3 }))
                .await
                .unwrap();
            assert_eq!(blocking.unwrap(), 3);
        });
        // An explicit loop used on its own driver thread, through `Loop` methods.
        let rt = current_thread_rt();
        let lp = Loop::from(rt.handle().clone());
        rt.block_on(async {
            assert!(lp.drives_current_thread());
            assert!(matches!(
                lp.try_sync_await(async { 1 }),
                Err(SyncAwaitError::WouldDeadlock)
            ));
        });
        assert!(!lp.drives_current_thread());
    });
}

fn wait_then_drop_runtime(rt: tokio::runtime::Runtime) {
    let lp = Loop::from(rt.handle().clone());
    let (started_tx, started_rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        lp.try_sync_await(async move {
            started_tx.send(()).unwrap();
            tokio::time::sleep(Duration::from_secs(3600)).await;
        })
    });
    // Drive the runtime until the future runs (current-thread runtimes need a `block_on`).
    rt.block_on(async {
        while started_rx.try_recv().is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let dropped_at = Instant::now();
    drop(rt);
    let r = waiter.join().unwrap();
    assert!(matches!(r, Err(SyncAwaitError::LoopGone)), "{r:?}");
    assert!(dropped_at.elapsed() < aiothreads_tests::prompt(Duration::from_secs(1)));
}

#[test]
fn runtime_dropped_while_worker_waits() {
    bounded(LIMIT, || {
        wait_then_drop_runtime(current_thread_rt());
        wait_then_drop_runtime(multi_thread_rt());
        // Spawning on a runtime that is already gone: an error too, not a hang.
        let rt = current_thread_rt();
        let lp = Loop::from(rt.handle().clone());
        drop(rt);
        assert!(matches!(
            lp.try_sync_await(async { 1 }),
            Err(SyncAwaitError::LoopGone)
        ));
        let p = catch_unwind(AssertUnwindSafe(|| lp.sync_await(async { 1 }))).unwrap_err();
        assert!(p.downcast_ref::<String>().unwrap().contains("shut down"));
    });
}

#[test]
fn generic_loop_gone_when_executor_dropped() {
    bounded(LIMIT, || {
        let ex = Arc::new(smol::Executor::new());
        let weak = Arc::downgrade(&ex);
        let lp = Loop::from_spawner(move |fut| {
            // Refused futures are dropped, which the waiter sees as `LoopGone`.
            if let Some(ex) = weak.upgrade() {
                ex.spawn(fut).detach();
            }
        });
        let (started_tx, started_rx) = mpsc::channel();
        let waiter = thread::spawn({
            let lp = lp.clone();
            move || {
                lp.try_sync_await(async move {
                    started_tx.send(()).unwrap();
                    futures::future::pending::<()>().await
                })
            }
        });
        smol::block_on(ex.run(async {
            while started_rx.try_recv().is_err() {
                smol::Timer::after(Duration::from_millis(1)).await;
            }
        }));
        drop(ex);
        assert!(matches!(
            waiter.join().unwrap(),
            Err(SyncAwaitError::LoopGone)
        ));
        assert!(matches!(
            lp.try_sync_await(async { 1 }),
            Err(SyncAwaitError::LoopGone)
        ));
    });
}

#[test]
fn sync_wait_coroutine_with_explicit_loop() {
    bounded(LIMIT, || {
        let rt = multi_thread_rt();
        let lp = Loop::from(rt.handle().clone());
        // A plain thread (asyncio.to_thread style): no loop known, so pass it.
        let t = thread::spawn(move || {
            assert!(matches!(
                try_sync_await(async { 0 }),
                Err(SyncAwaitError::NoLoop)
            ));
            // `make` runs on the loop, so tokio constructors work.
            aiothreads::sync_wait_coroutine(&lp, || async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                "async result"
            })
        });
        assert_eq!(t.join().unwrap(), "async result");
    });
}

#[test]
fn loop_current_inside_tokio_and_in_workers() {
    bounded(LIMIT, || {
        assert!(Loop::current().is_none());
        let rt = current_thread_rt();
        rt.block_on(async {
            let here = Loop::current().expect("tokio runtime found without setup");
            let in_worker = aiothreads::spawn(Loop::current).await.unwrap();
            assert!(here.same_loop(&in_worker));
        });
        // A thread-local loop wins over tokio's.
        let custom = Loop::from_spawner(drop);
        let g = custom.enter();
        rt.block_on(async {
            assert!(Loop::current().unwrap().same_loop(&custom));
        });
        drop(g);
        assert!(Loop::current().is_none());
    });
}
