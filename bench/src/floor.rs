//! The wake-up floor, measured on the spot: one round trip between two threads, handing a
//! turn back and forth through an atomic, (a) parking the waiting thread and unparking it
//! (what any blocking hand-off costs when the other side sleeps: two futex wake-ups per round
//! trip) and (b) spinning on the atomic (what it costs when both sides stay on a CPU).
//! The pool and hop cases are read against these two numbers.

use std::hint::spin_loop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use crate::measure::{interleave, reps, size, time};
use crate::report::Report;

/// `n` round trips; the waiting side either parks (`park = true`) or spins.
fn ping_pong(n: u64, park: bool) -> f64 {
    // Odd: the responder's turn; even: the initiator's. Each side waits for its turn.
    let turn = AtomicU64::new(0);
    let wait_for = |value: u64| {
        while turn.load(Ordering::Acquire) != value {
            if park {
                thread::park();
            } else {
                spin_loop();
            }
        }
    };
    let main = thread::current();
    thread::scope(|s| {
        let t = time(|| {
            let responder = s.spawn(|| {
                for i in 0..n {
                    wait_for(2 * i + 1);
                    // Release: pairs with the initiator's Acquire load in `wait_for`.
                    turn.store(2 * i + 2, Ordering::Release);
                    if park {
                        main.unpark();
                    }
                }
            });
            for i in 0..n {
                turn.store(2 * i + 1, Ordering::Release);
                if park {
                    responder.thread().unpark();
                }
                wait_for(2 * i + 2);
            }
            responder.join().expect("responder");
        });
        t.wall_ns_per(n as usize)
    })
}

/// Runs the wake-up floor case (every run does: the two medians tag the run's CPU in
/// `report.machine`).
pub fn run(report: &mut Report) {
    let case = "wake-up floor: one round trip between two threads";
    let park_n = size(20_000, 5_000);
    let spin_n = size(200_000, 50_000);
    let (mut park, mut spin) = (|| ping_pong(park_n, true), || ping_pong(spin_n, false));
    let s = interleave(reps(7, 3), true, &mut [&mut park, &mut spin]);
    report.machine.park_floor_ns = report.add(
        case,
        "thread park/unpark ping-pong (reference)",
        "wall",
        "ns/round trip",
        &s[0],
    );
    report.machine.spin_floor_ns = report.add(
        case,
        "spin ping-pong (reference)",
        "wall",
        "ns/round trip",
        &s[1],
    );
    println!("   CPU: {}", report.machine.tag());
}
