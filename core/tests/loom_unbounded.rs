//! Loom models of the unbounded SPSC queue.
//!
//! Run: `RUSTFLAGS="--cfg aiothreads_loom" cargo test -p aiothreads-core --release --test loom_unbounded`
//!
//! Under the loom cfg a segment has `SEGMENT_LEN == 2` slots, so three items cross a segment
//! boundary and five make the producer take a recycled segment. The shared state's `Arc` is
//! loom's, so "the last half drops the items and frees the segments" is modelled too, and
//! the slots and `next` links are loom cells: a missing happens-before on the segment
//! handoff (links, spare mailbox) is reported as a data race.
#![cfg(aiothreads_loom)]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc as StdArc;

use aiothreads_core::unbounded::{self, Closed, PopError, SEGMENT_LEN};
use loom::future::block_on;
use loom::thread;

/// Counts drops (a std atomic: only read after the model's threads are joined).
struct Counted(StdArc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Pops until the end with raw `pop` (yielding on `Empty`); returns the items.
fn drain_raw(rx: &mut unbounded::UnboundedConsumer<u32>) -> Vec<u32> {
    let mut items = Vec::new();
    loop {
        match rx.pop() {
            Ok(v) => items.push(v),
            Err(PopError::Empty) => thread::yield_now(),
            Err(PopError::Closed) => return items,
        }
    }
}

#[test]
fn segment_len_is_tiny_under_loom() {
    assert_eq!(SEGMENT_LEN, 2);
}

/// Raw pushes across a segment boundary, then a close (the producer's drop), racing raw
/// pops: FIFO, nothing lost or duplicated, the end only after every item.
#[test]
fn push_pop_across_segments_close() {
    loom::model(|| {
        let (mut tx, mut rx) = unbounded::channel::<u32>();
        let t = thread::spawn(move || {
            for i in 0..3 {
                tx.push_no_notify(i).unwrap();
            }
            // Dropping `tx` closes the queue.
        });
        assert_eq!(drain_raw(&mut rx), [0, 1, 2]);
        t.join().unwrap();
    });
}

/// Segment recycling race: the consumer hands a drained segment to the spare mailbox while
/// the producer, at its next boundary, looks for a spare (takes it, or allocates if it does
/// not see it yet), and then the roles repeat with the next segment. Items stay in order and
/// no segment is shared (loom reports a race on the slots or links otherwise).
#[test]
fn recycling_race() {
    loom::model(|| {
        let (mut tx, mut rx) = unbounded::channel::<u32>();
        // Items 0, 1 fill the first segment; 2 is in the second.
        for i in 0..3 {
            tx.push_no_notify(i).unwrap();
        }
        let t = thread::spawn(move || {
            // 3 fills the second segment; 4 needs a third: the spare (the first segment, if
            // the consumer gave it back by now) or a new one. 5 fills it.
            for i in 3..6 {
                tx.push_no_notify(i).unwrap();
            }
            tx
        });
        // Popping 2 enters the second segment and gives the first back; popping 4 (when it
        // arrives) gives the second back.
        let mut items = Vec::new();
        while items.len() < 6 {
            match rx.pop() {
                Ok(v) => items.push(v),
                Err(PopError::Empty) => thread::yield_now(),
                Err(PopError::Closed) => unreachable!("the producer is alive"),
            }
        }
        assert_eq!(items, [0, 1, 2, 3, 4, 5]);
        let mut tx = t.join().unwrap();
        // Whatever the race gave, the queue goes on working: 6 fills the third segment, 7
        // takes the spare or allocates.
        tx.push_no_notify(6).unwrap();
        tx.push_no_notify(7).unwrap();
        let allocated = tx.segments_allocated();
        assert!((2..=4).contains(&allocated), "{allocated} segments");
        drop(tx);
        assert_eq!(drain_raw(&mut rx), [6, 7]);
    });
}

/// A consumer waiting in `recv` is woken by a `push` that links a new segment (the Dekker
/// pair of `poll_recv` / `notify_consumer`); the producer stays alive, so a close cannot mask
/// a lost wake-up (loom would report the deadlock).
#[test]
fn push_wakes_waiting_consumer() {
    loom::model(|| {
        let (mut tx, mut rx) = unbounded::channel::<u32>();
        // The first segment is full: the next push links a second one.
        tx.push(0).unwrap();
        tx.push(1).unwrap();
        let t = thread::spawn(move || {
            tx.push(2).unwrap();
            tx
        });
        for expected in 0..3 {
            assert_eq!(block_on(rx.recv()), Some(expected));
        }
        drop(t.join().unwrap());
    });
}

/// The consumer waits twice in a row: its flag, cleared when its re-check found the first
/// item, must be set again and seen by the second push.
///
/// The exhaustive run takes about ten minutes, so this model bounds the preemptions to 5
/// (a lost wake-up of this shape needs 4: with plain stores of `rx_waiting`, loom reports one
/// at that bound in a second; see the module docs of the shared handshake, `core/src/wake.rs`).
#[test]
fn consumer_waits_twice() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(5);
    builder.check(|| {
        let (mut tx, mut rx) = unbounded::channel::<u32>();
        let t = thread::spawn(move || {
            tx.push(1).unwrap();
            tx.push(2).unwrap();
            tx
        });
        assert_eq!(block_on(rx.recv()), Some(1));
        assert_eq!(block_on(rx.recv()), Some(2));
        drop(t.join().unwrap());
    });
}

/// `push_no_notify` for a batch and one `notify_consumer` wake a waiting consumer.
#[test]
fn notify_after_batch_wakes_waiting_consumer() {
    loom::model(|| {
        let (mut tx, mut rx) = unbounded::channel::<u32>();
        let t = thread::spawn(move || {
            tx.push_no_notify(1).unwrap();
            tx.push_no_notify(2).unwrap();
            tx.notify_consumer();
            tx
        });
        assert_eq!(block_on(rx.recv()), Some(1));
        assert_eq!(block_on(rx.recv()), Some(2));
        drop(t.join().unwrap());
    });
}

/// Dropping the producer wakes a waiting consumer, which gets the items pushed before and
/// then the end.
#[test]
fn close_wakes_waiting_consumer() {
    loom::model(|| {
        let (mut tx, mut rx) = unbounded::channel::<u32>();
        let t = thread::spawn(move || {
            tx.push_no_notify(1).unwrap();
            drop(tx);
        });
        assert_eq!(block_on(rx.recv()), Some(1));
        assert_eq!(block_on(rx.recv()), None);
        t.join().unwrap();
    });
}

/// Items are dropped exactly once whichever half goes last, with pops (up to a segment
/// boundary) racing pushes across it, and pushes racing the consumer's close: a push
/// either queues its item (dropped by the last half) or hands it back.
#[test]
fn items_dropped_exactly_once() {
    loom::model(|| {
        let drops = StdArc::new(AtomicUsize::new(0));
        let (mut tx, mut rx) = unbounded::channel::<Counted>();
        let d = drops.clone();
        let t = thread::spawn(move || {
            for _ in 0..3 {
                if let Err(Closed(back)) = tx.push_no_notify(Counted(d.clone())) {
                    drop(back);
                }
            }
        });
        let _ = rx.pop();
        let _ = rx.pop();
        drop(rx);
        t.join().unwrap();
        assert_eq!(drops.load(SeqCst), 3);
    });
}
