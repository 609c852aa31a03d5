//! # aiothreads-core
//!
//! The `no_std`, allocation-free heart of [aiothreads]: the pieces that move values between a
//! thread (or an interrupt handler, or any non-async producer) and an async task, with no
//! threads, no allocator and no executor assumed.
//!
//! - [`ring`]: a bounded, lock-free single-producer single-consumer ring with wait-free
//!   `push`/`pop`, batch operations, close from either side, and waker-based async adapters
//!   (`Stream`, `send().await`, `recv().await`) that wake the other side only when it waits.
//!   Which of its operations an interrupt handler may call, and which it must not: see
//!   [Use from an interrupt handler](ring#use-from-an-interrupt-handler).
//! - [`slot`]: a oneshot slot: one value from one side to the other; the receiver is a
//!   `Future`; the sender sees the receiver leave (cancellation) and the receiver sees the
//!   sender leave without a value.
//! - [`take`]: a cell whose value can be taken once through a shared reference.
//! - `unbounded` (feature `alloc`): an unbounded lock-free SPSC queue of linked, recycled
//!   segments; the producer never waits, the consumer has the ring's async and blocking forms.
//! - [`park`]: the hook through which a thread-owning backend blocks on the waker-based types.
//!
//! ```
//! use aiothreads_core::ring::Ring;
//!
//! // A ring in a `static`: no allocator, split once into its two halves.
//! static SAMPLES: Ring<u16, 8> = Ring::new();
//! let (mut producer, mut consumer) = SAMPLES.try_split().expect("first split");
//!
//! // The producer side (an interrupt handler, a thread): wait-free, wakes the consumer only
//! // if it is waiting.
//! std::thread::spawn(move || {
//!     for sample in [3, 1, 4] {
//!         while producer.try_send(sample).is_err() {}
//!     }
//! });
//!
//! // The consumer side: a `Stream` / `recv().await` on any executor.
//! futures::executor::block_on(async {
//!     for expected in [3, 1, 4] {
//!         assert_eq!(consumer.recv().await, Some(expected));
//!     }
//!     assert_eq!(consumer.recv().await, None); // the producer was dropped: closed
//! });
//! ```
//!
//! ## Dependencies and why
//! - `atomic-waker`: the waker registration cell, a well-reviewed lock-free protocol that we
//!   use instead of writing our own.
//! - `futures-core`: the `Stream` trait, so the ring's consumer works with every executor and
//!   with `futures`' combinators.
//! - `heapless`: the fixed-capacity `Vec` in which [`ring::Consumer::pop_batch`] returns a
//!   batch without an allocator.
//!
//! ## Features
//! - `alloc` (off by default): rings with a capacity chosen at run time on the heap, and
//!   `Arc`-owned oneshot halves.
//! - `portable-atomic` (off by default): every atomic of the crate, and `atomic-waker`'s, comes
//!   from the [`portable-atomic`] crate, so the core builds for targets without
//!   compare-and-swap: Cortex-M0/M0+ (`thumbv6m-none-eabi`), `riscv32imc-unknown-none-elf`.
//!   On those targets the *binary* also chooses how `portable-atomic` makes its
//!   read-modify-writes atomic: its `critical-section` feature (plus a `critical-section`
//!   implementation, e.g. from `cortex-m`; right for multi-core chips such as the RP2040), or
//!   its `unsafe-assume-single-core` feature (interrupts masked around each RMW; single-core
//!   chips only). Without that choice the build stops with portable-atomic's error message.
//!   On targets with CAS the feature changes nothing but the crate the instructions come from.
//!
//! The core needs compare-and-swap (or `portable-atomic`'s emulation of it) only off the hot
//! path: `push`, `pop`, `try_send`'s check for a waiting consumer and the consumer's
//! checkpoints are plain loads, stores and fences; a read-modify-write happens when a side
//! actually waits or is woken, on close, in `try_split`, and in the oneshot slot.
//!
//! [`portable-atomic`]: https://docs.rs/portable-atomic
//!
//! ## Known limitation: a waker whose `clone` or `drop` panics
//! Every waker cell of the crate (the ring's two, the slot's one, the unbounded queue's one) is `atomic-waker`'s
//! `AtomicWaker`. Its `register` takes an internal lock, clones the new waker and drops the
//! one it replaces *while holding the lock*, and has no unwind guard. If that `clone` (or
//! that `drop`) panics, the panic reaches the caller of the `poll_*` method, and the cell
//! stays locked for good: later registrations are ignored and later wake-ups find nothing to
//! wake, so the side that polled with that waker (a stream, `recv().await`, `send().await`,
//! a std `JoinHandle`) is never woken again and hangs unless it is polled for another reason.
//! The ring's [`split`](ring::Ring::split) cannot reset such a cell either.
//!
//! We document this rather than work around it. tokio fixed the same flaw in its own
//! `AtomicWaker` (PR 3689) with `catch_unwind`, which a `no_std` crate does not have; the only
//! `no_std` fix is an unwind guard inside the lock, i.e. our own waker cell instead of the
//! reviewed and model-checked `atomic-waker`, for a failure that needs a `Waker`
//! implementation that panics in `clone` or `drop` (cloning the standard `Arc`-based wakers
//! cannot panic: a reference-count overflow aborts). The methods concerned say so under
//! `# Panics`.
//!
//! ## Checked by
//! Unit tests, `loom` models (`RUSTFLAGS="--cfg aiothreads_loom" cargo test -p aiothreads-core
//! --release --test 'loom*'`; loom's types take priority over the `portable-atomic` feature),
//! Miri, ThreadSanitizer, and cross builds for `thumbv7em-none-eabihf`, and, with
//! `portable-atomic`, `thumbv6m-none-eabi` and `riscv32imc-unknown-none-elf`. Each lock-free
//! protocol and its models:
//! - ring handoff (head/tail, cached indices, close flag, items dropped exactly once by the last
//!   half): `push_pop_close`, `items_dropped_exactly_once`, `drain_races_pushes`;
//! - ring consumer wake-up (`rx_waiting` + fence against the producer's notify):
//!   `try_send_wakes_waiting_consumer`, `push_slice_wakes_waiting_consumer`, `consumer_waits_twice`,
//!   `send_iter_wakes_consumer_waiting_twice`, `close_wakes_waiting_consumer`,
//!   `both_sides_waiting` (the light protocol of a ring with a heavy barrier is argued in
//!   `ring/barrier.rs`, not modelled: loom has no process-wide barrier);
//! - ring producer wake-up (lazy half-ring checkpoint, `poll_room`'s hysteresis):
//!   `pop_wakes_waiting_producer_cap2`, `lazy_checkpoint_wakes_waiting_producer_cap4`,
//!   `poll_room_waits_for_its_run_and_is_woken`, `close_wakes_waiting_producer`;
//! - a stream's ending (outcome written before the ring closes; withdraw against run, one
//!   winner), in `loom_outcome`: `closed_ring_always_has_an_outcome`,
//!   `withdraw_races_run_with_one_ending`;
//! - [`ring::Closer`] (close from a third thread, waking both sides): `closer_wakes_waiting_producer`,
//!   `closer_wakes_waiting_consumer`, `closer_races_pushes`;
//! - slot state bits (`WRITING`/`READY`/`TAKEN`/`RX_CLOSED`/`TX_GONE`) and its waker:
//!   `send_wakes_waiting_receiver`, `abandon_wakes_waiting_receiver`,
//!   `send_vs_close_exactly_once`, `receive_vs_close_exactly_once`;
//! - [`take::TakeCell`] (one swap, one winner): `take_cell_one_winner`.
//! - unbounded queue, in `loom_unbounded` (segment links, spare-segment mailbox, drops):
//!   `push_pop_across_segments_close`, `recycling_race`, `items_dropped_exactly_once`;
//!   (consumer wake-up) `push_wakes_waiting_consumer`, `consumer_waits_twice`,
//!   `notify_after_batch_wakes_waiting_consumer`, `close_wakes_waiting_consumer`.
//!
//! The waker cell itself is `atomic-waker`'s (model-checked upstream). `Ring::try_split`'s
//! once-flag has no model of its own.
//!
//! [aiothreads]: https://docs.rs/aiothreads
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod park;
pub mod ring;
pub mod slot;
pub mod take;
#[cfg(any(feature = "alloc", aiothreads_loom))]
pub mod unbounded;

mod sync;
mod wake;
