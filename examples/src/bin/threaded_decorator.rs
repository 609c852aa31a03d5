//! The `#[threaded]` form: a blocking "fetch" and the three ways to call a threaded function.
//!
//! The original fetches URLs with `requests`; here a sleep stands in for the remote server.

use std::time::Duration;

/// A blocking request (simulated).
#[aiothreads::threaded]
fn fetch_url(url: String) -> String {
    std::thread::sleep(Duration::from_millis(50));
    format!("<html>contents of {url}</html>")
}

#[aiothreads::threaded]
fn compute(x: i32, y: i32) -> i32 {
    x + y
}

async fn fetch_multiple() -> Vec<String> {
    let urls = ["http://example.com", "http://httpbin.org/json"];
    // Both requests run concurrently on pool threads.
    futures::future::join_all(urls.map(|u| fetch_url(u.to_owned()).call())).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    for page in fetch_multiple().await {
        println!("{page}");
    }

    // 1. Default async call: `.await` the call.
    let result = compute(1, 2).await;
    assert_eq!(result, 3);
    // 2. Explicit async call: submitted at once, the handle is awaited later.
    let handle = compute(1, 2).async_call();
    assert_eq!(handle.await, 3);
    // 3. Sync call: runs inline on this thread, blocking it.
    assert_eq!(compute(1, 2).sync_call(), 3);

    // The closure form, without a macro.
    let add = aiothreads::threaded(|x: i32, y: i32| x + y);
    assert_eq!(add.call((1, 2)).await, 3);
    assert_eq!(add.sync_call((1, 2)), 3);
    println!("compute(1, 2) = {result} in every form");
}
