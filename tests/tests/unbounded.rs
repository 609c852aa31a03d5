//! Unbounded mode (`max_size(0)`, `unbounded()`, `FromThreadChannel::new(0)`): the producer
//! never waits, every item arrives in order, the same close/drop rules as bounded queues, and
//! the memory of the segments is given back (`unbounded_memory.rs`, a binary of its own for
//! its allocation counter). On the executor matrix.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiothreads::{FromThreadChannel, IterCall};
use common::{on_all_executors, wait_until, Watched};
use futures::StreamExt;

#[test]
fn the_macro_takes_max_size_zero_as_unbounded() {
    #[aiothreads::threaded_iterable(max_size = 0)]
    fn numbers(n: u32) -> impl Iterator<Item = u32> {
        0..n
    }
    on_all_executors(|_exec| async move {
        let all: Vec<u32> = numbers(50_000).collect().await;
        assert_eq!(all, (0..50_000).collect::<Vec<_>>());
    });
}

#[test]
fn dropping_the_consumer_stops_an_unbounded_producer() {
    on_all_executors(|_exec| async move {
        let dropped = Arc::new(AtomicBool::new(false));
        let produced = Arc::new(AtomicUsize::new(0));
        let go_on = Arc::new(AtomicBool::new(false));
        let (d, p, g) = (dropped.clone(), produced.clone(), go_on.clone());
        let mut stream = IterCall::new(move || {
            let guard = Watched {
                next: 0,
                n: 0,
                exhausted: Arc::new(AtomicBool::new(false)),
                dropped: d,
            };
            (0u64..).inspect(move |i| {
                let _keep = &guard;
                p.fetch_add(1, Ordering::SeqCst);
                if *i == 1_000 {
                    // Hold here until the consumer is gone, so the next push finds it closed.
                    assert!(
                        aiothreads_tests::wait_until(Duration::from_secs(50), || g
                            .load(Ordering::SeqCst)),
                        "the test never let the producer go on"
                    );
                }
            })
        })
        .max_size(0);
        for expected in 0..10u64 {
            assert_eq!(stream.next().await, Some(expected));
        }
        // The producer is held inside its 1 001st `next()` (it never waited for room before).
        wait_until(
            "the producer to reach item 1 000",
            Duration::from_secs(50),
            || produced.load(Ordering::SeqCst) == 1_001,
        );
        drop(stream);
        go_on.store(true, Ordering::SeqCst);
        wait_until(
            "the iterator to be dropped",
            Duration::from_secs(50),
            || dropped.load(Ordering::SeqCst),
        );
        // It stopped at the first push after the close: item 1 000 was the last one made.
        assert_eq!(produced.load(Ordering::SeqCst), 1_001);
    });
}

#[test]
fn an_unbounded_separate_thread_stream() {
    on_all_executors(|_exec| async move {
        let all: Vec<u32> = IterCall::new_separate("unbounded", || 0..20_000u32)
            .unbounded()
            .collect()
            .await;
        assert_eq!(all, (0..20_000).collect::<Vec<_>>());
    });
}

#[test]
fn an_unbounded_channel_never_blocks_its_producers() {
    on_all_executors(|_exec| async move {
        let (tx, mut rx) = FromThreadChannel::<(u32, u32)>::unbounded();
        assert_eq!(rx.max_size(), 0);
        // Four producer threads (clones) put everything and finish before anyone receives.
        let producers: Vec<_> = (0..4u32)
            .map(|p| {
                let mut tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u32 {
                        tx.put((p, i)).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        for producer in producers {
            producer.join().unwrap();
        }
        let mut next = [0u32; 4];
        while let Ok((p, i)) = rx.get().await {
            assert_eq!(i, next[p as usize], "producer {p}'s items out of order");
            next[p as usize] += 1;
        }
        assert_eq!(next, [10_000; 4]);
    });
}

#[test]
fn closing_an_unbounded_channel_from_the_receiver_fails_later_puts() {
    let (mut tx, mut rx) = FromThreadChannel::<u8>::new(0);
    tx.put(1).unwrap();
    rx.close();
    assert!(tx.is_closed());
    assert_eq!(tx.put(2).map_err(|e| e.into_inner()), Err(2));
    assert_eq!(rx.try_get(), Ok(1));
    assert!(rx.try_get().is_err());
}
