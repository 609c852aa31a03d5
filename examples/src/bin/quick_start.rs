//! Quick Start: run blocking calls concurrently on the thread pool and gather the results.

use std::time::{Duration, Instant};

/// A blocking function that will run in a thread.
#[aiothreads::threaded]
fn cpu_intensive_task(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100)); // simulate work
    n * n
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let start = Instant::now();
    // Run multiple blocking operations concurrently.
    let tasks: Vec<_> = (0..5).map(|i| cpu_intensive_task(i).call()).collect();
    let results = futures::future::join_all(tasks).await;
    println!("{results:?}"); // [0, 1, 4, 9, 16]
    assert_eq!(results, [0, 1, 4, 9, 16]);
    println!("5 calls of 100 ms took {:?}", start.elapsed());
}
