//! `aiothreads::block_on`: correctness, nesting, no allocation per call, and the documented
//! absence of a reactor.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use aiothreads::block_on;

/// Counts allocations made by the current thread (tests run in parallel threads).
struct Counting;

thread_local! { static ALLOCS: Cell<usize> = const { Cell::new(0) }; }

// SAFETY: forwards every call to the system allocator unchanged; the counter is a `const`
// thread-local without destructor, so touching it never allocates or re-enters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

fn bounded<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    let t = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(v) => {
            t.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!(),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test timed out"),
    }
}

/// Pending `n` times, waking itself each time (no allocation).
struct YieldN(u32);

impl Future for YieldN {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if self.0 == 0 {
            return Poll::Ready(7);
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Pending once, having woken a clone of its waker (a future that keeps its waker: the
/// wait claims the thread's parker).
struct CloneWake(bool);

impl Future for CloneWake {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if self.0 {
            return Poll::Ready(9);
        }
        self.0 = true;
        // The clone is the point: it makes the wait claim a real waker.
        #[allow(clippy::waker_clone_wake)]
        cx.waker().clone().wake();
        Poll::Pending
    }
}

#[test]
fn ready_and_self_waking_futures_allocate_nothing_after_the_first_call() {
    bounded(|| {
        assert_eq!(block_on(async { 1 }), 1); // first call on the thread: caches the waker
        let before = allocs();
        for i in 0..1000 {
            assert_eq!(block_on(async move { i }), i);
            assert_eq!(block_on(YieldN(3)), 7);
            assert_eq!(block_on(CloneWake(false)), 9);
        }
        assert_eq!(allocs() - before, 0, "allocations in 3000 block_on calls");
    });
}

#[test]
fn a_panic_after_the_waker_was_kept_gives_the_threads_parker_back() {
    bounded(|| {
        assert_eq!(block_on(CloneWake(false)), 9);
        let r = std::panic::catch_unwind(|| {
            block_on(std::future::poll_fn(|cx| -> Poll<()> {
                let _kept = cx.waker().clone();
                panic!("after keeping the waker")
            }))
        });
        assert!(r.is_err());
        // Had the panicking wait kept the thread's parker, this one would make its own.
        let before = allocs();
        assert_eq!(block_on(CloneWake(false)), 9);
        assert_eq!(allocs() - before, 0, "the thread's parker is free again");
    });
}

#[test]
fn a_waker_cloned_and_woken_on_a_scoped_thread_during_the_first_poll() {
    bounded(|| {
        for delay in [Duration::ZERO, Duration::from_millis(5)] {
            let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let mut waker_thread = None;
            let out = block_on(std::future::poll_fn(|cx| {
                if done.load(std::sync::atomic::Ordering::Acquire) {
                    return Poll::Ready("woken");
                }
                let waker = cx.waker();
                let done = done.clone();
                // The clone is made on another thread while this poll runs.
                waker_thread = Some(thread::scope(|s| {
                    s.spawn(|| {
                        let kept = waker.clone();
                        thread::spawn(move || {
                            thread::sleep(delay);
                            done.store(true, std::sync::atomic::Ordering::Release);
                            kept.wake();
                        })
                    })
                    .join()
                    .unwrap()
                }));
                Poll::Pending
            }));
            assert_eq!(out, "woken");
            waker_thread.take().unwrap().join().unwrap();
        }
        // And one woken by reference on a scoped thread, without a clone.
        let mut first = true;
        let out = block_on(std::future::poll_fn(|cx| {
            if !first {
                return Poll::Ready(5);
            }
            first = false;
            let waker = cx.waker();
            thread::scope(|s| {
                s.spawn(|| waker.wake_by_ref());
            });
            Poll::Pending
        }));
        assert_eq!(out, 5);
    });
}

#[test]
fn woken_from_another_thread_short_and_long() {
    bounded(|| {
        for delay in [
            Duration::ZERO,
            Duration::from_micros(5),
            Duration::from_millis(20),
        ] {
            let (tx, rx) = aiothreads::aiothreads_core::slot::oneshot();
            let t = thread::spawn(move || {
                thread::sleep(delay);
                tx.send(delay).unwrap();
            });
            assert_eq!(block_on(rx), Ok(delay));
            t.join().unwrap();
        }
    });
}

#[test]
fn drives_pool_handles_and_into_future() {
    bounded(|| {
        assert_eq!(block_on(aiothreads::spawn(|| 6 * 7)), 42);
        // `IntoFuture` values are accepted.
        struct Later;
        impl std::future::IntoFuture for Later {
            type Output = &'static str;
            type IntoFuture = std::future::Ready<&'static str>;
            fn into_future(self) -> Self::IntoFuture {
                std::future::ready("later")
            }
        }
        assert_eq!(block_on(Later), "later");
    });
}

#[test]
fn nested_block_on_does_not_lose_the_outer_wake_up() {
    bounded(|| {
        let (tx, rx) = aiothreads::aiothreads_core::slot::oneshot::<u32>();
        let out = block_on(async move {
            let outer = async { rx.await.unwrap() };
            let inner = async {
                // Let the outer receive register its waker first.
                YieldN(1).await;
                // The send lands while the inner block_on parks: the outer level's wake-up
                // must survive it.
                let t = thread::spawn(move || {
                    thread::sleep(Duration::from_millis(5));
                    tx.send(1).unwrap();
                });
                block_on(async {
                    let (tx2, rx2) = aiothreads::aiothreads_core::slot::oneshot::<u32>();
                    thread::spawn(move || {
                        thread::sleep(Duration::from_millis(20));
                        tx2.send(2).unwrap();
                    });
                    rx2.await.unwrap()
                });
                t.join().unwrap();
            };
            futures::join!(outer, inner).0
        });
        assert_eq!(out, 1);
    });
}

#[test]
fn panics_propagate_and_the_thread_stays_usable() {
    bounded(|| {
        let r = std::panic::catch_unwind(|| block_on(async { panic!("inside") }));
        assert!(r.is_err());
        assert_eq!(block_on(async { 3 }), 3);
    });
}

#[test]
fn no_reactor_tokio_timers_must_go_through_a_loop() {
    bounded(|| {
        // Documented: a tokio timer needs the runtime.
        let r = std::panic::catch_unwind(|| {
            block_on(async { tokio::time::sleep(Duration::from_millis(1)).await })
        });
        assert!(r.is_err());
        // Through a loop handle it works from a plain thread.
        let rt = tokio::runtime::Runtime::new().unwrap();
        let lp = aiothreads::Loop::from(rt.handle().clone());
        let start = Instant::now();
        lp.sync_await(async { tokio::time::sleep(Duration::from_millis(10)).await });
        assert!(start.elapsed() >= Duration::from_millis(10));
    });
}
