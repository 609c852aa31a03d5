//! Class Method Support, "Object Interface for All Decorators": a threaded function and a
//! threaded iterable share one calling pattern.
//!
//! In Python the decorated names are wrapper objects (`Threaded`, `ThreadedIterable`); in Rust
//! they stay functions, and *calling* one gives the wrapper: a `Call` (for `#[threaded]`) or an
//! `IterCall` stream (for `#[threaded_iterable]`), each with `sync_call()`. We print
//! `std::any::type_name` where the Python prints `type(...)`.

use std::any::type_name_of_val;

use futures::StreamExt;

#[aiothreads::threaded]
fn sync_function(x: i32) -> String {
    x.to_string()
}

#[aiothreads::threaded_iterable]
fn sync_generator(n: u32) -> impl Iterator<Item = u32> {
    0..n
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Both have the same interface pattern:
    println!(
        "sync_function(42): {}",
        type_name_of_val(&sync_function(42))
    );
    println!(
        "sync_generator(5): {}",
        type_name_of_val(&sync_generator(5))
    );

    // All support sync_call and async_call.
    let sync_result = sync_function(42).sync_call(); // inline, on this thread
    let async_result = sync_function(42).async_call().await; // on the pool, a JoinHandle
    let default_result = sync_function(42).await; // same as async_call
    println!("{sync_result} {async_result} {default_result}");
    assert_eq!([&sync_result, &async_result], [&default_result; 2]);
    assert_eq!(default_result, "42");

    // Generators: `sync_call()` gives the regular iterator, the call itself is the stream.
    let sync_gen = sync_generator(5).sync_call(); // a plain `Iterator`
    let async_iter = sync_generator(5); // an `IterCall`: an async `Stream`
    println!(
        "sync_generator(5).sync_call(): {}",
        type_name_of_val(&sync_gen)
    );
    println!(
        "sync_generator(5):             {}",
        type_name_of_val(&async_iter)
    );
    let from_iter: Vec<u32> = sync_gen.collect();
    let from_stream: Vec<u32> = async_iter.collect().await;
    println!("{from_iter:?} == {from_stream:?}");
    assert_eq!(from_iter, [0, 1, 2, 3, 4]);
    assert_eq!(from_iter, from_stream);

    // The closure forms are objects, as in Python: `Threaded` and `ThreadedIterable`.
    let threaded_fn = aiothreads::threaded(|x: i32| x.to_string());
    let threaded_gen = aiothreads::threaded_iterable(|n: u32| 0..n);
    println!("threaded(closure): {}", type_name_of_val(&threaded_fn));
    println!(
        "threaded_iterable(closure): {}",
        type_name_of_val(&threaded_gen)
    );
    assert_eq!(threaded_fn.sync_call((42,)), "42");
    assert_eq!(threaded_fn.async_call((42,)).await, "42");
    assert_eq!(threaded_fn.call((42,)).await, "42");
    assert_eq!(threaded_gen.sync_call(3).sum::<u32>(), 3);
    assert_eq!(threaded_gen.call(3).collect::<Vec<_>>().await, [0, 1, 2]);
}
