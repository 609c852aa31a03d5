//! Coroutine Waiting: create a future in a worker and wait for it on the event loop; with a
//! thread that knows no loop (asyncio.to_thread style), pass the loop explicitly.

use std::time::Duration;

use aiothreads::{sync_wait_coroutine, wait_coroutine, Loop};

#[aiothreads::threaded]
fn thread_worker() -> String {
    // Create and wait for a future; the event loop is known from the call's context.
    async fn fetch_data() -> String {
        tokio::time::sleep(Duration::from_millis(100)).await;
        "data".to_owned()
    }
    wait_coroutine(fetch_data())
}

/// Manual loop handling for a thread that was not started by aiothreads.
fn manual_thread_worker(lp: Loop) -> String {
    async fn fetch_data() -> String {
        "data from specific loop".to_owned()
    }
    sync_wait_coroutine(&lp, fetch_data)
}

async fn comparison_example() -> (String, String) {
    // Automatic loop handling with `threaded`.
    let result1 = thread_worker().call().await;

    // Manual loop handling with a plain thread: take the loop here, on the async side.
    let lp = Loop::current().expect("inside the runtime");
    let (tx, rx) = aiothreads::aiothreads_core::slot::oneshot();
    std::thread::spawn(move || {
        let _ = tx.send(manual_thread_worker(lp));
    });
    let result2 = rx.await.expect("the thread panicked");

    (result1, result2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (a, b) = comparison_example().await;
    println!("{a} / {b}");
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("data", "data from specific loop")
    );

    // Misuse is an error, never a hang: on the loop's own thread, waiting would deadlock.
    let err = aiothreads::try_sync_await(async { 1 }).unwrap_err();
    println!("on the loop thread: {err}");
}
