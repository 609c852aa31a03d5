//! Loom models of the core's lock-free types.
//!
//! Run: `RUSTFLAGS="--cfg aiothreads_loom" cargo test -p aiothreads-core --test loom --release`
#![cfg(aiothreads_loom)]

/// Models of the SPSC ring: data handoff, closing, both wake-up directions, drops.
///
/// The halves come from `ring::with_capacity` (compiled under the loom cfg even without the
/// `alloc` feature) because loom threads need `'static` halves; its `Arc` is loom's, so the
/// "last half drops the items" path is modelled too. Capacities are 1, 2 or 4 and at most
/// three items, so that each model finishes in seconds.
mod ring_models {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc as StdArc;

    use aiothreads_core::ring::{self, Closed, PopError, PushError};
    use loom::future::block_on;
    use loom::thread;

    /// Counts drops (a std atomic: only read after the model's threads are joined).
    struct Counted(StdArc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// Raw push and pop with a full ring and a close: FIFO, nothing lost or duplicated.
    #[test]
    fn push_pop_close() {
        loom::model(|| {
            let (mut tx, mut rx) = ring::with_capacity::<u32>(2);
            let t = thread::spawn(move || {
                for i in 0..3 {
                    let mut v = i;
                    loop {
                        match tx.push(v) {
                            Ok(()) => break,
                            Err(PushError::Full(back)) => {
                                v = back;
                                thread::yield_now();
                            }
                            Err(PushError::Closed(_)) => unreachable!("consumer is alive"),
                        }
                    }
                }
                // Dropping `tx` closes the ring.
            });
            let mut next = 0;
            loop {
                match rx.pop() {
                    Ok(v) => {
                        assert_eq!(v, next);
                        next += 1;
                    }
                    Err(PopError::Empty) => thread::yield_now(),
                    Err(PopError::Closed) => break,
                }
            }
            assert_eq!(next, 3, "every item arrives before Closed");
            t.join().unwrap();
        });
    }

    /// A consumer waiting in `recv` is woken by `try_send` (the Dekker pair of
    /// `poll_recv` / `notify_consumer`); the producer stays alive, so a close cannot mask a
    /// lost wake-up (loom would report the deadlock).
    #[test]
    fn try_send_wakes_waiting_consumer() {
        loom::model(|| {
            let (mut tx, mut rx) = ring::with_capacity::<u32>(1);
            let t = thread::spawn(move || {
                tx.try_send(1).unwrap();
                tx
            });
            assert_eq!(block_on(rx.recv()), Some(1));
            let tx = t.join().unwrap();
            drop(tx);
            assert_eq!(block_on(rx.recv()), None);
        });
    }

    /// The consumer waits twice in a row: its flag, cleared when its re-check found the first
    /// item (or by the producer's wake), must be set again and seen by the second push. The
    /// handshake is the one the unbounded queue uses (`crate::wake`); bounded to 5
    /// preemptions like that queue's model of the same shape (a lost wake-up of this shape
    /// needs 4: with a plain `store` of the flag instead of a `swap`, loom reports one).
    #[test]
    fn consumer_waits_twice() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(5);
        builder.check(|| {
            let (mut tx, mut rx) = ring::with_capacity::<u32>(2);
            let t = thread::spawn(move || {
                tx.try_send(1).unwrap();
                tx.try_send(2).unwrap();
                tx
            });
            assert_eq!(block_on(rx.recv()), Some(1));
            assert_eq!(block_on(rx.recv()), Some(2));
            drop(t.join().unwrap());
        });
    }

    /// The same with `send_iter`, which publishes and checks the consumer's flag per item
    /// with its position kept in a register: both items arrive, each wait is woken.
    #[test]
    fn send_iter_wakes_consumer_waiting_twice() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(5);
        builder.check(|| {
            let (mut tx, mut rx) = ring::with_capacity::<u32>(2);
            let t = thread::spawn(move || {
                // Full when the consumer has not taken an item yet: the run cannot look past
                // a full ring to learn that the iterator is done.
                let (sent, end) = tx.send_iter(&mut (1..3), usize::MAX);
                assert_eq!(sent, 2);
                assert!(matches!(
                    end,
                    ring::SendIterEnd::Exhausted | ring::SendIterEnd::Full
                ));
                tx
            });
            assert_eq!(block_on(rx.recv()), Some(1));
            assert_eq!(block_on(rx.recv()), Some(2));
            drop(t.join().unwrap());
        });
    }

    /// Same with a batch push, which notifies once at the end.
    #[test]
    fn push_slice_wakes_waiting_consumer() {
        loom::model(|| {
            let (mut tx, mut rx) = ring::with_capacity::<u32>(2);
            let t = thread::spawn(move || {
                assert_eq!(tx.push_slice(&[1, 2]), 2);
                tx
            });
            assert_eq!(block_on(rx.recv()), Some(1));
            assert_eq!(rx.pop(), Ok(2));
            drop(t.join().unwrap());
        });
    }

    /// A producer waiting for space in `send` is woken by raw pops reaching a checkpoint
    /// (capacity 2: every pop is one); the consumer stays alive.
    #[test]
    fn pop_wakes_waiting_producer_cap2() {
        loom::model(|| {
            let (mut tx, mut rx) = ring::with_capacity::<u32>(2);
            tx.push(0).unwrap();
            tx.push(1).unwrap();
            let t = thread::spawn(move || {
                block_on(tx.send(2)).unwrap();
                tx
            });
            assert_eq!(rx.pop(), Ok(0));
            let tx = t.join().unwrap();
            assert_eq!(rx.pop(), Ok(1));
            assert_eq!(rx.pop(), Ok(2));
            drop(tx);
        });
    }

    /// Capacity 4: the checkpoint is every 2 pops, so the producer is woken lazily, only
    /// after the second pop; it must still never be stranded.
    #[test]
    fn lazy_checkpoint_wakes_waiting_producer_cap4() {
        loom::model(|| {
            let (mut tx, mut rx) = ring::with_capacity::<u32>(4);
            for i in 0..4 {
                tx.push(i).unwrap();
            }
            let t = thread::spawn(move || {
                block_on(tx.send(4)).unwrap();
                tx
            });
            assert_eq!(rx.pop(), Ok(0));
            assert_eq!(rx.pop(), Ok(1));
            let tx = t.join().unwrap();
            assert_eq!(rx.pop_batch::<4>().as_slice(), [2, 3, 4]);
            drop(tx);
        });
    }

    /// `poll_room` with hysteresis: on a full capacity-4 ring the producer asks for more room
    /// than the consumer's checkpoint interval brings, so it waits for two free slots (the
    /// clamp) while the consumer pops them one at a time (a wake after the first would find
    /// one slot, too few: it must register again and still be woken by the checkpoint).
    #[test]
    fn poll_room_waits_for_its_run_and_is_woken() {
        loom::model(|| {
            let (mut tx, mut rx) = ring::with_capacity::<u32>(4);
            for i in 0..4 {
                tx.push(i).unwrap();
            }
            let t = thread::spawn(move || {
                block_on(core::future::poll_fn(|cx| tx.poll_room(cx, 100))).unwrap();
                // Two slots were free when it returned.
                tx.push(4).unwrap();
                tx.push(5).unwrap();
                tx
            });
            assert_eq!(rx.pop(), Ok(0));
            assert_eq!(rx.pop(), Ok(1));
            let tx = t.join().unwrap();
            assert_eq!(rx.pop_batch::<4>().as_slice(), [2, 3, 4, 5]);
            drop(tx);
        });
    }

    /// Both sides wait in turn: the producer waits for space on a full capacity-1 ring while
    /// the consumer takes the first item and then waits for the second. Neither wake-up may
    /// be lost (loom reports a deadlock otherwise).
    #[test]
    fn both_sides_waiting() {
        loom::model(|| {
            let (mut tx, mut rx) = ring::with_capacity::<u32>(1);
            tx.push(0).unwrap();
            let t = thread::spawn(move || {
                block_on(tx.send(1)).unwrap();
                tx
            });
            assert_eq!(block_on(rx.recv()), Some(0));
            assert_eq!(block_on(rx.recv()), Some(1));
            drop(t.join().unwrap());
        });
    }

    /// Dropping the producer wakes a waiting consumer, which then sees the end.
    #[test]
    fn close_wakes_waiting_consumer() {
        loom::model(|| {
            let (tx, mut rx) = ring::with_capacity::<u32>(1);
            let t = thread::spawn(move || drop(tx));
            assert_eq!(block_on(rx.recv()), None);
            t.join().unwrap();
        });
    }

    /// Dropping the consumer wakes a producer waiting on a full ring, which gets its value
    /// back.
    #[test]
    fn close_wakes_waiting_producer() {
        loom::model(|| {
            let (mut tx, rx) = ring::with_capacity::<u32>(1);
            tx.push(0).unwrap();
            let t = thread::spawn(move || drop(rx));
            assert_eq!(block_on(tx.send(1)), Err(Closed(1)));
            t.join().unwrap();
        });
    }

    /// Items are dropped exactly once whichever half goes last, with a pop racing the
    /// producer's pushes.
    #[test]
    fn items_dropped_exactly_once() {
        loom::model(|| {
            let drops = StdArc::new(AtomicUsize::new(0));
            let (mut tx, mut rx) = ring::with_capacity::<Counted>(2);
            let d = drops.clone();
            let t = thread::spawn(move || {
                let _ = tx.push(Counted(d.clone()));
                let _ = tx.push(Counted(d));
            });
            let _ = rx.pop();
            drop(rx);
            t.join().unwrap();
            assert_eq!(drops.load(SeqCst), 2);
        });
    }

    /// A drain racing pushes yields a prefix in order and leaves the rest in the ring.
    #[test]
    fn drain_races_pushes() {
        loom::model(|| {
            let (mut tx, mut rx) = ring::with_capacity::<u32>(2);
            let t = thread::spawn(move || {
                let _ = tx.push(0);
                let _ = tx.push(1);
                tx
            });
            let first: Vec<u32> = rx.drain().collect();
            let tx = t.join().unwrap();
            let rest: Vec<u32> = rx.drain().collect();
            assert_eq!([first, rest].concat(), [0, 1]);
            drop(tx);
        });
    }
}
