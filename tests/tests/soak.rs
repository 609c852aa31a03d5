//! Soak: many calls and streams with random fates, every one accounted for.
//!
//! Size from `AIOTHREADS_SOAK`: unset or `short` (a few seconds, part of `cargo test`),
//! `full` (1 000 000 calls, 10 000 streams: `make soak`), or a number of calls (streams: one
//! per hundred calls).
//!
//! - **Calls** are awaited, awaited and panicking, dropped at once (cancelled before start, or
//!   not), dropped while running, detached, detached and panicking. Per-call counters check
//!   that each ran at most once (exactly once unless cancelled before start), that its closure
//!   was dropped exactly once, that every awaited panic came back once with its own payload,
//!   and that every job dropped while running saw its cancellation.
//! - **Streams** are read to the end, dropped after a random number of items, or closed with
//!   `close().await`; their iterators panic at random points. Per-item bits check that every
//!   item produced was dropped exactly once (delivered and dropped by the consumer, or dropped
//!   in the ring / on the producer); every iterator made was dropped exactly once, on a pool
//!   thread; every panic is surfaced once where someone still listens.
//! - **Bounded pools** with random `max_queued` and 1–3 threads: calls awaited, polled then
//!   moved to another thread, polled then dropped (waiting for a place), dropped; more streams
//!   than workers, half of them closed while their producers may still be queued. Every
//!   admitted call returns its own value, every closure is dropped once, and a pool never runs
//!   more threads than jobs in flight.
//! - **After each round** the pool's threads exit within the keep-alive, its thread count
//!   never exceeds the maximum, all its workers still run jobs at once, and RSS stays flat
//!   between the second and the third round.
//!
//! Everything is driven by a deterministic xorshift generator: a failure names the round and
//! the seed-derived index, and reruns the same way.
#![allow(clippy::manual_inspect)] // the iterators under test count inside `map`

use std::panic;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Once};
use std::thread;
use std::time::{Duration, Instant};

use aiothreads::{IterCall, JoinError, Pool};
use aiothreads_tests::{wait_until, Executor};
use futures::StreamExt;

/// Size of a run.
#[derive(Debug, Clone, Copy)]
struct Size {
    calls: usize,
    streams: usize,
    rounds: usize,
    limit: Duration,
}

impl Size {
    fn from_env() -> Self {
        let value = std::env::var("AIOTHREADS_SOAK").unwrap_or_default();
        let (calls, streams, limit) = match value.trim() {
            "" | "short" => (60_000, 1_500, 180),
            "full" => (1_000_000, 10_000, 1800),
            n => {
                let calls: usize = n.parse().unwrap_or_else(|_| {
                    panic!("AIOTHREADS_SOAK must be `short`, `full` or a number, got {n:?}")
                });
                (calls, (calls / 100).max(1), 1800)
            }
        };
        Size {
            calls,
            streams,
            rounds: 3,
            limit: Duration::from_secs(limit),
        }
    }
}

/// xorshift64*: small, fast, deterministic.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The payload of every injected panic; the panic hook keeps quiet about it.
struct SoakPanic(usize);

/// Installs (once) a panic hook that silences injected panics and reports all others.
fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<SoakPanic>().is_none() {
                default(info);
            }
        }));
    });
}

/// Resident set size in bytes (Linux: /proc/self/statm, pages of 4 KiB).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn counters<T: Default>(n: usize) -> Vec<T> {
    (0..n).map(|_| T::default()).collect()
}

// ---- calls -----------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Awaited,
    AwaitedPanic,
    DroppedAtOnce,
    DroppedWhileRunning,
    Detached,
    DetachedPanic,
}

impl Fate {
    fn pick(rng: &mut Rng) -> Self {
        match rng.below(100) {
            0..=29 => Fate::Awaited,
            30..=44 => Fate::AwaitedPanic,
            45..=64 => Fate::DroppedAtOnce,
            65..=74 => Fate::DroppedWhileRunning,
            75..=89 => Fate::Detached,
            _ => Fate::DetachedPanic,
        }
    }
    fn panics(self) -> bool {
        matches!(self, Fate::AwaitedPanic | Fate::DetachedPanic)
    }
}

/// Per-call accounting.
#[derive(Default)]
struct CallCounters {
    runs: Vec<AtomicU8>,
    closure_drops: Vec<AtomicU8>,
    started: Vec<AtomicBool>,
    saw_cancel: Vec<AtomicU8>,
}

/// Lives in each call's closure: dropped exactly once, whether the job ran or not.
struct CallGuard {
    c: Arc<CallCounters>,
    i: usize,
}
impl Drop for CallGuard {
    fn drop(&mut self) {
        self.c.closure_drops[self.i].fetch_add(1, SeqCst);
    }
}

#[derive(Debug, Default)]
struct CallReport {
    ran: usize,
    cancelled_before_start: usize,
    panics_surfaced: usize,
    by_fate: [usize; 6],
}

async fn soak_calls(pool: &Pool, n: usize, seed: u64, limit: Duration) -> CallReport {
    let c = Arc::new(CallCounters {
        runs: counters(n),
        closure_drops: counters(n),
        started: counters(n),
        saw_cancel: counters(n),
    });
    let mut rng = Rng::new(seed);
    let fates: Vec<Fate> = (0..n).map(|_| Fate::pick(&mut rng)).collect();
    let mut report = CallReport::default();
    const BATCH: usize = 256;
    for start in (0..n).step_by(BATCH) {
        let mut awaited = Vec::new();
        for (i, &fate) in fates.iter().enumerate().skip(start).take(BATCH) {
            report.by_fate[fate as usize] += 1;
            let guard = CallGuard { c: c.clone(), i };
            let spin = rng.below(4) as u32;
            let h = pool.spawn(move || {
                let g = guard;
                g.c.runs[g.i].fetch_add(1, SeqCst);
                g.c.started[g.i].store(true, SeqCst);
                for _ in 0..spin * 50 {
                    std::hint::spin_loop();
                }
                if fate == Fate::DroppedWhileRunning {
                    let t = Instant::now();
                    while !aiothreads::is_cancelled() && t.elapsed() < Duration::from_secs(30) {
                        thread::yield_now();
                    }
                    if aiothreads::is_cancelled() {
                        g.c.saw_cancel[g.i].fetch_add(1, SeqCst);
                    }
                }
                if fate.panics() {
                    panic::panic_any(SoakPanic(g.i));
                }
                g.i as u64 * 3
            });
            match fate {
                Fate::Awaited | Fate::AwaitedPanic => awaited.push((i, fate, h.try_join())),
                Fate::DroppedAtOnce => drop(h),
                Fate::DroppedWhileRunning => {
                    // Jobs queued before it are short, so it starts soon.
                    let t = Instant::now();
                    while !c.started[i].load(SeqCst) {
                        assert!(t.elapsed() < limit, "call {i} never started");
                        thread::yield_now();
                    }
                    drop(h);
                }
                Fate::Detached | Fate::DetachedPanic => h.detach(),
            }
        }
        let (ids, futs): (Vec<_>, Vec<_>) = awaited
            .into_iter()
            .map(|(i, fate, fut)| ((i, fate), fut))
            .unzip();
        let results = futures::future::join_all(futs).await;
        for ((i, fate), result) in ids.into_iter().zip(results) {
            match (fate, result) {
                (Fate::Awaited, Ok(v)) => assert_eq!(v, i as u64 * 3, "call {i}"),
                (Fate::AwaitedPanic, Err(JoinError::Panicked(p))) => {
                    let p = p.downcast::<SoakPanic>().expect("the job's own payload");
                    assert_eq!(p.0, i, "call {i} got another call's panic");
                    report.panics_surfaced += 1;
                }
                (fate, other) => panic!("call {i} ({fate:?}): unexpected {other:?}"),
            }
        }
        assert!(pool.thread_count() <= pool.max_threads());
    }
    // Wait for the detached and dropped calls to settle: every closure dropped.
    let all_dropped = || c.closure_drops.iter().all(|d| d.load(SeqCst) == 1);
    assert!(
        wait_until(limit, all_dropped),
        "some call closures were never dropped"
    );
    for (i, &fate) in fates.iter().enumerate() {
        let runs = c.runs[i].load(SeqCst);
        assert_eq!(c.closure_drops[i].load(SeqCst), 1, "call {i} ({fate:?})");
        match fate {
            Fate::DroppedAtOnce => assert!(runs <= 1, "call {i} ran {runs} times"),
            _ => assert_eq!(runs, 1, "call {i} ({fate:?}) ran {runs} times"),
        }
        if fate == Fate::DroppedWhileRunning {
            assert_eq!(
                c.saw_cancel[i].load(SeqCst),
                1,
                "call {i} missed its cancel"
            );
        }
        if runs == 1 {
            report.ran += 1;
        } else {
            report.cancelled_before_start += 1;
        }
    }
    let awaited_panics = report.by_fate[Fate::AwaitedPanic as usize];
    assert_eq!(report.panics_surfaced, awaited_panics);
    report
}

// ---- streams ---------------------------------------------------------------------------------

/// Items per stream at most.
const MAX_LEN: usize = 256;

#[derive(Default)]
struct StreamCounters {
    /// Bit `stream * MAX_LEN + seq`: the item was made / dropped.
    made: Vec<AtomicU64>,
    dropped: Vec<AtomicU64>,
    double_drops: AtomicUsize,
    iter_made: Vec<AtomicU8>,
    iter_dropped: Vec<AtomicU8>,
    iter_dropped_off_pool: AtomicUsize,
    closure_drops: Vec<AtomicU8>,
    panicked: Vec<AtomicBool>,
}

struct Item {
    id: usize,
    c: Arc<StreamCounters>,
}
impl Drop for Item {
    fn drop(&mut self) {
        let (word, bit) = (self.id / 64, 1u64 << (self.id % 64));
        if self.c.dropped[word].fetch_or(bit, SeqCst) & bit != 0 {
            self.c.double_drops.fetch_add(1, SeqCst);
        }
    }
}

struct SoakIter {
    stream: usize,
    seq: usize,
    len: usize,
    panic_at: Option<usize>,
    c: Arc<StreamCounters>,
}
impl Iterator for SoakIter {
    type Item = Item;
    fn next(&mut self) -> Option<Item> {
        if Some(self.seq) == self.panic_at {
            self.c.panicked[self.stream].store(true, SeqCst);
            panic::panic_any(SoakPanic(self.stream));
        }
        if self.seq == self.len {
            return None;
        }
        let id = self.stream * MAX_LEN + self.seq;
        self.c.made[id / 64].fetch_or(1 << (id % 64), SeqCst);
        self.seq += 1;
        Some(Item {
            id,
            c: self.c.clone(),
        })
    }
}
impl Drop for SoakIter {
    fn drop(&mut self) {
        self.c.iter_dropped[self.stream].fetch_add(1, SeqCst);
        let on_pool = thread::current()
            .name()
            .is_some_and(|n| n.starts_with("soakpool-"));
        if !on_pool {
            self.c.iter_dropped_off_pool.fetch_add(1, SeqCst);
        }
    }
}

struct ClosureGuard {
    c: Arc<StreamCounters>,
    s: usize,
}
impl Drop for ClosureGuard {
    fn drop(&mut self) {
        self.c.closure_drops[self.s].fetch_add(1, SeqCst);
    }
}

#[derive(Debug, Clone, Copy)]
enum Consume {
    ToEnd,
    DropAfter(usize),
    CloseAfter(usize),
}

#[derive(Debug, Default)]
struct StreamReport {
    items_made: usize,
    items_delivered: usize,
    panics_injected: usize,
    panics_surfaced: usize,
    closed: usize,
    dropped: usize,
    to_end: usize,
}

/// One stream, consumed as told; returns (items delivered, panics surfaced).
async fn run_stream(
    pool: Pool,
    c: Arc<StreamCounters>,
    s: usize,
    len: usize,
    panic_at: Option<usize>,
    max_size: usize,
    consume: Consume,
) -> (usize, usize) {
    let guard = ClosureGuard { c: c.clone(), s };
    let ic = c.clone();
    let mut stream = IterCall::new(move || {
        let g = guard;
        g.c.iter_made[g.s].fetch_add(1, SeqCst);
        SoakIter {
            stream: s,
            seq: 0,
            len,
            panic_at,
            c: ic,
        }
    })
    .max_size(max_size)
    .on(&pool)
    .try_stream();
    let end = panic_at.map_or(len, |p| p.min(len));
    let want = match consume {
        Consume::ToEnd => usize::MAX,
        Consume::DropAfter(k) | Consume::CloseAfter(k) => k,
    };
    let (mut delivered, mut surfaced, mut finished) = (0, 0, false);
    while delivered < want {
        match stream.next().await {
            Some(Ok(item)) => {
                assert_eq!(item.id, s * MAX_LEN + delivered, "stream {s}: order");
                delivered += 1;
            }
            Some(Err(JoinError::Panicked(p))) => {
                let p = p
                    .downcast::<SoakPanic>()
                    .expect("the iterator's own payload");
                assert_eq!(p.0, s);
                assert_eq!(delivered, end, "stream {s}: items before the panic");
                surfaced += 1;
                assert!(
                    stream.next().await.is_none(),
                    "stream {s}: ends after the panic"
                );
                finished = true;
                break;
            }
            Some(Err(e)) => panic!("stream {s}: {e}"),
            None => {
                assert_eq!(delivered, end, "stream {s}: length");
                assert!(panic_at.is_none_or(|p| p >= len), "stream {s}: panic lost");
                finished = true;
                break;
            }
        }
    }
    if let (Consume::CloseAfter(_), false) = (consume, finished) {
        let r = stream.close().await;
        // `close` returns once the iterator is gone: the panic, if it happened, is reported.
        let panicked = c.panicked[s].load(SeqCst);
        match r {
            Ok(()) => assert!(!panicked, "stream {s}: close lost the panic"),
            Err(JoinError::Panicked(p)) => {
                assert!(panicked);
                assert_eq!(p.downcast::<SoakPanic>().expect("payload").0, s);
                surfaced += 1;
            }
            Err(e) => panic!("stream {s}: close: {e}"),
        }
        assert_eq!(
            c.iter_made[s].load(SeqCst),
            c.iter_dropped[s].load(SeqCst),
            "stream {s}: close returned before the iterator's drop"
        );
    }
    drop(stream);
    (delivered, surfaced)
}

async fn soak_streams(pool: &Pool, n: usize, seed: u64, limit: Duration) -> StreamReport {
    let words = (n * MAX_LEN).div_ceil(64);
    let c = Arc::new(StreamCounters {
        made: counters(words),
        dropped: counters(words),
        iter_made: counters(n),
        iter_dropped: counters(n),
        closure_drops: counters(n),
        panicked: counters(n),
        ..Default::default()
    });
    let mut rng = Rng::new(seed);
    let mut report = StreamReport::default();
    const GROUP: usize = 4;
    for start in (0..n).step_by(GROUP) {
        let mut group = Vec::new();
        for s in start..(start + GROUP).min(n) {
            let len = rng.below(MAX_LEN as u64 + 1) as usize;
            let panic_at = (rng.below(4) == 0).then(|| rng.below(len as u64 + 1) as usize);
            let max_size = [1, 2, 3, 8, 64][rng.below(5) as usize];
            let k = rng.below(len as u64 + 2) as usize;
            let consume = match rng.below(3) {
                0 => Consume::ToEnd,
                1 => Consume::DropAfter(k),
                _ => Consume::CloseAfter(k),
            };
            match consume {
                Consume::ToEnd => report.to_end += 1,
                Consume::DropAfter(_) => report.dropped += 1,
                Consume::CloseAfter(_) => report.closed += 1,
            }
            group.push(run_stream(
                pool.clone(),
                c.clone(),
                s,
                len,
                panic_at,
                max_size,
                consume,
            ));
        }
        for (delivered, surfaced) in futures::future::join_all(group).await {
            report.items_delivered += delivered;
            report.panics_surfaced += surfaced;
        }
        assert!(pool.thread_count() <= pool.max_threads());
    }
    // Producers of dropped streams finish on their own: wait for every iterator and closure.
    let settled = || {
        (0..n).all(|s| {
            c.closure_drops[s].load(SeqCst) == 1
                && c.iter_made[s].load(SeqCst) == c.iter_dropped[s].load(SeqCst)
        })
    };
    assert!(wait_until(limit, settled), "some streams never settled");
    for s in 0..n {
        assert!(
            c.iter_made[s].load(SeqCst) <= 1,
            "stream {s}: iterator made twice"
        );
        assert_eq!(
            c.closure_drops[s].load(SeqCst),
            1,
            "stream {s}: closure drops"
        );
        report.panics_injected += usize::from(c.panicked[s].load(SeqCst));
    }
    assert_eq!(
        c.iter_dropped_off_pool.load(SeqCst),
        0,
        "an iterator dropped off its thread"
    );
    assert_eq!(c.double_drops.load(SeqCst), 0, "items dropped twice");
    for w in 0..words {
        let (made, dropped) = (c.made[w].load(SeqCst), c.dropped[w].load(SeqCst));
        assert_eq!(
            made,
            dropped,
            "items {}..{}: made {made:#x}, dropped {dropped:#x}",
            w * 64,
            w * 64 + 64
        );
        report.items_made += made.count_ones() as usize;
    }
    report
}

// ---- bounded pools: admission, handles polled then moved or dropped, queued closes ----------

/// What happens to one awaited-style call on a bounded pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    /// Awaited by this task.
    Awaited,
    /// Polled once here, then awaited on another thread.
    PolledThenMoved,
    /// Polled once here (perhaps waiting for a place), then dropped.
    PolledThenDropped,
    /// Dropped without a poll.
    Dropped,
}

#[derive(Debug, Default)]
struct AdmissionReport {
    pools: usize,
    calls_admitted: usize,
    calls_given_up: usize,
    streams_closed_queued: usize,
}

/// Polls `fut` once with a no-op waker.
fn poll_once<F: std::future::Future + Unpin>(fut: &mut F) -> std::task::Poll<F::Output> {
    let waker = futures::task::noop_waker();
    std::pin::Pin::new(fut).poll(&mut std::task::Context::from_waker(&waker))
}

/// Small bounded pools with random `max_queued`: calls polled then moved or dropped, streams
/// closed while their producers are still queued, more streams than workers. Every admitted
/// call returns its own value, every closure is dropped exactly once, a given-up call runs at
/// most once, and a pool never runs more threads than jobs it was given.
async fn soak_admission(n: usize, seed: u64) -> AdmissionReport {
    let mut rng = Rng::new(seed);
    let mut report = AdmissionReport::default();
    let mut done = 0;
    while done < n {
        let max_threads = 1 + rng.below(3) as usize;
        let max_queued = 1 + rng.below(6) as usize;
        let pool = Pool::builder()
            .max_threads(max_threads)
            .max_queued(Some(max_queued))
            .keep_alive(Duration::from_millis(20))
            .build();
        report.pools += 1;
        let calls = (8 + rng.below(24) as usize).min(n - done);
        done += calls;
        let runs: Arc<Vec<AtomicU8>> = Arc::new(counters(calls));
        let drops: Arc<Vec<AtomicU8>> = Arc::new(counters(calls));
        let mut awaited = Vec::new();
        let mut moved = Vec::new();
        for i in 0..calls {
            let fate = match rng.below(4) {
                0 => Admit::Awaited,
                1 => Admit::PolledThenMoved,
                2 => Admit::PolledThenDropped,
                _ => Admit::Dropped,
            };
            let guard = DropMark(drops.clone(), i);
            let r = runs.clone();
            let work = rng.below(3);
            let mut call = aiothreads::Call::new(move || {
                let g = guard;
                r[g.1].fetch_add(1, SeqCst);
                thread::sleep(Duration::from_micros(50 * work));
                g.1
            })
            .on(&pool);
            match fate {
                Admit::Awaited => awaited.push((i, call)),
                Admit::PolledThenMoved => {
                    if let std::task::Poll::Ready(v) = poll_once(&mut call) {
                        assert_eq!(v, i);
                        report.calls_admitted += 1;
                    } else {
                        moved.push((i, thread::spawn(move || futures::executor::block_on(call))));
                    }
                }
                Admit::PolledThenDropped => {
                    let _ = poll_once(&mut call);
                    drop(call);
                    report.calls_given_up += 1;
                }
                Admit::Dropped => {
                    drop(call);
                    report.calls_given_up += 1;
                }
            }
        }
        // More streams than workers, some closed while their producer is still queued.
        let mut streams: Vec<_> = (0..max_threads + 2)
            .map(|k| {
                IterCall::new(move || (0..4u32).map(move |x| x + k as u32))
                    .max_size(1)
                    .on(&pool)
            })
            .collect();
        for (k, s) in streams.iter_mut().enumerate() {
            if k % 2 == 0 {
                let _ = poll_once(&mut s.next());
                if !matches!(poll_once(&mut s.close()), std::task::Poll::Ready(_)) {
                    s.close().await.expect("close of a stream");
                }
                report.streams_closed_queued += 1;
            }
        }
        for (k, s) in streams.into_iter().enumerate() {
            if k % 2 == 1 {
                let got: Vec<u32> = s.collect().await;
                assert_eq!(got, (0..4).map(|x| x + k as u32).collect::<Vec<_>>());
            }
        }
        for (i, call) in awaited {
            assert_eq!(call.await, i, "an awaited call got another's value");
            report.calls_admitted += 1;
        }
        for (i, t) in moved {
            assert_eq!(t.join().expect("moved call"), i);
            report.calls_admitted += 1;
        }
        assert!(pool.thread_count() <= max_threads);
        let settled = || drops.iter().all(|d| d.load(SeqCst) == 1);
        assert!(
            wait_until(Duration::from_secs(30), settled),
            "a closure was never dropped"
        );
        assert!(runs.iter().all(|r| r.load(SeqCst) <= 1), "a call ran twice");
        // Thread accounting against jobs in flight: `j` held jobs never start more than `j`
        // threads beyond those already alive (each new thread is owed to a job that found no
        // taker; a worker between its spin and its park may take one of them too).
        let before = pool.thread_count();
        let j = 1 + rng.below(max_threads as u64) as usize;
        let gate = Arc::new(AtomicBool::new(false));
        let held: Vec<_> = (0..j)
            .map(|_| {
                let g = gate.clone();
                pool.spawn(move || {
                    let t = Instant::now();
                    while !g.load(SeqCst) && t.elapsed() < Duration::from_secs(30) {
                        thread::sleep(Duration::from_micros(200));
                    }
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(2));
        let threads = pool.thread_count();
        gate.store(true, SeqCst);
        futures::future::join_all(held).await;
        assert!(
            threads <= before + j,
            "{j} jobs in flight on a pool with {before} threads ran on {threads} threads"
        );
    }
    report
}

/// Marks call `.1`'s closure as dropped.
struct DropMark(Arc<Vec<AtomicU8>>, usize);
impl Drop for DropMark {
    fn drop(&mut self) {
        self.0[self.1].fetch_add(1, SeqCst);
    }
}

// ---- the run ---------------------------------------------------------------------------------

const MAX_THREADS: usize = 4;
const KEEP_ALIVE: Duration = Duration::from_millis(50);

/// All `MAX_THREADS` workers still run jobs at once.
fn assert_workers_intact(pool: &Pool) {
    let barrier = Arc::new(Barrier::new(MAX_THREADS));
    let handles: Vec<_> = (0..MAX_THREADS)
        .map(|_| {
            let b = barrier.clone();
            pool.spawn(move || {
                b.wait();
            })
        })
        .collect();
    futures::executor::block_on(futures::future::join_all(handles));
}

fn wait_idle(pool: &Pool, phase: &str) {
    let idle = wait_until(KEEP_ALIVE + Duration::from_secs(5), || {
        pool.thread_count() == 0
    });
    assert!(
        idle,
        "{phase}: {} threads still alive after the keep-alive",
        pool.thread_count()
    );
}

fn soak_body(size: Size) {
    quiet_injected_panics();
    let pool = Pool::builder()
        .max_threads(MAX_THREADS)
        .keep_alive(KEEP_ALIVE)
        .thread_name_prefix("soakpool")
        .build();
    let executors = [
        Executor::TokioMultiThread,
        Executor::Aiothreads,
        Executor::Smol,
    ];
    let started = Instant::now();
    let mut rss = Vec::new();
    let (mut calls, mut streams) = (CallReport::default(), StreamReport::default());
    for round in 0..size.rounds {
        let exec = executors[round % executors.len()];
        let n_calls = size.calls.div_ceil(size.rounds);
        let n_streams = size.streams.div_ceil(size.rounds);
        let seed = 0x5EED + round as u64;
        let t = Instant::now();
        let r = exec.block_on(soak_calls(&pool, n_calls, seed, size.limit));
        let calls_took = t.elapsed();
        wait_idle(&pool, &format!("round {round} calls"));
        assert_workers_intact(&pool);
        wait_idle(&pool, &format!("round {round} calls"));
        let t = Instant::now();
        let s = exec.block_on(soak_streams(&pool, n_streams, seed, size.limit));
        let streams_took = t.elapsed();
        wait_idle(&pool, &format!("round {round} streams"));
        assert_workers_intact(&pool);
        wait_idle(&pool, &format!("round {round} streams"));
        let a = exec.block_on(soak_admission(n_streams.max(64), seed));
        eprintln!("soak round {round}: bounded pools {a:?}");
        rss.push(rss_bytes());
        eprintln!(
            "soak round {round} on {exec:?}: {n_calls} calls in {calls_took:.2?} {r:?}; \
             {n_streams} streams in {streams_took:.2?} {s:?}; RSS {} MiB",
            rss[round] >> 20
        );
        calls.ran += r.ran;
        calls.cancelled_before_start += r.cancelled_before_start;
        calls.panics_surfaced += r.panics_surfaced;
        streams.items_made += s.items_made;
        streams.items_delivered += s.items_delivered;
        streams.panics_injected += s.panics_injected;
        streams.panics_surfaced += s.panics_surfaced;
    }
    let growth = rss[2].saturating_sub(rss[1]);
    assert!(
        growth < 20 << 20,
        "RSS grew by {} MiB between rounds 2 and 3 ({rss:?})",
        growth >> 20
    );
    eprintln!(
        "soak total in {:.2?}: calls ran {} + cancelled before start {}, panics surfaced {}; \
         stream items made {} (delivered {}, dropped undelivered {}), iterator panics {} \
         (surfaced to a listener {}); RSS after rounds {:?} MiB",
        started.elapsed(),
        calls.ran,
        calls.cancelled_before_start,
        calls.panics_surfaced,
        streams.items_made,
        streams.items_delivered,
        streams.items_made - streams.items_delivered,
        streams.panics_injected,
        streams.panics_surfaced,
        rss.iter().map(|r| r >> 20).collect::<Vec<_>>()
    );
}

#[test]
fn soak() {
    let size = Size::from_env();
    let (tx, rx) = mpsc::channel();
    let body = thread::Builder::new()
        .name("soak-driver".into())
        .spawn(move || {
            soak_body(size);
            let _ = tx.send(());
        })
        .unwrap();
    match rx.recv_timeout(size.limit) {
        Ok(()) => body.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = body.join() {
                panic::resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("soak ({size:?}) timed out after {:?}", size.limit)
        }
    }
}

#[test]
fn xorshift_is_deterministic_and_spread() {
    let (mut a, mut b) = (Rng::new(1), Rng::new(1));
    let mut seen = [0usize; 6];
    for _ in 0..6000 {
        let x = a.below(6);
        assert_eq!(x, b.below(6));
        seen[x as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
}
