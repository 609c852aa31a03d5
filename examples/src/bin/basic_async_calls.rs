//! Basic Async Calls: sync work on a pool thread that calls back into async code on the
//! event loop with `sync_await`, then carries on with sync work.
//!
//! The original posts to an HTTP API with aiohttp; here a tokio sleep stands in for the
//! network round trip (no network needed).

use std::time::Duration;

use aiothreads::sync_await;

/// Blocking work (a file parse, a CPU-bound step…).
fn blocking_operation() -> u32 {
    std::thread::sleep(Duration::from_millis(50));
    21
}

/// Runs on the event loop: it may use tokio timers, sockets, other tasks.
async fn async_api_call(data: u32) -> u32 {
    tokio::time::sleep(Duration::from_millis(50)).await; // the remote API
    data * 2
}

fn process_result(value: u32) -> String {
    format!("processed {value}")
}

#[aiothreads::threaded]
fn mixed_sync_async_work() -> String {
    // Do some sync work.
    let sync_result = blocking_operation();
    // Call an async function from the thread: the event loop is known from the call's
    // context, so nothing is passed.
    let async_result = sync_await(async_api_call(sync_result));
    // Continue with sync work.
    process_result(async_result)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let result = mixed_sync_async_work().call().await;
    println!("{result}");
    assert_eq!(result, "processed 42");
}
