//! Many slow consumers (`stream/slow-consumers`): N open streams consumed round-robin by one
//! task on a tokio current-thread runtime, so every stream's producer is backpressured most of
//! the time. Items per second over all streams, and the threads the process gained while they
//! ran (its peak thread count minus its count before the streams were made; threads that
//! other cases left behind are not counted).
//!
//! - ours: `IterCall` on a 4-thread pool (a producer gives its worker back while its ring is
//!   full), N = 1, 100 and 10 000;
//! - `blocking::Unblock` and tokio `spawn_blocking` + `mpsc`: each backpressured producer holds
//!   a thread of its pool, and both pools cap their threads (blocking: 500, tokio: 512), so a
//!   round-robin consumer of more streams than that waits forever for a stream whose producer
//!   never gets a thread. They run N = 1 and 100 only (N = 10 000 would deadlock, or need
//!   10 000 threads on this 2-core machine).

use std::time::Instant;

use futures::{Stream, StreamExt};

use crate::measure::{size, time, tokio_current_thread, Timing};
use crate::report::Report;

/// Bound of every stream's queue.
const BOUND: usize = 16;

/// The process's thread count (`/proc/self/status`).
fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Consumes `streams` round-robin, `per` items each, checking order; returns the timing and
/// the peak thread count seen (`before`: the count before the streams were made).
fn round_robin<S: Stream<Item = u64> + Unpin>(
    mut streams: Vec<S>,
    per: u64,
    before: usize,
) -> (Timing, usize) {
    let rt = tokio_current_thread();
    let mut peak = threads();
    let timing = time(|| {
        rt.block_on(async {
            let mut last_sample = Instant::now();
            for want in 0..per {
                for s in &mut streams {
                    assert_eq!(s.next().await, Some(want));
                }
                if last_sample.elapsed().as_millis() >= 5 {
                    peak = peak.max(threads());
                    last_sample = Instant::now();
                }
            }
            peak = peak.max(threads());
            for s in &mut streams {
                assert_eq!(s.next().await, None);
            }
        });
    });
    (timing, peak.saturating_sub(before))
}

/// Records one contender's throughput and threads gained for `n` streams.
fn record(r: &mut Report, n: usize, contender: &str, mops: f64, threads: usize) {
    let case = "stream/slow-consumers";
    r.add_point(
        case,
        "streams",
        n as f64,
        contender,
        "throughput",
        "M items/s",
        &[mops],
    );
    r.add_point(
        &format!("{case} threads"),
        "streams",
        n as f64,
        contender,
        "threads gained",
        "threads",
        &[threads as f64],
    );
}

pub fn run(r: &mut Report) {
    let total: u64 = size(640_000, 64_000);
    let pool = aiothreads::Pool::builder().max_threads(4).build();
    for n in [1usize, 100, 10_000] {
        let per = (total / n as u64).max(1);
        let items = per * n as u64;
        let before = threads();
        let ours: Vec<_> = (0..n)
            .map(|_| {
                aiothreads::IterCall::new(move || 0..per)
                    .max_size(BOUND)
                    .on(&pool)
            })
            .collect();
        let (t, peak) = round_robin(ours, per, before);
        record(r, n, "aiothreads (4-thread pool)", t.mops(items), peak);
        if n > 100 {
            continue;
        }
        let before = threads();
        let unblock: Vec<_> = (0..n)
            .map(|_| blocking::Unblock::with_capacity(BOUND, 0..per))
            .collect();
        let (t, peak) = round_robin(unblock, per, before);
        record(r, n, "blocking::Unblock", t.mops(items), peak);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("tokio runtime");
        let before = threads();
        let tokio_streams: Vec<_> = (0..n)
            .map(|_| {
                let (tx, rx) = tokio::sync::mpsc::channel(BOUND);
                rt.spawn_blocking(move || {
                    for i in 0..per {
                        if tx.blocking_send(i).is_err() {
                            break;
                        }
                    }
                });
                tokio_stream_of(rx)
            })
            .collect();
        let (t, peak) = round_robin(tokio_streams, per, before);
        record(r, n, "tokio spawn_blocking + mpsc", t.mops(items), peak);
        drop(rt);
    }
}

/// A tokio `mpsc::Receiver` as a `Stream` (without tokio-stream).
fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<u64>,
) -> std::pin::Pin<Box<dyn Stream<Item = u64> + Send>> {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}
