//! The consumer wake-up handshake, shared by the bounded ring and the unbounded queue.
//!
//! A consumer that finds its queue empty must either see the producer's next item or be woken
//! by the producer that pushes it, never neither (a lost wake-up). Both queues solve it the
//! same way, with a waiting flag, a waker cell and a Dekker pair of fences:
//!
//! | consumer ([`wait_or_take`]) | producer ([`RxSide::notify`]) |
//! |---|---|
//! | register the waker; pop once more; `waiting.swap(true)` | publish the item (`tail`, Release) |
//! | `fence(SeqCst)` | `fence(SeqCst)` |
//! | pop again | `waiting.load()`; if set, `swap(false)` and wake |
//!
//! Either the consumer's pop after its fence sees the item, or the producer's load sees the
//! flag (the two fences are ordered in the single total order of `SeqCst` operations). A queue
//! with a *heavy barrier* adds the light protocol of `ring/barrier.rs`: while the consumer
//! has set the `light` flag, the producer's fence is only a compiler fence and the consumer,
//! when its pop after the fence still finds nothing, runs the barrier (which orders the
//! producer's store and load for it) and pops once more. The consumer turns the light
//! protocol on and off by itself ([`Protocol`]), from how many items it takes between sleeps.
//!
//! Every write of the flag is a read-modify-write (`swap`), on both sides, so that all of
//! them sit in one chain of the flag's modification order, in loom's model as in the C++
//! model. With a plain `store(true)` loom (whose modification order is partial) reports a lost
//! wake-up that the C++ model rules out; the cost is one RMW on the way to sleep, next to the
//! several of the waker registration, and one when a consumer that announced itself finds the
//! item after all.
//!
//! Cost, producer, per notify: one fence (a compiler fence in the light protocol) and two
//! Relaxed loads of a line the consumer writes only when it waits or switches protocol; a
//! `swap` and the wake only when the consumer waits. Consumer, per empty poll: the waker
//! registration and one more pop; only if that pop finds nothing, two `swap`s at most, one
//! fence, one or two more pops (and, in the light protocol, the heavy barrier if the pop after
//! the fence found nothing; a protocol switch adds a `swap`).

use core::sync::atomic::compiler_fence;
use core::task::Context;

use crate::ring::PopError;
use crate::sync::{fence, AtomicBool, AtomicWaker, Ordering};

/// The consumer's half of the handshake's shared state: its waker cell, its waiting flag, the
/// flag that lets the producer skip its fence, and the queue's heavy barrier, if it has one.
pub(crate) struct RxSide<'s> {
    pub(crate) waker: &'s AtomicWaker,
    pub(crate) waiting: &'s AtomicBool,
    /// `true` while the consumer runs the heavy barrier before it sleeps (the light
    /// protocol): the producer may then skip its fence. Written only by the consumer
    /// ([`Protocol::choose`]), never `true` for a queue without a heavy barrier.
    pub(crate) light: Option<&'s AtomicBool>,
    pub(crate) heavy_barrier: Option<fn()>,
}

impl RxSide<'_> {
    /// The producer's side: call after publishing items. Wakes the consumer if it announced
    /// that it waits.
    ///
    /// Cost: a Relaxed load of `light` and one of `waiting` (one cache line, which the
    /// consumer writes only when it goes to sleep or switches protocol), and a `SeqCst` fence
    /// unless `light` is set.
    #[inline]
    pub(crate) fn notify(&self) {
        if self
            .light
            .is_some_and(|light| light.load(Ordering::Relaxed))
        {
            // Light protocol (`ring/barrier.rs`): the consumer's heavy barrier stands in for
            // our fence; only the compiler must keep the `tail` store before the loads.
            // Relaxed is enough: whichever value we read, every consumer sleep that could
            // miss this item runs the barrier (see "Switching" in `ring/barrier.rs`).
            compiler_fence(Ordering::SeqCst);
        } else {
            // Pairs with the fence in `wait_or_take` (Dekker): either the consumer's re-check
            // sees our last Release store of `tail`, or we see its `waiting` swap.
            fence(Ordering::SeqCst);
        }
        if self.waiting.load(Ordering::Relaxed) && self.waiting.swap(false, Ordering::Relaxed) {
            self.waker.wake();
        }
    }
}

/// Items a consumer must take between two barrier points for a run to count as *long* in the
/// light protocol. Its heavy barrier (Linux `membarrier`: 0.15 µs with no other thread of the
/// process running, about 5 µs when one runs on another CPU; AMD EPYC VM) then costs at most
/// about 20 ns per item. A consumer that catches up that often reads right behind its
/// producer, where the fence it saves costs the producer 20–90 ns per item (every store waits
/// for a cache line the consumer holds; same VM). Runs of a few items (a producer slower than
/// its consumer) are where the barrier does not pay: each sleep then interrupts the
/// producer's CPU, which costs more than the fence.
#[cfg(any(feature = "alloc", aiothreads_loom))]
pub(crate) const LIGHT_MIN_ITEMS: usize = 256;
/// Barrier points in the fence protocol before the first probe of the light one.
#[cfg(any(feature = "alloc", aiothreads_loom))]
const PROBE_MIN: u16 = 16;
/// The longest interval between probes.
#[cfg(any(feature = "alloc", aiothreads_loom))]
const PROBE_MAX: u16 = 256;

/// The consumer's choice between the fence protocol and the light one, for a queue with a
/// heavy barrier; kept in the consumer half (no shared state but the `light` flag).
///
/// A consumer whose runs between barrier points are long (at least [`LIGHT_MIN_ITEMS`] items)
/// lets the producer skip its per-item fence and pays the heavy barrier at each barrier point;
/// after two short runs in a row it turns the fence back on, so that a consumer that sleeps
/// every few items (a producer slower than it) does not interrupt the producer's CPU each
/// time. In the fence protocol it turns the light one on after a long run, and probes it
/// after 16 barrier points, then, while probes fail, after up to 256: a fast producer that
/// pays the fence can be slowed enough by it for the consumer to catch up every few items,
/// so the fence protocol alone never shows the light one's gain. It starts with the fence.
#[cfg(any(feature = "alloc", aiothreads_loom))]
#[derive(Debug)]
pub(crate) struct Protocol {
    /// Whether `light` is set (this half is its only writer).
    light: bool,
    /// Barrier points in the fence protocol since the last switch (not counted while light).
    points: u16,
    /// Barrier points in the fence protocol between two probes.
    probe_every: u16,
    /// Short runs in a row in the light protocol.
    shorts: u8,
    /// The light protocol has had a long run since it was turned on.
    paid: bool,
}

#[cfg(any(feature = "alloc", aiothreads_loom))]
impl Protocol {
    /// The fence protocol, first probe after [`PROBE_MIN`] barrier points.
    pub(crate) const fn new() -> Self {
        Self {
            light: false,
            points: 0,
            probe_every: PROBE_MIN,
            shorts: 0,
            paid: false,
        }
    }

    /// Whether the light protocol is on.
    pub(crate) fn is_light(&self) -> bool {
        self.light
    }

    /// At a *barrier point*: the consumer announced that it waits, executed its fence and
    /// still found nothing, `items` items after the previous barrier point. Picks the
    /// protocol for what follows and returns whether the heavy barrier must run now: when the
    /// light protocol is on after this call, and when it was on before it (the producer may
    /// have skipped its fence since the last barrier).
    pub(crate) fn choose(&mut self, items: usize, side: &RxSide<'_>) -> bool {
        if side.heavy_barrier.is_none() {
            return false;
        }
        let was_light = self.light;
        let long = items >= LIGHT_MIN_ITEMS;
        if was_light {
            if long {
                self.paid = true;
                self.shorts = 0;
                // The light protocol paid: probe soon again after a fall-back.
                self.probe_every = PROBE_MIN;
            } else {
                self.shorts += 1;
                if self.shorts >= 2 {
                    if !self.paid {
                        // A probe that never paid: probe half as often.
                        self.probe_every = (self.probe_every * 2).min(PROBE_MAX);
                    }
                    self.switch(false, side);
                }
            }
        } else {
            self.points = self.points.saturating_add(1);
            if long || self.points >= self.probe_every {
                self.switch(true, side);
            }
        }
        was_light || self.light
    }

    fn switch(&mut self, light: bool, side: &RxSide<'_>) {
        self.shorts = 0;
        self.paid = false;
        self.light = light;
        self.points = 0;
        // Relaxed (a swap: every write of the flag is a read-modify-write, as for `waiting`):
        // the heavy barrier that `choose` makes the caller run next orders this store for the
        // producer.
        if let Some(flag) = side.light {
            flag.swap(light, Ordering::Relaxed);
        }
    }
}

/// The consumer's side, after a pop of `consumer` found the queue empty: registers `cx`'s
/// waker, pops once more, and if that finds nothing announces that it waits and pops again
/// (after the heavy barrier too, when the light protocol is or was on: see [`Protocol`]). An
/// item found after the announcement clears it; an item found by any of these pops is
/// returned; `Err(Empty)` means the consumer may sleep: the producer's next notify wakes it.
///
/// `side`, `pop` and `point` take the consumer in turn, so that the handshake's state can live
/// inside the consumer's storage. `point` is called at a barrier point (the pop after the
/// fence found nothing): it returns whether to run the heavy barrier
/// ([`Protocol::choose`], with the items taken since the previous barrier point).
#[inline]
pub(crate) fn wait_or_take<C, T>(
    consumer: &mut C,
    cx: &mut Context<'_>,
    side: for<'c> fn(&'c C) -> RxSide<'c>,
    pop: fn(&mut C) -> Result<T, PopError>,
    point: fn(&mut C) -> bool,
) -> Result<T, PopError> {
    side(consumer).waker.register(cx.waker());
    // One look before announcing: a consumer that merely caught up with a busy producer
    // often finds the next item here, once the waker registration is done.
    // It then leaves the flag (a line the producer reads per item) unwritten, pays no fence,
    // and costs the producer no wake-up. The registered waker stays unused: the producer
    // wakes only a consumer whose flag is set.
    let early = pop(consumer);
    if !matches!(early, Err(PopError::Empty)) {
        return early;
    }
    side(consumer).waiting.swap(true, Ordering::Relaxed);
    // Pairs with the fence in `RxSide::notify` and with the fence of the producer's `close`:
    // either the pop below sees the producer's newer `tail` / `closed`, or the producer sees
    // `waiting == true` and wakes us.
    fence(Ordering::SeqCst);
    let mut found = pop(consumer);
    if matches!(found, Err(PopError::Empty)) && point(consumer) {
        if let Some(barrier) = side(consumer).heavy_barrier {
            // Light protocol: the producer's notify may have had no fence; this barrier orders
            // its `tail` store or its `waiting` load for it. Paid only when the cheap
            // re-check above found nothing: a consumer that merely caught up with a busy
            // producer finds the next item there, without the barrier (a system call that
            // interrupts the producer's CPU).
            barrier();
            found = pop(consumer);
        }
    }
    if found.is_ok() {
        side(consumer).waiting.swap(false, Ordering::Relaxed);
    }
    found
}

#[cfg(all(test, feature = "alloc", not(aiothreads_loom)))]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// The shared state of one consumer side.
    struct Flags {
        waker: AtomicWaker,
        waiting: AtomicBool,
        light: AtomicBool,
    }

    impl Flags {
        fn new() -> Self {
            Self {
                waker: AtomicWaker::new(),
                waiting: AtomicBool::new(false),
                light: AtomicBool::new(false),
            }
        }

        /// The side, with a barrier (never called here: `choose` only says when to call it).
        fn side(&self) -> RxSide<'_> {
            RxSide {
                waker: &self.waker,
                waiting: &self.waiting,
                light: Some(&self.light),
                heavy_barrier: Some(|| {}),
            }
        }
    }

    #[test]
    fn without_a_barrier_the_fence_protocol_stays() {
        let f = Flags::new();
        let s = RxSide {
            heavy_barrier: None,
            ..f.side()
        };
        let mut p = Protocol::new();
        for _ in 0..1000 {
            assert!(!p.choose(LIGHT_MIN_ITEMS * 10, &s));
        }
        assert!(!p.is_light() && !f.light.load(Ordering::Relaxed));
    }

    #[test]
    fn a_long_run_turns_the_light_protocol_on_and_the_barrier_runs_at_once() {
        let f = Flags::new();
        let s = f.side();
        let mut p = Protocol::new();
        assert!(!p.choose(3, &s), "starts with the fence: no barrier");
        assert!(
            p.choose(LIGHT_MIN_ITEMS, &s),
            "switching on runs the barrier"
        );
        assert!(p.is_light() && f.light.load(Ordering::Relaxed));
        // Long runs keep it; every barrier point runs the barrier.
        for _ in 0..10 {
            assert!(p.choose(LIGHT_MIN_ITEMS + 1, &s));
            assert!(p.is_light());
        }
        // One short run does not turn it off; two in a row do, and that point still runs the
        // barrier (the producer may have skipped its fence since the last one).
        assert!(p.choose(1, &s));
        assert!(p.is_light());
        assert!(p.choose(1, &s), "the switching point pays the barrier");
        assert!(!p.is_light() && !f.light.load(Ordering::Relaxed));
        assert!(!p.choose(1, &s), "the fence protocol runs no barrier");
    }

    #[test]
    fn short_runs_probe_the_light_protocol_ever_more_rarely_until_it_pays() {
        let f = Flags::new();
        let s = f.side();
        let mut p = Protocol::new();
        // Barrier points in the fence protocol before each probe.
        let mut gaps = Vec::new();
        let mut fence_points = 0;
        let mut barriers = 0;
        for _ in 0..3000 {
            let was_light = p.is_light();
            if p.choose(1, &s) {
                barriers += 1;
            }
            if !was_light {
                fence_points += 1;
                if p.is_light() {
                    gaps.push(fence_points);
                    fence_points = 0;
                }
            }
        }
        assert_eq!(&gaps[..6], [16, 32, 64, 128, 256, 256], "{gaps:?}");
        // A probe costs three barriers: where it starts, and at its two short runs (the second
        // turns it off). The last probe may still be under way.
        let probes = gaps.len() as u32;
        assert!(
            (3 * probes - 2..=3 * probes).contains(&barriers),
            "{barriers} for {probes}"
        );
        // A probe that pays resets the interval.
        while !p.is_light() {
            p.choose(1, &s);
        }
        p.choose(LIGHT_MIN_ITEMS, &s);
        p.choose(1, &s);
        p.choose(1, &s);
        assert!(!p.is_light());
        let mut n = 0;
        while !p.is_light() {
            p.choose(1, &s);
            n += 1;
        }
        assert_eq!(n, 16);
    }
}
