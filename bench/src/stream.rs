//! Stream throughput: items made by an iterator on a thread, consumed by an async task.
//!
//! - `stream/peers`: every contender moves the same `u64` items (`0..N`) with a queue bound of
//!   1024, and its consumer runs under the same tiny executor, whose waker counts wake-ups, so
//!   "consumer wake-ups per item" is measured the same way for all. The raw two-thread core
//!   ring, single-item push/pop (busy spinning on both sides), is the ceiling the goal is
//!   stated against.
//! - `stream/max_size`: ours with bounds 1, 16, 1 024 and 65 536 and items of 8 B and 1 KiB,
//!   flume and async-channel at 1 024 for reference.
//! - `stream/unbounded`: ours with `max_size(0)` against flume's, tokio's and async-channel's
//!   unbounded channels.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use futures::StreamExt;

use crate::measure::{interleave, reps, size, time};
use crate::report::Report;

/// Queue bound of the peer comparison.
const BOUND: usize = 1024;

/// A waker that unparks the consumer thread and counts its wake-ups: all of them, and those
/// given by the consumer's own thread (a stream's cooperative yield wakes its own task: the
/// executor re-queues it, no thread is woken).
struct CountingWaker {
    thread: Thread,
    notified: AtomicBool,
    wakes: AtomicU64,
    self_wakes: AtomicU64,
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::Relaxed);
        if thread::current().id() == self.thread.id() {
            self.self_wakes.fetch_add(1, Ordering::Relaxed);
        }
        if !self.notified.swap(true, Ordering::Release) {
            self.thread.unpark();
        }
    }
}

/// Runs `fut` on this thread; returns its output and the wake-ups it received (all of them,
/// and those its own thread gave).
fn block_on_counting<F: Future>(fut: F) -> (F::Output, (u64, u64)) {
    let state = Arc::new(CountingWaker {
        thread: thread::current(),
        notified: AtomicBool::new(false),
        wakes: AtomicU64::new(0),
        self_wakes: AtomicU64::new(0),
    });
    let waker = Waker::from(state.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            let wakes = (
                state.wakes.load(Ordering::Relaxed),
                state.self_wakes.load(Ordering::Relaxed),
            );
            return (out, wakes);
        }
        while !state.notified.swap(false, Ordering::Acquire) {
            thread::park();
        }
    }
}

/// What a stream carries: `u64` (8 B) or `[u8; 1024]` (1 KiB), numbered so the consumer can
/// check it saw every item.
trait Item: Send + 'static {
    fn make(i: u64) -> Self;
    fn key(&self) -> u64;
}

impl Item for u64 {
    fn make(i: u64) -> Self {
        i
    }
    fn key(&self) -> u64 {
        *self
    }
}

impl Item for [u8; 1024] {
    fn make(i: u64) -> Self {
        let mut a = [0u8; 1024];
        a[..8].copy_from_slice(&i.to_le_bytes());
        a
    }
    fn key(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self[..8]);
        u64::from_le_bytes(b)
    }
}

/// One measured run: (M items per second, consumer wake-ups per item, of which self-wakes).
type Sample = (f64, f64, f64);

/// Consumes `stream` on this thread under the counting executor while `producer` (if any)
/// runs on its own thread; checks every item arrived, in order.
fn consume<T: Item, S: futures::Stream<Item = T>>(
    n: u64,
    producer: Option<Box<dyn FnOnce() + Send>>,
    stream: impl FnOnce() -> S,
) -> Sample {
    let mut wakes = (0, 0);
    let t = time(|| {
        let producer = producer.map(thread::spawn);
        let (sum, count);
        ((sum, count), wakes) = block_on_counting(async {
            let mut s = pin!(stream());
            let (mut sum, mut count) = (0u64, 0u64);
            while let Some(x) = s.next().await {
                sum = sum.wrapping_add(x.key());
                count += 1;
            }
            (sum, count)
        });
        if let Some(p) = producer {
            p.join().expect("producer");
        }
        check(n, sum, count);
    });
    let per_item = |w: u64| w as f64 / n as f64;
    (t.mops(n), per_item(wakes.0), per_item(wakes.1))
}

fn items<T: Item>(n: u64) -> impl Iterator<Item = T> {
    (0..n).map(T::make)
}

fn ours<T: Item>(n: u64, bound: usize) -> Sample {
    consume(n, None, || {
        aiothreads::IterCall::new(move || items::<T>(n)).max_size(bound)
    })
}

fn unblock<T: Item>(n: u64, bound: usize) -> Sample {
    consume(n, None, || {
        blocking::Unblock::with_capacity(bound, items::<T>(n))
    })
}

fn tokio_mpsc<T: Item>(n: u64, bound: usize) -> Sample {
    let (tx, mut rx) = tokio::sync::mpsc::channel(bound);
    let producer = Box::new(move || {
        for x in items::<T>(n) {
            assert!(tx.blocking_send(x).is_ok(), "receiver gone");
        }
    });
    consume(n, Some(producer), || {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    })
}

fn flume_channel<T: Item>(n: u64, bound: usize) -> Sample {
    let (tx, rx) = flume::bounded(bound);
    let producer = Box::new(move || {
        for x in items::<T>(n) {
            assert!(tx.send(x).is_ok(), "receiver gone");
        }
    });
    consume(n, Some(producer), || rx.into_stream())
}

fn async_channel<T: Item>(n: u64, bound: usize) -> Sample {
    let (tx, rx) = async_channel::bounded(bound);
    let producer = Box::new(move || {
        for x in items::<T>(n) {
            assert!(tx.send_blocking(x).is_ok(), "receiver gone");
        }
    });
    consume(n, Some(producer), || rx)
}

/// The ceiling: the core ring between two threads, both sides busy-spinning, no wakers.
fn raw_ring<T: Item>(n: u64, bound: usize) -> Sample {
    let (mut tx, mut rx) = aiothreads_core::ring::with_capacity::<T>(bound);
    let t = time(|| {
        let producer = thread::spawn(move || {
            for x in items::<T>(n) {
                let mut v = x;
                while let Err(e) = tx.push(v) {
                    v = e.into_inner();
                    std::hint::spin_loop();
                }
            }
        });
        let (mut sum, mut count) = (0u64, 0u64);
        while count < n {
            if let Ok(x) = rx.pop() {
                sum = sum.wrapping_add(x.key());
                count += 1;
            } else {
                std::hint::spin_loop();
            }
        }
        producer.join().expect("producer");
        check(n, sum, count);
    });
    (t.mops(n), 0.0, 0.0)
}

fn check(n: u64, sum: u64, count: u64) {
    assert_eq!(count, n, "items lost");
    assert_eq!(
        sum,
        (0..n).fold(0u64, u64::wrapping_add),
        "items lost or corrupted"
    );
}

/// Runs the stream groups whose names `want` accepts: `stream/peers`, `stream/max_size`,
/// `stream/unbounded`, `stream/drain`.
pub fn run(report: &mut Report, want: &dyn Fn(&str) -> bool) {
    if want("stream/peers") {
        peers(report);
    }
    if want("stream/drain") {
        drain(report);
    }
    if want("stream/max_size") {
        max_size(report);
    }
    if want("stream/unbounded") {
        unbounded(report);
    }
}

fn flume_unbounded<T: Item>(n: u64) -> Sample {
    let (tx, rx) = flume::unbounded();
    let producer = Box::new(move || {
        for x in items::<T>(n) {
            assert!(tx.send(x).is_ok(), "receiver gone");
        }
    });
    consume(n, Some(producer), || rx.into_stream())
}

fn tokio_unbounded<T: Item>(n: u64) -> Sample {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let producer = Box::new(move || {
        for x in items::<T>(n) {
            assert!(tx.send(x).is_ok(), "receiver gone");
        }
    });
    consume(n, Some(producer), || {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    })
}

fn async_channel_unbounded<T: Item>(n: u64) -> Sample {
    let (tx, rx) = async_channel::unbounded();
    let producer = Box::new(move || {
        for x in items::<T>(n) {
            assert!(tx.send_blocking(x).is_ok(), "receiver gone");
        }
    });
    consume(n, Some(producer), || rx)
}

/// Unbounded queues (`max_size(0)`): ours against the peers' unbounded channels, and ours
/// with the default bound for reference. The consumer runs from the start, so the queue
/// holds what the producer is ahead by.
fn unbounded(report: &mut Report) {
    let n: u64 = size(5_000_000, 500_000);
    let names = [
        "aiothreads IterCall, unbounded",
        "flume::unbounded",
        "tokio mpsc unbounded_channel",
        "async-channel unbounded",
        "aiothreads IterCall, max_size 1024 (reference)",
    ];
    let (mut a, mut b, mut c, mut d, mut e) = (
        || ours::<u64>(n, 0),
        || flume_unbounded::<u64>(n),
        || tokio_unbounded::<u64>(n),
        || async_channel_unbounded::<u64>(n),
        || ours::<u64>(n, BOUND),
    );
    let samples = interleave(
        reps(5, 3),
        false,
        &mut [&mut a, &mut b, &mut c, &mut d, &mut e],
    );
    let case = format!("stream: {n} u64 through an unbounded queue to an async consumer");
    for (s, name) in samples.iter().zip(names) {
        let r: Vec<f64> = s.iter().map(|s| s.0).collect();
        report.add(&case, name, "throughput", "M items/s", &r);
    }
}

/// u64 items, max_size 1024: ours against every peer and the raw ring.
fn peers(report: &mut Report) {
    let n: u64 = size(5_000_000, 500_000);
    let names = [
        "aiothreads IterCall",
        "blocking::Unblock",
        "tokio mpsc + blocking_send",
        "flume",
        "async-channel",
        "aiothreads-core ring push/pop, 2 threads spinning (reference)",
    ];
    let (mut a, mut b, mut c, mut d, mut e, mut f) = (
        || ours::<u64>(n, BOUND),
        || unblock::<u64>(n, BOUND),
        || tokio_mpsc::<u64>(n, BOUND),
        || flume_channel::<u64>(n, BOUND),
        || async_channel::<u64>(n, BOUND),
        || raw_ring::<u64>(n, BOUND),
    );
    let _ = ours::<u64>(n / 10, BOUND); // warm the default pool
    let samples = interleave(
        reps(5, 3),
        false,
        &mut [&mut a, &mut b, &mut c, &mut d, &mut e, &mut f],
    );
    let protocol = if aiothreads::__private::asymmetric_stream_rings() {
        "no fence per item while the consumer sleeps seldom (membarrier)"
    } else {
        "a fence per item"
    };
    let case = format!(
        "stream: {n} u64 from an iterator on a thread to an async consumer, max_size {BOUND}, producer pays {protocol}"
    );
    let mut rates = Vec::new();
    let mut wakes = Vec::new();
    for (s, name) in samples.iter().zip(names) {
        let r: Vec<f64> = s.iter().map(|s| s.0).collect();
        rates.push(report.add(&case, name, "throughput", "M items/s", &r));
    }
    for (s, name) in samples.iter().zip(names).take(5) {
        let w: Vec<f64> = s.iter().map(|s| s.1).collect();
        wakes.push(report.add(&case, name, "consumer wake-ups", "wakes/item", &w));
    }
    // The share of those the consumer's own thread gave (ours: the cooperative yield).
    for (s, name) in samples.iter().zip(names).take(5) {
        let w: Vec<f64> = s.iter().map(|s| s.2).collect();
        report.add(&case, name, "of which self-wakes", "wakes/item", &w);
    }
    let best_peer = rates[1..5].iter().copied().fold(0.0, f64::max);
    report.goal(
        "stream ≥ 5× the fastest peer",
        rates[0] / best_peer,
        5.0,
        true,
    );
    report.goal(
        "stream ≥ 0.5× the raw ring's single-item rate (two threads spinning)",
        rates[0] / rates[5],
        0.5,
        true,
    );
    report.goal(
        "stream < 1e-3 consumer wake-ups per item",
        wakes[0],
        1e-3,
        false,
    );
}

/// Ours against max_size 1, 16, 1 024 and 65 536 with 8 B and 1 KiB items; flume and
/// async-channel at 1 024 for reference.
fn max_size(report: &mut Report) {
    let case = "stream throughput vs max_size, 8 B and 1 KiB items";
    let base: u64 = size(2_000_000, 400_000);
    let x = "max_size";
    let unit = "M items/s";
    for bound in [1usize, 16, 1024, 65_536] {
        // Small bounds hand items over one by one: far fewer items keep the run short.
        let n8 = match bound {
            1 => base / 100,
            16 => base / 10,
            _ => base,
        };
        let n1k = n8 / 4;
        let b = bound as f64;
        if bound == 1024 {
            let (mut a, mut c, mut d, mut e, mut f, mut g) = (
                || ours::<u64>(n8, bound),
                || ours::<[u8; 1024]>(n1k, bound),
                || flume_channel::<u64>(n8, bound),
                || flume_channel::<[u8; 1024]>(n1k, bound),
                || async_channel::<u64>(n8, bound),
                || async_channel::<[u8; 1024]>(n1k, bound),
            );
            let s = interleave(
                reps(5, 3),
                true,
                &mut [&mut a, &mut c, &mut d, &mut e, &mut f, &mut g],
            );
            let names = [
                "aiothreads IterCall, 8 B items",
                "aiothreads IterCall, 1 KiB items",
                "flume, 8 B items",
                "flume, 1 KiB items",
                "async-channel, 8 B items",
                "async-channel, 1 KiB items",
            ];
            for (s, name) in s.iter().zip(names) {
                let r: Vec<f64> = s.iter().map(|s| s.0).collect();
                report.add_point(case, x, b, name, "throughput", unit, &r);
            }
        } else {
            let (mut a, mut c) = (|| ours::<u64>(n8, bound), || ours::<[u8; 1024]>(n1k, bound));
            let s = interleave(reps(5, 3), true, &mut [&mut a, &mut c]);
            let names = [
                "aiothreads IterCall, 8 B items",
                "aiothreads IterCall, 1 KiB items",
            ];
            for (s, name) in s.iter().zip(names) {
                let r: Vec<f64> = s.iter().map(|s| s.0).collect();
                report.add_point(case, x, b, name, "throughput", unit, &r);
            }
        }
    }
}

/// Items per `stream/drain` sample.
const DRAIN: u64 = 1 << 16;

/// An iterator over `0..n` that raises `done` when it is dropped (on the producer's thread,
/// after its last item).
struct Flagged {
    items: std::ops::Range<u64>,
    done: Arc<AtomicBool>,
}

impl Iterator for Flagged {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        self.items.next()
    }
}

impl Drop for Flagged {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
    }
}

/// Drains `stream`, whose items are all queued already, through `StreamExt::next` under the
/// counting executor; returns the sum of the items.
#[inline(always)]
fn drain_all<S: futures::Stream<Item = u64> + Unpin>(stream: &mut S) -> u64 {
    block_on_counting(async {
        let mut sum = 0u64;
        while let Some(x) = stream.next().await {
            sum = sum.wrapping_add(x);
        }
        sum
    })
    .0
}

/// The drain loops, each a symbol of its own for `--toggle-collect`
/// (`scripts/instructions.sh stream`): only the draining is counted, not the set-up.
#[inline(never)]
fn drain_loop_ours<S: futures::Stream<Item = u64> + Unpin>(stream: &mut S) -> u64 {
    drain_all(stream)
}

#[inline(never)]
fn drain_loop_core_stream<S: futures::Stream<Item = u64> + Unpin>(stream: &mut S) -> u64 {
    drain_all(stream)
}

#[inline(never)]
fn drain_loop_raw(rx: &mut aiothreads_core::ring::Consumer<'static, u64>) -> u64 {
    let mut sum = 0u64;
    while let Ok(x) = rx.pop() {
        sum = sum.wrapping_add(x);
    }
    sum
}

/// Ours: an `IterCall` whose producer has pushed every item and finished (its queue holds
/// them all), drained on this thread.
fn drain_ours(n: u64) -> f64 {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let mut s = aiothreads::IterCall::new(move || Flagged {
        items: 0..n + 1,
        done: flag,
    })
    .max_size(2 * n as usize);
    assert_eq!(block_on_counting(s.next()).0, Some(0));
    while !done.load(Ordering::Acquire) {
        thread::sleep(std::time::Duration::from_micros(100));
    }
    let mut sum = 0;
    let t = time(|| sum = drain_loop_ours(&mut s));
    check(n + 1, sum, n + 1);
    t.mops(n)
}

/// A core ring of capacity `2 n` holding `0..n`, pushed by another thread (as an `IterCall`'s
/// items are; that thread has ended, an `IterCall`'s worker lives on).
fn filled_ring(n: u64) -> aiothreads_core::ring::Consumer<'static, u64> {
    let (mut tx, rx) = aiothreads_core::ring::with_capacity::<u64>(2 * n as usize);
    thread::spawn(move || (0..n).for_each(|i| tx.push(i).expect("room")))
        .join()
        .expect("producer");
    rx
}

/// The core ring's `Consumer` as a `Stream`, filled by another thread first.
fn drain_core_stream(n: u64) -> f64 {
    let mut rx = filled_ring(n);
    let mut sum = 0;
    let t = time(|| sum = drain_loop_core_stream(&mut rx));
    check(n, sum, n);
    t.mops(n)
}

/// The core ring's raw `pop`, filled by another thread first.
fn drain_raw(n: u64) -> f64 {
    let mut rx = filled_ring(n);
    let mut sum = 0u64;
    let t = time(|| sum = drain_loop_raw(&mut rx));
    check(n, sum, n);
    t.mops(n)
}

/// `stream/drain`: the consumer's own cost per item, without the hand-off between two running
/// threads: queues that hold every item already, drained on one thread. The rate depends on
/// where the producer left the items (another core's cache); `make stream-instructions`
/// counts the instructions per item under callgrind, which do not.
fn drain(report: &mut Report) {
    let n = DRAIN;
    let (mut a, mut b, mut c) = (|| drain_ours(n), || drain_core_stream(n), || drain_raw(n));
    let runs = reps(9, 3);
    let s = interleave(runs, true, &mut [&mut a, &mut b, &mut c]);
    // Read by scripts/instructions.sh stream to turn callgrind's counts into a per-item figure.
    println!(
        "stream/drain: {} items drained per contender (warm-up included)",
        n * (runs as u64 + 1)
    );
    let case = format!("stream drain: {n} u64 already queued, drained on one thread");
    let names = [
        "aiothreads IterCall",
        "aiothreads-core Consumer as a Stream (reference)",
        "aiothreads-core ring pop (reference)",
    ];
    for (s, name) in s.iter().zip(names) {
        report.add(&case, name, "throughput", "M items/s", s);
    }
}
