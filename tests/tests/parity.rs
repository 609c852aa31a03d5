//! Parity with the original: channel timeouts (`get(timeout=…)` / `ChannelTimeout`), the
//! crate's own timer on every executor.

use std::thread;
use std::time::{Duration, Instant};

use aiothreads::{FromThreadChannel, GetError};
use aiothreads_tests::on_every_executor;

#[test]
fn get_timeout_times_out_on_every_executor() {
    on_every_executor(|| async {
        let (_tx, mut rx) = FromThreadChannel::<u32>::new(4);
        let start = Instant::now();
        let r = rx.get_timeout(Duration::from_millis(20)).await;
        assert!(start.elapsed() >= Duration::from_millis(20));
        match r {
            Err(GetError::Timeout(t)) => {
                assert_eq!(t.to_string(), "Channel get timed out after 0.02s");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    });
}

#[test]
fn get_timeout_delivers_items_and_the_close() {
    on_every_executor(|| async {
        let (mut tx, mut rx) = FromThreadChannel::<u32>::new(2);
        let producer = thread::spawn(move || {
            for i in 0..3 {
                thread::sleep(Duration::from_millis(2));
                tx.put(i).unwrap();
            }
        });
        for want in 0..3 {
            assert_eq!(rx.get_timeout(Duration::from_secs(10)).await, Ok(want));
        }
        producer.join().unwrap();
        assert_eq!(
            rx.get_timeout(Duration::from_secs(10)).await,
            Err(GetError::Closed)
        );
    });
}

#[test]
fn zero_timeout_waits_forever_and_default_timeout_applies() {
    on_every_executor(|| async {
        let (mut tx, mut rx) = FromThreadChannel::<u32>::new(2);
        let producer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            tx.put(5).unwrap();
        });
        // Zero: no timeout (the original's `timeout=0`).
        assert_eq!(rx.get_timeout(Duration::ZERO).await, Ok(5));
        producer.join().unwrap();
        let (_tx, mut rx) = FromThreadChannel::<u32>::new(2);
        rx.set_default_timeout(Duration::from_millis(10));
        assert!(matches!(rx.get_default().await, Err(GetError::Timeout(_))));
    });
}

#[test]
fn timeout_and_sleep_on_every_executor() {
    on_every_executor(|| async {
        assert_eq!(
            aiothreads::timeout(Duration::from_secs(5), async { 7 }).await,
            Ok(7)
        );
        let start = Instant::now();
        aiothreads::sleep(Duration::from_millis(10)).await;
        assert!(start.elapsed() >= Duration::from_millis(10));
        let r = aiothreads::timeout(
            Duration::from_millis(10),
            aiothreads::sleep(Duration::from_secs(3600)),
        )
        .await;
        assert_eq!(r.unwrap_err().after(), Duration::from_millis(10));
        // Many timers at once, dropped early or not: each ends at its own deadline.
        let futs = (1..=20u64).map(|ms| async move {
            let start = Instant::now();
            aiothreads::sleep(Duration::from_millis(ms)).await;
            start.elapsed() >= Duration::from_millis(ms)
        });
        assert!(futures::future::join_all(futs)
            .await
            .into_iter()
            .all(|ok| ok));
    });
}
