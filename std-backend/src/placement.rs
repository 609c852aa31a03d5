//! Where a call's awaiter sleeps, and what the worker that wakes it does about it.
//!
//! A worker that delivers a job's outcome to an awaiter that went to sleep (its handle
//! registered a waker) compares the CPU the awaiter went to sleep on with its own:
//!
//! - **Same CPU** (*together*): the wake-up puts the awaiter on this CPU, where it runs at
//!   once or right after this worker. The worker claims the awaiter's next call (it counts
//!   itself in the pool's `spinning`, so that submission wakes nobody), yields the CPU once
//!   so the awaiter can run and submit, then looks at the queue and parks if it is empty. It
//!   does not spin: a spin here would only take the CPU from the thread it waits for.
//! - **Another CPU** (*apart*): a worker that keeps spinning after such a delivery is never
//!   woken, so the kernel never moves it, and the awaiter is woken on its own CPU for every
//!   call — on a VM that halts idle vCPUs (guest halt polling off) that is a hypervisor
//!   round trip each time, 30–40 µs on the Intel Xeon VM of PERFORMANCE.md. A worker that
//!   parks instead is woken by the awaiter's next submission, and the kernel may then place
//!   it on the awaiter's CPU; from there the pair tends to stay *together* (on the Xeon VM a
//!   delivery across CPUs came once in a few hundred calls and was followed by a same-CPU
//!   one at once). While it *explores*, a
//!   pool's workers park after such deliveries, and the pool keeps a second worker
//!   (`Shared::second_worker`: with one, the thread the next call wakes is always the one
//!   that last ran on the other CPU). [`EXPLORE`] such deliveries in a row without one on
//!   the same CPU end the exploration, and the pool spins after them again — which is right
//!   where the kernel never brings the two together (a stock Linux scheduler wakes a thread
//!   on its own idle CPU) — for [`FIRST_SPIN`] of them, doubling after each failed
//!   exploration up to [`MAX_SPIN`], before it explores again. A delivery on the same CPU
//!   restarts the exploration and the doubling.
//!
//! Measured on that Xeon VM (PERFORMANCE.md, Intel Xeon section, thirteenth session): a
//! 100 µs job awaited in a loop under a tokio current-thread runtime took 138–148 µs per call
//! with a worker that spins after each delivery (the awaiter resumed 31–39 µs after the job's
//! end) and 103–110 µs once together (1.1–1.3 µs), against 115–118 µs for `spawn_blocking`;
//! with two workers, parking brought the pair together within a few dozen calls.
//!
//! Cost: one `getcpu` (a vDSO call on x86_64 Linux: 2.8–3.0 ns on the Xeon VM) when a
//! handle registers its waker, which is already the path of a task going to sleep; one more
//! and a few relaxed loads and stores on the worker, only when it delivers to a sleeping
//! awaiter with nothing queued. Without the `placement` feature, off Linux and under Miri, no CPU is known and
//! workers wait after every delivery as the spin policy says (`pool.rs`).

use core::sync::atomic::{AtomicU32, Ordering};

/// Cross-CPU deliveries in a row that a pool parks after, in one exploration, without one
/// delivery on the same CPU before it gives up. On the Xeon VM the kernel put the pair
/// together within a few dozen parks with two workers (with one, after hundreds, once not
/// within 512).
pub(crate) const EXPLORE: u32 = 256;
/// Cross-CPU deliveries a pool spins after, following its first failed exploration.
pub(crate) const FIRST_SPIN: u32 = 1024;
/// The most cross-CPU deliveries a pool spins after between two explorations: a pool that
/// never gets together parks after at most `EXPLORE` of every `MAX_SPIN + EXPLORE`.
pub(crate) const MAX_SPIN: u32 = 1 << 20;

/// The CPU the calling thread runs on, if known (Linux with the `placement` feature; not
/// under Miri, which has no `getcpu`).
#[inline]
pub(crate) fn current_cpu() -> Option<u32> {
    #[cfg(all(
        feature = "placement",
        any(target_os = "linux", target_os = "android"),
        not(miri)
    ))]
    {
        // A CPU number fits in `u32` (Linux's limit is far below); `u32::MAX` means unknown.
        u32::try_from(rustix::thread::sched_getcpu())
            .ok()
            .filter(|&cpu| cpu != AwaiterCpu::UNKNOWN)
    }
    #[cfg(not(all(
        feature = "placement",
        any(target_os = "linux", target_os = "android"),
        not(miri)
    )))]
    {
        None
    }
}

/// The CPU a job's awaiter last went to sleep on (a field of each call's task).
pub(crate) struct AwaiterCpu(AtomicU32);

impl AwaiterCpu {
    const UNKNOWN: u32 = u32::MAX;

    /// Not known: the awaiter has not gone to sleep yet.
    pub(crate) const fn new() -> Self {
        Self(AtomicU32::new(Self::UNKNOWN))
    }

    /// The awaiter is about to sleep on this thread's CPU.
    #[inline]
    pub(crate) fn record(&self) {
        if let Some(cpu) = current_cpu() {
            // Relaxed: a hint for the worker's choice; a stale or missing value only costs
            // the choice made without it.
            self.0.store(cpu, Ordering::Relaxed);
        }
    }

    /// Where the awaiter went to sleep, if it did.
    #[inline]
    pub(crate) fn get(&self) -> Option<u32> {
        // Relaxed: as in `record`.
        let cpu = self.0.load(Ordering::Relaxed);
        (cpu != Self::UNKNOWN).then_some(cpu)
    }
}

/// Where a delivering worker is relative to its sleeping awaiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// The awaiter sleeps on the worker's CPU.
    Together,
    /// The awaiter sleeps on another CPU, and the pool explores: park after the delivery.
    ApartPark,
    /// The awaiter sleeps on another CPU; spin after the delivery as usual.
    ApartSpin,
}

/// A pool's exploration state (module docs). Relaxed loads and stores, not read-modify-writes:
/// two workers updating it at once may lose a count, which only shifts when the next
/// exploration starts or ends.
pub(crate) struct Explorer {
    /// Cross-CPU deliveries left in the current exploration (0: not exploring).
    explore_left: AtomicU32,
    /// Cross-CPU deliveries left to spin after before the next exploration.
    spin_left: AtomicU32,
    /// The spinning stretch after the next failed exploration.
    spin_next: AtomicU32,
}

impl Explorer {
    /// A new pool explores from its first delivery.
    pub(crate) const fn new() -> Self {
        Self {
            explore_left: AtomicU32::new(EXPLORE),
            spin_left: AtomicU32::new(0),
            spin_next: AtomicU32::new(FIRST_SPIN),
        }
    }

    /// Classifies a delivery by the worker's CPU `here` and the awaiter's `awaiter`, and
    /// updates the exploration.
    pub(crate) fn place(&self, here: u32, awaiter: u32) -> Place {
        if here == awaiter {
            self.explore_left.store(EXPLORE, Ordering::Relaxed);
            self.spin_next.store(FIRST_SPIN, Ordering::Relaxed);
            return Place::Together;
        }
        let left = self.explore_left.load(Ordering::Relaxed);
        if left > 0 {
            self.explore_left.store(left - 1, Ordering::Relaxed);
            if left == 1 {
                // The exploration failed: spin for a while, longer each time.
                let spin = self.spin_next.load(Ordering::Relaxed);
                self.spin_left.store(spin, Ordering::Relaxed);
                self.spin_next
                    .store(spin.saturating_mul(2).min(MAX_SPIN), Ordering::Relaxed);
            }
            return Place::ApartPark;
        }
        let spin = self.spin_left.load(Ordering::Relaxed);
        if spin > 1 {
            self.spin_left.store(spin - 1, Ordering::Relaxed);
        } else {
            self.explore_left.store(EXPLORE, Ordering::Relaxed);
        }
        Place::ApartSpin
    }

    /// Cross-CPU deliveries parked after so far in the current exploration (all of
    /// [`EXPLORE`] once it ended).
    pub(crate) fn parks_in_a_row(&self) -> u32 {
        EXPLORE - self.explore_left.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn together_restarts_the_exploration() {
        let e = Explorer::new();
        assert_eq!(e.place(0, 1), Place::ApartPark);
        assert_eq!(e.place(1, 1), Place::Together);
        for _ in 0..EXPLORE {
            assert_eq!(e.place(0, 1), Place::ApartPark);
        }
        assert_eq!(e.place(0, 1), Place::ApartSpin);
    }

    #[test]
    fn failed_explorations_back_off_doubling_until_the_cap() {
        let e = Explorer::new();
        let mut spin = FIRST_SPIN;
        for round in 0..4 {
            for _ in 0..EXPLORE {
                assert_eq!(e.place(2, 3), Place::ApartPark, "round {round}");
            }
            for _ in 0..spin {
                assert_eq!(e.place(2, 3), Place::ApartSpin, "round {round}");
            }
            spin = (spin * 2).min(MAX_SPIN);
        }
        // A delivery on the same CPU resets the stretch to the first one.
        assert_eq!(e.place(3, 3), Place::Together);
        for _ in 0..EXPLORE {
            assert_eq!(e.place(2, 3), Place::ApartPark);
        }
        for _ in 0..FIRST_SPIN {
            assert_eq!(e.place(2, 3), Place::ApartSpin);
        }
        assert_eq!(e.place(2, 3), Place::ApartPark);
    }

    #[test]
    fn the_awaiter_cpu_is_unknown_until_recorded() {
        let a = AwaiterCpu::new();
        assert_eq!(a.get(), None);
        a.record();
        // Known exactly where the platform tells (the thread may move in between, so the
        // numbers themselves are not compared).
        assert_eq!(a.get().is_some(), current_cpu().is_some());
    }

    #[cfg(all(
        feature = "placement",
        any(target_os = "linux", target_os = "android"),
        not(miri)
    ))]
    #[test]
    fn linux_knows_the_cpu() {
        let cpu = current_cpu().expect("getcpu works on Linux");
        let n = std::thread::available_parallelism().map_or(1, usize::from);
        // CPU numbers can exceed the count under an affinity mask, but not absurdly.
        assert!((cpu as usize) < n.max(1024), "cpu {cpu}");
    }
}
