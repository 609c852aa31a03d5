//! "Separate Thread Generators" and the "Resource Control Warning": `#[threaded_iterable_separate]`
//! runs each stream's iterator on a new dedicated thread (named after the function), so many
//! concurrent streams mean as many threads; `#[threaded_iterable]` on a pool stays within the
//! pool's bound.
//!
//! Threads are counted from `/proc/self/task` (Linux); elsewhere the counts are skipped.
//! Shown at the end: a pool stream holds no worker while its queue is full (its producer gives
//! the worker back and is resumed when the consumer makes room), so 20 streams all produce on a
//! pool of 4 threads.

use std::time::Duration;

use futures::StreamExt;

fn heavy_computation(i: u64) -> u64 {
    (0..1_000u64).fold(i, |acc, k| acc.wrapping_mul(31).wrapping_add(k ^ i))
}

fn expensive_operation(i: u64) -> u64 {
    i * 2
}

/// Runs on a dedicated thread, not on the pool.
#[aiothreads::threaded_iterable_separate(max_size = 50)]
fn cpu_intensive_generator() -> impl Iterator<Item = u64> {
    println!(
        "  the generator runs on thread {:?}",
        std::thread::current().name()
    );
    (0..1000).map(heavy_computation)
}

/// Each stream creates a new thread.
#[aiothreads::threaded_iterable_separate]
fn data_stream() -> impl Iterator<Item = u64> {
    (0..1_000_000).map(expensive_operation)
}

/// The names of this process's threads (Linux), `None` where `/proc` is not available.
fn thread_names() -> Option<Vec<String>> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_owned())
            .collect(),
    )
}

fn count_named(prefix: &str) -> Option<usize> {
    Some(
        thread_names()?
            .iter()
            .filter(|n| n.starts_with(prefix))
            .count(),
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Separate thread generator, consumed in full.
    let results: Vec<u64> = cpu_intensive_generator().collect().await;
    let expected: Vec<u64> = cpu_intensive_generator().sync_call().collect();
    println!("cpu_intensive_generator: {} results", results.len());
    assert_eq!(results, expected);

    // DANGEROUS: every stream gets its own thread.
    println!(
        "threads in the process: {:?}",
        thread_names().map(|t| t.len())
    );
    let mut iterators: Vec<_> = (0..20).map(|_| data_stream()).collect();
    for it in &mut iterators {
        assert_eq!(it.next().await, Some(0)); // the first poll starts the stream's thread
    }
    let separate = count_named("data_stream");
    println!("20 separate streams running: {separate:?} threads named \"data_stream\"");
    if let Some(n) = separate {
        assert_eq!(n, 20);
    }
    for it in &mut iterators {
        it.close().await.unwrap(); // each thread drops its iterator and exits
    }
    drop(iterators);
    let start = std::time::Instant::now();
    while count_named("data_stream").is_some_and(|n| n > 0) {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "separate threads still alive"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!(
        "closed: {:?} threads named \"data_stream\" left",
        count_named("data_stream")
    );

    // SAFER: a pool bounds the threads. (Here a pool of its own, to count its threads.)
    let pool = aiothreads::Pool::builder()
        .max_threads(4)
        .thread_name_prefix("safer")
        .build();
    let safer_data_stream = || {
        aiothreads::IterCall::new(|| (0..1_000_000).map(expensive_operation))
            .max_size(100)
            .on(&pool)
    };
    let mut streams: Vec<_> = (0..20).map(|_| safer_data_stream()).collect();
    for s in &mut streams {
        // Start every stream (submit its producer job); 4 producers run at once, each until
        // its queue of 100 is full.
        let _ = futures::poll!(s.next());
    }
    // Which streams produce while none is closed: wait until all do (or 10 s pass).
    let mut producing = vec![false; streams.len()];
    let start = std::time::Instant::now();
    while producing.iter().any(|p| !*p) && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        for (s, p) in streams.iter_mut().zip(&mut producing) {
            if !*p && futures::poll!(s.next()).is_ready() {
                *p = true;
            }
        }
    }
    let producing = producing.iter().filter(|p| **p).count();
    let pooled = count_named("safer");
    println!(
        "20 pool streams started: {pooled:?} threads named \"safer-N\", pool.thread_count() = {}",
        pool.thread_count()
    );
    assert!(pool.thread_count() <= 4);
    if let Some(n) = pooled {
        assert!(n <= 4, "{n} pool threads");
    }
    // Take a few items of each, then close it.
    for (i, s) in streams.iter_mut().enumerate() {
        let got: Vec<u64> = s.by_ref().take(3).collect().await;
        assert_eq!(got.len(), 3, "stream {i}");
        s.close().await.unwrap();
    }
    println!("all 20 pool streams served; {producing} of them produced before any was closed");
    assert_eq!(producing, 20, "a full stream gives its worker back");
}
