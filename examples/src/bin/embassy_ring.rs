//! The core's `static` ring drained by `embassy-executor`, the executor that embedded Rust
//! firmware actually runs, here on its std platform (`platform-std` + `executor-thread`: the
//! same task, spawner and waker machinery as on a Cortex-M, with a condition variable in place
//! of `WFE`). The sibling `static_ring.rs` does the same with a hand-written executor.
//!
//! - `RING` is a `static` `Ring<u32, 16>`, split once with `try_split`; both halves are
//!   `'static`, as embassy tasks require.
//! - A std thread stands in for a timer interrupt: every "tick" it samples a sensor and calls
//!   only interrupt-safe operations (`try_send`; see the core's "Use from an interrupt
//!   handler"). When the ring is full it keeps the sample for the next tick instead of
//!   waiting, as an interrupt handler must.
//! - An embassy task consumes: the first readings through the consumer's `Stream`
//!   (`StreamExt::next`), the rest with `recv().await`; the producer's drop closes the ring,
//!   which ends the task.
//!
//! `Executor::run` never returns (firmware has nowhere to return to); the example uses
//! `run_until` with a flag the task raises when it is done, so the program exits by itself.
//!
//! Run: `cargo run -p aiothreads-examples --bin embassy_ring`

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use aiothreads_core::ring::{Consumer, Producer, PushError, Ring};
use embassy_executor::{Executor, Spawner};
use futures::StreamExt;

/// The ring, in static memory.
static RING: Ring<u32, 16> = Ring::new();

/// Raised by the task when the ring is closed and drained; ends `run_until`.
static DONE: AtomicBool = AtomicBool::new(false);

/// Samples the "interrupt" produces.
const READINGS: u32 = 100;

/// Readings taken through the `Stream`; the rest through `recv().await`.
const VIA_STREAM: u32 = 40;

/// What the task received, checked by `main` after the executor stopped.
static RECEIVED: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// The sample of tick `i` (a fake ADC reading).
fn sample(i: u32) -> u32 {
    2_000 + (i * 37) % 101
}

/// The "timer interrupt": one call per tick, wait-free, never blocks.
struct TimerIsr {
    tx: Producer<'static, u32>,
    /// Next sample to take.
    next: u32,
    /// A sample that found the ring full, retried at the next tick.
    held: Option<u32>,
    /// Ticks at which the ring was full.
    full_ticks: u32,
}

impl TimerIsr {
    /// The handler body. Returns `false` once every sample is in the ring.
    fn on_tick(&mut self) -> bool {
        let value = match self.held.take() {
            Some(value) => value,
            None if self.next < READINGS => {
                self.next += 1;
                sample(self.next - 1)
            }
            None => return false,
        };
        match self.tx.try_send(value) {
            Ok(()) => {}
            Err(PushError::Full(value)) => {
                self.full_ticks += 1;
                self.held = Some(value);
            }
            Err(PushError::Closed(_)) => return false,
        }
        true
    }
}

#[embassy_executor::task]
async fn consume(mut rx: Consumer<'static, u32>) {
    let mut received = Vec::new();
    // The consumer as a `Stream`.
    while received.len() < VIA_STREAM as usize {
        match rx.next().await {
            Some(reading) => received.push(reading),
            None => break,
        }
    }
    println!("embassy task: {} readings via the Stream", received.len());
    // The same consumer with `recv().await`, until the producer's drop closes the ring.
    while let Some(reading) = rx.recv().await {
        received.push(reading);
    }
    println!(
        "embassy task: {} readings in all, the ring is closed: {:?} .. {:?}",
        received.len(),
        &received[..5],
        &received[received.len() - 5..],
    );
    *RECEIVED.lock().expect("not poisoned") = received;
    // `run_until` checks the flag after each poll of the executor: this poll is the last.
    DONE.store(true, Ordering::Release);
}

fn main() {
    let (tx, rx) = RING.try_split().expect("the ring is split once");

    let isr = thread::spawn(move || {
        let mut isr = TimerIsr {
            tx,
            next: 0,
            held: None,
            full_ticks: 0,
        };
        // Ticks every 20 µs; the burst at the start fills the ring before the task runs.
        for _ in 0..24 {
            isr.on_tick();
        }
        while isr.on_tick() {
            thread::sleep(Duration::from_micros(20));
        }
        isr.full_ticks // dropping `isr.tx` closes the ring: the task's `recv` returns `None`
    });

    // The executor must be `'static` (embassy keeps references to it in its tasks' wakers).
    let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
    executor.run_until(
        |spawner: Spawner| spawner.spawn(consume(rx).expect("one consume task")),
        || DONE.load(Ordering::Acquire),
    );

    let full_ticks = isr.join().expect("the handler thread does not panic");
    let received = RECEIVED.lock().expect("not poisoned");
    let expected: Vec<u32> = (0..READINGS).map(sample).collect();
    assert_eq!(*received, expected, "every sample, in order, exactly once");
    println!(
        "received {} readings on embassy-executor; the ring was full at {full_ticks} ticks",
        received.len()
    );
}
