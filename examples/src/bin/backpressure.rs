//! "Backpressure Control": `scrape_search_results` with `max_size=50` and a slow consumer. The
//! producer thread is never more than 50 items (the queue) + 1 (the item it holds) ahead of
//! the consumer; breaking out stops the scraping, and the session is closed by the iterator's
//! `Drop` (Python's `try: … finally: session.close()`), on the producer's thread.
//!
//! The original scrapes a remote search API; here a fast in-process "session" stands in for
//! it and counts its requests. The default `max_size` can be set with the environment
//! variable `THREADED_ITERABLE_DEFAULT_MAX_SIZE` (default 1024); `#[max_size = N]` overrides it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;

const MAX_SIZE: usize = 50;
const RESULTS_PER_PAGE: usize = 10;
const ENOUGH: usize = 120;

static PRODUCED: AtomicUsize = AtomicUsize::new(0);
static REQUESTS: AtomicUsize = AtomicUsize::new(0);
static SESSIONS_CLOSED: AtomicUsize = AtomicUsize::new(0);

/// `requests.Session()`: closed when dropped.
struct Session;

impl Session {
    /// One page of results (instant: the producer is much faster than the consumer).
    fn get(&self, query: &str, page: usize) -> Vec<SearchResult> {
        REQUESTS.fetch_add(1, Ordering::SeqCst);
        (0..RESULTS_PER_PAGE)
            .map(|i| SearchResult {
                title: format!("{query} #{}", (page - 1) * RESULTS_PER_PAGE + i + 1),
                url: format!("https://example.com/{page}/{i}"),
                snippet: "…".to_owned(),
                page,
            })
            .collect()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        SESSIONS_CLOSED.fetch_add(1, Ordering::SeqCst);
        println!(
            "  [scraper] session closed on thread {:?} after {} requests",
            std::thread::current().name().unwrap_or("?"),
            REQUESTS.load(Ordering::SeqCst)
        );
    }
}

#[derive(Debug)]
#[allow(dead_code)] // url and snippet are shown by Debug only
struct SearchResult {
    title: String,
    url: String,
    snippet: String,
    page: usize,
}

/// Scrapes search results with bounded memory use.
#[aiothreads::threaded_iterable(max_size = MAX_SIZE)]
fn scrape_search_results(
    query: String,
    max_pages: Option<usize>,
) -> impl Iterator<Item = SearchResult> {
    let session = Session; // moved into the iterator: dropped with it (the `finally`)
    let mut page = 1;
    std::iter::from_fn(move || {
        if max_pages.is_some_and(|max| page > max) {
            return None;
        }
        let results = session.get(&query, page);
        if results.is_empty() {
            return None; // no more results
        }
        page += 1;
        Some(results)
    })
    .flatten()
    .inspect(|_| {
        PRODUCED.fetch_add(1, Ordering::SeqCst);
    })
}

async fn save_result_to_db(_result: &SearchResult) {}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let query = "rust async".to_owned();
    let mut processed = 0;
    let mut max_lead = 0;

    let mut results = scrape_search_results(query, Some(100));
    while let Some(result) = results.next().await {
        // Slow processing — the producer pauses while the queue is full.
        tokio::time::sleep(Duration::from_millis(1)).await;
        save_result_to_db(&result).await;
        processed += 1;

        let produced = PRODUCED.load(Ordering::SeqCst);
        let lead = produced - processed;
        max_lead = max_lead.max(lead);
        assert!(
            lead <= MAX_SIZE + 1,
            "the producer ran {lead} items ahead (queue of {MAX_SIZE})"
        );
        if processed % 20 == 0 {
            println!("consumed {processed:3}, produced {produced:3} (ahead by {lead})");
        }

        // Break early and stop all requests.
        if processed >= ENOUGH {
            println!("Collected enough results from page {}", result.page);
            break;
        }
    }
    // Wait until the iterator (and its session) is dropped on its thread.
    results.close().await.unwrap();

    let produced = PRODUCED.load(Ordering::SeqCst);
    let requests = REQUESTS.load(Ordering::SeqCst);
    println!(
        "consumed {processed}, produced {produced}, at most {max_lead} ahead; \
         {requests} requests of the 100 pages allowed"
    );
    assert_eq!(SESSIONS_CLOSED.load(Ordering::SeqCst), 1);
    assert!(produced <= ENOUGH + MAX_SIZE + 1);
    assert!(requests <= (ENOUGH + MAX_SIZE + 1).div_ceil(RESULTS_PER_PAGE));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        REQUESTS.load(Ordering::SeqCst),
        requests,
        "no request after the break"
    );
}
