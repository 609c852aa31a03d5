//! An unbounded stream of a million items whose consumer starts only after the producer has
//! run its iterator out: nothing blocks, every item arrives in order, and the segments' memory
//! is given back. A test binary of its own: its allocation counter sees the whole process, so
//! no other test may run beside it.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiothreads::IterCall;
use common::{on_all_executors, wait_until, Watched};
use futures::StreamExt;

/// Counts the bytes currently allocated by the whole test binary, to see the queue's segments
/// come and go.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to `System` unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

#[test]
fn a_million_items_with_a_consumer_that_starts_late() {
    const N: u64 = 1_000_000;
    on_all_executors(|_exec| async move {
        let before = live_bytes();
        let exhausted = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicBool::new(false));
        let (e, d) = (exhausted.clone(), dropped.clone());
        let mut stream = IterCall::new(move || Watched {
            next: 0,
            n: N,
            exhausted: e,
            dropped: d,
        })
        .unbounded();
        // The first poll starts the producer; it may already return the first item.
        let mut expected = 0u64;
        if let std::task::Poll::Ready(first) = futures::poll!(stream.next()) {
            assert_eq!(first, Some(0));
            expected = 1;
        }
        // The consumer does nothing until the producer has run its iterator out: with a
        // bound it would be blocked at 1 024 items.
        wait_until(
            "the producer to run out (unbounded)",
            Duration::from_secs(50),
            || exhausted.load(Ordering::SeqCst),
        );
        let queued = live_bytes() - before;
        assert!(
            queued >= (N as isize - expected as isize) * 8,
            "a million queued u64 take at least 8 MB, live bytes grew by {queued}"
        );
        while let Some(item) = stream.next().await {
            assert_eq!(item, expected, "items out of order");
            expected += 1;
        }
        assert_eq!(expected, N, "items lost");
        assert!(
            dropped.load(Ordering::SeqCst),
            "the iterator was not dropped"
        );
        drop(stream);
        // The segments went back to the allocator as the consumer read them (at most a spare
        // and the last segment stay until the queue is dropped, now).
        let left = live_bytes() - before;
        assert!(
            left < 256 * 1024,
            "{left} bytes still allocated after the stream is gone (queued: {queued})"
        );
    });
}
