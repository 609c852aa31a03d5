//! Pool streams hold no thread while they wait: a producer whose ring is full gives its
//! worker back and is resubmitted when the consumer frees room. Many more open streams than
//! pool threads, `zip`, and a consumer that awaits a call on the same pool all work.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use aiothreads::{Call, IterCall, Pool};
use aiothreads_tests::{on_every_executor, wait_until};
use futures::StreamExt;

/// Counts its drops, and those that happened off a pool thread.
struct Guard {
    drops: Arc<AtomicUsize>,
    off_pool: Arc<AtomicUsize>,
}
impl Drop for Guard {
    fn drop(&mut self) {
        let on_pool = thread::current()
            .name()
            .is_some_and(|n| n.starts_with("susp-"));
        if !on_pool {
            self.off_pool.fetch_add(1, SeqCst);
        }
        self.drops.fetch_add(1, SeqCst);
    }
}

#[test]
fn ten_thousand_backpressured_streams_on_four_threads() {
    const STREAMS: usize = if cfg!(miri) { 10 } else { 10_000 };
    const ITEMS: u32 = 10;
    on_every_executor(|| async {
        let pool = Pool::builder()
            .max_threads(4)
            .thread_name_prefix("susp")
            .build();
        let drops = Arc::new(AtomicUsize::new(0));
        let off_pool = Arc::new(AtomicUsize::new(0));
        let mut streams: Vec<_> = (0..STREAMS)
            .map(|s| {
                let guard = Guard {
                    drops: drops.clone(),
                    off_pool: off_pool.clone(),
                };
                IterCall::new(move || {
                    (0..ITEMS).map(move |i| {
                        let _ = &guard;
                        (s, i)
                    })
                })
                .max_size(2)
                .on(&pool)
            })
            .collect();
        // Round-robin: every stream is open and backpressured (ring full) most of the time.
        for round in 0..ITEMS {
            for (s, stream) in streams.iter_mut().enumerate() {
                assert_eq!(stream.next().await, Some((s, round)), "stream {s}");
            }
            assert!(pool.thread_count() <= 4);
        }
        for stream in &mut streams {
            assert_eq!(stream.next().await, None);
        }
        drop(streams);
        assert!(wait_until(Duration::from_secs(30), || drops.load(SeqCst) == STREAMS));
        assert_eq!(
            off_pool.load(SeqCst),
            0,
            "an iterator was dropped off the pool"
        );
    });
}

#[test]
fn zip_of_64_streams_on_two_threads() {
    on_every_executor(|| async {
        let pool = Pool::builder().max_threads(2).build();
        let mut zipped = futures::stream::iter(Vec::<Vec<u64>>::new()).boxed();
        let mut first = true;
        for k in 0..64u64 {
            let s = IterCall::new(move || (0..100u64).map(move |i| i * 64 + k))
                .max_size(4)
                .on(&pool)
                .map(|x| vec![x]);
            zipped = if first {
                first = false;
                s.boxed()
            } else {
                zipped
                    .zip(s)
                    .map(|(mut v, x)| {
                        v.extend(x);
                        v
                    })
                    .boxed()
            };
        }
        let rows: Vec<Vec<u64>> = zipped.collect().await;
        assert_eq!(rows.len(), 100);
        for (i, row) in rows.iter().enumerate() {
            let want: Vec<u64> = (0..64).map(|k| i as u64 * 64 + k).collect();
            assert_eq!(row, &want);
        }
    });
}

#[test]
fn a_call_on_a_one_thread_pool_while_holding_a_full_stream() {
    on_every_executor(|| async {
        let pool = Pool::builder().max_threads(1).build();
        let mut s = IterCall::new(|| 0u64..).max_size(1).on(&pool);
        assert_eq!(s.next().await, Some(0));
        // The stream's producer is suspended on its full ring: the one worker is free.
        let answer = Call::new(|| 42).on(&pool).await;
        assert_eq!(answer, 42);
        assert_eq!(s.next().await, Some(1));
        s.close().await.unwrap();
    });
}

#[test]
fn a_long_stream_yields_its_worker_to_calls() {
    on_every_executor(|| async {
        // One thread, a producer that never fills its (huge) ring: it still gives the worker
        // to a queued call after a ring's worth of items.
        let pool = Pool::builder().max_threads(1).build();
        let mut s = IterCall::new(|| 0u64..1_000_000).max_size(64).on(&pool);
        assert_eq!(s.next().await, Some(0));
        let answer = Call::new(|| 7).on(&pool).await;
        assert_eq!(answer, 7);
        let rest = s.fold(0u64, |n, _| async move { n + 1 }).await;
        assert_eq!(rest, 999_999);
    });
}
