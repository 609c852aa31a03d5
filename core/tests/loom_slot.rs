//! Loom models of the oneshot slot and take-once cell.
//! Run: `RUSTFLAGS="--cfg aiothreads_loom" cargo test -p aiothreads-core --release --test loom_slot`
#![cfg(aiothreads_loom)]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use aiothreads_core::slot::{RecvError, Slot, TryRecvError};
use aiothreads_core::take::TakeCell;
use loom::sync::Arc;
use loom::thread;

struct Counted<'a>(&'a AtomicUsize);
impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A send racing a waiting receiver is never lost: the receiver's `block_on` returns.
#[test]
fn send_wakes_waiting_receiver() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        let tx = slot.clone();
        let t = thread::spawn(move || tx.send(1u8).unwrap());
        assert_eq!(loom::future::block_on(slot.recv()), Ok(1));
        t.join().unwrap();
    });
}

/// A sender leaving without a value wakes a waiting receiver with `SenderGone`.
#[test]
fn abandon_wakes_waiting_receiver() {
    loom::model(|| {
        let slot = Arc::new(Slot::<u8>::new());
        let tx = slot.clone();
        let t = thread::spawn(move || tx.abandon());
        assert_eq!(
            loom::future::block_on(slot.recv()),
            Err(RecvError::SenderGone)
        );
        t.join().unwrap();
    });
}

/// Send racing the receiver's close: the value is handed back or dropped by the close,
/// exactly once, and a successful send after a close never happens.
#[test]
fn send_vs_close_exactly_once() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    loom::model(|| {
        DROPS.store(0, SeqCst);
        {
            let slot = Arc::new(Slot::new());
            let rx = slot.clone();
            let t = thread::spawn(move || rx.close());
            let _ = slot.send(Counted(&DROPS));
            t.join().unwrap();
            assert!(slot.is_closed());
            assert!(matches!(
                slot.try_recv(),
                Err(TryRecvError::Failed(RecvError::Closed))
            ));
        }
        assert_eq!(DROPS.load(SeqCst), 1);
    });
}

/// Receive racing close from two threads: the value leaves once.
#[test]
fn receive_vs_close_exactly_once() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    loom::model(|| {
        DROPS.store(0, SeqCst);
        {
            let slot = Arc::new(Slot::new());
            slot.send(Counted(&DROPS)).ok().unwrap();
            let other = slot.clone();
            let t = thread::spawn(move || other.close());
            drop(slot.try_recv());
            t.join().unwrap();
        }
        assert_eq!(DROPS.load(SeqCst), 1);
    });
}

/// Two takers of a `TakeCell`: exactly one wins.
#[test]
fn take_cell_one_winner() {
    loom::model(|| {
        let cell = Arc::new(TakeCell::new(1u8));
        let other = cell.clone();
        let t = thread::spawn(move || other.take().is_some() as u8);
        let mine = cell.take().is_some() as u8;
        assert_eq!(mine + t.join().unwrap(), 1);
    });
}
