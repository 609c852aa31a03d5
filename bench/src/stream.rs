//! Stream throughput: items made by an iterator on a thread, consumed by an async task.
//!
//! Every contender moves the same `u64` items (`0..N`) with a queue bound of 1024, and its
//! consumer runs under the same tiny executor, whose waker counts wake-ups, so "consumer
//! wake-ups per item" is measured the same way for all. The raw two-thread core ring (busy
//! spinning on both sides) is the ceiling the goal is stated against.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

use futures::StreamExt;

use crate::report::{median, Report};

/// Queue bound used by every contender.
const BOUND: usize = 1024;

/// A waker that unparks the consumer thread and counts its wake-ups.
struct CountingWaker {
    thread: Thread,
    notified: AtomicBool,
    wakes: AtomicU64,
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::Relaxed);
        if !self.notified.swap(true, Ordering::Release) {
            self.thread.unpark();
        }
    }
}

/// Runs `fut` on this thread; returns its output and the number of wake-ups it received.
fn block_on_counting<F: Future>(fut: F) -> (F::Output, u64) {
    let state = Arc::new(CountingWaker {
        thread: thread::current(),
        notified: AtomicBool::new(false),
        wakes: AtomicU64::new(0),
    });
    let waker = Waker::from(state.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return (out, state.wakes.load(Ordering::Relaxed));
        }
        while !state.notified.swap(false, Ordering::Acquire) {
            thread::park();
        }
    }
}

/// One measured run: (items per second, consumer wake-ups per item).
type Sample = (f64, f64);

fn ours(n: u64) -> Sample {
    let start = Instant::now();
    let ((sum, count), wakes) = block_on_counting(async {
        let mut s = aiothreads::IterCall::new(move || 0..n).max_size(BOUND);
        let (mut sum, mut count) = (0u64, 0u64);
        while let Some(x) = s.next().await {
            sum = sum.wrapping_add(x);
            count += 1;
        }
        (sum, count)
    });
    let secs = start.elapsed().as_secs_f64();
    check(n, sum, count);
    (n as f64 / secs, wakes as f64 / n as f64)
}

fn unblock(n: u64) -> Sample {
    let start = Instant::now();
    let ((sum, count), wakes) = block_on_counting(async {
        let mut s = blocking::Unblock::with_capacity(BOUND, 0..n);
        let (mut sum, mut count) = (0u64, 0u64);
        while let Some(x) = s.next().await {
            sum = sum.wrapping_add(x);
            count += 1;
        }
        (sum, count)
    });
    let secs = start.elapsed().as_secs_f64();
    check(n, sum, count);
    (n as f64 / secs, wakes as f64 / n as f64)
}

fn tokio_mpsc(n: u64) -> Sample {
    let start = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel(BOUND);
    let producer = thread::spawn(move || {
        for i in 0..n {
            tx.blocking_send(i).unwrap();
        }
    });
    let ((sum, count), wakes) = block_on_counting(async {
        let (mut sum, mut count) = (0u64, 0u64);
        while let Some(x) = rx.recv().await {
            sum = sum.wrapping_add(x);
            count += 1;
        }
        (sum, count)
    });
    producer.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    check(n, sum, count);
    (n as f64 / secs, wakes as f64 / n as f64)
}

fn flume_channel(n: u64) -> Sample {
    let start = Instant::now();
    let (tx, rx) = flume::bounded(BOUND);
    let producer = thread::spawn(move || {
        for i in 0..n {
            tx.send(i).unwrap();
        }
    });
    let ((sum, count), wakes) = block_on_counting(async {
        let (mut sum, mut count) = (0u64, 0u64);
        while let Ok(x) = rx.recv_async().await {
            sum = sum.wrapping_add(x);
            count += 1;
        }
        (sum, count)
    });
    producer.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    check(n, sum, count);
    (n as f64 / secs, wakes as f64 / n as f64)
}

fn async_channel(n: u64) -> Sample {
    let start = Instant::now();
    let (tx, rx) = async_channel::bounded(BOUND);
    let producer = thread::spawn(move || {
        for i in 0..n {
            tx.send_blocking(i).unwrap();
        }
    });
    let ((sum, count), wakes) = block_on_counting(async {
        let (mut sum, mut count) = (0u64, 0u64);
        while let Ok(x) = rx.recv().await {
            sum = sum.wrapping_add(x);
            count += 1;
        }
        (sum, count)
    });
    producer.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    check(n, sum, count);
    (n as f64 / secs, wakes as f64 / n as f64)
}

/// The ceiling: the core ring between two threads, both sides busy-spinning, no wakers.
fn raw_ring(n: u64) -> Sample {
    let (mut tx, mut rx) = aiothreads_core::ring::with_capacity::<u64>(BOUND);
    let start = Instant::now();
    let producer = thread::spawn(move || {
        for i in 0..n {
            let mut v = i;
            loop {
                match tx.push(v) {
                    Ok(()) => break,
                    Err(e) => {
                        v = e.into_inner();
                        std::hint::spin_loop();
                    }
                }
            }
        }
    });
    let (mut sum, mut count) = (0u64, 0u64);
    while count < n {
        if let Ok(x) = rx.pop() {
            sum = sum.wrapping_add(x);
            count += 1;
        } else {
            std::hint::spin_loop();
        }
    }
    producer.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    check(n, sum, count);
    (n as f64 / secs, 0.0)
}

fn check(n: u64, sum: u64, count: u64) {
    assert_eq!(count, n, "items lost");
    assert_eq!(
        sum,
        (0..n).fold(0u64, |a, b| a.wrapping_add(b)),
        "items corrupted"
    );
}

/// Runs the stream group.
pub fn run(report: &mut Report) {
    let n: u64 = if crate::quick() { 1_000_000 } else { 5_000_000 };
    let reps = if crate::quick() { 3 } else { 5 };
    type Contender = (&'static str, fn(u64) -> Sample);
    let contenders: [Contender; 6] = [
        ("aiothreads IterCall", ours),
        ("blocking::Unblock", unblock),
        ("tokio mpsc + blocking_send", tokio_mpsc),
        ("flume", flume_channel),
        ("async-channel", async_channel),
        ("core ring, 2 threads spinning", raw_ring),
    ];
    // Interleave contenders within each repetition so drift hits all alike.
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); contenders.len()];
    let _ = ours(n / 10); // warm the default pool
    for _ in 0..reps {
        for (i, (_, f)) in contenders.iter().enumerate() {
            samples[i].push(f(n));
        }
    }
    let case = format!("stream {n} u64, max_size {BOUND}");
    let mut medians = Vec::new();
    for (i, (name, _)) in contenders.iter().enumerate() {
        let rates: Vec<f64> = samples[i].iter().map(|s| s.0 / 1e6).collect();
        let wakes: Vec<f64> = samples[i].iter().map(|s| s.1).collect();
        report.add(&case, name, "throughput", "M items/s", &rates);
        if *name != "core ring, 2 threads spinning" {
            report.add(
                &case,
                name,
                "consumer wake-ups per item",
                "wakes/item",
                &wakes,
            );
        }
        medians.push((median(&rates), median(&wakes)));
    }
    let ours_rate = medians[0].0;
    let best_peer = medians[1..5].iter().map(|m| m.0).fold(0.0, f64::max);
    let ring = medians[5].0;
    report.goal(
        "stream ≥ 5× the fastest peer",
        ours_rate / best_peer,
        5.0,
        true,
    );
    report.goal(
        "stream ≥ 30% of the raw two-thread ring",
        ours_rate / ring,
        0.30,
        true,
    );
    report.goal(
        "stream < 0.01 consumer wake-ups per item",
        medians[0].1,
        0.01,
        false,
    );
}
