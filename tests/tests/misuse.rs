//! "Nothing hangs": every blocking entry point (`sync_await` and friends, `blocking_iter`,
//! `ThreadSender::put`) refuses at once, with one message, on a thread that would have to
//! do the work it waits for; failures inside `blocking_iter` reach the iterating thread; and
//! threads that may block (workers, `spawn_blocking`, plain threads) are not refused.
//!
//! Every test runs under a timeout that fails it: before the misuse check, most of these
//! hung.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use aiothreads::{
    blocking_iter, sync_await, sync_wait_coroutine, try_blocking_iter, try_sync_await,
    wait_coroutine, BoxFuture, FromThreadChannel, Loop, LoopHandle, SpawnError, SyncAwaitError,
};
use aiothreads_tests::{on_every_executor, panic_message, with_timeout};
use futures::stream::{self, StreamExt};

const LIMIT: Duration = Duration::from_secs(20);

/// Runs `f` on a fresh thread; fails the test if it takes longer than [`LIMIT`].
fn bounded<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    with_timeout(what, LIMIT, f)
}

/// The one refusal message of every blocking entry point.
fn would_deadlock() -> String {
    SyncAwaitError::WouldDeadlock.to_string()
}

/// The panic message of `f`, which must panic.
fn panic_of<R>(f: impl FnOnce() -> R) -> String {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic"),
        Err(payload) => panic_message(&*payload),
    }
}

fn current_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// A stream of `0..n` that panics with "stream boom" instead of yielding `panic_at`.
fn panicking_stream(n: u32, panic_at: u32) -> impl futures::Stream<Item = u32> + Send + Unpin {
    stream::iter(0..n).map(move |i| {
        if i == panic_at {
            panic!("stream boom");
        }
        i
    })
}

/// What a `try_blocking_iter` yielded, in a comparable form.
fn describe(items: Vec<Result<u32, SyncAwaitError>>) -> Vec<String> {
    items
        .into_iter()
        .map(|r| match r {
            Ok(i) => format!("Ok({i})"),
            Err(SyncAwaitError::Panicked(p)) => format!("Panicked({})", panic_message(&*p)),
            Err(e) => format!("{e:?}"),
        })
        .collect()
}

#[test]
fn blocking_iter_in_tokio_current_thread_block_on_is_refused() {
    bounded("blocking_iter in block_on", || {
        current_thread_rt().block_on(async {
            let start = Instant::now();
            let msg = panic_of(|| blocking_iter(stream::iter(0..3u32), 4).next());
            assert_eq!(msg, would_deadlock());
            let items: Vec<_> = try_blocking_iter(stream::iter(0..3u32), 4).collect();
            assert_eq!(describe(items), ["WouldDeadlock"]);
            assert!(
                start.elapsed() < aiothreads_tests::prompt(Duration::from_secs(1)),
                "refused at once"
            );
            // The loop is fine afterwards.
            tokio::time::sleep(Duration::from_millis(1)).await;
        });
    });
}

#[test]
fn blocking_iter_in_a_task_of_a_one_worker_runtime_is_refused() {
    bounded("blocking_iter in a 1-worker task", || {
        let rt = multi_thread_rt(1);
        let (msg, items) = rt.block_on(async {
            tokio::spawn(async {
                let msg = panic_of(|| blocking_iter(stream::iter(0..3u32), 4).next());
                let items: Vec<_> = try_blocking_iter(stream::iter(0..3u32), 4).collect();
                (msg, describe(items))
            })
            .await
            .unwrap()
        });
        assert_eq!(msg, would_deadlock());
        assert_eq!(items, ["WouldDeadlock"]);
    });
}

#[test]
fn stream_panic_under_blocking_iter_is_reraised_on_the_iterating_thread() {
    bounded("stream panic under blocking_iter", || {
        // Driven on the loop (a tokio runtime), iterated on a pool worker.
        let (got, msg, items) = current_thread_rt().block_on(async {
            aiothreads::spawn(|| {
                let mut got = Vec::new();
                let msg = panic_of(|| {
                    for item in blocking_iter(panicking_stream(5, 2), 4) {
                        got.push(item);
                    }
                });
                let items: Vec<_> = try_blocking_iter(panicking_stream(5, 2), 4).collect();
                (got, msg, describe(items))
            })
            .await
        });
        assert_eq!(got, [0, 1]);
        assert_eq!(msg, "stream boom", "the original panic, not a generic one");
        assert_eq!(items, ["Ok(0)", "Ok(1)", "Panicked(stream boom)"]);

        // No loop: driven on this thread; the try form reports the panic the same way.
        let items: Vec<_> = try_blocking_iter(panicking_stream(5, 1), 1).collect();
        assert_eq!(describe(items), ["Ok(0)", "Panicked(stream boom)"]);
        let mut it = blocking_iter(panicking_stream(5, 1), 1);
        assert_eq!(it.next(), Some(0));
        assert_eq!(panic_of(|| it.next()), "stream boom");
        assert_eq!(it.next(), None, "finished after the failure");
    });
}

/// A loop that refuses every future.
#[derive(Debug)]
struct Refusing;

impl LoopHandle for Refusing {
    fn spawn_boxed(&self, _fut: BoxFuture) -> Result<(), SpawnError> {
        Err(SpawnError::new("closed"))
    }
}

#[test]
fn losing_the_loop_under_blocking_iter_is_reported() {
    bounded("loop lost under blocking_iter", || {
        let gone = SyncAwaitError::LoopGone.to_string();
        // The runtime is dropped while a thread waits for the stream's second item.
        for plain in [false, true] {
            let rt = current_thread_rt();
            let lp = Loop::from(rt.handle().clone());
            let (first_tx, first_rx) = mpsc::channel();
            let iterating = thread::spawn(move || {
                let _in = lp.enter();
                let stream = stream::iter([7u32]).chain(stream::pending());
                if plain {
                    let mut it = blocking_iter(stream, 4);
                    first_tx.send(it.next()).unwrap();
                    Err(panic_of(move || it.next()))
                } else {
                    let mut it = try_blocking_iter(stream, 4);
                    first_tx.send(it.next().map(|r| r.unwrap())).unwrap();
                    Ok(describe(it.collect()))
                }
            });
            let first = rt.block_on(async {
                loop {
                    match first_rx.try_recv() {
                        Ok(first) => break first,
                        Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                }
            });
            assert_eq!(first, Some(7));
            drop(rt);
            match iterating.join().unwrap() {
                Err(msg) => assert_eq!(msg, gone),
                Ok(rest) => assert_eq!(rest, ["LoopGone"]),
            }
        }

        // A loop that drops the driving task unrun, and one that refuses it.
        let drops = Loop::from_spawner(drop);
        let refuses = Loop::new(Refusing);
        for lp in [drops, refuses] {
            let _in = lp.enter();
            let items: Vec<_> = try_blocking_iter(stream::iter(0..3u32), 2).collect();
            assert_eq!(describe(items), ["LoopGone"]);
            assert_eq!(
                panic_of(|| blocking_iter(stream::iter(0..3u32), 2).next()),
                gone
            );
        }
    });
}

#[test]
fn put_on_a_full_channel_from_the_receivers_thread_is_refused() {
    // The receiver and the putting code are polled by the same thread (one task here): a
    // blocking put could never be drained.
    on_every_executor(|| async {
        let (mut tx, mut rx) = FromThreadChannel::new(1);
        let consumer = async move {
            let mut got = Vec::new();
            while let Ok(item) = rx.get().await {
                got.push(item);
            }
            got
        };
        // `join` polls the consumer first: it finds nothing and waits, on this thread.
        let producer = async move {
            tx.put(0).unwrap(); // room for one
            let start = Instant::now();
            let msg = panic_of(|| tx.put(1));
            assert!(
                start.elapsed() < aiothreads_tests::prompt(Duration::from_secs(1)),
                "refused at once"
            );
            msg
        };
        let (got, msg) = futures::future::join(consumer, producer).await;
        assert_eq!(msg, would_deadlock());
        assert_eq!(got, [0], "the item put before the refusal is delivered");
    });

    // A consumer task and a producing task on one tokio thread.
    bounded("put in a current-thread runtime", || {
        current_thread_rt().block_on(async {
            let (mut tx, mut rx) = FromThreadChannel::new(1);
            let (seen_tx, seen_rx) = mpsc::channel();
            let consumer = tokio::spawn(async move {
                while let Ok(item) = rx.get().await {
                    seen_tx.send(item).unwrap();
                }
            });
            tx.put(0).unwrap();
            while seen_rx.try_recv().is_err() {
                tokio::task::yield_now().await; // the consumer takes it and waits again
            }
            tx.put(1).unwrap();
            assert_eq!(panic_of(|| tx.put(2)), would_deadlock());
            drop(tx);
            consumer.await.unwrap();
            assert_eq!(seen_rx.try_iter().collect::<Vec<_>>(), [1]);
        });
    });
}

#[test]
fn put_from_another_thread_still_blocks_and_delivers() {
    on_every_executor(|| async {
        let (mut tx, mut rx) = FromThreadChannel::new(1);
        // The receiver waits on this thread first, so its seat names this thread.
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let producer = thread::spawn(move || {
            go_rx.recv().unwrap();
            for i in 0..50u32 {
                tx.put(i).unwrap(); // blocks on the full channel: another thread, allowed
            }
        });
        let mut get = std::pin::pin!(rx.get());
        assert!(futures::poll!(get.as_mut()).is_pending());
        go_tx.send(()).unwrap();
        let mut got = vec![get.await.unwrap()];
        while let Ok(item) = rx.get().await {
            got.push(item);
        }
        producer.join().unwrap();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
    });
}

#[test]
fn every_blocking_entry_point_refuses_with_the_same_message() {
    bounded("one message", || {
        let expected = would_deadlock();
        assert!(expected.contains("drives the event loop"), "{expected}");
        current_thread_rt().block_on(async {
            let start = Instant::now();
            let lp = Loop::current().expect("tokio runtime");
            assert!(matches!(
                try_sync_await(async { 1 }),
                Err(SyncAwaitError::WouldDeadlock)
            ));
            let msgs = [
                panic_of(|| sync_await(async { 1 })),
                panic_of(|| wait_coroutine(async { 1 })),
                panic_of(|| sync_wait_coroutine(&lp, || async { 1 })),
                panic_of(|| lp.sync_await(async { 1 })),
                panic_of(|| blocking_iter(stream::iter(0..1u32), 1).next()),
                panic_of(|| {
                    let (mut tx, mut rx) = FromThreadChannel::new(1);
                    let mut get = Box::pin(rx.get());
                    let waker = futures::task::noop_waker();
                    assert!(get
                        .as_mut()
                        .poll(&mut std::task::Context::from_waker(&waker))
                        .is_pending());
                    tx.put(1).unwrap();
                    tx.put(2)
                }),
            ];
            for msg in msgs {
                assert_eq!(msg, expected);
            }
            assert!(
                start.elapsed() < aiothreads_tests::prompt(Duration::from_secs(1)),
                "all refused at once"
            );
        });

        // Another executor, marked with `enter_driver`: refused the same way.
        let ex = std::sync::Arc::new(smol::Executor::new());
        let lp = Loop::from(std::sync::Arc::clone(&ex));
        let _driver = lp.enter_driver();
        let msg = panic_of(|| blocking_iter(stream::iter(0..1u32), 1).next());
        assert_eq!(msg, expected);
        let items: Vec<_> = try_blocking_iter(stream::iter(0..1u32), 1).collect();
        assert_eq!(describe(items), ["WouldDeadlock"]);
    });
}

#[test]
fn no_loop_waits_on_a_driver_thread_are_refused_only_when_pending() {
    bounded("no loop, driver thread", || {
        let lp = Loop::from_spawner(drop);
        let _driver = lp.enter_driver();
        let _no_current = aiothreads::set_current_loop(None);
        assert!(Loop::current().is_none());
        // Ready at once: no wait, nothing to refuse.
        assert_eq!(sync_await(async { 3 }), 3);
        assert_eq!(blocking_iter(stream::iter(0..2u32), 1).count(), 2);
        // Pending: it would wait on the thread that drives a loop.
        let msg = panic_of(|| sync_await(futures::future::pending::<()>()));
        assert_eq!(msg, would_deadlock());
        let items: Vec<_> = try_blocking_iter(stream::pending::<u32>(), 1).collect();
        assert_eq!(describe(items), ["WouldDeadlock"]);
    });
}

#[test]
fn block_on_on_a_tokio_scheduler_thread_is_refused_when_it_would_wait() {
    bounded("block_on on a tokio thread", || {
        current_thread_rt().block_on(async {
            assert_eq!(
                aiothreads::block_on(async { 5 }),
                5,
                "ready at once: not refused"
            );
            let timer = || aiothreads::block_on(tokio::time::sleep(Duration::from_millis(1)));
            assert_eq!(panic_of(timer), would_deadlock());
            // The runtime still works.
            tokio::time::sleep(Duration::from_millis(1)).await;
        });
        let rt = multi_thread_rt(1);
        let msg = rt.block_on(async {
            tokio::spawn(async { panic_of(|| aiothreads::block_on(tokio::spawn(async { 1 }))) })
                .await
                .unwrap()
        });
        assert_eq!(msg, would_deadlock());
        // A blocking thread of the same runtime may wait for its tasks.
        let out = rt.block_on(async {
            tokio::task::spawn_blocking(|| aiothreads::block_on(tokio::spawn(async { 2 })))
                .await
                .unwrap()
        });
        assert_eq!(out.unwrap(), 2);
    });
}

/// Everything a thread that may block does: wait for the loop in each way.
fn block_in_every_way() -> (u32, u32, u32, Vec<u32>) {
    let lp = Loop::current().expect("a loop is known here");
    let a = sync_await(async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        1
    });
    let b = wait_coroutine(async { 2 });
    let c = sync_wait_coroutine(&lp, || async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        3
    });
    let ticks = stream::unfold(0u32, |i| async move {
        if i == 3 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await; // needs the loop's timer
        Some((i, i + 1))
    });
    let items = blocking_iter(Box::pin(ticks), 1).collect();
    (a, b, c, items)
}

#[test]
fn threads_that_may_block_are_not_refused() {
    bounded("no false positives", || {
        let expected = (1, 2, 3, vec![0, 1, 2]);
        for rt in [current_thread_rt(), multi_thread_rt(1)] {
            let (pool, blocking) = rt.block_on(async {
                let pool = aiothreads::spawn(block_in_every_way).await;
                let blocking = tokio::task::spawn_blocking(block_in_every_way)
                    .await
                    .unwrap();
                (pool, blocking)
            });
            assert_eq!(pool, expected, "pool worker");
            assert_eq!(blocking, expected, "spawn_blocking thread");

            // A plain thread that enters the loop (the runtime driven meanwhile by this one).
            let lp = Loop::from(rt.handle().clone());
            let plain = thread::spawn(move || {
                let _in = lp.enter();
                block_in_every_way()
            });
            let plain = rt.block_on(async move {
                while !plain.is_finished() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                plain.join().unwrap()
            });
            assert_eq!(plain, expected, "plain thread");
        }

        // A runtime worker inside `block_in_place` has handed its scheduler away.
        let rt = multi_thread_rt(1);
        let in_place = rt.block_on(async {
            tokio::spawn(async { tokio::task::block_in_place(block_in_every_way) })
                .await
                .unwrap()
        });
        assert_eq!(in_place, expected, "block_in_place");

        // Made on the loop's thread (that never blocks), iterated on a thread that may block.
        let items = current_thread_rt().block_on(async {
            let it = blocking_iter(stream::iter(0..3u32), 1);
            tokio::task::spawn_blocking(move || it.collect::<Vec<_>>())
                .await
                .unwrap()
        });
        assert_eq!(items, [0, 1, 2], "made on the loop, moved away");

        // The thread inside `block_on` of a multi-thread runtime does not drive it.
        let rt = multi_thread_rt(1);
        let items: Vec<u32> =
            rt.block_on(async { blocking_iter(stream::iter(0..3u32), 1).collect() });
        assert_eq!(items, [0, 1, 2]);
    });
}
