//! Loom models of `ring::Closer`: a close from a third thread, racing a producer that pushes
//! or waits for space, and a consumer that waits for items.
//!
//! Run: `RUSTFLAGS="--cfg aiothreads_loom" cargo test -p aiothreads-core --release --test loom_closer`
#![cfg(aiothreads_loom)]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc as StdArc;

use aiothreads_core::ring::{self, Closed, PopError, PushError};
use loom::future::block_on;
use loom::thread;

/// Counts drops (a std atomic: only read after the model's threads are joined).
struct Counted(u32, StdArc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, SeqCst);
    }
}

/// A producer waiting for space on a full ring (in `send`, the async form of
/// `push_blocking`) is woken by a `Closer` on another thread and gets its value back; the
/// consumer, alive and not popping, still receives the item already in the ring. Loom
/// reports a deadlock if the wake-up can be lost.
#[test]
fn closer_wakes_waiting_producer() {
    loom::model(|| {
        let (mut tx, mut rx) = ring::with_capacity::<u32>(1);
        tx.push(0).unwrap();
        let closer = tx.closer();
        let t = thread::spawn(move || closer.close());
        assert_eq!(block_on(tx.send(1)), Err(Closed(1)));
        t.join().unwrap();
        assert_eq!(rx.pop(), Ok(0));
        assert_eq!(rx.pop(), Err(PopError::Closed));
    });
}

/// A consumer waiting for items is woken by a `Closer` while the producer stays alive (so
/// the producer's own close cannot mask a lost wake-up).
#[test]
fn closer_wakes_waiting_consumer() {
    loom::model(|| {
        let (tx, mut rx) = ring::with_capacity::<u32>(1);
        let closer = tx.closer();
        let t = thread::spawn(move || closer.close());
        assert_eq!(block_on(rx.recv()), None);
        t.join().unwrap();
        drop(tx);
    });
}

/// A close (here on the consumer's thread, without the producer) races a producer pushing
/// two items: the consumer gets a prefix of the accepted items, in order, then the end; a
/// refused push hands its value back; every item is dropped exactly once, whoever holds the
/// storage last.
#[test]
fn closer_races_pushes() {
    loom::model(|| {
        let drops = StdArc::new(AtomicUsize::new(0));
        let (mut tx, mut rx) = ring::with_capacity::<Counted>(2);
        let closer = tx.closer();
        let d = drops.clone();
        let producer = thread::spawn(move || {
            let mut accepted = Vec::new();
            for i in 0..2 {
                match tx.try_send(Counted(i, d.clone())) {
                    Ok(()) => accepted.push(i),
                    Err(PushError::Closed(back)) => assert_eq!(back.0, i),
                    Err(PushError::Full(_)) => unreachable!("capacity 2, two items"),
                }
            }
            accepted // `tx` is dropped here
        });
        closer.close();
        drop(closer);
        let mut got = Vec::new();
        while let Some(item) = block_on(rx.recv()) {
            got.push(item.0);
        }
        let accepted = producer.join().unwrap();
        assert!(
            accepted.starts_with(&got),
            "received {got:?}, not a prefix of accepted {accepted:?}"
        );
        drop(rx);
        assert_eq!(drops.load(SeqCst), 2, "each item dropped exactly once");
    });
}
