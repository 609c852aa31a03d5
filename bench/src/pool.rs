//! Pool benchmarks: aiothreads against `tokio::task::spawn_blocking` and `blocking::unblock`,
//! measured in the same run.
//!
//! - sequential round trip (one call awaited at a time) under a tokio current-thread runtime,
//!   and ours also under `futures::executor::block_on`;
//! - 100 000 concurrent calls (submit all, then `join_all`) under a tokio current-thread runtime;
//! - heap allocations per call (counting allocator);
//! - `spawn_separate` against bare `std::thread::spawn` + `join`;
//! - CPU time per call beside wall time, and the CPU an idle pool burns.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::alloc_count::allocations;

const REPS: usize = 5;

/// Process CPU time (user + system, all threads) from `/proc/self/stat`, in seconds.
/// Resolution is one clock tick (usually 10 ms), so it is only read around long runs.
fn cpu_time() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|x| x.parse::<f64>().ok()).sum())
        .unwrap_or(f64::NAN);
    ticks / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `f` `REPS` times; returns the median of its per-call nanoseconds and the CPU
/// nanoseconds per call over all repetitions.
fn measure(calls: usize, mut f: impl FnMut()) -> (f64, f64) {
    let cpu0 = cpu_time();
    let mut samples = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_nanos() as f64 / calls as f64);
    }
    let cpu = (cpu_time() - cpu0) * 1e9 / (calls * REPS) as f64;
    (median(samples), cpu)
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn report(name: &str, (wall, cpu): (f64, f64)) {
    println!(
        "  {name:<44} {:>10.0} ns/call   cpu {:>10.0} ns/call",
        wall, cpu
    );
}

fn verdict(goal: &str, ok: bool, detail: String) {
    println!("{} {goal}: {detail}", if ok { "PASS" } else { "FAIL" });
}

/// Runs the pool benchmarks whose names contain `filter` (all with an empty filter).
pub fn run(filter: &str) {
    let want = |name: &str| filter.is_empty() || name.contains(filter) || filter == "pool";
    // Warm up the pools (threads started) outside the measurements.
    let rt = current_thread();
    rt.block_on(async {
        for _ in 0..100 {
            aiothreads::spawn(|| ()).await;
            tokio::task::spawn_blocking(|| ()).await.unwrap();
            blocking::unblock(|| ()).await;
        }
    });

    if want("roundtrip") {
        const N: usize = 20_000;
        println!("pool/roundtrip: {N} sequential calls, median of {REPS}");
        let ours_tokio = measure(N, || {
            rt.block_on(async {
                for i in 0..N {
                    black_box(aiothreads::spawn(move || i).await);
                }
            })
        });
        report("aiothreads::spawn (tokio current-thread)", ours_tokio);
        let ours_block_on = measure(N, || {
            futures::executor::block_on(async {
                for i in 0..N {
                    black_box(aiothreads::spawn(move || i).await);
                }
            })
        });
        report("aiothreads::spawn (futures block_on)", ours_block_on);
        let tokio_rt = measure(N, || {
            rt.block_on(async {
                for i in 0..N {
                    black_box(tokio::task::spawn_blocking(move || i).await.unwrap());
                }
            })
        });
        report("tokio::task::spawn_blocking", tokio_rt);
        let blocking_rt = measure(N, || {
            rt.block_on(async {
                for i in 0..N {
                    black_box(blocking::unblock(move || i).await);
                }
            })
        });
        report("blocking::unblock (tokio current-thread)", blocking_rt);
        let best = tokio_rt.0.min(blocking_rt.0);
        verdict(
            "round trip <= 0.1x faster peer (tokio current-thread)",
            ours_tokio.0 <= 0.1 * best,
            format!(
                "{:.0} ns vs {:.0} ns = {:.3}x",
                ours_tokio.0,
                best,
                ours_tokio.0 / best
            ),
        );
        verdict(
            "round trip <= 0.1x faster peer (block_on)",
            ours_block_on.0 <= 0.1 * best,
            format!(
                "{:.0} ns vs {:.0} ns = {:.3}x",
                ours_block_on.0,
                best,
                ours_block_on.0 / best
            ),
        );
    }

    if want("concurrent") {
        const N: usize = 100_000;
        println!("pool/concurrent: {N} calls submitted, then joined, median of {REPS}");
        let ours = measure(N, || {
            rt.block_on(async {
                let handles: Vec<_> = (0..N).map(|i| aiothreads::spawn(move || i)).collect();
                black_box(futures::future::join_all(handles).await);
            })
        });
        report("aiothreads::spawn", ours);
        let tok = measure(N, || {
            rt.block_on(async {
                let handles: Vec<_> = (0..N)
                    .map(|i| tokio::task::spawn_blocking(move || i))
                    .collect();
                black_box(futures::future::join_all(handles).await);
            })
        });
        report("tokio::task::spawn_blocking", tok);
        let blk = measure(N, || {
            rt.block_on(async {
                let handles: Vec<_> = (0..N).map(|i| blocking::unblock(move || i)).collect();
                black_box(futures::future::join_all(handles).await);
            })
        });
        report("blocking::unblock", blk);
        let best = tok.0.min(blk.0);
        verdict(
            "100k concurrent >= 5x faster than faster peer",
            best >= 5.0 * ours.0,
            format!(
                "{:.0} ns vs {:.0} ns = {:.1}x faster",
                ours.0,
                best,
                best / ours.0
            ),
        );
    }

    if want("alloc") {
        const N: usize = 10_000;
        println!("pool/alloc: heap allocations per call over {N} sequential calls");
        let count = |f: &mut dyn FnMut()| {
            let a = allocations();
            f();
            (allocations() - a) as f64 / N as f64
        };
        let ours = count(&mut || {
            futures::executor::block_on(async {
                for i in 0..N {
                    black_box(aiothreads::spawn(move || i).await);
                }
            })
        });
        let tok = count(&mut || {
            rt.block_on(async {
                for i in 0..N {
                    black_box(tokio::task::spawn_blocking(move || i).await.unwrap());
                }
            })
        });
        let blk = count(&mut || {
            futures::executor::block_on(async {
                for i in 0..N {
                    black_box(blocking::unblock(move || i).await);
                }
            })
        });
        println!("  aiothreads {ours:.4}   tokio {tok:.4}   blocking {blk:.4}");
        // 1.0 per call plus the executor's and the queue's amortised growth (a few in total).
        verdict(
            "<= 1 heap allocation per call",
            ours <= 1.005,
            format!("{ours:.4}"),
        );
    }

    if want("separate") {
        const N: usize = 2_000;
        println!("pool/separate: {N} sequential calls on a new thread each, median of {REPS}");
        // Interleaved repetitions: thread creation cost drifts with the machine's load.
        let (mut ours_s, mut bare_s) = (Vec::new(), Vec::new());
        let (mut ours_cpu, mut bare_cpu) = (0.0, 0.0);
        for _ in 0..REPS {
            let (w, c) = measure(N / REPS, || {
                futures::executor::block_on(async {
                    for i in 0..N / REPS {
                        black_box(aiothreads::spawn_separate(move || i).await);
                    }
                })
            });
            ours_s.push(w);
            ours_cpu += c / REPS as f64;
            let (w, c) = measure(N / REPS, || {
                for i in 0..N / REPS {
                    black_box(std::thread::spawn(move || i).join().unwrap());
                }
            });
            bare_s.push(w);
            bare_cpu += c / REPS as f64;
        }
        let ours = (median(ours_s), ours_cpu);
        let bare = (median(bare_s), bare_cpu);
        report("aiothreads::spawn_separate (block_on)", ours);
        report("std::thread::spawn + join", bare);
        verdict(
            "separate thread <= 1.2x spawn + join",
            ours.0 <= 1.2 * bare.0,
            format!("{:.2}x", ours.0 / bare.0),
        );
    }

    if want("idle") {
        // Let every spin run out, then watch the process sleep.
        std::thread::sleep(Duration::from_millis(100));
        let cpu0 = cpu_time();
        std::thread::sleep(Duration::from_millis(500));
        let idle = cpu_time() - cpu0;
        println!("pool/idle: {:.1} ms CPU during 500 ms idle", idle * 1e3);
        verdict(
            "idle pool burns no CPU",
            idle <= 0.02,
            format!("{:.1} ms CPU in 500 ms", idle * 1e3),
        );
    }
}
