//! A `static` ring between an "interrupt handler" and an async task, with no allocator in the
//! data path and no executor crate: the shape of firmware code, run on a desktop.
//!
//! - `RING` is a `static` (`Ring::new` is `const`), split once with `try_split`.
//! - A std thread stands in for the interrupt handler: it pushes sensor readings with
//!   `try_send` and, when the ring is full, waits with `push_blocking` and a tiny parker.
//! - The main thread runs a hand-written executor (poll one future; park until its waker,
//!   a `std::task::Wake` impl, unparks us) over a task that consumes with `recv().await`.
//!
//! Run: `cargo run -p aiothreads-examples --bin static_ring`

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use aiothreads_core::park::Park;
use aiothreads_core::ring::{PushError, Ring};

/// The ring, in static memory.
static RING: Ring<u32, 16> = Ring::new();

/// Readings the "interrupt handler" produces.
const READINGS: u32 = 100;

/// Wakes a thread by unparking it.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// The producer's parker: `std::thread::park`, woken through [`Unpark`]. On a
/// microcontroller this would be `WFI` plus an event flag.
struct ThreadParker;

impl Park for ThreadParker {
    fn waker(&self) -> Waker {
        Waker::from(Arc::new(Unpark(thread::current())))
    }
    fn park(&self) {
        thread::park();
    }
}

/// The whole executor: poll `future`, park the thread while it is pending.
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            // A wake between the poll and the park leaves the unpark token: no lost wake-up.
            Poll::Pending => thread::park(),
        }
    }
}

fn main() {
    let (mut tx, mut rx) = RING.try_split().expect("the ring is split once");
    assert!(RING.try_split().is_none(), "and only once");

    let handler = thread::spawn(move || {
        let mut waited = 0;
        for i in 0..READINGS {
            let reading = 2_000 + (i * 37) % 101;
            match tx.try_send(reading) {
                Ok(()) => {}
                Err(PushError::Full(reading)) => {
                    waited += 1;
                    tx.push_blocking(reading, &ThreadParker, 64)
                        .expect("the task is alive");
                }
                Err(PushError::Closed(_)) => return waited,
            }
        }
        waited // dropping `tx` closes the ring: the task's `recv` then returns `None`
    });

    let (count, sum) = block_on(async {
        let (mut count, mut sum) = (0u32, 0u64);
        while let Some(reading) = rx.recv().await {
            println!("reading #{count:3}: {reading}");
            count += 1;
            sum += u64::from(reading);
        }
        (count, sum)
    });

    let waited = handler.join().expect("the handler thread does not panic");
    println!(
        "received {count} readings (mean {}), the handler waited for space {waited} times",
        sum / u64::from(count.max(1))
    );
    assert_eq!(count, READINGS);
}
