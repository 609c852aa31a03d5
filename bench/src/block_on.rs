//! `block_on` and `sync_await` cases, peers measured in the same run.
//!
//! - `block_on` of a ready future: ours against `futures::executor::block_on`, `pollster`
//!   and tokio's current-thread `Runtime::block_on`;
//! - the hop: run a trivial future on a tokio multi-thread runtime (1 and 2 workers) and
//!   wait for its result, from a plain thread, a `spawn_blocking` thread and a pool worker of
//!   ours — `sync_await` against `Handle::spawn` + blocking on the `JoinHandle` (the same hop
//!   done by hand); again with the runtime kept awake by a busy task; and the heap
//!   allocations per hop.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::alloc_count::allocations;
use crate::measure::{interleave, reps, size, time};
use crate::report::Report;

/// Runs the groups whose names `want` accepts: `block_on`, `sync_await`.
pub fn run(report: &mut Report, want: &dyn Fn(&str) -> bool) {
    if want("block_on") {
        ready(report, size(10_000_000, 1_000_000));
    }
    if want("sync_await") {
        hop(report, size(5_000, 1_000));
    }
}

/// Nanoseconds per call of `f` called `n` times.
fn ns_per_call(n: usize, mut f: impl FnMut()) -> f64 {
    time(|| {
        for _ in 0..n {
            f();
        }
    })
    .wall_ns_per(n)
}

fn ready(report: &mut Report, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let (mut a, mut b, mut c, mut d) = (
        || {
            ns_per_call(n, || {
                black_box(aiothreads::block_on(async { black_box(1u64) }));
            })
        },
        || {
            ns_per_call(n, || {
                black_box(futures::executor::block_on(async { black_box(1u64) }));
            })
        },
        || {
            ns_per_call(n, || {
                black_box(pollster::block_on(async { black_box(1u64) }));
            })
        },
        // Ten times fewer calls: it costs about fifty times more.
        || {
            ns_per_call(n / 10, || {
                black_box(rt.block_on(async { black_box(1u64) }));
            })
        },
    );
    let s = interleave(reps(7, 3), true, &mut [&mut a, &mut b, &mut c, &mut d]);
    let case = "block_on of a ready future";
    let ours = report.add(case, "aiothreads::block_on", "wall", "ns/call", &s[0]);
    let futures = report.add(
        case,
        "futures::executor::block_on",
        "wall",
        "ns/call",
        &s[1],
    );
    report.add(case, "pollster::block_on", "wall", "ns/call", &s[2]);
    report.add(
        case,
        "tokio Runtime::block_on (current-thread)",
        "wall",
        "ns/call",
        &s[3],
    );
    // One binary, one profile for all contenders (the `build` line of the outputs).
    report.goal(
        "block_on of a ready future ≤ 1.0× futures::executor::block_on (same profile)",
        ours / futures,
        1.0,
        false,
    );
}

/// Wall ns per hop of `ours` and of tokio's hop done by hand (`Handle::spawn` + blocking on
/// the `JoinHandle` with `futures::executor::block_on`), interleaved, on the calling thread.
fn hop_pair(
    n: usize,
    reps: usize,
    ours: &dyn Fn() -> u64,
    handle: &tokio::runtime::Handle,
) -> Vec<Vec<f64>> {
    let mut a = || {
        ns_per_call(n, || {
            black_box(ours());
        })
    };
    let mut b = || {
        ns_per_call(n, || {
            let jh = handle.spawn(async { black_box(1u64) });
            black_box(futures::executor::block_on(jh).expect("task"));
        })
    };
    interleave(reps, true, &mut [&mut a, &mut b])
}

/// Panics unless `sync_await` from this thread really hops (runs the future on another
/// thread): a `sync_await` that found no loop would run it here, which is no hop.
fn assert_hops() {
    let here = std::thread::current().id();
    let there = aiothreads::sync_await(async { std::thread::current().id() });
    assert_ne!(here, there, "sync_await did not hop to the runtime");
}

/// The three calling contexts: a plain thread (`Loop::sync_await` with the runtime's loop),
/// a `spawn_blocking` thread of the runtime and a pool worker of ours whose call was made on
/// the runtime (both: `aiothreads::sync_await`, finding the loop itself).
const CONTEXTS: [&str; 3] = [
    "plain thread",
    "spawn_blocking thread",
    "aiothreads pool worker",
];

/// `[ours, peer]` samples of the hop from each context of [`CONTEXTS`] into `rt`.
fn contexts(rt: &tokio::runtime::Runtime, n: usize, reps: usize) -> Vec<Vec<Vec<f64>>> {
    let handle = rt.handle().clone();
    let lp = aiothreads::Loop::from(handle.clone());
    let plain = {
        let handle = handle.clone();
        std::thread::spawn(move || {
            hop_pair(
                n,
                reps,
                &|| lp.sync_await(async { black_box(1u64) }),
                &handle,
            )
        })
        .join()
        .expect("bench thread")
    };
    let blocking = rt.block_on(async {
        tokio::task::spawn_blocking(move || {
            assert_hops();
            let handle = tokio::runtime::Handle::current();
            hop_pair(
                n,
                reps,
                &|| aiothreads::sync_await(async { black_box(1u64) }),
                &handle,
            )
        })
        .await
        .expect("spawn_blocking")
    });
    let worker = rt.block_on(async move {
        aiothreads::spawn(move || {
            assert_hops();
            hop_pair(
                n,
                reps,
                &|| aiothreads::sync_await(async { black_box(1u64) }),
                &handle,
            )
        })
        .await
    });
    vec![plain, blocking, worker]
}

fn hop(report: &mut Report, n: usize) {
    let reps = reps(7, 3);
    let case = "sync_await hop: thread → tokio multi-thread runtime (async { 1 }) → thread";
    let unit = "µs/hop";
    let us = |v: &[f64]| v.iter().map(|ns| ns / 1e3).collect::<Vec<f64>>();
    let names = [
        "aiothreads sync_await",
        "tokio Handle::spawn + block on the JoinHandle",
    ];
    for workers in [1, 2] {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .build()
            .expect("tokio runtime");
        let samples = contexts(&rt, n, reps);
        let w = if workers == 1 { "worker" } else { "workers" };
        for (s, ctx) in samples.iter().zip(CONTEXTS) {
            let metric = format!("wall, from a {ctx}, {workers} {w}");
            let ours = report.add(case, names[0], &metric, unit, &us(&s[0]));
            let tokio = report.add(case, names[1], &metric, unit, &us(&s[1]));
            report.goal(
                &format!("sync_await hop ≤ 1.0× tokio's hop by hand, from a {ctx}, {workers} {w}"),
                ours / tokio,
                1.0,
                false,
            );
        }
    }

    // The runtime awake: a task keeps its one worker busy (yield loop), so neither hop has
    // to wake it; and the allocations per hop, from a plain thread.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("tokio runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = stop.clone();
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::task::yield_now().await;
            }
        })
    };
    let handle = rt.handle().clone();
    let lp = aiothreads::Loop::from(handle.clone());
    let awake = {
        let (handle, lp) = (handle.clone(), lp.clone());
        std::thread::spawn(move || {
            hop_pair(
                n,
                reps,
                &|| lp.sync_await(async { black_box(1u64) }),
                &handle,
            )
        })
        .join()
        .expect("bench thread")
    };
    stop.store(true, Ordering::Relaxed);
    rt.block_on(busy).expect("busy task");
    let metric = "wall, from a plain thread, 1 worker kept awake by a yielding task";
    let ours = report.add(case, names[0], metric, unit, &us(&awake[0]));
    let tokio = report.add(case, names[1], metric, unit, &us(&awake[1]));
    report.goal(
        "sync_await hop ≤ 0.5× tokio's hop by hand where the runtime is awake",
        ours / tokio,
        0.5,
        false,
    );

    let allocs = std::thread::spawn(move || {
        let per_hop = |f: &dyn Fn()| {
            let a = allocations();
            for _ in 0..n {
                f();
            }
            (allocations() - a) as f64 / n as f64
        };
        let mut a = || {
            per_hop(&|| {
                black_box(lp.sync_await(async { black_box(1u64) }));
            })
        };
        let mut b = || {
            per_hop(&|| {
                let jh = handle.spawn(async { black_box(1u64) });
                black_box(futures::executor::block_on(jh).expect("task"));
            })
        };
        interleave(3, true, &mut [&mut a, &mut b])
    })
    .join()
    .expect("bench thread");
    let case = "sync_await hop: heap allocations per hop (plain thread, 1 worker)";
    let m = report.add(case, names[0], "allocations", "allocs/hop", &allocs[0]);
    report.add(case, names[1], "allocations", "allocs/hop", &allocs[1]);
    report.goal(
        "sync_await ≤ 1 heap allocation per hop (≤ 1.01: the runtime's amortised growth)",
        m,
        1.01,
        false,
    );
}
