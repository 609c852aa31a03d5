//! `block_on` and `sync_await` cases, peers measured in the same run.
//!
//! - `block_on` of a ready future: ours against `futures::executor::block_on`, `pollster`
//!   and tokio's current-thread `Runtime::block_on`;
//! - the hop: from a plain thread, run a trivial future on a tokio runtime and wait for its
//!   result — ours (`Loop::sync_await`) against `Handle::spawn` + waiting on the `JoinHandle`
//!   from the thread (the same hop done by hand); from a `spawn_blocking` thread, ours
//!   (`sync_await`, finding the loop itself) beside tokio's `Handle::block_on` (reference:
//!   no hop, the future runs on the calling thread and cannot use the runtime's thread).

use std::hint::black_box;

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
    report.goal(
        "block_on ≤ 1.0× futures::executor::block_on",
        ours / futures,
        1.0,
        false,
    );
}

fn hop(report: &mut Report, n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("tokio runtime");
    let handle = rt.handle().clone();
    let lp = aiothreads::Loop::from(handle.clone());
    let reps = reps(11, 3);

    // One plain thread (a worker stand-in) measures both hops, interleaved.
    let s = std::thread::spawn(move || {
        let mut ours = || {
            ns_per_call(n, || {
                black_box(lp.sync_await(async { black_box(1u64) }));
            })
        };
        let mut theirs = || {
            ns_per_call(n, || {
                let jh = handle.spawn(async { black_box(1u64) });
                black_box(futures::executor::block_on(jh).expect("task"));
            })
        };
        interleave(reps, true, &mut [&mut ours, &mut theirs])
    })
    .join()
    .expect("bench thread");
    // From a `spawn_blocking` thread, as real code would: ours finds the loop itself.
    let s2 = rt.block_on(async {
        tokio::task::spawn_blocking(move || {
            let handle = tokio::runtime::Handle::current();
            let mut ours = || {
                ns_per_call(n, || {
                    black_box(aiothreads::sync_await(async { black_box(1u64) }));
                })
            };
            let mut block_on = || {
                ns_per_call(n, || {
                    black_box(handle.block_on(async { black_box(1u64) }));
                })
            };
            interleave(reps, true, &mut [&mut ours, &mut block_on])
        })
        .await
        .expect("spawn_blocking")
    });
    let us = |v: &[f64]| v.iter().map(|ns| ns / 1e3).collect::<Vec<f64>>();
    let case = "sync_await hop: thread → tokio runtime (1 worker) → thread";
    let ours = report.add(
        case,
        "aiothreads Loop::sync_await (plain thread)",
        "wall",
        "µs/call",
        &us(&s[0]),
    );
    let tokio = report.add(
        case,
        "tokio Handle::spawn + wait on the JoinHandle (plain thread)",
        "wall",
        "µs/call",
        &us(&s[1]),
    );
    report.add(
        case,
        "aiothreads sync_await (spawn_blocking thread)",
        "wall",
        "µs/call",
        &us(&s2[0]),
    );
    report.add(
        case,
        "tokio Handle::block_on in spawn_blocking, no hop (reference)",
        "wall",
        "µs/call",
        &us(&s2[1]),
    );
    report.goal(
        "sync_await hop ≤ 1.0× tokio's hop",
        ours / tokio,
        1.0,
        false,
    );
    report.goal(
        "sync_await hop ≤ 0.5× tokio's hop (stretch)",
        ours / tokio,
        0.5,
        false,
    );
}
