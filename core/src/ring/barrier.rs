//! The asymmetric variant of the consumer wake-up protocol: a heavy barrier paid by the
//! consumer when it goes to sleep, so that the producer's per-item check needs no fence.
//!
//! # The protocol
//!
//! The symmetric protocol (see [Memory ordering](super#memory-ordering)) is a Dekker pair:
//! the producer stores `tail`, executes `fence(SeqCst)` and loads `rx_waiting`; the consumer
//! stores `rx_waiting`, executes `fence(SeqCst)` and loads `tail`. The producer pays its fence
//! on *every* item (a locked instruction, which waits for the item's stores to leave the
//! store buffer) to protect a consumer that sleeps once every few thousand items in a busy
//! stream. What that costs depends on the CPU and on where the consumer is: about 8 ns per
//! item on an Intel Xeon, as reported against this crate; on an AMD EPYC Zen 3 VM under 1 ns
//! with both halves on one thread, but 20–30 ns more per item between two threads when the
//! consumer reads right behind the producer (every store then waits for a cache line the
//! consumer holds).
//!
//! With a [`HeavyBarrier`] the producer's fence becomes a compiler fence (no instruction) and
//! the consumer, after its own `fence(SeqCst)`, calls the heavy barrier before it re-checks
//! `tail`. The barrier's contract (that of Linux `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`)
//! is that every other thread of the process executes a full memory barrier at some point
//! between the call's start and its return. Let `B` be that point on the producer's thread,
//! `S` its `tail` store and `L` its following `rx_waiting` load (`S` before `L` in program
//! order, kept so by the compiler fence):
//! - `S` before `B`: `B` makes `S` visible before the barrier returns, so the consumer's
//!   re-check of `tail` after it sees the item and does not sleep;
//! - `S` after `B`: then `L` is after `B` too, and the consumer's `rx_waiting` store came
//!   before its barrier call, so `B` orders it before `L`: the producer sees the consumer
//!   waiting and wakes it.
//!
//! Either way no wake-up is lost; the same case split is used by user-space RCU and by
//! hazard-pointer libraries.
//!
//! # Switching: the consumer chooses, at run time
//! A ring made with a barrier ([`try_with_capacity_asymmetric`](super::try_with_capacity_asymmetric))
//! starts with the fence protocol and lets its consumer turn the *light* protocol (the one
//! above) on and off through a flag, `rx_light`, that only the consumer writes and the
//! producer loads (Relaxed) before each notify: set, the producer skips its fence. The
//! consumer decides at a *barrier point* (it announced that it waits, executed its fence, and
//! its pop still found nothing), from the items it took since the previous one: long runs
//! (256 items or more) pay for the barrier, short ones do not (the policy and its figures:
//! `wake::Protocol`). At a barrier point it runs the barrier when the flag is set after its
//! decision **or was set before it**. The flag is written only there, before that barrier.
//!
//! Why no wake-up is lost across a switch: take an item `I` whose notify skipped the fence
//! (it read the flag set) and a consumer sleep `Z` that would miss it (its pop did not see
//! `I`, and `I`'s `rx_waiting` load did not see `Z`'s announcement). If `Z` ran the barrier,
//! the case split above applies. If not, the flag was clear when `Z` decided and had been
//! since the consumer's previous barrier `X`; `I` read a value set before the clear, which
//! preceded `X`'s barrier. Let `B` be that barrier's point on the producer's thread: a load
//! of the flag after `B` sees the clear (or a later set, which restarts the argument at a
//! later barrier), so `I`'s flag load came before `B`, and `I`'s `tail` store, earlier in
//! program order, too: `B` made it visible before `X`'s barrier returned, so `Z`'s pop,
//! later, sees `I`. A set flag that the producer reads before the consumer's decision
//! becomes visible is harmless: the producer then runs its fence. So one barrier after each
//! clear is enough, and the consumer pays it in the same barrier point as the clear.
//!
//! # Costs
//! - producer, per notifying push: no fence in the light protocol, one Relaxed load of
//!   `rx_light` and one of `rx_waiting` (one cache line);
//! - consumer, per sleep: the usual fence, a re-check, and one barrier call only if the
//!   re-check found the ring still empty (a consumer that merely caught up with a busy
//!   producer usually finds the next item there and pays no barrier). Linux's expedited
//!   `membarrier` interrupts every CPU that currently runs a thread of the process: about
//!   0.15 µs when no other thread runs, about 5 µs in a VM whose other CPU runs one (measured
//!   on an AMD EPYC VM). A consumer that keeps up with its producer sleeps rarely; one that
//!   sleeps every few items (a slow producer) would pay it every few items, which is why the
//!   consumer falls back to the fence protocol there;
//! - consumer, per protocol switch: one `swap` of `rx_light`, and a barrier (at the switching
//!   barrier point). In the fence protocol, a probe of the light one costs three barriers at
//!   most, once per 16 to 256 barrier points.
//!
//! The loom models check the fence protocol only (loom has no model of a process-wide
//! barrier): rings made without a barrier never set `rx_light`. The choice of protocol is
//! unit-tested (`wake::Protocol`), and the stream tests of the `aiothreads` crate run both
//! protocols, switching between them, with the real `membarrier`.

use core::fmt;

/// A process-wide memory barrier with the contract of Linux
/// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`: when [`call`](Self::call) returns, every
/// other thread of the process has executed a full memory barrier at some point after the
/// call started (threads that were not running execute one when they are scheduled again).
///
/// The core cannot issue such a barrier itself (it needs the operating system); a backend
/// that can (the `aiothreads` crate on Linux) wraps its function here and makes rings with
/// [`try_with_capacity_asymmetric`](super::try_with_capacity_asymmetric).
///
/// A function that does not keep the contract does not make the ring unsound (no memory is
/// misused), but it loses wake-ups: a consumer may sleep with an item in the ring until the
/// next one arrives.
///
/// # Examples
/// On one thread any barrier keeps the contract (there is no other thread):
/// ```
/// use aiothreads_core::ring::{self, HeavyBarrier};
/// use std::sync::atomic::{fence, Ordering};
///
/// let barrier = HeavyBarrier::new(|| fence(Ordering::SeqCst));
/// let (mut tx, mut rx) = ring::try_with_capacity_asymmetric::<u8>(4, barrier).unwrap();
/// tx.try_send(1).unwrap();
/// assert_eq!(rx.pop(), Ok(1));
/// ```
#[derive(Clone, Copy)]
pub struct HeavyBarrier(fn());

impl HeavyBarrier {
    /// Wraps `barrier`, which must keep the contract described on the type.
    pub const fn new(barrier: fn()) -> Self {
        Self(barrier)
    }

    /// Executes the barrier.
    #[inline]
    pub fn call(&self) {
        (self.0)();
    }

    /// The wrapped function, as the ring header (and the unbounded queue) stores it.
    pub(crate) fn function(self) -> fn() {
        self.0
    }
}

impl fmt::Debug for HeavyBarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HeavyBarrier")
    }
}
