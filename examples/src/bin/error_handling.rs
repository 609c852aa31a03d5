//! Error handling: a `Result` returned by the job and a panic in the job both reach the
//! awaiter.

use std::time::{SystemTime, UNIX_EPOCH};

#[aiothreads::threaded]
fn risky_operation(attempt: u32) -> Result<&'static str, String> {
    // A cheap coin flip (the original uses `random.random() < 0.5`).
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    if (nanos ^ attempt) & 1 == 0 {
        Err("Something went wrong".to_owned())
    } else {
        Ok("success")
    }
}

#[aiothreads::threaded]
fn panicking_operation() -> u32 {
    panic!("invariant broken")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    for attempt in 0..4 {
        match risky_operation(attempt).await {
            Ok(result) => println!("Success: {result}"),
            Err(e) => println!("Handled error: {e}"),
        }
    }

    // A panic is re-raised where the handle is awaited; `try_join` turns it into a value.
    match panicking_operation().call().try_join().await {
        Ok(v) => println!("unexpected value {v}"),
        Err(e) => println!("Handled panic: {e}"),
    }
}
