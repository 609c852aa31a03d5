//! The one spin policy of the crate: spin for a *time* budget, then let the caller park.
//!
//! Every place that busy-waits goes through [`spin_until`]: a pool worker that ran out of
//! work, and a thread blocked in [`block_on`](crate::block_on) or
//! [`sync_await`](crate::sync_await) waiting for its wake-up flag. Nothing spins inside a
//! `Future::poll`: a pending handle or stream registers its waker and returns — or, for an
//! awaited job that a spinning worker took at once, wakes its own task and returns, so that
//! the executor polls it again without sleeping, for a window in time learnt per thread
//! ([`yield_window`]).
//!
//! # Why a time budget
//! A `spin_loop()` (x86 `PAUSE`) costs about 1 ns on AMD Zen 3 and 12–16 ns on recent Intel
//! Xeons, so a budget counted in pauses differs tenfold between machines. The budget here is
//! measured with [`Instant`]; the clock is read once every [`ROUND`] pauses (a round is
//! 10–130 ns depending on the CPU, well under the budget), so the overshoot is one round.
//!
//! # How long
//! Spinning pays while it is cheaper than what it saves: putting the thread to sleep and
//! waking it again, measured at 14 µs (AMD EPYC) to 54 µs (Intel Xeon) for a park/unpark round
//! trip on the VMs this crate is developed on. So the budget is not a constant sized on one
//! CPU: [`spin_budget`] is the cost of one sleep/wake cycle *of this machine*, measured once
//! per process by an idle pool worker ([`calibrate`]: the median of a few
//! `thread::park_timeout` round trips of 1 µs, each a futex wait plus a timer wake-up and a
//! reschedule), clamped to 5–100 µs. That measure includes the kernel's timer slack (50 µs by
//! default on Linux), so it reads high: about 58 µs on the AMD EPYC VM, where two threads
//! wake each other in 14–17 µs. The budget is therefore about a timer-based sleep of this
//! machine, a small multiple of a futex wake-up. Until that measurement exists,
//! [`FALLBACK_SPIN`] (20 µs) is used. A spin that covers about one wake-up cycle costs at most that much CPU when
//! nothing comes, and saves the whole cycle when something does.
//!
//! The one knob is [`Builder::spin`](crate::Builder::spin) (pool workers); threads blocked in
//! `block_on`/`sync_await` use [`spin_budget`].
//!
//! On a machine loaded beyond its cores a spinner competes with the thread it waits for, so a
//! spin also yields its time slice every [`YIELD_EVERY`].

use core::hint;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use std::thread;
use std::time::Instant;

/// The spin budget until this machine's wake-up cost has been measured.
pub(crate) const FALLBACK_SPIN: Duration = Duration::from_micros(20);

/// The measured budget in nanoseconds (0: not measured yet).
static MEASURED_NS: AtomicU64 = AtomicU64::new(0);
/// Set by the one thread that measures.
static CALIBRATING: AtomicBool = AtomicBool::new(false);

/// The time a waiting thread spins before it parks: about one sleep/wake cycle of this
/// machine (see the module docs). One relaxed load.
pub(crate) fn spin_budget() -> Duration {
    match MEASURED_NS.load(Ordering::Relaxed) {
        0 => FALLBACK_SPIN,
        ns => Duration::from_nanos(ns),
    }
}

/// Measures this machine's sleep/wake cycle once per process; the first caller does it (about
/// 15 × 1–60 µs), later callers return at once (a load, no read-modify-write). Called by a
/// pool worker that is idle anyway.
pub(crate) fn calibrate() {
    // Relaxed: only elects one measuring thread; nothing is published through the flag.
    if cfg!(miri)
        || CALIBRATING.load(Ordering::Relaxed)
        || CALIBRATING.swap(true, Ordering::Relaxed)
    {
        return;
    }
    let mut samples = [Duration::ZERO; 15];
    for sample in &mut samples {
        let start = Instant::now();
        thread::park_timeout(Duration::from_micros(1));
        *sample = start.elapsed();
    }
    samples.sort_unstable();
    let median = samples[samples.len() / 2].clamp(MIN_SPIN, MAX_SPIN);
    let ns = u64::try_from(median.as_nanos()).unwrap_or(u64::MAX).max(1);
    // Relaxed: a plain number; a reader that sees the old value uses the fallback.
    MEASURED_NS.store(ns, Ordering::Relaxed);
}

/// Bounds of the measured budget.
const MIN_SPIN: Duration = Duration::from_micros(5);
const MAX_SPIN: Duration = Duration::from_micros(100);

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

/// Waits after a long one before an [`Adaptive`] spins again (a probe).
const PROBE_MIN: u32 = 16;
/// The most waits between two probes (each failed probe doubles the interval up to this).
const PROBE_MAX: u32 = 256;

/// A spin that learns whether it pays, for one waiter that waits again and again for the same
/// kind of event: a stream's producer waiting for its consumer to free half the ring.
///
/// It spins (up to the budget, with [`spin_until`]) while the last wait was no longer than the
/// budget. After a wait that outlasted it (a spin that ran out, or a park that took longer)
/// it parks at once, and spins again as a probe after [`PROBE_MIN`] waits, then after twice as
/// many each time a probe fails (up to [`PROBE_MAX`]), to notice when waits have become
/// short. So a waiter whose event comes within a wake-up cycle never pays one, and one whose
/// event always comes later (a slow consumer, or many streams sharing a few workers) wastes
/// at most one budget per [`PROBE_MAX`] waits once it has learnt that. Cost per wait: a
/// branch. A caller whose park is dear anyway (a futex) may also report the park's length
/// ([`parked`](Self::parked): two reads of the clock), so that a short park turns spinning
/// back on at once; a pool stream's producer, which parks often and cheaply, relies on the
/// probes alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Adaptive {
    /// The last wait was within the budget (initially assumed).
    short: bool,
    /// Waits without a spin since the last one, while `!short`.
    skipped: u32,
    /// Waits between two probes while `!short`.
    probe_every: u32,
}

impl Adaptive {
    pub(crate) const fn new() -> Self {
        Self {
            short: true,
            skipped: 0,
            probe_every: PROBE_MIN,
        }
    }

    /// Spins up to `budget` until `ready()` if waits have been short (or a probe is due);
    /// returns whether `ready()` came true. On `false` the caller parks, and reports the
    /// park's length with [`parked`](Self::parked).
    pub(crate) fn spin(&mut self, budget: Duration, ready: impl FnMut() -> bool) -> bool {
        if !self.start() {
            return false;
        }
        let won = spin_until(budget, ready);
        self.learn(won);
        won
    }

    /// Whether this wait should spin: yes while waits are short, else only when a probe is
    /// due (each call counts as one wait).
    fn start(&mut self) -> bool {
        if !self.short {
            self.skipped += 1;
            if self.skipped < self.probe_every {
                return false;
            }
        }
        self.skipped = 0;
        true
    }

    /// A spin that [`start`](Self::start) allowed ended: `won` if its event came within it.
    fn learn(&mut self, won: bool) {
        self.probe_every = match (won, self.short) {
            // A failed probe: wait twice as long before the next one.
            (false, false) => (self.probe_every * 2).min(PROBE_MAX),
            _ => PROBE_MIN,
        };
        self.short = won;
    }

    /// A park (after [`spin`](Self::spin) returned `false`) ended `waited` after it began.
    pub(crate) fn parked(&mut self, waited: Duration, budget: Duration) {
        if waited <= budget {
            self.short = true;
            self.probe_every = PROBE_MIN;
        }
    }
}

/// # Awaiting a job: yield while it is about to finish
///
/// A task that awaits a job of the pool returns `Pending` and its executor thread goes to
/// sleep; the job's completion wakes it again: one sleep/wake cycle of the executor's thread
/// per call (what [`spin_budget`] measures), which costs a job of a microsecond tenfold. When
/// a worker that was spinning takes the job at once, the handle instead *yields*: it wakes its
/// own task and returns `Pending`, so the executor runs its other tasks (or polls the handle
/// again at once) without sleeping, for up to [`yield_window`]; then it registers its waker
/// and sleeps as usual. Nothing busy-waits inside `poll`: each poll returns at once, and a
/// runtime with other work runs it between two polls.
///
/// Whether yielding pays is learnt per calling thread, as [`Adaptive`] learns for spins: after
/// a job that outlasted the window, this thread's handles sleep at once and only probe with a
/// yield now and then, so a thread that awaits 100 µs jobs never pays the window twice in a
/// row. Cost per call when it applies: two accesses to a thread-local, one clock read per
/// yield; no atomic operation beyond the slot's own.
///
/// The window: a quarter of [`spin_budget`] (1.25–25 µs). On the AMD EPYC VM of
/// PERFORMANCE.md [`calibrate`] measures about 58 µs (a 1 µs `park_timeout` there includes
/// the kernel's default 50 µs timer slack), so the window is about 15 µs: long enough for a
/// short job taken by a spinning worker, short enough that a miss costs a fraction of the
/// sleep it tried to avoid.
pub(crate) fn yield_window() -> Duration {
    spin_budget() / 4
}

std::thread_local! {
    /// This thread's experience of yielding while awaiting jobs (see [`yield_window`]).
    static AWAIT_YIELD: core::cell::Cell<Adaptive> = const { core::cell::Cell::new(Adaptive::new()) };
}

/// Whether a handle awaited on this thread should yield while its job runs (counts as one
/// wait for the adaptive policy). `false` while this thread's thread-locals are being
/// destroyed.
pub(crate) fn await_should_yield() -> bool {
    AWAIT_YIELD
        .try_with(|a| {
            let mut state = a.get();
            let start = state.start();
            a.set(state);
            start
        })
        .unwrap_or(false)
}

/// A handle that yielded saw its job finish within the window (`won`) or not.
pub(crate) fn await_yield_ended(won: bool) {
    let _ = AWAIT_YIELD.try_with(|a| {
        let mut state = a.get();
        state.learn(won);
        a.set(state);
    });
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
    fn calibration_gives_a_bounded_budget() {
        calibrate();
        let budget = spin_budget();
        assert!((MIN_SPIN..=MAX_SPIN).contains(&budget), "{budget:?}");
    }

    /// Calls `a.spin` `waits` times with a `ready` that would win, reporting long parks;
    /// returns how many of them spun.
    fn spins_among(a: &mut Adaptive, budget: Duration, waits: u32) -> u32 {
        let mut spun = 0;
        for _ in 0..waits {
            if a.spin(budget, || {
                spun += 1;
                false
            }) {
                unreachable!("ready() never returns true here");
            }
            a.parked(Duration::from_millis(1), budget);
        }
        spun
    }

    #[test]
    fn adaptive_spins_while_waits_are_short_and_probes_ever_less_after_long_ones() {
        let budget = Duration::from_micros(50);
        let mut a = Adaptive::new();
        // Short waits: every wait spins (and wins).
        for _ in 0..3 {
            assert!(a.spin(budget, || true));
        }
        // A spin that runs out: the next PROBE_MIN - 1 waits park at once...
        assert!(!a.spin(budget, || false));
        assert_eq!(spins_among(&mut a, budget, PROBE_MIN - 1), 0);
        // ... then a probe spins (and fails here, so the interval doubles).
        assert!(spins_among(&mut a, budget, 1) > 0, "the probe spins");
        assert_eq!(spins_among(&mut a, budget, 2 * PROBE_MIN - 1), 0);
        assert!(
            spins_among(&mut a, budget, 1) > 0,
            "the next probe, twice as late"
        );
        // Failed probes never come more rarely than one per PROBE_MAX waits.
        for _ in 0..10 {
            let _ = spins_among(&mut a, budget, PROBE_MAX);
        }
        assert!(spins_among(&mut a, budget, PROBE_MAX) > 0);
        // A probe that wins turns spinning back on for every wait.
        while !a.spin(budget, || true) {}
        assert!(a.spin(budget, || true));
        // So does a short park.
        assert!(!a.spin(budget, || false));
        a.parked(Duration::from_micros(10), budget);
        assert!(a.spin(budget, || true));
    }

    #[test]
    fn the_budget_is_time() {
        let start = Instant::now();
        assert!(!spin_until(Duration::from_millis(2), || false));
        assert!(start.elapsed() >= Duration::from_millis(2));
    }
}
