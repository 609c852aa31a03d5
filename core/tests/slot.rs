//! Behaviour of the oneshot `Slot` and `TakeCell`: exactly-once delivery and drop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

#[cfg(feature = "alloc")]
use aiothreads_core::slot::oneshot;
use aiothreads_core::slot::{RecvError, Slot, TryRecvError};
use aiothreads_core::take::TakeCell;

/// Counts drops of its values.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn send_then_receive() {
    let slot = Slot::new();
    assert!(!slot.is_ready());
    assert_eq!(slot.try_recv(), Err(TryRecvError::Empty));
    slot.send(7u8).unwrap();
    assert!(slot.is_ready());
    assert_eq!(
        slot.send(8),
        Err(8),
        "a second send is refused and handed back"
    );
    assert_eq!(futures::executor::block_on(slot.recv()), Ok(7));
    assert_eq!(
        slot.try_recv(),
        Err(TryRecvError::Failed(RecvError::AlreadyTaken))
    );
    assert!(slot.is_terminated());
}

#[test]
fn abandon_is_seen_by_receiver() {
    let slot = Slot::<u8>::new();
    slot.abandon();
    assert_eq!(
        futures::executor::block_on(slot.recv()),
        Err(RecvError::SenderGone)
    );
    assert_eq!(slot.send(1), Err(1));
}

#[test]
fn abandon_after_send_keeps_value() {
    let slot = Slot::new();
    slot.send(1u8).unwrap();
    slot.abandon();
    assert_eq!(slot.try_recv(), Ok(1));
}

#[test]
fn close_is_seen_by_sender_and_drops_value() {
    let drops = Arc::new(AtomicUsize::new(0));
    let slot = Slot::new();
    slot.send(Counted(drops.clone())).unwrap();
    slot.close();
    assert!(slot.is_closed());
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "close drops a value already sent"
    );
    drop(slot);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "and the slot does not drop it again"
    );

    let slot = Slot::new();
    slot.close();
    let back = slot.send(Counted(drops.clone())).unwrap_err();
    drop(back);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn unreceived_value_dropped_with_slot() {
    let drops = Arc::new(AtomicUsize::new(0));
    {
        let slot = Slot::new();
        slot.send(Counted(drops.clone())).unwrap();
    }
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn pending_then_woken_across_threads() {
    const ROUNDS: usize = if cfg!(miri) { 20 } else { 2_000 };
    for i in 0..ROUNDS {
        let slot = Arc::new(Slot::new());
        let tx = slot.clone();
        let t = std::thread::spawn(move || tx.send(i).unwrap());
        assert_eq!(futures::executor::block_on(slot.recv()), Ok(i));
        t.join().unwrap();
    }
}

#[test]
fn racing_close_and_send_drop_exactly_once() {
    const ROUNDS: usize = if cfg!(miri) { 20 } else { 2_000 };
    let drops = Arc::new(AtomicUsize::new(0));
    let mut handed_back = 0;
    for _ in 0..ROUNDS {
        let slot = Arc::new(Slot::new());
        let rx = slot.clone();
        let t = std::thread::spawn(move || rx.close());
        if let Err(v) = slot.send(Counted(drops.clone())) {
            handed_back += 1;
            drop(v);
        }
        t.join().unwrap();
    }
    let _ = handed_back;
    assert_eq!(
        drops.load(Ordering::SeqCst),
        ROUNDS,
        "every value dropped exactly once"
    );
}

#[test]
fn poll_registers_waker_and_zero_sized_values_work() {
    let slot = Slot::<()>::new();
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(slot.poll_recv(&mut cx), Poll::Pending);
    slot.send(()).unwrap();
    assert_eq!(slot.poll_recv(&mut cx), Poll::Ready(Ok(())));
}

#[cfg(feature = "alloc")]
#[test]
fn owned_pair_drop_semantics() {
    let (tx, rx) = oneshot::<u32>();
    drop(tx);
    assert_eq!(futures::executor::block_on(rx), Err(RecvError::SenderGone));

    let (tx, rx) = oneshot::<u32>();
    assert!(!tx.is_closed());
    drop(rx);
    assert!(tx.is_closed());
    assert_eq!(tx.send(3), Err(3));
}

#[test]
fn take_cell_takes_once_and_drops_untaken() {
    let drops = Arc::new(AtomicUsize::new(0));
    let cell = TakeCell::new(Counted(drops.clone()));
    let taken = cell.take();
    assert!(taken.is_some() && cell.take().is_none() && cell.is_taken());
    drop(taken);
    drop(cell);
    assert_eq!(drops.load(Ordering::SeqCst), 1);

    drop(TakeCell::new(Counted(drops.clone())));
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn take_cell_race_has_one_winner() {
    const ROUNDS: usize = if cfg!(miri) { 10 } else { 1_000 };
    for _ in 0..ROUNDS {
        let cell = Arc::new(TakeCell::new(5u8));
        let other = cell.clone();
        let t = std::thread::spawn(move || other.take().is_some() as u8);
        let mine = cell.take().is_some() as u8;
        assert_eq!(mine + t.join().unwrap(), 1);
    }
}

/// Counts its wakes.
struct CountWake(AtomicUsize);
impl std::task::Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// What the module docs say about two receivers waiting at once: the later registration
/// replaces the earlier waker, so only the later receiver is woken; the value still leaves the
/// slot once.
#[test]
fn two_waiting_receivers_only_the_last_is_woken() {
    let slot = Slot::new();
    let (first, second) = (
        Arc::new(CountWake(AtomicUsize::new(0))),
        Arc::new(CountWake(AtomicUsize::new(0))),
    );
    let (w1, w2) = (Waker::from(first.clone()), Waker::from(second.clone()));
    assert!(slot.poll_recv(&mut Context::from_waker(&w1)).is_pending());
    assert!(slot.poll_recv(&mut Context::from_waker(&w2)).is_pending());
    slot.send(5u8).unwrap();
    assert_eq!(
        first.0.load(Ordering::SeqCst),
        0,
        "the first receiver is not woken"
    );
    assert_eq!(second.0.load(Ordering::SeqCst), 1);
    assert_eq!(
        slot.poll_recv(&mut Context::from_waker(&w2)),
        Poll::Ready(Ok(5))
    );
    assert_eq!(
        slot.poll_recv(&mut Context::from_waker(&w1)),
        Poll::Ready(Err(RecvError::AlreadyTaken))
    );
}
