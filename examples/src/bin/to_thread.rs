//! Using with `asyncio.to_thread`: a thread the library did not start knows no event loop,
//! so the loop is passed by hand with `sync_wait_coroutine` — or, the Rust extra, the caller's
//! whole context is carried with a `Snapshot`.
//!
//! tokio's `spawn_blocking` is the closest Rust relative of `asyncio.to_thread`; with the
//! `tokio` feature its threads even find the runtime by themselves, so the by-hand forms are
//! shown on a plain `std::thread`, which knows nothing.

use std::sync::OnceLock;
use std::time::Duration;

use aiothreads::{sync_wait_coroutine, Loop, Snapshot};

async fn async_function() -> &'static str {
    tokio::time::sleep(Duration::from_millis(100)).await;
    "async result"
}

/// The original's module-level `current_loop`.
static CURRENT_LOOP: OnceLock<Loop> = OnceLock::new();

fn sync_function_for_to_thread() -> &'static str {
    // Must get and pass the event loop manually.
    sync_wait_coroutine(CURRENT_LOOP.get().unwrap(), async_function)
}

/// `asyncio.to_thread` stand-in: run `f` on a new OS thread and await its result.
async fn to_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = aiothreads::aiothreads_core::slot::oneshot();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.expect("the thread panicked")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Manual loop setting.
    CURRENT_LOOP.get_or_init(|| Loop::current().unwrap());
    let result = to_thread(sync_function_for_to_thread).await;
    println!("manual loop: {result}");
    assert_eq!(result, "async result");

    // Or capture the caller's context (loop, context variables, span) and run inside it.
    let snapshot = Snapshot::capture();
    let result =
        to_thread(move || snapshot.scope(|| aiothreads::sync_await(async_function()))).await;
    println!("snapshot: {result}");
    assert_eq!(result, "async result");

    // tokio's own to_thread: the runtime is found without help.
    let result = tokio::task::spawn_blocking(|| aiothreads::sync_await(async_function()))
        .await
        .unwrap();
    println!("spawn_blocking: {result}");
}
