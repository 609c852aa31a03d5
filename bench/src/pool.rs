//! Pool cases: aiothreads against `tokio::task::spawn_blocking` and `blocking::unblock`, all
//! measured in the same run, repetitions interleaved.
//!
//! - `pool/roundtrip`: one call awaited at a time, under a tokio current-thread runtime and
//!   under our `block_on`; wall and process CPU time per call.
//! - `pool/concurrency`: per-call cost with 1 … 100 000 calls in flight (submit all, then
//!   join them), under a tokio current-thread runtime. The 100 000 point is the goal.
//! - `pool/size`: ours with pools of 1, 2, 4 and 32 threads, 10 000 calls in flight.
//! - `pool/alloc`: heap allocations per call (counting allocator).
//! - `pool/separate`: `spawn_separate` against bare `std::thread::spawn` + `join`.
//! - `pool/idle`: the CPU an idle pool burns once its spinning has run out.

use std::future::Future;
use std::hint::black_box;
use std::time::Duration;

use futures::future::join_all;
use tokio::runtime::Runtime;

use crate::alloc_count::allocations;
use crate::measure::{cpu_seconds, interleave, reps, size, time, tokio_current_thread, Timing};
use crate::report::Report;

/// The executor a case's async side runs under.
#[derive(Debug, Clone, Copy)]
enum Exec {
    /// `Runtime::block_on` of a tokio current-thread runtime.
    Tokio,
    /// `aiothreads::block_on`, with the tokio runtime entered (so `spawn_blocking` works).
    Ours,
}

fn block_on<F: Future>(exec: Exec, rt: &Runtime, fut: F) -> F::Output {
    match exec {
        Exec::Tokio => rt.block_on(fut),
        Exec::Ours => {
            let _guard = rt.enter();
            aiothreads::block_on(fut)
        }
    }
}

/// Times `calls(level, total)` calls: rounds of `level` calls (all submitted, then joined;
/// one awaited at a time when `level` is 1) under `exec`.
fn calls<H: Future>(
    exec: Exec,
    rt: &Runtime,
    level: usize,
    total: usize,
    spawn: impl Fn(usize) -> H,
) -> Timing {
    let rounds = (total / level).max(1);
    time(|| {
        block_on(exec, rt, async {
            for _ in 0..rounds {
                if level == 1 {
                    black_box(spawn(0).await);
                } else {
                    let handles: Vec<H> = (0..level).map(&spawn).collect();
                    black_box(join_all(handles).await);
                }
            }
        })
    })
}

/// How many calls [`calls`] makes.
fn count(level: usize, total: usize) -> usize {
    (total / level).max(1) * level
}

fn ours(i: usize) -> aiothreads::JoinHandle<usize> {
    aiothreads::spawn(move || i)
}

fn tokio_blocking(i: usize) -> tokio::task::JoinHandle<usize> {
    tokio::task::spawn_blocking(move || i)
}

fn unblock(i: usize) -> blocking::Task<usize> {
    blocking::unblock(move || i)
}

/// Runs the pool groups whose names contain `filter`.
pub fn run(report: &mut Report, want: &dyn Fn(&str) -> bool) {
    let rt = tokio_current_thread();
    // Warm up the pools (threads started) outside the measurements.
    rt.block_on(async {
        for _ in 0..100 {
            aiothreads::spawn(|| ()).await;
            tokio::task::spawn_blocking(|| ()).await.unwrap();
            blocking::unblock(|| ()).await;
        }
    });
    if want("pool/roundtrip") {
        roundtrip(report, &rt);
    }
    if want("pool/concurrency") {
        concurrency(report, &rt);
    }
    if want("pool/size") {
        pool_size(report);
    }
    if want("pool/alloc") {
        alloc(report, &rt);
    }
    if want("pool/separate") {
        separate(report);
    }
    if want("pool/idle") {
        idle(report);
    }
}

const OURS: &str = "aiothreads::spawn";
const TOKIO: &str = "tokio::task::spawn_blocking";
const BLOCKING: &str = "blocking::unblock";

/// Sequential round trips under both executors: wall and CPU per call.
fn roundtrip(report: &mut Report, rt: &Runtime) {
    let n = size(20_000, 5_000);
    let (t, o) = (Exec::Tokio, Exec::Ours);
    let samples = interleave(
        reps(9, 3),
        true,
        &mut [
            &mut || calls(t, rt, 1, n, ours),
            &mut || calls(t, rt, 1, n, tokio_blocking),
            &mut || calls(t, rt, 1, n, unblock),
            &mut || calls(o, rt, 1, n, ours),
            &mut || calls(o, rt, 1, n, tokio_blocking),
            &mut || calls(o, rt, 1, n, unblock),
        ],
    );
    // Per executor: [ours, tokio, blocking].
    for (chunk, label) in samples
        .chunks(3)
        .zip(["tokio current-thread", "aiothreads::block_on"])
    {
        let case = format!("pool round trip: one call awaited at a time, under {label}");
        let mut wall = [0.0; 3];
        for (i, (s, name)) in chunk.iter().zip([OURS, TOKIO, BLOCKING]).enumerate() {
            let w: Vec<f64> = s.iter().map(|t| t.wall_ns_per(n)).collect();
            wall[i] = report.add(&case, name, "wall", "ns/call", &w);
        }
        for (s, name) in chunk.iter().zip([OURS, TOKIO, BLOCKING]) {
            let c: Vec<f64> = s.iter().map(|t| t.cpu_ns_per(n)).collect();
            report.add(&case, name, "CPU (all threads)", "ns/call", &c);
        }
        report.goal(
            &format!("round trip ≤ 0.1× the faster pool peer (all under {label})"),
            wall[0] / wall[1].min(wall[2]),
            0.1,
            false,
        );
    }
}

/// Per-call cost against the number of calls in flight, under a tokio current-thread
/// runtime; the 100 000 point is the concurrency goal.
fn concurrency(report: &mut Report, rt: &Runtime) {
    let case = "pool: per-call cost vs calls in flight (tokio current-thread)";
    // Calls per sample at the low levels (rounds of `level`); the high levels do one round.
    let total = size(10_000, 2_000);
    let e = Exec::Tokio;
    for level in [1, 10, 100, 1_000, 10_000, 100_000] {
        let n = count(level, total);
        let big = level >= 100_000;
        let samples = interleave(
            if big { reps(3, 1) } else { reps(9, 3) },
            !big,
            &mut [
                &mut || calls(e, rt, level, total, ours),
                &mut || calls(e, rt, level, total, tokio_blocking),
                &mut || calls(e, rt, level, total, unblock),
            ],
        );
        let mut wall = [0.0; 3];
        for (i, (s, name)) in samples.iter().zip([OURS, TOKIO, BLOCKING]).enumerate() {
            let w: Vec<f64> = s.iter().map(|t| t.wall_ns_per(n)).collect();
            wall[i] = report.add_point(
                case,
                "calls in flight",
                level as f64,
                name,
                "wall",
                "ns/call",
                &w,
            );
        }
        if big {
            report.goal(
                "100 000 concurrent calls ≥ 5× the faster peer's throughput",
                wall[1].min(wall[2]) / wall[0],
                5.0,
                true,
            );
        }
    }
}

/// Ours with pools of 1, 2, 4 and 32 threads: 10 000 short calls in flight.
fn pool_size(report: &mut Report) {
    let case = "pool size: 10 000 calls in flight on a pool of N threads (aiothreads::block_on)";
    let n = size(10_000, 2_000);
    let sizes = [1, 2, 4, 32];
    let pools: Vec<aiothreads::Pool> = sizes
        .iter()
        .map(|&t| aiothreads::Pool::builder().max_threads(t).build())
        .collect();
    let run = |pool: &aiothreads::Pool| {
        let t = time(|| {
            aiothreads::block_on(async {
                let handles: Vec<_> = (0..n).map(|i| pool.spawn(move || i)).collect();
                black_box(join_all(handles).await);
            })
        });
        t.wall_ns_per(n)
    };
    let (mut a, mut b, mut c, mut d) = (
        || run(&pools[0]),
        || run(&pools[1]),
        || run(&pools[2]),
        || run(&pools[3]),
    );
    let samples = interleave(reps(7, 3), true, &mut [&mut a, &mut b, &mut c, &mut d]);
    for (s, threads) in samples.iter().zip(sizes) {
        report.add_point(
            case,
            "pool threads",
            threads as f64,
            "aiothreads Pool",
            "wall",
            "ns/call",
            s,
        );
    }
    for p in &pools {
        p.shutdown(Duration::from_secs(1));
    }
}

/// Heap allocations per call, `n` sequential calls under our `block_on`.
fn alloc(report: &mut Report, rt: &Runtime) {
    let case = "pool: heap allocations per call (sequential, aiothreads::block_on)";
    let n = size(10_000, 2_000);
    let per_call = |f: &mut dyn FnMut()| {
        let a = allocations();
        f();
        (allocations() - a) as f64 / n as f64
    };
    let o = Exec::Ours;
    let (mut a, mut b, mut c) = (
        || {
            per_call(&mut || {
                calls(o, rt, 1, n, ours);
            })
        },
        || {
            per_call(&mut || {
                calls(o, rt, 1, n, tokio_blocking);
            })
        },
        || {
            per_call(&mut || {
                calls(o, rt, 1, n, unblock);
            })
        },
    );
    let samples = interleave(3, true, &mut [&mut a, &mut b, &mut c]);
    let m = report.add(case, OURS, "allocations", "allocs/call", &samples[0]);
    report.add(case, TOKIO, "allocations", "allocs/call", &samples[1]);
    report.add(case, BLOCKING, "allocations", "allocs/call", &samples[2]);
    // One allocation per call (the shared task) plus amortised growth of queues and executor
    // buffers over the run: hence ≤ 1.01 rather than ≤ 1.
    report.goal(
        "≤ 1 heap allocation per call (≤ 1.01: amortised queue growth)",
        m,
        1.01,
        false,
    );
}

/// `spawn_separate` (a new named thread per call) against bare `std::thread::spawn` + `join`.
fn separate(report: &mut Report) {
    let case = "separate thread: one new thread per call, sequential";
    let n = size(300, 100);
    let mut ours = || {
        time(|| {
            aiothreads::block_on(async {
                for i in 0..n {
                    black_box(aiothreads::spawn_separate(move || i).await);
                }
            })
        })
    };
    let mut bare = || {
        time(|| {
            for i in 0..n {
                black_box(std::thread::spawn(move || i).join().expect("thread"));
            }
        })
    };
    let samples = interleave(reps(9, 3), true, &mut [&mut ours, &mut bare]);
    let names = [
        "aiothreads::spawn_separate (aiothreads::block_on)",
        "std::thread::spawn + join",
    ];
    let mut wall = [0.0; 2];
    for (i, (s, name)) in samples.iter().zip(names).enumerate() {
        let w: Vec<f64> = s.iter().map(|t| t.wall_ns_per(n)).collect();
        wall[i] = report.add(case, name, "wall", "ns/call", &w);
    }
    for (s, name) in samples.iter().zip(names) {
        let c: Vec<f64> = s.iter().map(|t| t.cpu_ns_per(n)).collect();
        report.add(case, name, "CPU (all threads)", "ns/call", &c);
    }
    report.goal(
        "separate thread ≤ 1.2× bare spawn + join",
        wall[0] / wall[1],
        1.2,
        false,
    );
}

/// After a burst of calls, let the spinning run out, then measure the process's CPU time
/// over 500 ms of idleness.
fn idle(report: &mut Report) {
    aiothreads::block_on(async {
        for i in 0..1_000 {
            black_box(aiothreads::spawn(move || i).await);
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    let cpu0 = cpu_seconds();
    std::thread::sleep(Duration::from_millis(500));
    let ms = (cpu_seconds() - cpu0) * 1e3;
    report.add(
        "idle: process CPU over 500 ms after the last call",
        "aiothreads pool (and the peers' idle pools)",
        "CPU",
        "ms",
        &[ms],
    );
    report.goal(
        "an idle pool burns no CPU (≤ 5 ms in 500 ms)",
        ms,
        5.0,
        false,
    );
}
