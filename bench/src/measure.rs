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
/// `warm_up`, then `reps` times, interleaved in the orders of a balanced Latin square
/// ([`order`]): within a repetition, each contender comes right after each other one equally
/// often (over `k` repetitions for an even number `k` of contenders, `2 × k` for an odd one);
/// returns each contender's samples in the order given.
///
/// The order matters: what one contender leaves behind can slow the next one. A run of
/// `spawn` + `join` threads made the next 1 500 detached threads 10–25 % slower, whichever
/// library spawned them. A rotation alone does not spread that: in A B C, B C A, C A B, A
/// never comes right after B within a repetition (in the separate-thread case, with nine
/// repetitions, ours ran right after spawn + join in seven; the eleventh pass found it
/// paying for that).
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
        for pos in 0..k {
            let i = order(k, rep, pos);
            samples[i].push(contenders[i]());
        }
    }
    samples
}

/// The contender at position `pos` of repetition `rep` among `k`: row `rep` of a Williams
/// design (a balanced Latin square). Its first row is 0, 1, k−1, 2, k−2, …; row `r` adds
/// `r` to each entry (mod `k`); for odd `k`, rows `k .. 2k` are the first `k` reversed.
pub fn order(k: usize, rep: usize, pos: usize) -> usize {
    let rows = if k.is_multiple_of(2) { k } else { 2 * k };
    let row = rep % rows;
    let (shift, pos) = if row < k {
        (row, pos)
    } else {
        (row - k, k - 1 - pos)
    };
    let base = match pos {
        0 => 0,
        p if p % 2 == 1 => p.div_ceil(2),
        p => k - p / 2,
    };
    (base + shift) % k
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

#[cfg(test)]
mod tests {
    use super::order;

    /// Every repetition runs each contender once, and over a full period each ordered pair of
    /// contenders is adjacent equally often.
    #[test]
    fn the_orders_are_balanced() {
        for k in 1..=7_usize {
            let rows = if k.is_multiple_of(2) { k } else { 2 * k };
            let mut pairs = vec![vec![0; k]; k];
            for rep in 0..rows {
                let row: Vec<usize> = (0..k).map(|pos| order(k, rep, pos)).collect();
                let mut sorted = row.clone();
                sorted.sort_unstable();
                assert_eq!(
                    sorted,
                    (0..k).collect::<Vec<_>>(),
                    "k = {k}, row {rep}: {row:?}"
                );
                for w in row.windows(2) {
                    pairs[w[0]][w[1]] += 1;
                }
            }
            for (a, line) in pairs.iter().enumerate() {
                for (b, &n) in line.iter().enumerate() {
                    if a != b {
                        assert_eq!(n, rows / k, "k = {k}: {a} right before {b}");
                    }
                }
            }
        }
    }
}
