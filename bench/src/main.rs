//! Benchmark dispatcher: `cargo run -p aiothreads-bench --release -- [filter]` runs every
//! benchmark group whose name contains `filter` (all of them without one).

mod alloc_count;
mod block_on;
mod pool;
mod report;
mod ring;
mod stream;

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    pool::run(&filter);
    ring::run(&filter);
    block_on::run(&filter);
    let mut report = report::Report::default();
    if "stream".contains(filter.as_str()) || filter.is_empty() {
        println!("== stream: iterator on a thread -> async consumer");
        stream::run(&mut report);
    }
    report.print_summary();
    if let Err(e) = report.write_json(std::path::Path::new("target/bench/summary.json")) {
        eprintln!("could not write target/bench/summary.json: {e}");
    }
    if let Err(e) = report.write_svg(std::path::Path::new("docs/bench.svg")) {
        eprintln!("could not write docs/bench.svg: {e}");
    }
}

/// `AIOTHREADS_BENCH_QUICK=1` (`make bench-quick`): fewer items and repetitions.
pub fn quick() -> bool {
    std::env::var_os("AIOTHREADS_BENCH_QUICK").is_some()
}
