//! Type safety: argument and result types of a threaded function are checked statically.

#[aiothreads::threaded]
fn process_numbers(numbers: Vec<i32>, multiplier: f64) -> Vec<f64> {
    numbers
        .into_iter()
        .map(|n| f64::from(n) * multiplier)
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // The compiler knows this is a Vec<f64>.
    let result: Vec<f64> = process_numbers(vec![1, 2, 3], 2.5).await;
    println!("{result:?}");
    assert_eq!(result, [2.5, 5.0, 7.5]);

    // This would not compile: expected `Vec<i32>`, found `&str`.
    // let bad = process_numbers("not a list", 2.5).await;

    // The same signature for every call form:
    let _: Vec<f64> = process_numbers(vec![1], 1.0).sync_call();
    let handle: aiothreads::JoinHandle<Vec<f64>> = process_numbers(vec![1], 1.0).async_call();
    let _: Vec<f64> = handle.await;
}
