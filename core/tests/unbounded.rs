//! Behaviour of the unbounded SPSC queue: order across threads, closing from either side,
//! drops, segment recycling (no allocation in a steady stream), wake-ups, the async and
//! blocking forms. Runs under Miri with scaled-down sizes.
#![cfg(feature = "alloc")]

use core::cell::Cell;
use core::future::Future;
use core::pin::pin;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::thread;

use aiothreads_core::unbounded::{self, Closed, PopError, SEGMENT_LEN};
use futures::executor::block_on;
use futures::{Stream, StreamExt};

const ITEMS: usize = if cfg!(miri) { 200 } else { 1_000_000 };

/// Counts the allocations made by each thread, so that a test can assert that a stretch of
/// its own code allocates nothing (other tests run on other threads).
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to `System` unchanged; the counter is a const-initialised
// thread-local `Cell` without destructor, which never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `alloc` is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every `alloc` goes there).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations_here() -> usize {
    ALLOCATIONS.with(Cell::get)
}

mod common;
use common::{CountWake, Counted, ThreadParker};

/// The producer pushes everything before the consumer even starts: it never blocks and never
/// fails, and the consumer then gets every item in order, then the end.
#[test]
fn late_consumer_gets_everything_in_order() {
    let (mut tx, mut rx) = unbounded::channel::<usize>();
    let tx = thread::spawn(move || {
        for i in 0..ITEMS {
            tx.push(i).expect("open");
        }
        assert_eq!(tx.len(), ITEMS);
        tx
    })
    .join()
    .unwrap();
    // Nothing was popped, so nothing was recycled: one segment per SEGMENT_LEN items.
    assert_eq!(tx.segments_allocated(), ITEMS.div_ceil(SEGMENT_LEN));
    drop(tx);
    let consumer = thread::spawn(move || {
        assert_eq!(rx.len(), ITEMS);
        for i in 0..ITEMS {
            assert_eq!(rx.pop(), Ok(i));
        }
        assert_eq!(rx.pop(), Err(PopError::Closed));
        assert_eq!(rx.pop(), Err(PopError::Closed));
    });
    consumer.join().unwrap();
}

/// Producer and consumer run at the same time; the consumer blocks with `pop_blocking`
/// whenever it catches up, and is woken by the pushes and finally by the drop.
#[test]
fn concurrent_blocking_consumer() {
    let (mut tx, mut rx) = unbounded::channel::<usize>();
    let producer = thread::spawn(move || {
        for i in 0..ITEMS {
            tx.push(i).expect("open");
        }
    });
    let mut expected = 0;
    while let Some(v) = rx.pop_blocking(&ThreadParker, 16) {
        assert_eq!(v, expected);
        expected += 1;
    }
    assert_eq!(expected, ITEMS);
    producer.join().unwrap();
}

/// Same with the consumer as a `Stream` on an executor, and a producer that pushes in
/// batches with `push_no_notify` + one `notify_consumer`.
#[test]
fn concurrent_stream_consumer_with_batches() {
    let (mut tx, rx) = unbounded::channel::<usize>();
    let producer = thread::spawn(move || {
        for chunk in (0..ITEMS).collect::<Vec<_>>().chunks(100) {
            for &i in chunk {
                tx.push_no_notify(i).expect("open");
            }
            tx.notify_consumer();
        }
    });
    let all: Vec<usize> = block_on(rx.collect());
    assert_eq!(all.len(), ITEMS);
    assert!(all.iter().enumerate().all(|(i, &v)| i == v), "in order");
    producer.join().unwrap();
}

/// A steady stream whose consumer stays less than a segment behind allocates two segments in
/// all (the first by `channel`, the second at the first boundary) and then only recycles:
/// here producer and consumer run in lockstep batches of 3/4 of a segment on two threads,
/// the acknowledgements going back through a second queue (with `pop_blocking`).
#[test]
fn steady_stream_recycles_segments() {
    let batch = SEGMENT_LEN * 3 / 4;
    let rounds = if cfg!(miri) { 8 } else { 20_000 };
    let (mut tx, mut rx) = unbounded::channel::<usize>();
    let (mut ack_tx, mut ack_rx) = unbounded::channel::<()>();
    let consumer = thread::spawn(move || {
        let mut expected = 0;
        while let Some(v) = rx.pop_blocking(&ThreadParker, 0) {
            assert_eq!(v, expected);
            expected += 1;
            if expected % batch == 0 {
                ack_tx.push(()).expect("producer waits for acks");
            }
        }
        expected
    });
    let mut next = 0;
    for _ in 0..rounds {
        for _ in 0..batch {
            tx.push(next).unwrap();
            next += 1;
        }
        assert_eq!(ack_rx.pop_blocking(&ThreadParker, 0), Some(()));
    }
    assert!(
        rounds * batch > 4 * SEGMENT_LEN,
        "the stream crosses many segments"
    );
    assert_eq!(tx.segments_allocated(), 2);
    // The acknowledgements (never more than one queued) also cycle through two segments: at
    // a boundary the consumer still holds the drained segment until the next item arrives.
    let ack_segments = if rounds > SEGMENT_LEN { 2 } else { 1 };
    assert_eq!(ack_rx.segments_allocated(), ack_segments);
    drop(tx);
    assert_eq!(consumer.join().unwrap(), rounds * batch);
}

/// After warm-up, pushes and pops with a bounded lag allocate nothing at all (measured with a
/// counting global allocator on this thread), also after a burst left a spare behind.
#[test]
fn no_allocation_after_warm_up() {
    let (mut tx, mut rx) = unbounded::channel::<u64>();
    let lag = SEGMENT_LEN as u64 - 1;
    let steps = if cfg!(miri) { 300 } else { 100_000 };
    let (mut pushed, mut popped) = (0u64, 0u64);
    // Warm-up: keep `lag` items queued and cross two segment boundaries.
    while pushed < 3 * SEGMENT_LEN as u64 {
        tx.push(pushed).unwrap();
        pushed += 1;
        if pushed - popped > lag {
            assert_eq!(rx.pop(), Ok(popped));
            popped += 1;
        }
    }
    assert_eq!(tx.segments_allocated(), 2);
    let before = allocations_here();
    for _ in 0..steps {
        tx.push(pushed).unwrap();
        pushed += 1;
        assert_eq!(rx.pop(), Ok(popped));
        popped += 1;
    }
    assert_eq!(allocations_here(), before, "the steady stream allocated");
    assert_eq!(tx.segments_allocated(), 2);

    // A burst of ten segments allocates; once drained, one spare is kept and the next steady
    // stretch allocates nothing again.
    for _ in 0..10 * SEGMENT_LEN {
        tx.push(pushed).unwrap();
        pushed += 1;
    }
    let after_burst = tx.segments_allocated();
    assert!(after_burst > 2, "a burst needs new segments");
    while popped < pushed {
        assert_eq!(rx.pop(), Ok(popped));
        popped += 1;
    }
    let before = allocations_here();
    for _ in 0..steps {
        tx.push(pushed).unwrap();
        pushed += 1;
        assert_eq!(rx.pop(), Ok(popped));
        popped += 1;
    }
    assert_eq!(
        allocations_here(),
        before,
        "the stream after the burst allocated"
    );
    assert_eq!(tx.segments_allocated(), after_burst);
}

/// Items still queued when the last half goes are dropped exactly once, whichever half goes
/// last, with the consumer at various places (inside a segment, exactly at a boundary).
#[test]
fn items_dropped_exactly_once() {
    let total = 3 * SEGMENT_LEN + 5;
    for popped in [0, 1, SEGMENT_LEN - 1, SEGMENT_LEN, SEGMENT_LEN + 1, total] {
        for consumer_first in [false, true] {
            let drops = Arc::new(AtomicUsize::new(0));
            let (mut tx, mut rx) = unbounded::channel::<Counted>();
            for _ in 0..total {
                tx.push(Counted(drops.clone())).unwrap();
            }
            for _ in 0..popped {
                drop(rx.pop().unwrap());
            }
            assert_eq!(drops.load(Ordering::SeqCst), popped);
            if consumer_first {
                drop(rx);
                // A push on a closed queue hands the value back.
                let Err(Closed(back)) = tx.push(Counted(drops.clone())) else {
                    panic!("push after the consumer left must fail");
                };
                drop(back);
                assert_eq!(drops.load(Ordering::SeqCst), popped + 1);
                drop(tx);
                assert_eq!(drops.load(Ordering::SeqCst), total + 1);
            } else {
                drop(tx);
                assert_eq!(
                    drops.load(Ordering::SeqCst),
                    popped,
                    "the consumer still holds them"
                );
                drop(rx);
                assert_eq!(drops.load(Ordering::SeqCst), total);
            }
        }
    }
}

/// Zero-sized items go through segments like any other.
#[test]
fn zero_sized_items() {
    let (mut tx, mut rx) = unbounded::channel::<()>();
    for _ in 0..2 * SEGMENT_LEN + 1 {
        tx.push(()).unwrap();
    }
    assert_eq!(rx.len(), 2 * SEGMENT_LEN + 1);
    for _ in 0..2 * SEGMENT_LEN + 1 {
        assert_eq!(rx.pop(), Ok(()));
    }
    assert_eq!(rx.pop(), Err(PopError::Empty));
}

#[test]
fn producer_close_drains_then_ends() {
    let (mut tx, mut rx) = unbounded::channel::<usize>();
    for i in 0..SEGMENT_LEN + 2 {
        tx.push(i).unwrap();
    }
    assert!(!tx.is_closed() && !rx.is_closed());
    tx.close();
    tx.close(); // idempotent
    assert!(tx.is_closed() && rx.is_closed());
    assert_eq!(tx.push(99), Err(Closed(99)));
    assert_eq!(tx.push_no_notify(98), Err(Closed(98)));
    for i in 0..SEGMENT_LEN + 2 {
        assert_eq!(rx.pop(), Ok(i));
    }
    assert_eq!(rx.pop(), Err(PopError::Closed));
    assert_eq!(rx.peek(), Err(PopError::Closed));
    drop(tx);
    assert_eq!(block_on(rx.recv()), None);
}

#[test]
fn consumer_close_refuses_later_pushes() {
    let (mut tx, mut rx) = unbounded::channel::<String>();
    tx.push("kept".to_string()).unwrap();
    rx.close();
    assert!(tx.is_closed() && rx.is_closed());
    assert_eq!(tx.push("back".to_string()), Err(Closed("back".to_string())));
    assert_eq!(rx.pop().as_deref(), Ok("kept"));
    // The producer is still there but the queue is closed: the end, not `Empty`.
    assert_eq!(rx.pop(), Err(PopError::Closed));
    drop(rx);
    assert_eq!(tx.push("x".to_string()), Err(Closed("x".to_string())));
}

/// `peek` at a segment boundary enters the next segment; `len` on both sides.
#[test]
fn peek_and_len_across_a_boundary() {
    let (mut tx, mut rx) = unbounded::channel::<usize>();
    for i in 0..SEGMENT_LEN {
        tx.push(i).unwrap();
    }
    for i in 0..SEGMENT_LEN {
        assert_eq!(rx.pop(), Ok(i));
    }
    assert_eq!(rx.peek(), Err(PopError::Empty));
    assert!(rx.is_empty() && tx.is_empty());
    tx.push(SEGMENT_LEN).unwrap();
    tx.push(SEGMENT_LEN + 1).unwrap();
    assert_eq!((tx.len(), rx.len()), (2, 2));
    assert_eq!(rx.peek(), Ok(&SEGMENT_LEN));
    assert_eq!(rx.peek(), Ok(&SEGMENT_LEN));
    assert_eq!(rx.pop(), Ok(SEGMENT_LEN));
    assert_eq!((tx.len(), rx.len()), (1, 1));
    assert_eq!(rx.size_hint(), (1, None));
    assert!(format!("{tx:?} {rx:?}").contains("len: 1"));
}

/// A waiting consumer is woken by `push` and by `notify_consumer` after `push_no_notify`,
/// not by `push_no_notify` alone; a push to a consumer that does not wait wakes nobody.
#[test]
fn push_wakes_a_waiting_consumer_only() {
    let (count, waker) = CountWake::pair();
    let mut cx = Context::from_waker(&waker);
    let (mut tx, mut rx) = unbounded::channel::<u32>();

    assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
    tx.push_no_notify(1).unwrap();
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    tx.notify_consumer();
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    tx.notify_consumer(); // the flag was consumed: no second wake
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));

    assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
    tx.push(2).unwrap();
    assert_eq!(count.0.load(Ordering::SeqCst), 2);
    tx.push(3).unwrap(); // not waiting any more
    assert_eq!(count.0.load(Ordering::SeqCst), 2);
    assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(2)));
    assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(3)));

    assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
    drop(tx);
    assert_eq!(count.0.load(Ordering::SeqCst), 3, "the close wakes");
    assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
}

/// A `recv` future pending on another thread is woken by the producer's push.
#[test]
fn recv_future_woken_across_threads() {
    let (mut tx, mut rx) = unbounded::channel::<u32>();
    let (count, waker) = CountWake::pair();
    let mut cx = Context::from_waker(&waker);
    {
        let mut fut = pin!(rx.recv());
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Pending);
        thread::spawn(move || tx.push(5).unwrap()).join().unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(Some(5)));
    }
    // The producer was dropped in its thread: closed.
    assert_eq!(block_on(rx.recv()), None);
}
