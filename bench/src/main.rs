//! Benchmark dispatcher: `cargo run -p aiothreads-bench --release -- [filter]` runs every
//! group whose name contains `filter` (all of them without one; several filters separated by
//! commas, e.g. `ring,stream/peers`) and prints one table.
//!
//! Groups: `floor`, `pool/roundtrip`, `pool/concurrency`, `pool/size`, `pool/alloc`,
//! `pool/separate`, `pool/idle`, `ring/two-threads`, `ring/one-thread`, `block_on`,
//! `sync_await`, `stream/peers`, `stream/max_size`, `stream/unbounded`, `stream/drain`, `slow-consumers`, `interference/calls`,
//! `interference/stream`.
//!
//! The `floor` group always runs: its two medians (park/unpark and spin round trips), the
//! `/proc/cpuinfo` model name and the CPU count tag every figure of the run (`cpu` in
//! `summary.json`, the head of `summary.md`), with the build profile (`profile`). Only
//! `AIOTHREADS_BENCH_NO_FLOOR=1` skips it (the floors then read NaN): for runs under
//! callgrind (`make ring-instructions`), which runs one thread at a time, so the spin
//! round trips of the floor would take hours.
//!
//! Outputs: `target/bench/summary.json` and `target/bench/summary.md` always; the chart goes
//! to `docs/bench.svg` (the one the README shows) only after a full, unfiltered run, and to
//! `target/bench/bench.svg` otherwise, so a partial or quick run never replaces it.

mod alloc_count;
mod block_on;
mod floor;
mod interference;
mod measure;
mod pool;
mod report;
mod ring;
mod slow_consumers;
mod stream;

use std::path::Path;
use std::time::Instant;

fn main() {
    let start = Instant::now();
    let filter = std::env::args().nth(1).unwrap_or_default();
    let want = |group: &str| {
        filter.is_empty()
            || filter
                .split(',')
                .any(|f| !f.is_empty() && group.contains(f))
    };
    let mut report = report::Report {
        context: context(),
        machine: report::Machine {
            cpu_model: cpu_model(),
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            profile: env!("AIOTHREADS_BENCH_PROFILE").to_owned(),
            ..Default::default()
        },
        ..Default::default()
    };
    println!("aiothreads bench: {}", report.context);
    println!("build: {}", report.machine.profile);
    let mut timed = |name: &str, run: &mut dyn FnMut(&mut report::Report)| {
        let t = Instant::now();
        println!("== {name}");
        let rows = report.rows.len();
        run(&mut report);
        if report.rows.len() > rows {
            println!("   ({name}: {:.1} s)", t.elapsed().as_secs_f64());
        }
    };
    // Always measured (every figure of the run is tagged with these two floors), except
    // under callgrind, which serialises threads: two threads spinning on each other there
    // take a scheduler slice per round trip.
    if std::env::var_os("AIOTHREADS_BENCH_NO_FLOOR").is_some_and(|v| v == "1") {
        timed(
            "wake-up floor skipped (AIOTHREADS_BENCH_NO_FLOOR=1): no floors in the tag",
            &mut |r| {
                r.machine.park_floor_ns = f64::NAN;
                r.machine.spin_floor_ns = f64::NAN;
            },
        );
    } else {
        timed(
            "wake-up floor (the CPU tag of every figure)",
            &mut floor::run,
        );
    }
    timed("pool", &mut |r| pool::run(r, &want));
    timed("ring", &mut |r| ring::run(r, &want));
    timed("block_on / sync_await", &mut |r| block_on::run(r, &want));
    timed("stream", &mut |r| stream::run(r, &want));
    if want("slow-consumers") {
        timed("stream / many slow consumers", &mut slow_consumers::run);
    }
    timed("interference", &mut |r| interference::run(r, &want));

    report.print_summary();
    let svg = if filter.is_empty() && !quick() {
        Path::new("docs/bench.svg")
    } else {
        Path::new("target/bench/bench.svg")
    };
    for (what, res) in [
        (
            "target/bench/summary.json",
            report.write_json(Path::new("target/bench/summary.json")),
        ),
        (
            "target/bench/summary.md",
            report.write_markdown(Path::new("target/bench/summary.md")),
        ),
        (svg.to_str().unwrap_or("svg"), report.write_svg(svg)),
    ] {
        match res {
            Ok(()) => println!("wrote {what}"),
            Err(e) => eprintln!("could not write {what}: {e}"),
        }
    }
    println!("bench finished in {:.0} s", start.elapsed().as_secs_f64());
}

/// `AIOTHREADS_BENCH_QUICK=1` (`make bench-quick`): fewer items and repetitions.
pub fn quick() -> bool {
    std::env::var_os("AIOTHREADS_BENCH_QUICK").is_some()
}

/// The `model name` of `/proc/cpuinfo`, with its family / model / stepping numbers (a VM may
/// show only "AMD EPYC"): "AMD EPYC (family 25 model 1 stepping 1)".
fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .take_while(|l| !l.trim().is_empty()) // the first CPU only
            .find(|l| l.split(':').next().map(str::trim) == Some(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    let model = field("model name").unwrap_or_else(|| "unknown CPU".into());
    match (field("cpu family"), field("model"), field("stepping")) {
        (Some(f), Some(m), Some(s)) => format!("{model} (family {f} model {m} stepping {s})"),
        _ => model,
    }
}

/// The machine and its load, for the outputs: "2 × AMD EPYC, load 4.18 4.84 4.55, full run".
fn context() -> String {
    let model = cpu_model();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cpus} × {model}, load average at start {}, {} run",
        load.join(" "),
        if quick() { "quick" } else { "full" }
    )
}
