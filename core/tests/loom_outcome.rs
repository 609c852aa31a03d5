//! Loom model of the std backend's stream-ending protocol, built from the core's pieces.
//!
//! A stream's producer job holds, in one [`TakeCell`], the ring's producer half; beside it sits
//! an outcome [`Slot`]. Whoever ends the job — the worker after running the iterator, or the
//! consumer withdrawing a job that has not started — takes the cell (one winner), sends the
//! outcome, and only then drops the producer half (closing the ring). The consumer reads
//! items until the ring is closed and drained, then the outcome.
//!
//! The model checks, over every interleaving, that the consumer always finds the outcome once
//! the ring is closed and drained (never a closed ring without an ending), that the outcome
//! is written exactly once, and that a withdrawn job runs nothing.
//!
//! Run: `RUSTFLAGS="--cfg aiothreads_loom" cargo test -p aiothreads-core --release --test loom_outcome`
#![cfg(aiothreads_loom)]

use aiothreads_core::ring::{self, PopError, Producer};
use aiothreads_core::slot::Slot;
use aiothreads_core::take::TakeCell;
use loom::future::block_on;
use loom::sync::atomic::{AtomicBool, Ordering::Relaxed};
use loom::sync::Arc;
use loom::thread;

/// How the producer ended, as the std backend's `Result<(), JoinError>` is reduced here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Done,
    Cancelled,
}

struct Job {
    cell: TakeCell<Producer<'static, u32>>,
    outcome: Slot<Ending>,
    ran: AtomicBool,
}

impl Job {
    /// Sends the outcome, then closes the ring: the order the protocol rests on.
    fn finish(&self, ending: Ending, tx: Producer<'static, u32>) {
        self.outcome
            .send(ending)
            .expect("the outcome is written once");
        drop(tx);
    }

    /// The worker's side: run (push one item) unless withdrawn.
    fn run(&self) {
        let Some(mut tx) = self.cell.take() else {
            return;
        };
        self.ran.store(true, Relaxed);
        let _ = tx.push(7);
        self.finish(Ending::Done, tx);
    }

    /// The consumer's `drop`/`close` of a job that may not have started.
    fn withdraw(&self) -> bool {
        match self.cell.take() {
            Some(tx) => {
                self.finish(Ending::Cancelled, tx);
                true
            }
            None => false,
        }
    }
}

/// The worker runs while the consumer reads to the end: the outcome is there when the ring
/// is closed and drained.
#[test]
fn closed_ring_always_has_an_outcome() {
    loom::model(|| {
        let (tx, mut rx) = ring::with_capacity::<u32>(1);
        let job = Arc::new(Job {
            cell: TakeCell::new(tx),
            outcome: Slot::new(),
            ran: AtomicBool::new(false),
        });
        let worker = {
            let job = job.clone();
            thread::spawn(move || job.run())
        };
        let mut items = 0;
        loop {
            match rx.pop() {
                Ok(_) => items += 1,
                Err(PopError::Empty) => thread::yield_now(),
                Err(PopError::Closed) => break,
            }
        }
        assert_eq!(items, 1);
        assert_eq!(job.outcome.try_recv(), Ok(Ending::Done));
        worker.join().unwrap();
    });
}

/// The consumer withdraws while the worker may be starting: exactly one of them ends the
/// job; a withdrawn job ran nothing; either way the consumer's wait for the outcome ends.
#[test]
fn withdraw_races_run_with_one_ending() {
    loom::model(|| {
        let (tx, rx) = ring::with_capacity::<u32>(1);
        let job = Arc::new(Job {
            cell: TakeCell::new(tx),
            outcome: Slot::new(),
            ran: AtomicBool::new(false),
        });
        let worker = {
            let job = job.clone();
            thread::spawn(move || job.run())
        };
        let withdrew = job.withdraw();
        drop(rx);
        let ending = block_on(job.outcome.recv()).expect("one ending is written");
        worker.join().unwrap();
        if withdrew {
            assert_eq!(ending, Ending::Cancelled);
            assert!(!job.ran.load(Relaxed), "a withdrawn job ran");
        } else {
            assert_eq!(ending, Ending::Done);
        }
    });
}
