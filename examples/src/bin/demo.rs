//! `make demo`: a short tour of aiothreads, each capability with visible output.
//!
//! 1. concurrent `threaded` calls finishing together;
//! 2. `threaded_separate`: a dedicated, named thread;
//! 3. a `threaded_iterable` stream with backpressure, an early `break`, and its cleanup;
//! 4. `sync_await`: a worker thread awaiting a tokio timer on the loop that called it;
//! 5. context propagation into the worker;
//! 6. the long part: a hundred million items streamed from a thread, with a live progress line.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

/// A blocking call: sleeps, then squares.
#[aiothreads::threaded]
fn slow_square(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(200));
    n * n
}

/// Runs on its own thread, named after the function.
#[aiothreads::threaded_separate]
fn watch_pipe() -> String {
    std::thread::sleep(Duration::from_millis(50)); // stands in for a blocking read
    format!(
        "read on thread {:?}",
        std::thread::current().name().unwrap_or("?")
    )
}

/// Prints when the iterator is dropped on its thread: the Rust `finally`.
struct Session {
    produced: Arc<AtomicUsize>,
}

impl Drop for Session {
    fn drop(&mut self) {
        println!(
            "   cleanup: iterator dropped on {:?} after producing {} pages",
            std::thread::current().name().unwrap_or("?"),
            self.produced.load(Ordering::SeqCst)
        );
    }
}

/// A paginated "crawler": each page takes 10 ms; at most 2 wait in the queue.
#[aiothreads::threaded_iterable(max_size = 2)]
fn crawl(produced: Arc<AtomicUsize>) -> impl Iterator<Item = u32> {
    let session = Session {
        produced: produced.clone(),
    };
    (1..).inspect(move |_page| {
        std::thread::sleep(Duration::from_millis(10)); // fetch the page
        session.produced.fetch_add(1, Ordering::SeqCst);
    })
}

aiothreads::context_var! {
    /// The user a request runs for.
    static USER: String;
}

/// Blocking code that calls back into async code on the caller's loop.
#[aiothreads::threaded]
fn mixed_sync_async(label: &'static str) -> String {
    let started = Instant::now();
    // The tokio runtime that submitted this job is known here: its timer works.
    aiothreads::sync_await(tokio::time::sleep(Duration::from_millis(30)));
    format!(
        "{label}: awaited a tokio timer from a worker thread in {:?}",
        started.elapsed()
    )
}

/// Reads the caller's context from the worker.
#[aiothreads::threaded]
fn greet() -> String {
    format!(
        "hello {} (from {:?})",
        USER.get(),
        std::thread::current().name().unwrap_or("?")
    )
}

/// A hundred million numbers, made on a pool thread.
#[aiothreads::threaded_iterable(max_size = 1024)]
fn numbers(n: u64) -> impl Iterator<Item = u64> {
    0..n
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let tour = Instant::now();
    println!("aiothreads demo — glue between async Rust and OS threads\n");

    println!("1. five blocking calls of 200 ms on the pool, awaited together");
    let start = Instant::now();
    let calls: Vec<_> = (1..=5).map(|i| slow_square(i).call()).collect();
    let results = futures::future::join_all(calls).await;
    println!(
        "   results {results:?} in {:?} (sequentially: 1 s)\n",
        start.elapsed()
    );

    println!("2. threaded_separate: a dedicated thread for work that may block");
    println!("   {}\n", watch_pipe().await);

    println!("3. a stream from a sync iterator, max_size = 2, consumer breaks after 5 pages");
    let produced = Arc::new(AtomicUsize::new(0));
    let mut pages = crawl(produced.clone());
    while let Some(page) = pages.next().await {
        tokio::time::sleep(Duration::from_millis(25)).await; // a slow consumer
        println!(
            "   got page {page}; produced so far {} (≤ consumed + max_size + 1)",
            produced.load(Ordering::SeqCst)
        );
        if page == 5 {
            println!("   break");
            break;
        }
    }
    pages.close().await.expect("clean close"); // returns once the iterator was dropped
    println!();

    println!("4. sync_await: a worker awaits async code on the caller's loop");
    println!("   {}\n", mixed_sync_async("worker").await);

    println!("5. context propagation: a ContextVar set around the caller is seen in the worker");
    let greeting = USER.scope("ada".to_owned(), async { greet().await }).await;
    println!("   {greeting}\n");

    println!("6. a hundred million u64 from an iterator on a thread to this async task");
    let n = 100_000_000u64;
    let start = Instant::now();
    let mut stream = numbers(n);
    let (mut sum, mut count) = (0u64, 0u64);
    while let Some(x) = stream.next().await {
        sum = sum.wrapping_add(x);
        count += 1;
        if count % 2_000_000 == 0 {
            print!("\r   {:>3}% ({count} items)", count * 100 / n);
            let _ = std::io::stdout().flush();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "\r   100% ({count} items, sum {sum}) in {secs:.2} s: {:.1} M items/s\n",
        count as f64 / secs / 1e6
    );
    assert_eq!(sum, n * (n - 1) / 2);

    println!("tour finished in {:.2} s", tour.elapsed().as_secs_f64());
}
