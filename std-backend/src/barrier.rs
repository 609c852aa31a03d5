//! The heavy barrier of the core ring's light wake-up protocol, and the rings made with it.
//!
//! The producer of a stream (an iterator on a thread) notifies the consumer after every item;
//! in the core's fence protocol that costs a `SeqCst` fence per item, to protect a consumer
//! that may be about to sleep. With the feature `membarrier` (on by default) on Linux and
//! Android, the rings of streams and thread channels get a heavy barrier,
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`: their consumer can then switch to the light
//! protocol (see [`aiothreads_core::ring::HeavyBarrier`]), where the producer's per-item check
//! has no fence and the consumer calls the barrier when it goes to sleep. The consumer chooses
//! by itself, from how many items it takes between sleeps: light while it sleeps seldom (a
//! fast producer, where the fence costs the producer most), the fence while it sleeps every
//! few items (a slow producer, where a system call per sleep would cost more).
//!
//! What the barrier costs and whom: one system call per sleep of a consumer in the light
//! protocol, which interrupts every CPU that runs a thread of this process at that moment (on
//! an AMD EPYC VM about 0.15 µs with no other thread running, about 5 µs with one running).
//! Real-time programs whose threads must not be interrupted turn it off: without the feature,
//! or with the environment variable `AIOTHREADS_MEMBARRIER=0`, every ring uses the fence
//! protocol.
//!
//! The barrier is chosen once per process: the variable is read, the kernel is asked whether
//! it supports the command, the process registers for it, and one call is tried. If any step
//! fails (an old kernel, a sandbox that filters the system call, Miri) every ring uses the
//! fence protocol.

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

/// Name of the environment variable that turns the heavy barrier off (`0`) or leaves it on
/// (`1`, the default).
pub const MEMBARRIER_ENV: &str = "AIOTHREADS_MEMBARRIER";

/// The process's heavy barrier, probed once.
///
/// # Panics
/// If [`MEMBARRIER_ENV`] is set to something other than `0` or `1` (a typo must not silently
/// change the protocol).
pub(crate) fn heavy_barrier() -> Option<HeavyBarrier> {
    static BARRIER: OnceLock<Result<Option<HeavyBarrier>, String>> = OnceLock::new();
    let probed = BARRIER.get_or_init(|| {
        Ok(match allowed(std::env::var_os(MEMBARRIER_ENV))? {
            true => probe(),
            false => None,
        })
    });
    match probed {
        Ok(barrier) => *barrier,
        Err(msg) => panic!("{msg}"),
    }
}

/// Reads the value of [`MEMBARRIER_ENV`]: whether the barrier may be used.
fn allowed(value: Option<std::ffi::OsString>) -> Result<bool, String> {
    match value.as_ref().map(|v| v.to_str().map(str::trim)) {
        None | Some(Some("1")) => Ok(true),
        Some(Some("0")) => Ok(false),
        _ => Err(format!(
            "{MEMBARRIER_ENV} must be 0 (no membarrier: every stream ring uses a fence per \
             item) or 1 (the default), got {value:?}"
        )),
    }
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

    #[test]
    fn the_variable_accepts_0_and_1_and_names_itself_otherwise() {
        assert_eq!(allowed(None), Ok(true));
        assert_eq!(allowed(Some("1".into())), Ok(true));
        assert_eq!(allowed(Some(" 0 ".into())), Ok(false));
        let err = allowed(Some("off".into())).unwrap_err();
        assert!(
            err.contains(MEMBARRIER_ENV) && err.contains("\"off\""),
            "{err}"
        );
    }

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

    /// Phases that call for each protocol in turn: long fast bursts (the consumer takes
    /// hundreds of items between sleeps: light) and a trickle (a sleep per item: the fence),
    /// several times over, with the consumer recording its protocol after every item. Every
    /// item must arrive, in order, with no hang (a lost wake-up across a switch would leave the
    /// consumer asleep: each wait is bounded by a timeout that fails the test). With the
    /// barrier (release suites; the debug ones set `AIOTHREADS_MEMBARRIER=0`) both protocols
    /// must have been seen, and the switches are counted.
    #[test]
    fn protocol_switches_lose_no_wake_up() {
        // Under Miri (no barrier there: the fence protocol only) a smaller run.
        const ROUNDS: u32 = if cfg!(miri) { 2 } else { 6 };
        const BURST: u32 = if cfg!(miri) { 300 } else { 20_000 };
        const TRICKLE: u32 = if cfg!(miri) { 5 } else { 60 };
        let (mut tx, mut rx) = stream_ring::<u32>(256).unwrap();
        let producer = std::thread::spawn(move || {
            let mut next = 0u32;
            for _ in 0..ROUNDS {
                for _ in 0..BURST {
                    while tx.try_send(next).is_err() {
                        std::hint::spin_loop();
                    }
                    next += 1;
                }
                for _ in 0..TRICKLE {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                    tx.try_send(next).unwrap_or_else(|_| panic!("room"));
                    next += 1;
                }
            }
            next
        });
        let (count, light, switches) = crate::block_on(async {
            let (mut count, mut light, mut switches) = (0u32, 0u32, 0u32);
            let mut was_light = false;
            loop {
                // (Not under Miri: the timer's thread would outlive the test there.)
                let item = if cfg!(miri) {
                    rx.recv().await
                } else {
                    crate::timeout(std::time::Duration::from_secs(20), rx.recv())
                        .await
                        .unwrap_or_else(|_| panic!("item {count} lost: no wake-up in 20 s"))
                };
                let Some(x) = item else { break };
                assert_eq!(x, count, "out of order");
                count += 1;
                let now = rx.is_light_protocol();
                light += u32::from(now);
                switches += u32::from(now != was_light);
                was_light = now;
            }
            (count, light, switches)
        });
        assert_eq!(producer.join().unwrap(), count);
        assert_eq!(count, ROUNDS * (BURST + TRICKLE));
        if heavy_barrier().is_some() {
            assert!(
                light > 0 && light < count,
                "light for {light} of {count} items"
            );
            assert!(switches >= 2, "{switches} switches");
        } else {
            assert_eq!(light, 0, "no barrier, no light protocol");
        }
        eprintln!("{count} items, {light} in the light protocol, {switches} switches");
    }
}
