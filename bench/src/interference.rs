//! Interference: what offloading work does to the other tasks of the runtime that offloads it.
//!
//! A tokio current-thread runtime (time enabled) runs a timer task that ticks a 1 ms
//! `tokio::time::interval` (missed ticks delayed, not burst) and records each tick's lateness
//! (when it ran − when it was scheduled), while the runtime's main task meanwhile
//! - `interference/calls`: awaits calls one at a time (`|| i`): ours (a lazy `Call` awaited
//!   directly) against `tokio::task::spawn_blocking` and `blocking::unblock`;
//! - `interference/stream`: consumes a stream of `u64` produced by an iterator on another
//!   thread (queue bound 1024): ours (`IterCall`) against `blocking::Unblock` and
//!   `spawn_blocking` + tokio `mpsc` (`blocking_send`).
//!
//! Two timers run beside the main task, both ticking every 1 ms:
//! - the tokio `interval` above. Its deadlines are rounded up to the timer wheel's next whole
//!   millisecond, so its lateness is mostly the phase of the run's start against that
//!   millisecond (0.1–1.3 ms for the same contender from one run to the next on an AMD EPYC
//!   VM) and resolves nothing finer;
//! - a *woken task*: a thread outside the runtime sleeps to every millisecond and sends the
//!   instant it woke to a task of the runtime, which records how long after the send it ran.
//!   That delay is the scheduler's alone (the wake-up of a parked runtime, or the wait for a
//!   busy one to give its other tasks their turn), measured to the microsecond.
//!
//! The timer alone (no main task) is the reference. Reported: both timers' p50 and p99 (µs)
//! and the main task's rate; the goals read our woken-task p99 against the better peer's.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::runtime::Runtime;
use tokio::time::MissedTickBehavior;

use crate::measure::{interleave, reps, size, tokio_current_thread};
use crate::report::Report;

/// One run: the interval's lateness (p50, p99) and the woken task's delay (p50, p99), in µs,
/// and the main task's operations per second.
struct Sample {
    interval: (f64, f64),
    woken: (f64, f64),
    /// Every delay of the woken task, for the p99 over all runs.
    delays: Vec<f64>,
    rate: f64,
}

/// The `q`-quantile (0..=1) of `xs`, nearest rank.
fn quantile(xs: &mut [f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    xs[rank - 1]
}

/// Ticks a 1 ms interval `ticks` times, recording each tick's lateness in µs; sets `stop`
/// when done.
async fn ticker(ticks: usize, stop: Arc<AtomicBool>) -> Vec<f64> {
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval.tick().await; // the first tick completes at once
    let mut late = Vec::with_capacity(ticks);
    for _ in 0..ticks {
        let scheduled = interval.tick().await;
        late.push(
            tokio::time::Instant::now()
                .saturating_duration_since(scheduled)
                .as_secs_f64()
                * 1e6,
        );
    }
    stop.store(true, Ordering::Relaxed);
    late
}

/// The woken task (see the module docs): a thread wakes every 1 ms for `ticks` ms and sends
/// the instant it woke; the task records, per message, how long after the send it ran (µs).
/// A message that waits behind a late one is measured from its own send.
async fn woken_task(ticks: usize) -> Vec<f64> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let thread = std::thread::spawn(move || {
        let start = Instant::now();
        for k in 1..=u32::try_from(ticks).unwrap_or(u32::MAX) {
            let at = start + Duration::from_millis(1) * k;
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            if tx.send(Instant::now()).is_err() {
                break;
            }
        }
    });
    let mut delays = Vec::with_capacity(ticks);
    while let Some(sent) = rx.recv().await {
        delays.push(sent.elapsed().as_secs_f64() * 1e6);
    }
    thread.join().expect("ticker thread");
    delays
}

/// One run on `rt`: the timer task beside `load` (the main task), which runs until the flag it
/// is given is set (or its deadline passes) and returns how many operations it made.
fn sample<Fut: Future<Output = u64>>(
    rt: &Runtime,
    ticks: usize,
    load: impl FnOnce(Arc<AtomicBool>, Instant) -> Fut,
) -> Sample {
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let timer = tokio::spawn(ticker(ticks, stop.clone()));
        let woken = tokio::spawn(woken_task(ticks));
        let start = Instant::now();
        // A bound in case the load never lets the timer run: twice the timer's duration.
        let deadline = start + Duration::from_millis(2 * ticks as u64);
        let ops = load(stop, deadline).await;
        let secs = start.elapsed().as_secs_f64();
        let mut late = timer.await.expect("timer task");
        let mut delays = woken.await.expect("woken task");
        Sample {
            interval: (quantile(&mut late, 0.50), quantile(&mut late, 0.99)),
            woken: (quantile(&mut delays, 0.50), quantile(&mut delays, 0.99)),
            delays,
            rate: ops as f64 / secs,
        }
    })
}

/// No load: the timer alone.
async fn idle(stop: Arc<AtomicBool>, _deadline: Instant) -> u64 {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    0
}

/// Awaits calls made by `call` one at a time until stopped.
async fn call_loop<H: Future>(
    stop: Arc<AtomicBool>,
    deadline: Instant,
    call: impl Fn(usize) -> H,
) -> u64 {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        black_box(call(n as usize).await);
        n += 1;
    }
    n
}

/// The items every stream carries: counting up until `stop` is set.
fn items(stop: Arc<AtomicBool>) -> impl Iterator<Item = u64> + Send + 'static {
    (0u64..).take_while(move |_| !stop.load(Ordering::Relaxed))
}

/// Consumes `stream` to its end (its iterator ends once `stop` is set) or to the deadline.
async fn drain(stream: impl futures::Stream<Item = u64>, deadline: Instant) -> u64 {
    let mut s = pin!(stream);
    let mut n = 0u64;
    while let Some(x) = s.next().await {
        black_box(x);
        n += 1;
        if n.is_multiple_of(1024) && Instant::now() >= deadline {
            break;
        }
    }
    n
}

const BOUND: usize = 1024;

/// Runs the groups whose names `want` accepts: `interference/calls`, `interference/stream`.
pub fn run(report: &mut Report, want: &dyn Fn(&str) -> bool) {
    if !want("interference/calls") && !want("interference/stream") {
        return;
    }
    // No warm-up run (each costs a second); the pools are started here instead.
    let rt = tokio_current_thread();
    rt.block_on(async {
        for i in 0..100 {
            black_box(aiothreads::Call::new(move || i).await);
            black_box(tokio::task::spawn_blocking(move || i).await.expect("task"));
            black_box(blocking::unblock(move || i).await);
        }
    });
    let ticks = size(1_000, 300);
    let reps = reps(5, 2);
    if want("interference/calls") {
        let names = [
            "timer alone (reference)",
            "aiothreads Call (.await)",
            "tokio::task::spawn_blocking",
            "blocking::unblock",
        ];
        let s = interleave(
            reps,
            false,
            &mut [
                &mut || sample(&rt, ticks, idle),
                &mut || {
                    sample(&rt, ticks, |stop, d| {
                        call_loop(stop, d, |i| aiothreads::Call::new(move || black_box(i)))
                    })
                },
                &mut || {
                    sample(&rt, ticks, |stop, d| {
                        call_loop(stop, d, |i| {
                            tokio::task::spawn_blocking(move || black_box(i))
                        })
                    })
                },
                &mut || {
                    sample(&rt, ticks, |stop, d| {
                        call_loop(stop, d, |i| blocking::unblock(move || black_box(i)))
                    })
                },
            ],
        );
        let case = "interference: 1 ms tokio interval beside a loop of calls awaited one at a \
                    time (tokio current-thread)";
        add(report, case, &names, &s, "k calls/s");
        report.goal(
            "interference, loop of calls: woken task's p99 delay ≤ 1.1× the better peer's",
            p99(&s[1]) / p99(&s[2]).min(p99(&s[3])),
            1.1,
            false,
        );
    }
    if want("interference/stream") {
        let names = [
            "timer alone (reference)",
            "aiothreads IterCall",
            "blocking::Unblock",
            "tokio spawn_blocking + mpsc blocking_send",
        ];
        let s = interleave(
            reps,
            false,
            &mut [
                &mut || sample(&rt, ticks, idle),
                &mut || {
                    sample(&rt, ticks, |stop, d| {
                        drain(
                            aiothreads::IterCall::new(move || items(stop)).max_size(BOUND),
                            d,
                        )
                    })
                },
                &mut || {
                    sample(&rt, ticks, |stop, d| {
                        drain(blocking::Unblock::with_capacity(BOUND, items(stop)), d)
                    })
                },
                &mut || {
                    sample(&rt, ticks, |stop, d| {
                        let (tx, mut rx) = tokio::sync::mpsc::channel(BOUND);
                        tokio::task::spawn_blocking(move || {
                            for x in items(stop) {
                                if tx.blocking_send(x).is_err() {
                                    break;
                                }
                            }
                        });
                        drain(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)), d)
                    })
                },
            ],
        );
        let case = "interference: 1 ms tokio interval beside a stream consumer, u64 items, \
                    bound 1024 (tokio current-thread)";
        add(report, case, &names, &s, "M items/s");
        report.goal(
            "interference, stream consumer: woken task's p99 delay ≤ 1.1× the better peer's",
            p99(&s[1]) / p99(&s[2]).min(p99(&s[3])),
            1.1,
            false,
        );
    }
}

/// The woken task's p99 delay over all runs' delays pooled (the goals' figure: a p99 over
/// thousands of ticks, steadier than a median of per-run p99s of a thousand each).
fn p99(s: &[Sample]) -> f64 {
    let mut all: Vec<f64> = s.iter().flat_map(|s| s.delays.iter().copied()).collect();
    quantile(&mut all, 0.99)
}

/// A reported metric and how to read it from a run.
type Row = (&'static str, fn(&Sample) -> f64);

/// Records both timers' p50 and p99, and the rate (in thousands for calls, millions for
/// items) of every contender.
fn add(report: &mut Report, case: &str, names: &[&str], s: &[Vec<Sample>], rate_unit: &str) {
    let scale = if rate_unit.starts_with('M') { 1e6 } else { 1e3 };
    let rows: [Row; 4] = [
        ("woken task delay p50", |s| s.woken.0),
        ("woken task delay p99", |s| s.woken.1),
        ("interval lateness p50", |s| s.interval.0),
        ("interval lateness p99", |s| s.interval.1),
    ];
    for (metric, get) in rows {
        for (samples, name) in s.iter().zip(names) {
            let v: Vec<f64> = samples.iter().map(get).collect();
            report.add(case, name, metric, "µs", &v);
        }
    }
    for (samples, name) in s.iter().zip(names) {
        report.add(
            case,
            name,
            "woken task delay p99, runs pooled",
            "µs",
            &[p99(samples)],
        );
    }
    for (samples, name) in s.iter().zip(names).skip(1) {
        let v: Vec<f64> = samples.iter().map(|s| s.rate / scale).collect();
        report.add(case, name, "main task rate", rate_unit, &v);
    }
}
