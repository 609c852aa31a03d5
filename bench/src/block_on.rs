//! `block_on` and `sync_await` benchmarks, peers measured in the same run.
//!
//! - `block_on` of a ready future: ours against `futures::executor::block_on`, `pollster`
//!   and tokio's current-thread `Runtime::block_on` (reference);
//! - the hop: from a plain thread, run a trivial future on a tokio runtime and wait for its
//!   result — ours (`Loop::sync_await`) against `Handle::spawn` + waiting on the `JoinHandle`
//!   from the thread (the same hop done by hand), and, for reference, tokio's
//!   `Handle::block_on` from a `spawn_blocking` thread (no hop: the future runs on the
//!   calling thread, so it cannot use the runtime's thread).

use std::hint::black_box;
use std::time::Instant;

const REPS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Nanoseconds per call of `f` called `n` times (one run, after a short warm-up).
fn ns_per_call_once(n: usize, f: &mut impl FnMut()) -> f64 {
    for _ in 0..n.min(100) {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// Median over `REPS` runs of nanoseconds per call of `f` called `n` times.
fn ns_per_call(n: usize, mut f: impl FnMut()) -> f64 {
    // Warm-up (first-call caches, page faults).
    for _ in 0..n.min(1000) {
        f();
    }
    let samples = (0..REPS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    median(samples)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Runs the group if `filter` is empty or names it (`block_on`, `sync_await`).
pub fn run(filter: &str) {
    let quick = std::env::var_os("AIOTHREADS_BENCH_QUICK").is_some();
    if filter.is_empty() || "block_on".contains(filter) {
        ready(if quick { 1_000_000 } else { 10_000_000 });
    }
    if filter.is_empty() || "sync_await".contains(filter) || "hop".contains(filter) {
        hop(if quick { 1_000 } else { 5_000 });
    }
}

fn ready(n: usize) {
    println!("== block_on: a ready future, ns/op (median of {REPS})");
    let ours = ns_per_call(n, || {
        black_box(aiothreads::block_on(async { black_box(1u64) }));
    });
    let futures = ns_per_call(n, || {
        black_box(futures::executor::block_on(async { black_box(1u64) }));
    });
    let pollster = ns_per_call(n, || {
        black_box(pollster::block_on(async { black_box(1u64) }));
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let tokio = ns_per_call(n / 10, || {
        black_box(rt.block_on(async { black_box(1u64) }));
    });
    println!("  aiothreads::block_on          {ours:8.2} ns");
    println!("  futures::executor::block_on   {futures:8.2} ns");
    println!("  pollster::block_on            {pollster:8.2} ns");
    println!("  tokio Runtime::block_on       {tokio:8.2} ns");
    let ratio = ours / futures;
    println!(
        "  goal block_on <= 1.0x futures::executor: {ratio:.2}x  {}",
        verdict(ratio <= 1.0)
    );
}

fn hop(n: usize) {
    println!(
        "== sync_await: thread -> tokio runtime -> thread round trip, µs/op (median of {REPS})"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("tokio runtime");
    let handle = rt.handle().clone();
    let lp = aiothreads::Loop::from(handle.clone());

    // One plain thread (a worker stand-in) measures both, repetitions interleaved so that
    // load from other processes hits both alike.
    let (ours, tokio_hop) = {
        let lp = lp.clone();
        let handle = handle.clone();
        std::thread::spawn(move || {
            let mut ours = || {
                black_box(lp.sync_await(async { black_box(1u64) }));
            };
            let mut theirs = || {
                let jh = handle.spawn(async { black_box(1u64) });
                black_box(futures::executor::block_on(jh).expect("task"));
            };
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..REPS {
                a.push(ns_per_call_once(n, &mut ours));
                b.push(ns_per_call_once(n, &mut theirs));
            }
            (median(a), median(b))
        })
        .join()
        .expect("bench thread")
    };
    // From a `spawn_blocking` thread, as real code would: ours finds the loop itself.
    let (ours_blocking, tokio_block_on) = rt.block_on(async {
        tokio::task::spawn_blocking(move || {
            let ours = ns_per_call(n, || {
                black_box(aiothreads::sync_await(async { black_box(1u64) }));
            });
            let handle = tokio::runtime::Handle::current();
            let tokio = ns_per_call(n, || {
                black_box(handle.block_on(async { black_box(1u64) }));
            });
            (ours, tokio)
        })
        .await
        .expect("spawn_blocking")
    });
    let us = |ns: f64| ns / 1000.0;
    println!(
        "  aiothreads Loop::sync_await (plain thread)     {:8.2} µs",
        us(ours)
    );
    println!(
        "  aiothreads sync_await (spawn_blocking thread)  {:8.2} µs",
        us(ours_blocking)
    );
    println!(
        "  tokio Handle::spawn + wait on JoinHandle       {:8.2} µs",
        us(tokio_hop)
    );
    println!(
        "  tokio Handle::block_on in spawn_blocking       {:8.3} µs  (no hop: runs on the caller)",
        us(tokio_block_on)
    );
    let ratio = ours / tokio_hop;
    println!(
        "  goal sync_await hop <= 1.0x tokio hop: {ratio:.2}x  {}  (stretch 0.5x: {})",
        verdict(ratio <= 1.0),
        verdict(ratio <= 0.5)
    );
}
