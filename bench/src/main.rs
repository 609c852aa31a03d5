//! Benchmark dispatcher: `cargo run -p aiothreads-bench --release -- [filter]` runs every
//! benchmark group whose name contains `filter` (all of them without one).

mod alloc_count;
mod block_on;
mod pool;
mod ring;

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    pool::run(&filter);
    ring::run(&filter);
    block_on::run(&filter);
}
