//! The one timing helper of the bench ([`time`]), process CPU time, and [`interleave`], which
//! runs contenders in turn (A B C A B C …) so that load from other processes hits them alike.

use std::time::Instant;

/// Wall-clock and process CPU time (all threads, user + system) of one timed run, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub wall: f64,
    pub cpu: f64,
}

impl Timing {
    /// Wall-clock nanoseconds per operation.
    pub fn wall_ns_per(&self, ops: usize) -> f64 {
        self.wall * 1e9 / ops as f64
    }
    /// Process CPU nanoseconds per operation (every thread of the process counts).
    pub fn cpu_ns_per(&self, ops: usize) -> f64 {
        self.cpu * 1e9 / ops as f64
    }
    /// Millions of operations per wall-clock second.
    pub fn mops(&self, ops: u64) -> f64 {
        ops as f64 / self.wall / 1e6
    }
}

/// Times `f` once.
pub fn time(f: impl FnOnce()) -> Timing {
    let cpu = cpu_seconds();
    let start = Instant::now();
    f();
    Timing {
        wall: start.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - cpu,
    }
}

/// CPU time used by the whole process so far (`CLOCK_PROCESS_CPUTIME_ID`: nanosecond
/// resolution, every thread, including threads that have exited).
pub fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec`; the clock id is a constant Linux defines.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Runs every contender (one timed run each, returning a sample) once as a warm-up when
/// `warm_up`, then `reps` times, interleaved and rotated (A B C, B C A, C A B, …: each
/// contender follows each other one equally often); returns each contender's samples in the
/// order given.
///
/// The rotation matters: what one contender leaves behind can slow the next one. A run of
/// `spawn` + `join` threads made the next 1 500 detached threads 10–25 % slower, whichever
/// library spawned them, and in a fixed order that was always the same contender.
pub fn interleave<S>(
    reps: usize,
    warm_up: bool,
    contenders: &mut [&mut dyn FnMut() -> S],
) -> Vec<Vec<S>> {
    if warm_up {
        for f in contenders.iter_mut() {
            f();
        }
    }
    let k = contenders.len();
    let mut samples: Vec<Vec<S>> = contenders.iter().map(|_| Vec::new()).collect();
    for rep in 0..reps {
        for j in 0..k {
            let i = (rep + j) % k;
            samples[i].push(contenders[i]());
        }
    }
    samples
}

/// Repetitions per case: `full` for `make bench`, `quick` for `make bench-quick`.
pub fn reps(full: usize, quick: usize) -> usize {
    if crate::quick() {
        quick
    } else {
        full
    }
}

/// A size for `make bench` and a smaller one for `make bench-quick`.
pub fn size<T>(full: T, quick: T) -> T {
    if crate::quick() {
        quick
    } else {
        full
    }
}

/// A tokio current-thread runtime, the executor most of the pool cases run under.
pub fn tokio_current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
