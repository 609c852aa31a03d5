//! The heavy barrier of the core ring's asymmetric wake-up protocol, and the rings made with
//! it.
//!
//! The producer of a stream (an iterator on a thread) notifies the consumer after every item;
//! in the core's symmetric protocol that costs a `SeqCst` fence per item, to protect a
//! consumer that sleeps once every few thousand items. With the feature `membarrier` (opt-in,
//! see the crate docs for when it pays) on Linux and Android, the rings of streams and thread channels use the
//! asymmetric protocol instead (see [`aiothreads_core::ring::HeavyBarrier`]): the producer's
//! per-item check has no fence and the consumer, when it goes to sleep, calls
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`.
//!
//! What that costs and whom: the consumer pays one system call per sleep, which interrupts every
//! CPU that runs a thread of this process at that moment (on an AMD EPYC VM about 0.15 µs with no
//! other thread running, about 5 µs with one running). Threads of the process on other CPUs take
//! that interrupt; real-time programs that must not be interrupted leave the feature off (the
//! default): the rings then use the symmetric protocol. A consumer that often catches up with its
//! producer (a fast consumer) pays the system call each time, which is why the feature is opt-in.
//!
//! The barrier is chosen once per process: the kernel is asked whether it supports the
//! command, the process registers for it, and one call is tried. If any step fails (an old
//! kernel, a sandbox that filters the system call, Miri) every ring uses the symmetric
//! protocol.

use std::sync::OnceLock;

use aiothreads_core::ring::{self, CapacityError, Consumer, HeavyBarrier, Producer};
use aiothreads_core::unbounded::{self, UnboundedConsumer, UnboundedProducer};

/// A heap ring for a thread producer and an async consumer: asymmetric when the process has a
/// heavy barrier, else the core's usual ring. One allocation.
pub(crate) fn stream_ring<T>(
    capacity: usize,
) -> Result<(Producer<'static, T>, Consumer<'static, T>), CapacityError> {
    match heavy_barrier() {
        Some(barrier) => ring::try_with_capacity_asymmetric(capacity, barrier),
        None => ring::try_with_capacity(capacity),
    }
}

/// An unbounded queue for a thread producer and an async consumer, with the same choice of
/// protocol as [`stream_ring`]. Two allocations (shared state, first segment).
pub(crate) fn stream_unbounded<T>() -> (UnboundedProducer<T>, UnboundedConsumer<T>) {
    match heavy_barrier() {
        Some(barrier) => unbounded::channel_asymmetric(barrier),
        None => unbounded::channel(),
    }
}

/// The process's heavy barrier, probed once.
pub(crate) fn heavy_barrier() -> Option<HeavyBarrier> {
    static BARRIER: OnceLock<Option<HeavyBarrier>> = OnceLock::new();
    *BARRIER.get_or_init(probe)
}

#[cfg(all(
    feature = "membarrier",
    any(target_os = "linux", target_os = "android"),
    not(miri)
))]
fn probe() -> Option<HeavyBarrier> {
    use rustix::thread::{membarrier, membarrier_query, MembarrierCommand, MembarrierQuery};

    let supported = membarrier_query();
    if !supported.contains(MembarrierQuery::PRIVATE_EXPEDITED)
        || !supported.contains(MembarrierQuery::REGISTER_PRIVATE_EXPEDITED)
    {
        return None;
    }
    membarrier(MembarrierCommand::RegisterPrivateExpedited).ok()?;
    membarrier(MembarrierCommand::PrivateExpedited).ok()?;
    Some(HeavyBarrier::new(expedited))
}

/// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, for a process that registered for it.
#[cfg(all(
    feature = "membarrier",
    any(target_os = "linux", target_os = "android"),
    not(miri)
))]
fn expedited() {
    use rustix::thread::{membarrier, MembarrierCommand};

    // After a successful registration and a successful first call the kernel has no reason
    // left to refuse (its only errors are "not registered" and "unsupported"). If it did
    // anyway, going on would risk a lost wake-up (a hang), so we stop here, loudly.
    if let Err(e) = membarrier(MembarrierCommand::PrivateExpedited) {
        panic!("aiothreads: membarrier(PRIVATE_EXPEDITED) failed after it had worked: {e}");
    }
}

#[cfg(not(all(
    feature = "membarrier",
    any(target_os = "linux", target_os = "android"),
    not(miri)
)))]
fn probe() -> Option<HeavyBarrier> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many short bursts, each followed by the consumer going to sleep on an empty ring: the
    /// moment where a lost wake-up would show (the consumer would then hang, and the test
    /// with it). Runs with whichever protocol the process has.
    #[test]
    fn consumer_sleeping_between_bursts_is_always_woken() {
        let (mut tx, mut rx) = stream_ring::<u32>(64).unwrap();
        let producer = std::thread::spawn(move || {
            for burst in 0..2_000u32 {
                for i in 0..(burst % 7) + 1 {
                    tx.try_send(burst * 8 + i)
                        .unwrap_or_else(|_| panic!("room"));
                }
                // Let the consumer drain and fall asleep now and then.
                if burst % 3 == 0 {
                    std::thread::yield_now();
                }
                while tx.slots() < 8 {
                    std::thread::yield_now();
                }
            }
        });
        let mut expected = Vec::new();
        for burst in 0..2_000u32 {
            for i in 0..(burst % 7) + 1 {
                expected.push(burst * 8 + i);
            }
        }
        let got: Vec<u32> = crate::block_on(async {
            let mut got = Vec::new();
            while let Some(x) = rx.recv().await {
                got.push(x);
            }
            got
        });
        producer.join().unwrap();
        assert_eq!(got, expected);
    }
}
