//! Event Loop Context: `threaded` calls store the current event loop with the call, so
//! `sync_await` and `wait_coroutine` inside the thread find it without being told.

use std::time::Duration;

use aiothreads::{sync_await, wait_coroutine};

async fn some_async_function(arg: &str) -> String {
    tokio::time::sleep(Duration::from_millis(10)).await;
    format!("<{arg}>")
}

async fn another_async_function(arg: &str) -> String {
    tokio::time::sleep(Duration::from_millis(10)).await;
    format!("[{arg}]")
}

#[aiothreads::threaded]
fn thread_with_async_calls() -> String {
    // The event loop is available automatically.
    let result1 = sync_await(some_async_function("arg1"));
    let result2 = wait_coroutine(another_async_function("arg2"));
    result1 + &result2
}

// Works seamlessly, on either runtime flavor.
#[tokio::main]
async fn main() {
    let result = thread_with_async_calls().call().await;
    println!("{result}");
    assert_eq!(result, "<arg1>[arg2]");

    // What the worker saw: the caller's loop.
    let caller = aiothreads::Loop::current().unwrap();
    let in_worker = aiothreads::spawn(aiothreads::Loop::current).await.unwrap();
    assert!(caller.same_loop(&in_worker));
}
