//! The consumer's `next_event` (one compare per pop for the checkpoint and, where the CPU
//! prefetches, each cache line of slots): its invariant after every kind of pop, with the
//! line events forced on and off (only AMD processors turn them on by themselves, so a test
//! run elsewhere would never see them otherwise), for capacities that do and do not fill
//! whole cache lines and items of 1, 8, 24 and 104 bytes. Under Miri (and off x86_64) there
//! are no line events at all (`sync::PREFETCHES`), so there the "on" runs check the
//! checkpoint alone.

use core::fmt::Debug;
use core::task::{Context, Poll, Waker};

use super::{with_capacity, Consumer};

trait Item: Copy + Eq + Debug {
    fn make(i: u64) -> Self;
}
impl Item for u8 {
    fn make(i: u64) -> Self {
        i as u8
    }
}
impl Item for u64 {
    fn make(i: u64) -> Self {
        i
    }
}
impl Item for [u64; 3] {
    fn make(i: u64) -> Self {
        [i, !i, i ^ 0x55]
    }
}
impl Item for [u64; 13] {
    fn make(i: u64) -> Self {
        core::array::from_fn(|k| i.wrapping_add(k as u64))
    }
}

/// A small xorshift: the same operations on every run.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// `next_event` is 1 ..= (positions to the checkpoint) ahead of `head`, and with line events
/// on, no further than the next position whose slot starts a cache line.
fn check_invariant<T>(rx: &Consumer<'_, T>) {
    let raw = &rx.raw;
    let to_checkpoint = raw.distance(rx.head, rx.next_checkpoint);
    assert!(
        (1..=rx.checkpoint).contains(&to_checkpoint),
        "checkpoint {to_checkpoint}"
    );
    let to_event = raw.distance(rx.head, rx.next_event);
    assert!(
        (1..=to_checkpoint).contains(&to_event),
        "event {to_event} ahead, checkpoint {to_checkpoint} (head {}, cap {})",
        rx.head,
        raw.cap
    );
    if rx.line_events() {
        // The next position whose slot starts a cache line of slots, walked one at a time.
        let per_line = crate::sync::items_per_line::<T>();
        let to_line = (1..)
            .find(|&d| raw.index(raw.advance(rx.head, d)).is_multiple_of(per_line))
            .expect("index 0 comes round");
        assert!(to_event <= to_line, "a line event was skipped");
    }
}

fn run<T: Item>(cap: usize, prefetches: bool, seed: u64) {
    let (mut tx, mut rx) = with_capacity::<T>(cap);
    rx.prefetches = prefetches;
    rx.set_next_event();
    check_invariant(&rx);
    let (mut next_in, mut next_out) = (0u64, 0u64);
    let mut rng = Rng(seed);
    let mut out = [T::make(0); 40];
    let rounds = if cfg!(miri) { 40 } else { 400 };
    for _ in 0..rounds {
        for _ in 0..rng.below(cap + 1) {
            if tx.push(T::make(next_in)).is_err() {
                break;
            }
            next_in += 1;
        }
        let want = rng.below(cap + 1);
        match rng.below(4) {
            0 => {
                for _ in 0..want {
                    let Ok(v) = rx.pop() else { break };
                    assert_eq!(v, T::make(next_out));
                    next_out += 1;
                    check_invariant(&rx);
                }
            }
            1 => {
                let n = rx.pop_slice(&mut out[..want.min(40)]);
                for v in &out[..n] {
                    assert_eq!(*v, T::make(next_out));
                    next_out += 1;
                }
            }
            2 => {
                for v in rx.drain().take(want) {
                    assert_eq!(v, T::make(next_out));
                    next_out += 1;
                }
            }
            _ => {
                let batch = rx.pop_batch::<7>();
                for v in &batch {
                    assert_eq!(*v, T::make(next_out));
                    next_out += 1;
                }
            }
        }
        check_invariant(&rx);
    }
    // Drain the rest one at a time, checking after every pop.
    while let Ok(v) = rx.pop() {
        assert_eq!(v, T::make(next_out));
        next_out += 1;
        check_invariant(&rx);
    }
    assert_eq!(next_in, next_out, "items lost");
}

fn all_capacities<T: Item>() {
    let caps: &[usize] = if cfg!(miri) {
        &[1, 3, 9]
    } else {
        &[1, 2, 3, 5, 7, 8, 9, 13, 16, 17, 31]
    };
    for &cap in caps {
        for prefetches in [false, true] {
            for seed in 1..=if cfg!(miri) { 1 } else { 3 } {
                run::<T>(cap, prefetches, seed * 0x9E37_79B9);
            }
        }
    }
}

#[test]
fn events_hold_their_invariant_for_one_byte_items() {
    all_capacities::<u8>();
}

#[test]
fn events_hold_their_invariant_for_u64_items() {
    all_capacities::<u64>();
}

#[test]
fn events_hold_their_invariant_for_24_byte_items() {
    all_capacities::<[u64; 3]>();
}

#[test]
fn events_hold_their_invariant_for_104_byte_items() {
    all_capacities::<[u64; 13]>();
}

/// With line events on, a producer waiting for room is woken after exactly the same pops as
/// without them (two rings in lockstep), and at the latest after `max(1, cap / 2)` pops.
#[test]
fn line_events_keep_the_checkpoint() {
    for cap in [1usize, 2, 5, 8, 9, 17] {
        let (mut tx_on, mut rx_on) = with_capacity::<u64>(cap);
        let (mut tx_off, mut rx_off) = with_capacity::<u64>(cap);
        rx_on.prefetches = true;
        rx_on.set_next_event();
        rx_off.prefetches = false;
        rx_off.set_next_event();
        let mut cx = Context::from_waker(Waker::noop());
        let mut rng = Rng(0x2545_F491);
        for round in 0..if cfg!(miri) { 8 } else { 40 } {
            while tx_on.push(round).is_ok() {}
            while tx_off.push(round).is_ok() {}
            assert!(matches!(tx_on.poll_ready(&mut cx), Poll::Pending));
            assert!(matches!(tx_off.poll_ready(&mut cx), Poll::Pending));
            let checkpoint = (cap / 2).max(1);
            let mut pops = 0;
            while tx_on.is_waiting_for_room() {
                rx_on.pop().expect("item");
                rx_off.pop().expect("item");
                pops += 1;
                assert_eq!(
                    tx_on.is_waiting_for_room(),
                    tx_off.is_waiting_for_room(),
                    "cap {cap}, round {round}, after {pops} pops"
                );
                assert!(pops <= checkpoint, "cap {cap}: not woken after {pops} pops");
            }
            for _ in 0..rng.below(cap + 1) {
                let (a, b) = (rx_on.pop(), rx_off.pop());
                assert_eq!(a, b);
            }
        }
    }
}
