//! `threaded_iterable`: order, backpressure, prompt stop, close, errors, laziness, threads —
#![allow(clippy::manual_inspect)] // the iterators under test count and flag inside `map`
//! on every executor of the matrix.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiothreads::{IterCall, JoinError, Pool};
use aiothreads_tests::{on_every_executor, thread_count, wait_until};
use futures::StreamExt;

/// Sets its flag when dropped: the iterator's `finally`.
struct OnDrop(Arc<AtomicBool>);
impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// An endless iterator that counts the items it produced and flags its drop, and records
/// the thread it was dropped on.
fn counting_iter(
    produced: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
) -> impl Iterator<Item = usize> {
    let guard = OnDrop(dropped);
    (0..).map(move |i| {
        let _keep = &guard;
        produced.fetch_add(1, SeqCst);
        i
    })
}

/// 0..n on the default pool.
#[aiothreads::threaded_iterable]
fn numbers(n: u64) -> impl Iterator<Item = u64> {
    0..n
}

#[aiothreads::threaded_iterable_separate(max_size = 4)]
fn named_thread(n: usize) -> impl Iterator<Item = Option<String>> {
    (0..n).map(|_| std::thread::current().name().map(str::to_owned))
}

#[test]
fn order_preserved() {
    on_every_executor(|| async {
        let n = 20_000;
        let got: Vec<u64> = numbers(n).collect().await;
        assert_eq!(got, (0..n).collect::<Vec<_>>());
        // Tiny queue: still in order.
        let got: Vec<u64> = numbers(1000).max_size(1).collect().await;
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    });
}

#[test]
fn backpressure_bounds_items_produced_ahead() {
    on_every_executor(|| async {
        for max_size in [1usize, 3, 16] {
            let produced = Arc::new(AtomicUsize::new(0));
            let dropped = Arc::new(AtomicBool::new(false));
            let (p, d) = (produced.clone(), dropped.clone());
            let mut s = IterCall::new(move || counting_iter(p, d)).max_size(max_size);
            assert_eq!(s.next().await, Some(0));
            // The consumer stalls: the producer fills the ring, then waits for room before it
            // asks the iterator for more (the ring may have filled before the first pop).
            assert!(wait_until(Duration::from_secs(5), || produced.load(SeqCst) >= max_size));
            std::thread::sleep(Duration::from_millis(30));
            let ahead = produced.load(SeqCst);
            assert!(
                ahead <= 1 + max_size,
                "max_size {max_size}: produced {ahead} items with one consumed"
            );
            drop(s);
            assert!(wait_until(Duration::from_secs(5), || dropped.load(SeqCst)));
        }
    });
}

#[test]
fn break_stops_and_drops_iterator_promptly() {
    on_every_executor(|| async {
        let produced = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicBool::new(false));
        let cancelled_seen = Arc::new(AtomicBool::new(false));
        let (p, d, c) = (produced.clone(), dropped.clone(), cancelled_seen.clone());
        let mut s = IterCall::new(move || {
            let guard = OnDrop(d);
            (0..).map(move |i| {
                let _keep = &guard;
                p.fetch_add(1, SeqCst);
                if aiothreads::is_cancelled() {
                    c.store(true, SeqCst);
                }
                i
            })
        })
        .max_size(8);
        let mut taken = 0;
        while let Some(i) = s.next().await {
            assert_eq!(i, taken);
            taken += 1;
            if taken == 100 {
                break;
            }
        }
        // Let the producer park on the full ring, then drop: the drop must wake it.
        std::thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        drop(s);
        assert!(
            wait_until(Duration::from_secs(5), || dropped.load(SeqCst)),
            "the iterator was not dropped after the stream was"
        );
        // Generous bound for a noisy CI machine; typically tens of microseconds.
        assert!(
            start.elapsed() < aiothreads_tests::prompt(Duration::from_millis(500)),
            "{:?}",
            start.elapsed()
        );
        let at_drop = produced.load(SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            produced.load(SeqCst),
            at_drop,
            "the iterator ran on after the drop"
        );
    });
}

#[test]
fn iterator_sees_cancellation_inside_slow_next() {
    on_every_executor(|| async {
        let saw = Arc::new(AtomicBool::new(false));
        let entered = Arc::new(AtomicBool::new(false));
        let (saw2, entered2) = (saw.clone(), entered.clone());
        let mut s = IterCall::new(move || {
            (0..).map(move |i| {
                if i == 1 {
                    // A slow `next()`: it polls the flag to stop early.
                    entered2.store(true, SeqCst);
                    let start = Instant::now();
                    while !aiothreads::is_cancelled() && start.elapsed() < Duration::from_secs(10) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    saw2.store(aiothreads::is_cancelled(), SeqCst);
                }
                i
            })
        });
        assert_eq!(s.next().await, Some(0));
        // Drop while the iterator is inside the slow `next()` (a producer that has not asked
        // for the next item yet stops without asking).
        assert!(wait_until(Duration::from_secs(5), || entered.load(SeqCst)));
        drop(s);
        assert!(wait_until(Duration::from_secs(5), || saw.load(SeqCst)));
    });
}

#[test]
fn close_resolves_after_drop() {
    on_every_executor(|| async {
        let produced = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicBool::new(false));
        let (p, d) = (produced.clone(), dropped.clone());
        let mut s = IterCall::new(move || counting_iter(p, d)).max_size(4);
        assert_eq!(s.next().await, Some(0));
        s.close().await.expect("clean close");
        assert!(
            dropped.load(SeqCst),
            "close() resolved before the iterator was dropped"
        );
        // Twice: at once.
        s.close().await.expect("second close");
        assert_eq!(s.next().await, None, "a closed stream ends");

        // Before the first item: returns at once, nothing ever ran.
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let mut s = IterCall::new(move || {
            r.store(true, SeqCst);
            0..3
        });
        s.close().await.expect("close before start");
        assert!(!s.is_started());
        assert_eq!(s.next().await, None);
        assert!(!ran.load(SeqCst));
    });
}

/// A `close()` future dropped before it was polled (the losing branch of a `select!`) still
/// closes the stream, as its docs say: the stream ends (`None`, not a panic), the producer
/// stops and drops its iterator, and a later `close()` waits for that and reports success.
#[test]
fn a_close_dropped_unpolled_still_closes_the_stream() {
    on_every_executor(|| async {
        for separate in [false, true] {
            let produced = Arc::new(AtomicUsize::new(0));
            let dropped = Arc::new(AtomicBool::new(false));
            let (p, d) = (produced.clone(), dropped.clone());
            let s = IterCall::new(move || counting_iter(p, d)).max_size(2);
            let mut s = if separate { s.separate() } else { s };
            assert_eq!(s.next().await, Some(0));
            drop(s.close());
            assert_eq!(s.next().await, None, "a closed stream ends");
            s.close().await.expect("the iterator's drop is clean");
            assert!(dropped.load(SeqCst), "close() resolved before the drop");
            let after = produced.load(SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(produced.load(SeqCst), after, "the producer went on");
        }
    });
}

/// `close()` reports a panic in the iterator's `Drop`, for a producer parked on a full ring (a
/// pool stream gives its worker back there) as for one on a separate thread.
#[test]
fn close_reports_a_panic_in_the_iterators_drop() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("iterator drop failed");
        }
    }
    on_every_executor(|| async {
        for separate in [false, true] {
            let s = IterCall::new(|| {
                let guard = PanicOnDrop;
                (0u64..).map(move |i| {
                    let _keep = &guard;
                    i
                })
            })
            .max_size(1);
            let mut s = if separate { s.separate() } else { s };
            assert_eq!(s.next().await, Some(0));
            // The producer fills the ring and waits for room (parked, or its worker given back).
            std::thread::sleep(Duration::from_millis(20));
            let err = s
                .close()
                .await
                .expect_err("the drop's panic is the failure");
            assert_eq!(
                err.panic_message(),
                Some("iterator drop failed"),
                "separate: {separate}"
            );
        }
    });
}

#[test]
fn panic_after_n_items_delivers_items_then_error() {
    on_every_executor(|| async {
        let make = || {
            IterCall::new(|| {
                (0..10).map(|i| {
                    if i == 5 {
                        panic!("iterator failed at 5");
                    }
                    i
                })
            })
        };
        let items: Vec<_> = make().try_stream().collect().await;
        assert_eq!(items.len(), 6);
        for (i, item) in items[..5].iter().enumerate() {
            assert_eq!(*item.as_ref().unwrap(), i);
        }
        match &items[5] {
            Err(e @ JoinError::Panicked(_)) => {
                assert_eq!(e.panic_message(), Some("iterator failed at 5"))
            }
            other => panic!("expected the panic, got {other:?}"),
        }

        // The plain stream delivers the 5 items, then re-raises the panic in poll_next.
        let mut s = make();
        for i in 0..5 {
            assert_eq!(s.next().await, Some(i));
        }
        let caught = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(s.next())).await;
        let payload = caught.expect_err("the panic reaches the consumer");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"iterator failed at 5")
        );
    });
}

#[test]
fn result_items_flow_as_items() {
    on_every_executor(|| async {
        let s = IterCall::new(|| vec![Ok(1), Err("bad"), Ok(3)]);
        let got: Vec<Result<i32, &str>> = s.collect().await;
        assert_eq!(got, [Ok(1), Err("bad"), Ok(3)]);
    });
}

#[test]
fn never_polled_stream_starts_nothing() {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let pool = Pool::builder().max_threads(2).build();
    let s = IterCall::new(move || {
        r.store(true, SeqCst);
        0..1
    })
    .on(&pool);
    std::thread::sleep(Duration::from_millis(20));
    assert!(!s.is_started());
    drop(s);
    std::thread::sleep(Duration::from_millis(20));
    assert!(!ran.load(SeqCst));
    assert_eq!(
        pool.thread_count(),
        0,
        "a never-polled stream started a pool thread"
    );
}

#[test]
fn separate_variant_runs_on_its_own_named_thread() {
    on_every_executor(|| async {
        let names: Vec<_> = named_thread(3).collect().await;
        assert_eq!(names, vec![Some("named_thread".to_owned()); 3]);
    });
}

#[test]
fn sync_call_returns_the_plain_iterator() {
    let here = std::thread::current().id();
    let it = IterCall::new(move || {
        assert_eq!(std::thread::current().id(), here);
        0..4
    })
    .sync_call();
    assert_eq!(it.collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert_eq!(numbers(3).sync_call().sum::<u64>(), 3);
}

#[test]
fn thousands_of_streams_leave_no_thread_behind() {
    let baseline = thread_count();
    let pool = Pool::builder()
        .max_threads(4)
        .keep_alive(Duration::from_millis(50))
        .build();
    let streams = if cfg!(debug_assertions) { 2_000 } else { 5_000 };
    aiothreads::block_on(async {
        for i in 0..streams {
            let dropped = Arc::new(AtomicBool::new(false));
            let d = dropped.clone();
            let mut s = IterCall::new(move || counting_iter(Arc::default(), d))
                .max_size(4)
                .on(&pool);
            if i % 2 == 0 {
                assert_eq!(s.next().await, Some(0));
            }
            if i % 3 == 0 {
                s.close().await.unwrap();
                assert!(i % 2 != 0 || dropped.load(SeqCst));
            }
        }
    });
    // Separate variant: one thread per stream, each must end.
    aiothreads::block_on(async {
        for _ in 0..200 {
            let mut s = named_thread(1_000);
            let _ = s.next().await;
        }
    });
    assert!(
        wait_until(Duration::from_secs(10), || pool.thread_count() == 0
            && thread_count() <= baseline + 1),
        "threads left: pool {} process {} (baseline {baseline})",
        pool.thread_count(),
        thread_count()
    );
}

#[test]
fn from_thread_channel_put_get_close() {
    on_every_executor(|| async {
        let (mut tx, mut rx) = aiothreads::FromThreadChannel::new(2);
        let producer = std::thread::spawn(move || {
            for i in 0..100 {
                tx.put(i).unwrap();
            }
            // Dropping `tx` ends the stream after the items already sent.
        });
        let mut got = Vec::new();
        while let Ok(i) = rx.get().await {
            got.push(i);
        }
        producer.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert!(rx.is_closed());

        // The async side closes: a blocked put fails promptly and hands the item back.
        let (mut tx, mut rx) = aiothreads::FromThreadChannel::new(1);
        tx.put(1).unwrap();
        let producer = std::thread::spawn(move || tx.put(2).map_err(|e| e.into_inner()));
        std::thread::sleep(Duration::from_millis(20));
        rx.close();
        assert_eq!(producer.join().unwrap(), Err(2));
    });
}

#[test]
fn blocking_iter_consumes_async_stream_in_a_worker() {
    // Driven through the loop that submitted the job (tokio's current runtime).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let total = rt.block_on(async {
        aiothreads::spawn(|| {
            let ticks = futures::stream::unfold(0u32, |i| async move {
                if i == 5 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(1)).await; // needs the reactor
                Some((i, i + 1))
            });
            aiothreads::blocking_iter(Box::pin(ticks), 2).sum::<u32>()
        })
        .await
    });
    assert_eq!(total, 10);

    // No loop: driven on the thread with block_on.
    let it = aiothreads::blocking_iter(futures::stream::iter(1..=3), 1);
    assert_eq!(it.collect::<Vec<_>>(), [1, 2, 3]);
}

/// A stream that never yields and flags its drop.
struct Idle(Arc<AtomicBool>);
impl futures::Stream for Idle {
    type Item = u8;
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<u8>> {
        std::task::Poll::Pending
    }
}
impl Drop for Idle {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

#[test]
fn blocking_iter_drop_stops_an_idle_stream() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    rt.block_on(async {
        aiothreads::spawn(move || {
            let it = aiothreads::blocking_iter(Idle(d), 4);
            std::thread::sleep(Duration::from_millis(10));
            drop(it); // the stream never yielded: the driver must still stop
        })
        .await;
        assert!(
            wait_until(Duration::from_secs(5), || dropped.load(SeqCst)),
            "the idle stream was not dropped after its iterator"
        );
    });
}
