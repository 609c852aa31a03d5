//! Overview, "Why aiothreads?": the `asyncio.to_thread` example and the "aiothreads -
//! comprehensive solution" example.
//!
//! `asyncio.to_thread(f, *args)` is the one-off `aiothreads::spawn(closure)`; the rest is what
//! `to_thread` cannot do: a threaded function that calls async code back on the loop
//! (`sync_await`), and a blocking generator consumed as an async stream with a bounded queue,
//! whose thread stops when the consumer breaks out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;

fn sync_function(arg1: u64, arg2: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(10)); // blocking work
    arg1 + arg2
}

fn blocking_operation() -> &'static str {
    std::thread::sleep(Duration::from_millis(10));
    "sync result"
}

/// Counts how many items the "expensive" source produced, to show the thread stopped.
static PRODUCED: AtomicU64 = AtomicU64::new(0);

fn expensive_data_source() -> impl Iterator<Item = u64> {
    (0..1_000_000).inspect(|_| {
        PRODUCED.fetch_add(1, Ordering::Relaxed);
    })
}

#[aiothreads::threaded]
fn mixed_sync_async() -> &'static str {
    let sync_result = blocking_operation();
    // Calling async code from the thread: the sleep runs on the caller's tokio runtime
    // (it needs tokio's timer), this thread blocks until it completes.
    aiothreads::sync_await(tokio::time::sleep(Duration::from_millis(100)));
    sync_result
}

#[aiothreads::threaded_iterable(max_size = 100)]
fn data_stream() -> impl Iterator<Item = u64> {
    // Automatic backpressure control: at most 100 items wait in the queue.
    expensive_data_source()
}

async fn with_to_thread() -> u64 {
    // Only works for one-off closures: no generators, no call back into async code.
    aiothreads::spawn(|| sync_function(1, 2)).await
}

async fn with_aiothreads() {
    // Rich functionality with clean syntax.
    let start = Instant::now();
    let result = mixed_sync_async().await;
    println!(
        "mixed_sync_async() = {result:?} after {:?}",
        start.elapsed()
    );
    assert_eq!(result, "sync result");
    assert!(start.elapsed() >= Duration::from_millis(100));

    // Stream processing with memory control.
    let mut count = 0;
    let mut stream = data_stream();
    while let Some(item) = stream.next().await {
        count += 1;
        if count > 10 {
            break; // stops the iterator's thread
        }
        println!("{item}");
    }
    // `break` left the loop; dropping the stream stops the producer. `close().await` does the
    // same and waits until the iterator is gone, so the count below is final.
    stream.close().await.unwrap();
    let produced = PRODUCED.load(Ordering::Relaxed);
    println!("consumed 11 items; the source produced {produced} of 1000000, then stopped");
    // At most max_size (100) queued + 1 held by the producer + the 11 consumed.
    assert!(produced <= 11 + 100 + 1, "produced {produced}");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let result = with_to_thread().await;
    println!("to_thread-like spawn: {result}");
    assert_eq!(result, 3);
    with_aiothreads().await;
}
