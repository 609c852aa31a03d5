//! Behaviour of the SPSC ring: order, edge capacities, closing, drops, batches, async and
//! blocking adapters. Runs under Miri with scaled-down sizes.

use core::future::Future;
use core::pin::pin;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use std::sync::Arc;
use std::thread;

use aiothreads_core::ring::{Closed, PopError, PushError, Ring};
use futures::executor::block_on;
use futures::StreamExt;

const ITEMS: u64 = if cfg!(miri) { 200 } else { 1_000_000 };

mod common;
use common::{CountWake, Counted, ThreadParker};

#[test]
fn fifo_across_two_threads_raw() {
    let mut ring = Ring::<u64, 16>::new();
    let (mut tx, mut rx) = ring.split();
    thread::scope(|s| {
        s.spawn(move || {
            let mut next = 0;
            while next < ITEMS {
                match tx.push(next) {
                    Ok(()) => next += 1,
                    Err(PushError::Full(_)) => thread::yield_now(),
                    Err(PushError::Closed(_)) => panic!("closed"),
                }
            }
        });
        let mut expected = 0;
        loop {
            match rx.pop() {
                Ok(v) => {
                    assert_eq!(v, expected);
                    expected += 1;
                }
                Err(PopError::Empty) => thread::yield_now(),
                Err(PopError::Closed) => break,
            }
        }
        assert_eq!(expected, ITEMS);
    });
}

#[test]
fn fifo_across_two_threads_blocking() {
    let mut ring = Ring::<u64, 8>::new();
    let (mut tx, mut rx) = ring.split();
    thread::scope(|s| {
        s.spawn(move || {
            for i in 0..ITEMS {
                tx.push_blocking(i, &ThreadParker, 16).unwrap();
            }
        });
        let mut expected = 0;
        while let Some(v) = rx.pop_blocking(&ThreadParker, 16) {
            assert_eq!(v, expected);
            expected += 1;
        }
        assert_eq!(expected, ITEMS);
    });
}

#[test]
fn capacity_one() {
    let mut ring = Ring::<u64, 1>::new();
    let (mut tx, mut rx) = ring.split();
    assert_eq!(tx.capacity(), 1);
    for i in 0..5 {
        assert_eq!(tx.push(i), Ok(()));
        assert_eq!(tx.push(99), Err(PushError::Full(99)));
        assert_eq!(rx.len(), 1);
        assert_eq!(rx.pop(), Ok(i));
        assert_eq!(rx.pop(), Err(PopError::Empty));
    }
    let half = ITEMS / 10;
    thread::scope(|s| {
        s.spawn(move || {
            for i in 0..half {
                tx.push_blocking(i, &ThreadParker, 0).unwrap();
            }
        });
        for i in 0..half {
            assert_eq!(rx.pop_blocking(&ThreadParker, 0), Some(i));
        }
        assert_eq!(rx.pop_blocking(&ThreadParker, 0), None);
    });
}

#[test]
fn zero_sized_items() {
    let mut ring = Ring::<(), 3>::new();
    let (mut tx, mut rx) = ring.split();
    for _ in 0..3 {
        tx.push(()).unwrap();
    }
    assert_eq!(tx.push(()), Err(PushError::Full(())));
    assert_eq!(rx.pop_batch::<8>().len(), 3);
    assert_eq!(rx.pop(), Err(PopError::Empty));

    struct Zst;
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    impl Drop for Zst {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let mut ring = Ring::<Zst, 4>::new();
    let (mut tx, mut rx) = ring.split();
    for _ in 0..4 {
        assert!(tx.push(Zst).is_ok());
    }
    drop(rx.pop());
    drop((tx, rx));
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    drop(ring);
    assert_eq!(DROPS.load(Ordering::SeqCst), 4);
}

#[test]
fn items_dropped_exactly_once_with_ring() {
    for consumer_first in [false, true] {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut ring = Ring::<Counted, 4>::new();
        let (mut tx, mut rx) = ring.split();
        for _ in 0..4 {
            assert!(tx.push(Counted(drops.clone())).is_ok());
        }
        drop(rx.pop().unwrap());
        assert!(tx.push(Counted(drops.clone())).is_ok());
        // A push on a closed ring hands the value back, which is then dropped.
        if consumer_first {
            drop(rx);
            drop(tx.push(Counted(drops.clone())));
            drop(tx);
        } else {
            drop(tx);
            drop(rx);
        }
        let expected_now = 1 + usize::from(consumer_first);
        assert_eq!(drops.load(Ordering::SeqCst), expected_now);
        drop(ring);
        assert_eq!(drops.load(Ordering::SeqCst), expected_now + 4);
    }
}

#[cfg(feature = "alloc")]
#[test]
fn items_dropped_exactly_once_with_heap_halves() {
    use aiothreads_core::ring;
    for consumer_first in [false, true] {
        let drops = Arc::new(AtomicUsize::new(0));
        let (mut tx, mut rx) = ring::with_capacity::<Counted>(3);
        for _ in 0..3 {
            assert!(tx.push(Counted(drops.clone())).is_ok());
        }
        drop(rx.pop().unwrap());
        if consumer_first {
            drop(rx);
            assert_eq!(
                drops.load(Ordering::SeqCst),
                1,
                "the producer keeps the storage"
            );
            thread::spawn(move || drop(tx)).join().unwrap();
        } else {
            drop(tx);
            assert_eq!(drops.load(Ordering::SeqCst), 1);
            thread::spawn(move || drop(rx)).join().unwrap();
        }
        assert_eq!(drops.load(Ordering::SeqCst), 3);
    }
}

#[cfg(feature = "alloc")]
#[test]
fn heap_capacity_errors_and_threads() {
    use aiothreads_core::ring;
    assert_eq!(ring::try_with_capacity::<u8>(0).unwrap_err().capacity(), 0);
    assert!(ring::try_with_capacity::<u8>(usize::MAX / 2 + 1).is_err());
    assert!(ring::try_with_capacity::<u64>(usize::MAX / 4).is_err());
    assert!(ring::try_with_capacity::<()>(usize::MAX / 2).is_ok());
    let err = ring::try_with_capacity::<u8>(0).unwrap_err();
    assert_eq!(err.to_string(), "ring capacity must be at least 1");
    assert!(std::panic::catch_unwind(|| ring::with_capacity::<u8>(0)).is_err());

    let (mut tx, mut rx) = ring::with_capacity::<u64>(5);
    let t = thread::spawn(move || {
        for i in 0..ITEMS / 10 {
            tx.push_blocking(i, &ThreadParker, 4).unwrap();
        }
    });
    let received: Vec<u64> = block_on(rx.by_ref().collect());
    assert_eq!(received, (0..ITEMS / 10).collect::<Vec<_>>());
    t.join().unwrap();
}

#[test]
fn close_from_the_producer() {
    let mut ring = Ring::<u8, 4>::new();
    let (mut tx, mut rx) = ring.split();
    tx.push(1).unwrap();
    tx.push(2).unwrap();
    assert!(!rx.is_closed());
    tx.close();
    assert!(tx.is_closed() && rx.is_closed());
    assert_eq!(tx.push(3), Err(PushError::Closed(3)));
    assert_eq!(rx.pop(), Ok(1));
    assert_eq!(rx.pop(), Ok(2));
    assert_eq!(rx.pop(), Err(PopError::Closed));
    assert_eq!(block_on(rx.recv()), None);
}

#[test]
fn close_from_the_consumer() {
    let mut ring = Ring::<u8, 4>::new();
    let (mut tx, rx) = ring.split();
    tx.push(1).unwrap();
    drop(rx);
    assert!(tx.is_closed());
    assert_eq!(tx.push(2), Err(PushError::Closed(2)));
    assert_eq!(tx.try_send(2), Err(PushError::Closed(2)));
    assert_eq!(block_on(tx.send(3)), Err(Closed(3)));
    assert_eq!(tx.push_blocking(4, &ThreadParker, 0), Err(Closed(4)));
    assert_eq!(tx.push_slice(&[5]), 0);
    let waker = Waker::noop();
    assert_eq!(
        tx.poll_ready(&mut Context::from_waker(waker)),
        Poll::Ready(Err(Closed(())))
    );
}

#[test]
fn closing_consumer_wakes_blocked_producer() {
    let mut ring = Ring::<u8, 2>::new();
    let (mut tx, mut rx) = ring.split();
    thread::scope(|s| {
        let t = s.spawn(move || {
            let mut i = 0;
            loop {
                if let Err(Closed(v)) = tx.push_blocking(i, &ThreadParker, 0) {
                    return v;
                }
                i += 1;
            }
        });
        assert_eq!(rx.pop_blocking(&ThreadParker, 0), Some(0));
        rx.close();
        // Items pushed before the close are still delivered after it.
        while rx.pop().is_ok() {}
        assert!(t.join().unwrap() >= 1);
    });
}

#[test]
fn closing_producer_wakes_waiting_consumer() {
    let mut ring = Ring::<u8, 2>::new();
    let (mut tx, mut rx) = ring.split();
    thread::scope(|s| {
        s.spawn(move || {
            tx.push(7).unwrap();
            tx.close();
        });
        assert_eq!(block_on(rx.recv()), Some(7));
        assert_eq!(block_on(rx.recv()), None);
    });
}

#[test]
fn try_split_once() {
    static RING: Ring<u32, 64> = Ring::new();
    let (mut tx, mut rx) = RING.try_split().expect("first try_split succeeds");
    assert!(RING.try_split().is_none());
    tx.push(1).unwrap();
    assert_eq!(RING.len(), 1);
    thread::spawn(move || assert_eq!(rx.pop(), Ok(1)))
        .join()
        .unwrap();
    drop(tx);
    assert!(
        RING.try_split().is_none(),
        "never again, even after the halves are gone"
    );
    assert!(RING.is_empty());

    let mut ring = Ring::<u8, 2>::new();
    drop(ring.split());
    assert!(ring.try_split().is_none(), "split also takes the ring");
}

#[test]
fn reuse_after_split() {
    let mut ring = Ring::<String, 3>::new();
    {
        let (mut tx, mut rx) = ring.split();
        tx.push("a".into()).unwrap();
        tx.push("b".into()).unwrap();
        assert_eq!(rx.pop().as_deref(), Ok("a"));
    } // both halves dropped: closed, "b" stays
    let (mut tx, mut rx) = ring.split();
    assert!(!tx.is_closed() && !rx.is_closed());
    tx.push("c".into()).unwrap();
    assert_eq!(
        rx.pop().as_deref(),
        Ok("b"),
        "items from before are delivered"
    );
    assert_eq!(rx.pop().as_deref(), Ok("c"));
    assert_eq!(rx.pop(), Err(PopError::Empty));
}

/// `push_slice` and `pop_slice` use their cached copy of the other side's index only when it
/// already shows enough room or items; a stale copy must never cost an item that fits.
#[test]
fn slice_operations_see_room_and_items_made_since_their_last_load() {
    let mut ring = Ring::<u32, 8>::new();
    let (mut tx, mut rx) = ring.split();
    assert_eq!(tx.push_slice(&[0, 1, 2, 3, 4, 5]), 6);
    let mut out = [0; 2];
    assert_eq!(rx.pop_slice(&mut out), 2, "cached tail 6 shows enough");
    assert_eq!(out, [0, 1]);
    // The producer last loaded `head` when it was 0: its cache shows 2 free slots, the
    // ring has 4.
    assert_eq!(
        tx.push_slice(&[6, 7, 8, 9, 10]),
        4,
        "stale head is reloaded"
    );
    assert_eq!(tx.push_slice(&[11]), 0, "full");
    // The consumer's cached tail is 6 (4 items past head 2); 8 are there now.
    let mut out = [0; 8];
    assert_eq!(rx.pop_slice(&mut out), 8, "stale tail is reloaded");
    assert_eq!(out, [2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(rx.pop_slice(&mut out), 0, "empty");
    assert_eq!(tx.push_slice(&[1; 8]), 8, "all free again");
}

#[test]
fn batch_operations_wrap_around() {
    let mut ring = Ring::<u32, 5>::new();
    let (mut tx, mut rx) = ring.split();
    // Move the positions so that batches wrap around the end of the buffer.
    for i in 0..3 {
        tx.push(i).unwrap();
        assert_eq!(rx.pop(), Ok(i));
    }
    assert_eq!(tx.push_slice(&[10, 11, 12, 13, 14, 15]), 5);
    assert_eq!(tx.push_slice(&[16]), 0);
    assert_eq!(tx.slots(), 0);
    let mut out = [0; 3];
    assert_eq!(rx.pop_slice(&mut out), 3);
    assert_eq!(out, [10, 11, 12]);
    let mut it = 20..;
    assert_eq!(tx.push_iter(&mut it), 3);
    assert_eq!(it.next(), Some(23), "only as many items as fit are taken");
    let batch = rx.pop_batch::<4>();
    assert_eq!(batch.as_slice(), [13, 14, 20, 21]);
    assert_eq!(rx.drain().collect::<Vec<_>>(), [22]);
    assert_eq!(rx.pop_batch::<4>().len(), 0);
    let mut out = [0; 4];
    assert_eq!(rx.pop_slice(&mut out), 0);

    // Many batches across two threads keep FIFO order.
    let total = ITEMS as u32 / 4;
    thread::scope(|s| {
        s.spawn(move || {
            let mut next = 0;
            let mut chunk = [0u32; 4];
            while next < total {
                for (k, c) in chunk.iter_mut().enumerate() {
                    *c = next + k as u32;
                }
                let n = (total - next).min(4) as usize;
                next += tx.push_slice(&chunk[..n]) as u32;
                thread::yield_now();
            }
        });
        let mut expected = 0;
        while expected < total {
            for v in rx.drain() {
                assert_eq!(v, expected);
                expected += 1;
            }
            thread::yield_now();
        }
    });
}

#[test]
fn forgotten_drain_does_not_duplicate_items() {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut ring = Ring::<Counted, 4>::new();
    let (mut tx, mut rx) = ring.split();
    for _ in 0..3 {
        assert!(tx.push(Counted(drops.clone())).is_ok());
    }
    let mut drain = rx.drain();
    drop(drain.next());
    core::mem::forget(drain);
    core::mem::forget(rx);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    drop(tx);
    drop(ring);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[test]
fn push_iter_publishes_when_the_iterator_panics() {
    let mut ring = Ring::<u32, 4>::new();
    let (mut tx, mut rx) = ring.split();
    let result = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        let mut it = (0..).map(|i| if i == 2 { panic!("boom") } else { i });
        tx.push_iter(&mut it)
    }));
    assert!(result.is_err());
    assert_eq!(rx.drain().collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn push_iter_wakes_the_waiting_consumer_when_the_iterator_panics() {
    let mut ring = Ring::<u32, 8>::new();
    let (mut tx, mut rx) = ring.split();
    let (wakes, waker) = CountWake::pair();
    let mut cx = Context::from_waker(&waker);
    // The consumer task waits on the empty ring.
    assert!(rx.poll_recv(&mut cx).is_pending());
    // The iterator yields two items, then panics inside `push_iter`.
    let result = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        let mut it = (0..).map(|i| if i == 2 { panic!("boom") } else { i });
        tx.push_iter(&mut it)
    }));
    assert!(result.is_err());
    assert_eq!(
        wakes.0.load(Ordering::SeqCst),
        1,
        "the published items must wake the waiting consumer"
    );
    assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(0)));
    assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
    assert!(rx.poll_recv(&mut cx).is_pending());
}

#[test]
fn push_slice_wakes_a_waiting_consumer_and_the_no_notify_form_does_not() {
    let mut ring = Ring::<u32, 8>::new();
    let (mut tx, mut rx) = ring.split();
    let (wakes, waker) = CountWake::pair();
    let mut cx = Context::from_waker(&waker);
    assert!(rx.poll_recv(&mut cx).is_pending());
    assert_eq!(tx.push_slice_no_notify(&[1, 2]), 2);
    assert_eq!(
        wakes.0.load(Ordering::SeqCst),
        0,
        "no_notify woke the consumer"
    );
    tx.notify_consumer();
    assert_eq!(
        wakes.0.load(Ordering::SeqCst),
        1,
        "notify_consumer after the batch"
    );
    assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
    assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(2)));
    assert!(rx.poll_recv(&mut cx).is_pending());
    assert_eq!(tx.push_slice(&[3]), 1);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 2, "push_slice wakes");
    // A closed ring takes nothing.
    rx.close();
    assert_eq!(tx.push_slice_no_notify(&[4]), 0);
}

#[test]
fn peek_and_lengths() {
    let mut ring = Ring::<u32, 4>::new();
    let (mut tx, mut rx) = ring.split();
    assert_eq!(rx.peek(), Err(PopError::Empty));
    tx.push(5).unwrap();
    assert_eq!(rx.peek(), Ok(&5));
    assert_eq!(
        (tx.len(), tx.free_slots(), rx.len(), rx.free_slots()),
        (1, 3, 1, 3)
    );
    assert!(!tx.is_empty() && !tx.is_full() && !rx.is_empty());
    assert_eq!(rx.pop(), Ok(5));
    assert!(format!("{tx:?} {rx:?}").contains("capacity: 4"));
}

#[test]
fn stream_and_recv_with_a_thread_producer() {
    let mut ring = Ring::<u64, 4>::new();
    let (mut tx, mut rx) = ring.split();
    let n = ITEMS / 10;
    thread::scope(|s| {
        s.spawn(move || {
            for i in 0..n {
                tx.push_blocking(i, &ThreadParker, 8).unwrap();
            }
        });
        block_on(async {
            for i in 0..n / 2 {
                assert_eq!(rx.recv().await, Some(i));
            }
            let rest: Vec<u64> = rx.collect().await;
            assert_eq!(rest, (n / 2..n).collect::<Vec<_>>());
        });
    });
}

#[test]
fn async_send_waits_for_space() {
    let mut ring = Ring::<u32, 2>::new();
    let (mut tx, mut rx) = ring.split();
    thread::scope(|s| {
        s.spawn(move || {
            block_on(async {
                for i in 0..(ITEMS as u32 / 10) {
                    tx.send(i).await.unwrap();
                }
            })
        });
        let mut expected = 0;
        while let Some(v) = rx.pop_blocking(&ThreadParker, 0) {
            assert_eq!(v, expected);
            expected += 1;
        }
        assert_eq!(expected, ITEMS as u32 / 10);
    });
}

#[test]
fn producer_is_woken_lazily_at_the_checkpoint() {
    let mut ring = Ring::<u32, 4>::new();
    let (mut tx, mut rx) = ring.split();
    let (wakes, waker) = CountWake::pair();
    let mut cx = Context::from_waker(&waker);
    for i in 0..4 {
        tx.push(i).unwrap();
    }
    let mut send = pin!(tx.send(4));
    assert!(send.as_mut().poll(&mut cx).is_pending());
    assert_eq!(rx.pop(), Ok(0));
    assert_eq!(
        wakes.0.load(Ordering::SeqCst),
        0,
        "one pop is not a checkpoint (cap / 2 = 2)"
    );
    assert_eq!(rx.pop(), Ok(1));
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "the second pop is");
    assert_eq!(send.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
}

#[test]
fn consumer_is_woken_by_try_send_but_not_by_push() {
    let mut ring = Ring::<u32, 4>::new();
    let (mut tx, mut rx) = ring.split();
    let (wakes, waker) = CountWake::pair();
    let mut cx = Context::from_waker(&waker);
    assert!(rx.poll_recv(&mut cx).is_pending());
    tx.push(1).unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "raw push does not wake");
    tx.notify_consumer();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    tx.notify_consumer();
    assert_eq!(
        wakes.0.load(Ordering::SeqCst),
        1,
        "only a waiting consumer is woken"
    );
    assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
    assert!(rx.poll_recv(&mut cx).is_pending());
    tx.try_send(2).unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
    assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(2)));
    assert!(rx.poll_recv(&mut cx).is_pending());
    assert_eq!(tx.push_iter(&mut [3, 4].into_iter()), 2);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 3, "a batch wakes once");
}

#[test]
fn blocked_producer_is_woken_when_consumer_pops() {
    let mut ring = Ring::<u32, 2>::new();
    let (mut tx, mut rx) = ring.split();
    let done = AtomicUsize::new(0);
    thread::scope(|s| {
        s.spawn(|| {
            tx.push(0).unwrap();
            tx.push(1).unwrap();
            // Full: this parks until the consumer pops.
            tx.push_blocking(2, &ThreadParker, 0).unwrap();
            done.store(1, Ordering::SeqCst);
        });
        while rx.len() < 2 {
            thread::yield_now();
        }
        assert_eq!(rx.pop(), Ok(0));
        while done.load(Ordering::SeqCst) == 0 {
            thread::yield_now();
        }
        assert_eq!(rx.drain().collect::<Vec<_>>(), [1, 2]);
    });
}

#[test]
fn errors_format_and_hand_values_back() {
    struct NoDebug;
    let e = PushError::Full(NoDebug);
    assert_eq!(format!("{e:?} {e}"), "Full(..) ring is full");
    assert!(e.is_full());
    let _value: NoDebug = e.into_inner();
    let e = PushError::Closed(1);
    assert_eq!(
        (e.is_closed(), e.to_string()),
        (true, "ring is closed".to_string())
    );
    assert_eq!(PopError::Closed.to_string(), "ring is closed and empty");
    assert_eq!(Closed(NoDebug).to_string(), "ring is closed");
    let _: &dyn core::error::Error = &Closed(());
    let _: &dyn core::error::Error = &PopError::Empty;
}

/// The host keeps its 128-byte padding (two 64-byte lines, which x86_64 prefetches in pairs):
/// three padded blocks of indices and signals plus 64 bytes of slots (README, `make sizes`).
#[test]
#[cfg(target_arch = "x86_64")]
fn x86_64_ring_size_and_alignment() {
    assert_eq!(core::mem::align_of::<Ring<u32, 16>>(), 128);
    assert_eq!(core::mem::size_of::<Ring<u32, 16>>(), 512);
    assert_eq!(core::mem::size_of::<Ring<u8, 64>>(), 512);
}

/// `send_iter` moves a long run across two threads in order, one item published at a time:
/// a consumer that sleeps on the ring is woken for every run (no item is held back), and the
/// producer sees `Full` without losing the item it did not take.
#[test]
fn send_iter_across_two_threads() {
    use aiothreads_core::ring::SendIterEnd;
    let mut ring = Ring::<u64, 8>::new();
    let (mut tx, mut rx) = ring.split();
    thread::scope(|s| {
        s.spawn(move || {
            let mut items = 0..ITEMS;
            let mut sent = 0;
            loop {
                let (n, end) = tx.send_iter(&mut items, 5);
                sent += n as u64;
                match end {
                    SendIterEnd::Exhausted => break,
                    SendIterEnd::Full => {
                        block_on(core::future::poll_fn(|cx| tx.poll_ready(cx))).unwrap()
                    }
                    SendIterEnd::Limit => assert_eq!(n, 5),
                    SendIterEnd::Closed => panic!("closed with the consumer alive"),
                }
            }
            assert_eq!(sent, ITEMS);
        });
        let got = block_on(async {
            let mut next = 0;
            while let Some(v) = rx.next().await {
                assert_eq!(v, next, "in order, none lost");
                next += 1;
            }
            next
        });
        assert_eq!(got, ITEMS);
    });
}

/// An iterator that panics in `next` leaves the producer consistent: the items sent before
/// are there, and the producer goes on sending after the panic.
#[test]
fn send_iter_survives_a_panicking_iterator() {
    use aiothreads_core::ring::SendIterEnd;
    let mut ring = Ring::<u32, 8>::new();
    let (mut tx, mut rx) = ring.split();
    let mut items = (0..10).map(|i| if i == 3 { panic!("item 3") } else { i });
    let result = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        tx.send_iter(&mut items, usize::MAX)
    }));
    assert!(result.is_err());
    assert_eq!(tx.len(), 3);
    assert_eq!(tx.send_iter(&mut (10..20), 2), (2, SendIterEnd::Limit));
    assert_eq!(rx.drain().collect::<Vec<_>>(), [0, 1, 2, 10, 11]);
}

/// A closed ring stops the run before the next item is taken, also when the consumer
/// closes while items are waiting.
#[test]
fn send_iter_stops_at_close_without_taking_an_item() {
    use aiothreads_core::ring::SendIterEnd;
    let mut ring = Ring::<u32, 4>::new();
    let (mut tx, mut rx) = ring.split();
    let mut items = 0..10;
    assert_eq!(tx.send_iter(&mut items, 1), (1, SendIterEnd::Limit));
    rx.close();
    assert_eq!(
        tx.send_iter(&mut items, usize::MAX),
        (0, SendIterEnd::Closed)
    );
    assert_eq!(items.next(), Some(1), "no item taken after the close");
    assert_eq!(rx.pop(), Ok(0));
    assert_eq!(rx.pop(), Err(PopError::Closed));
}
