//! "Context Manager Support": guaranteed cleanup of a threaded iterable's resources, with and
//! without a context manager.
//!
//! Python's `async with fetch_paginated_data(..) as user_stream:` becomes
//! `stream.close().await`: it closes the stream and resolves only after the iterator has been
//! dropped on its thread — so its `Drop` (the Rust `finally: session.close()`) has run. The
//! "alternative without context manager" is a plain `break`: dropping the stream stops the
//! iterator and drops it on its thread too, without waiting for it.
//!
//! The original calls a paginated HTTP API; an in-process "session" stands in for it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

#[derive(Debug, Clone)]
struct Record {
    name: String,
    role: &'static str,
    error: bool,
}

/// `requests.Session()` with its headers: closed when dropped.
struct Session {
    headers: Vec<(&'static str, &'static str)>,
    closed: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

impl Session {
    /// `GET {endpoint}?page={page}`: the records and `has_next`.
    fn get(&self, endpoint: &str, page: usize) -> (Vec<Record>, bool) {
        assert_eq!(self.headers[0], ("Authorization", "Bearer token"));
        self.requests.fetch_add(1, Ordering::SeqCst);
        let records = (0..3)
            .map(|i| {
                let n = (page - 1) * 3 + i;
                Record {
                    name: format!("{endpoint}/{n}"),
                    role: if n == 4 { "admin" } else { "user" },
                    error: n == 5,
                }
            })
            .collect();
        (records, page < 100)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        println!(
            "  [fetch] session closed on thread {:?} after {} requests",
            std::thread::current().name().unwrap_or("?"),
            self.requests.load(Ordering::SeqCst)
        );
        self.closed.store(true, Ordering::SeqCst);
    }
}

// The original keeps the default queue (1024 items); a small one keeps this producer
// mid-way through its 100 pages when the consumer leaves, so the cleanup is an early one.
/// Fetches data with automatic session management.
#[aiothreads::threaded_iterable(max_size = 2)]
fn fetch_paginated_data(
    api_endpoint: &'static str,
    closed: Arc<AtomicBool>,
) -> impl Iterator<Item = Record> {
    let session = Session {
        headers: vec![("Authorization", "Bearer token")],
        closed,
        requests: Arc::new(AtomicUsize::new(0)),
    };
    let mut page = Some(1);
    // The iterator owns the session: dropping the iterator closes it (the `finally`).
    std::iter::from_fn(move || {
        let current = page?;
        let (records, has_next) = session.get(api_endpoint, current);
        page = has_next.then_some(current + 1);
        Some(records)
    })
    .flatten()
}

async fn process_user(_user: &Record) {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

async fn process_record(_record: &Record) {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Processes data with guaranteed cleanup (`async with`).
async fn stream_data_safely() {
    let closed = Arc::new(AtomicBool::new(false));
    let mut count = 0;

    let mut user_stream = fetch_paginated_data("/api/users", closed.clone());
    while let Some(user) = user_stream.next().await {
        process_user(&user).await;
        count += 1;
        // Early termination still triggers cleanup.
        if user.role == "admin" {
            println!("admin found: {}", user.name);
            break;
        }
    }
    // The end of the `async with` block: close and wait for the iterator's Drop.
    user_stream
        .close()
        .await
        .expect("the iterator ended cleanly");
    assert!(
        closed.load(Ordering::SeqCst),
        "close() resolved after the cleanup"
    );
    println!("Processed {count} users, session cleaned up");
    assert_eq!(count, 5);
}

/// Breaking from the loop also triggers cleanup (without waiting for it).
async fn stream_data_with_break() {
    let closed = Arc::new(AtomicBool::new(false));
    let mut processed = 0;
    {
        let mut records = fetch_paginated_data("/api/data", closed.clone());
        while let Some(record) = records.next().await {
            if record.error {
                println!("error record: {}", record.name);
                break; // the iterator stops
            }
            process_record(&record).await;
            processed += 1;
        }
    } // `records` dropped here: the producer thread is told to stop and drops the iterator.

    // The cleanup runs on the producer's thread, shortly after the drop.
    let start = Instant::now();
    while !closed.load(Ordering::SeqCst) {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "session never closed"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!(
        "Processed {processed} records, session closed {:?} after the drop",
        start.elapsed()
    );
    assert_eq!(processed, 5);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    stream_data_safely().await;
    stream_data_with_break().await;
}
