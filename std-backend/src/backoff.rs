//! The one spin policy of the crate: spin for a *time* budget, then let the caller park.
//!
//! Every place that busy-waits goes through [`spin_until`]: a pool worker that ran out of
//! work, and a thread blocked in [`block_on`](crate::block_on) or
//! [`sync_await`](crate::sync_await) waiting for its wake-up flag. Nothing spins inside a
//! `Future::poll`: a pending handle or stream registers its waker and returns.
//!
//! # Why a time budget
//! A `spin_loop()` (x86 `PAUSE`) costs about 1 ns on AMD Zen 3 and 12–16 ns on recent Intel
//! Xeons, so a budget counted in pauses differs tenfold between machines. The budget here is
//! measured with [`Instant`]; the clock is read once every [`ROUND`] pauses (a round is
//! 10–130 ns depending on the CPU, well under the budget), so the overshoot is one round.
//!
//! # Why 20 µs
//! Spinning pays while it is cheaper than what it saves: a futex wake-up of a parked thread,
//! measured at 14 µs (AMD EPYC) to 54 µs (Intel Xeon) for a park/unpark round trip on the VMs
//! this crate is developed on. A spin of [`DEFAULT_SPIN`] covers a wake-up that comes within
//! about one such round trip and costs at most that much CPU when nothing comes. It is the
//! default of the one knob, [`Builder::spin`](crate::Builder::spin), for pool workers; threads
//! blocked in `block_on`/`sync_await` use the same default.
//!
//! On a machine loaded beyond its cores a spinner competes with the thread it waits for, so a
//! spin also yields its time slice every [`YIELD_EVERY`].

use core::hint;
use core::time::Duration;
use std::thread;
use std::time::Instant;

/// The default spin budget: the time a waiting thread spins before it parks.
pub(crate) const DEFAULT_SPIN: Duration = Duration::from_micros(20);

/// Pauses between two reads of the clock.
const ROUND: u32 = 8;

/// How often a long spin yields its time slice.
const YIELD_EVERY: Duration = Duration::from_micros(5);

/// Spins until `ready()` returns `true` (then returns `true`) or `budget` has passed (then
/// returns `false`, and the caller parks). `ready` is called about every [`ROUND`] pauses and
/// should be a cheap load.
pub(crate) fn spin_until(budget: Duration, mut ready: impl FnMut() -> bool) -> bool {
    if ready() {
        return true;
    }
    if budget.is_zero() {
        return false;
    }
    let start = Instant::now();
    let mut next_yield = YIELD_EVERY;
    loop {
        for _ in 0..ROUND {
            hint::spin_loop();
        }
        if ready() {
            return true;
        }
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return false;
        }
        if elapsed >= next_yield {
            next_yield = elapsed + YIELD_EVERY;
            thread::yield_now();
        }
    }
}

#[cfg(all(test, not(aiothreads_loom)))]
mod tests {
    use super::*;

    #[test]
    fn returns_at_once_when_ready() {
        assert!(spin_until(Duration::from_secs(3600), || true));
    }

    #[test]
    fn zero_budget_does_not_spin() {
        let mut calls = 0;
        assert!(!spin_until(Duration::ZERO, || {
            calls += 1;
            false
        }));
        assert_eq!(calls, 1);
    }

    #[test]
    fn the_budget_is_time() {
        let start = Instant::now();
        assert!(!spin_until(Duration::from_millis(2), || false));
        assert!(start.elapsed() >= Duration::from_millis(2));
    }
}
