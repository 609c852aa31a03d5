//! `FromThreadChannel` (the channel under the threaded iterables, exported by the original as
//! `aiothreads.FromThreadChannel`) and its reverse, `blocking_iter`.
//!
//! 1. A thread you spawn yourself `put`s items (blocking while the channel is full) and the
//!    async side `get().await`s them, or reads the channel as a `Stream`. When the sender
//!    goes, the items already sent are delivered, then the channel reports closed; when the
//!    receiver goes, the next `put` fails and hands the item back.
//! 2. `blocking_iter(stream, max_size)`: sync code in a `#[threaded]` job consumes an async
//!    `Stream` (here one driven by tokio timers) as a plain `Iterator`; the stream runs on the
//!    caller's loop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiothreads::{ChannelClosed, FromThreadChannel};
use futures::{Stream, StreamExt};

/// Sync code consuming an async stream: sums the readings until one is over the limit.
#[aiothreads::threaded]
fn sum_until_over(
    limit: u64,
    readings: std::pin::Pin<Box<dyn Stream<Item = u64> + Send>>,
) -> (u64, usize) {
    let mut sum = 0;
    let mut seen = 0;
    for reading in aiothreads::blocking_iter(readings, 4) {
        seen += 1;
        if reading > limit {
            break; // drops the iterator: the stream stops on the loop
        }
        sum += reading;
    }
    (sum, seen)
}

/// An async stream that needs the tokio runtime (its timer): reading `i` is `i * 10`.
fn sensor(polled: Arc<AtomicUsize>) -> impl Stream<Item = u64> + Send {
    futures::stream::unfold(0u64, move |i| {
        let polled = polled.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            polled.fetch_add(1, Ordering::SeqCst);
            Some((i * 10, i + 1))
        }
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // 1. A hand-made producer thread.
    let (mut tx, mut rx) = FromThreadChannel::new(2);
    let producer = std::thread::spawn(move || {
        for i in 0..5 {
            tx.put(format!("line {i}")).unwrap(); // blocks while 2 lines wait
        }
        // `tx` dropped: the receiver gets the 5 lines, then the end.
    });
    let mut got = Vec::new();
    while let Ok(line) = rx.get().await {
        println!("received {line:?}");
        got.push(line);
    }
    producer.join().unwrap();
    assert_eq!(got.len(), 5);
    assert!(rx.is_closed());

    // The same as a `Stream`, and a receiver that leaves early.
    let (mut tx, rx) = FromThreadChannel::new(4);
    let producer = std::thread::spawn(move || {
        for i in 0u64.. {
            if let Err(ChannelClosed(item)) = tx.put(i) {
                // Items 0..i went through; `i` itself comes back.
                println!("producer: receiver gone, item {item} handed back after {i} sent");
                return i;
            }
        }
        unreachable!()
    });
    let first: Vec<u64> = rx.take(3).collect().await; // `take` drops the receiver after 3
    let sent = tokio::task::spawn_blocking(move || producer.join().unwrap())
        .await
        .unwrap();
    println!("stream gave {first:?}; the producer sent {sent}");
    assert_eq!(first, [0, 1, 2]);
    assert!(sent <= 3 + 4 + 1, "bounded by the channel: {sent}");

    // 2. The reverse bridge: a threaded job iterating an async stream.
    let polled = Arc::new(AtomicUsize::new(0));
    let (sum, seen) = sum_until_over(50, Box::pin(sensor(polled.clone()))).await;
    println!("sum of readings up to 50: {sum} ({seen} readings seen)");
    assert_eq!(sum, 10 + 20 + 30 + 40 + 50);
    assert_eq!(seen, 7);
    // The driving task on the loop notices the iterator is gone when it hands over its next
    // item: a stream is polled at most once more after the break, then dropped.
    let at_end = polled.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let settled = polled.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let later = polled.load(Ordering::SeqCst);
    println!("the stream produced {at_end} readings by the break, {settled} in all: stopped");
    assert!(settled <= 7 + 4 + 1, "bounded by max_size: {settled}");
    assert_eq!(later, settled, "the stream was dropped");
}
