//! # aiothreads
//!
//! The glue between async Rust and OS threads — the Rust port of Python's `aiothreads`, for
//! code that would otherwise reach for `spawn_blocking`, `blocking::unblock` or a hand-rolled
//! channel, on any executor (tokio, smol, async-std, `futures`, or the built-in [`block_on`]):
//!
//! - run a blocking function on a thread pool and `.await` it ([`#[threaded]`](macro@threaded),
//!   [`spawn`]), or on a dedicated thread ([`#[threaded_separate]`](macro@threaded_separate),
//!   [`spawn_separate`]);
//! - turn a blocking iterator into an async `Stream` with a bounded queue and backpressure,
//!   stopped and dropped on its thread as soon as the consumer stops
//!   ([`#[threaded_iterable]`](macro@threaded_iterable), [`IterCall`]);
//! - call async code back from inside those threads, on the loop that submitted the work
//!   ([`sync_await`]), with context values carried across the hop ([`ContextVar`]).
//!
//! ```
//! use futures::StreamExt;
//!
//! /// Blocking work, run on the pool.
//! #[aiothreads::threaded]
//! fn checksum(data: Vec<u8>) -> u32 {
//!     data.iter().map(|&b| u32::from(b)).sum()
//! }
//!
//! /// A blocking generator, consumed as a `Stream`.
//! #[aiothreads::threaded_iterable(max_size = 64)]
//! fn lines(n: usize) -> impl Iterator<Item = String> {
//!     (0..n).map(|i| format!("line {i}"))
//! }
//!
//! aiothreads::block_on(async {
//!     assert_eq!(checksum(vec![1, 2, 3]).await, 6);
//!     let first: Vec<String> = lines(1_000).take(2).collect().await; // the rest never runs
//!     assert_eq!(first, ["line 0", "line 1"]);
//! });
//! ```
//!
//! The lock-free pieces (the SPSC ring, the oneshot slot) live in the `no_std` crate
//! [`aiothreads-core`](aiothreads_core), re-exported under its own name
//! (`aiothreads::aiothreads_core`); this crate has no `unsafe` code.
//!
//! ## Running blocking code on threads
//! Functions marked [`#[threaded]`](macro@threaded) return a [`Call`]: `.await` it to run
//! the body on the default [`Pool`], `.call()` to submit it at once and get a [`JoinHandle`]
//! (a `Future` of the result, like `spawn_blocking`), `.sync_call()` to run it inline,
//! `.on(&pool)` to choose a pool. [`#[threaded_separate]`](macro@threaded_separate) runs each
//! call on a new OS thread named after the function. Closures get the same with
//! [`threaded()`](fn@threaded) / [`threaded_separate()`](fn@threaded_separate) and the
//! one-off [`spawn`] / [`spawn_separate`] (the only forms without the default feature
//! `macros`).
//!
//! ```
//! #[aiothreads::threaded]
//! fn compute(x: i32, y: i32) -> i32 {
//!     x + y
//! }
//!
//! futures::executor::block_on(async {
//!     assert_eq!(compute(1, 2).await, 3);
//!     assert_eq!(compute(1, 2).call().await, 3);
//!     assert_eq!(compute(1, 2).sync_call(), 3);
//!     compute(1, 2).call().detach(); // runs to the end with nobody waiting
//! });
//! ```
//!
//! A panic in a job is re-raised where its handle is awaited ([`JoinHandle::try_join`] gives
//! a [`JoinError`] instead). **Dropping a handle cancels the job** (a queued job never runs, a
//! running one sees [`is_cancelled`]), as in smol — `let _ = f().call();` runs `f` once (if
//! a worker took it before the drop) or not at all;
//! [`JoinHandle::detach`] lets it run unobserved, as a dropped tokio handle would.
//! Pool workers spin briefly (an adaptive, time-budgeted spin) before they park, so that
//! back-to-back calls rarely pay for waking a worker; a call costs one heap allocation, and
//! awaiting it never blocks inside `poll`. A job that a spinning worker took at once is
//! awaited by yielding to the executor (the task wakes itself, other tasks run in between)
//! for up to a quarter of this machine's measured sleep/wake cycle (about 15 µs on the VM
//! this crate is benchmarked on), learnt per thread to stop where it does not pay, and then
//! by sleeping until the job's completion wakes it.
//!
//! ## Calling async code from threads
//! From a thread that may block — a `threaded` worker, a tokio `spawn_blocking` closure, a
//! thread of your own — [`sync_await`] runs a future *on the event loop* and blocks the thread
//! until it completes (Python's `sync_await` / `wait_coroutine`; the future may use the loop's
//! reactor: tokio timers, sockets). The loop is a [`Loop`]: a tokio runtime (feature `tokio`,
//! found without setup), any executor with a spawn function ([`Loop::from_spawner`]: smol,
//! async-executor, async-std, `futures::executor::ThreadPool`), or your own [`LoopHandle`].
//! Threaded calls capture the caller's loop and install it on the worker for the job.
//!
//! | | loop | no loop known | misuse / loop gone | panic in the future |
//! |---|---|---|---|---|
//! | [`sync_await`], [`wait_coroutine`] | [`Loop::current`] | runs it with [`block_on`] | panics with the reason | re-raised here |
//! | [`try_sync_await`] | [`Loop::current`] | `Err(NoLoop)` | `Err(..)` | `Err(Panicked)` |
//! | [`sync_wait_coroutine`], [`Loop::sync_await`] | given | — | panics | re-raised here |
//! | [`Loop::try_sync_await`] | given | — | `Err(..)` | `Err(Panicked)` |
//!
//! Misuse is an error, never a hang: on a thread that drives the target loop, `sync_await`
//! fails at once with [`SyncAwaitError::WouldDeadlock`]; a loop that shuts down while a thread
//! waits gives it [`SyncAwaitError::LoopGone`]. The other blocking entry points share the
//! check and its message: [`blocking_iter`] on the loop's thread, and
//! [`ThreadSender::put`] on a full channel from the thread its receiver waits on.
//!
//! [`block_on`] is a minimal executor for the current thread (no allocation per call after the
//! first on a thread, none per poll) — with no reactor: futures needing tokio's timers or I/O
//! go through a loop.
//!
//! ## Context propagation
//! A [`ContextVar`] (declared with [`context_var!`]) is set around a future with
//! [`ContextVar::scope`], like tokio's `task_local!` but on any executor. Each `threaded` call
//! snapshots the values visible at submission; the worker sees them for that job only, and
//! what it sets never flows back. [`Snapshot`] does the same for threads you spawn yourself,
//! [`ContextHook`] carries context of your own, and the `tracing` feature carries the current
//! span (module `tracing_hook`).
//!
//! ## Streams from iterators
//! Functions marked [`#[threaded_iterable]`](macro@threaded_iterable) (or
//! [`#[threaded_iterable_separate]`](macro@threaded_iterable_separate)) return an [`IterCall`]: a `Stream` of the iterator's items, produced on a pool thread (or
//! a new thread) through a ring of `max_size` items (default [`default_max_size`]: 1024, or
//! the `THREADED_ITERABLE_DEFAULT_MAX_SIZE` environment variable). While the ring is full a
//! pool producer gives its worker back and is resubmitted when the consumer has made room, so
//! a stream costs a worker only while `next()` runs or the ring has room (many more open
//! streams than pool threads are fine); a producer on its own thread parks that thread.
//! Dropping the stream stops the iterator and drops it on its thread;
//! [`IterCall::close`] resolves once that happened; `.sync_call()` gives the plain iterator.
//! The channel underneath is public as [`FromThreadChannel`], and [`blocking_iter`] goes the
//! other way: an async `Stream` consumed as a blocking `Iterator` from a thread (a panic of the
//! stream is re-raised in the iterating thread; [`try_blocking_iter`] yields failures as an
//! `Err` item instead).
//!
//! ## Features
//! - `macros` (default): the four attribute macros (crate `aiothreads-macros`).
//! - `membarrier` (default; Linux and Android, crate `rustix`): the rings of streams and thread
//!   channels get a heavy barrier, `membarrier(PRIVATE_EXPEDITED)`, and their consumer chooses
//!   between two wake-up protocols at run time. While it sleeps seldom (a fast producer), the
//!   producer checks for a sleeping consumer without a memory fence per item and the consumer
//!   calls the barrier when it sleeps; while it sleeps every few items (a slow producer), the
//!   producer pays the fence and the consumer makes a system call only to probe the other
//!   protocol now and then (three calls per probe, once per 16 to 256 sleeps). On the AMD EPYC
//!   VM this crate is measured on, a stream whose producer does about 8 ns of work per item
//!   ran 2.3–4× faster with it than with `AIOTHREADS_MEMBARRIER=0` (PERFORMANCE.md, eighth
//!   pass). The barrier interrupts each CPU running a thread of the process; real-time code
//!   that must not be interrupted turns it off, at build time (`default-features = false`) or
//!   at run time ([`MEMBARRIER_ENV`]`=0`). Off, or where the kernel refuses the call, every
//!   ring uses the fence per item.
//! - `placement` (default; Linux and Android, crate `rustix`): a pool worker that delivers a
//!   result to an awaiter asleep on its own CPU (`getcpu`) claims the awaiter's next call and
//!   yields to it instead of spinning; one whose awaiter sleeps on another CPU parks instead
//!   of spinning while that brings the two onto one CPU. Off: workers spin after every
//!   delivery. [`Builder::placement`] turns it off per pool.
//! - `tokio`: [`Loop`] for tokio runtimes, found by [`Loop::current`] without setup.
//! - `async-executor`: `Loop::from_async_executor` for smol's / async-executor's `Executor`
//!   (any other executor works through [`Loop::from_spawner`] with no feature).
//! - `tracing`: the caller's `tracing` span is entered around jobs and `sync_await` futures.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The `no_std` core crate, under its own name (a re-export named `core` would shadow the
/// standard `core` crate under `use aiothreads::*`).
pub use aiothreads_core;

#[cfg(feature = "macros")]
pub use aiothreads_macros::{
    threaded, threaded_iterable, threaded_iterable_separate, threaded_separate,
};

/// What the attribute macros expand to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::{Call, IterCall, IterFn};

    /// Whether stream rings have a heavy barrier (`membarrier`), so that their consumers can
    /// switch to the light wake-up protocol; for the benchmark's report.
    pub fn asymmetric_stream_rings() -> bool {
        crate::barrier::heavy_barrier().is_some()
    }

    /// Fails to compile, at the argument's type, unless a value of `T` can cross to another
    /// thread: the attribute macros call it for every argument of a threaded function.
    #[inline(always)]
    pub const fn arguments_cross_to_another_thread<T: Send + 'static>() {}
}

mod block_on;
mod context;
mod loop_handle;
mod misuse;
mod parker;
mod sync_await;
#[cfg(feature = "tracing")]
pub mod tracing_hook;

pub use block_on::block_on;
pub use context::{register_context_hook, ContextHook, ContextVar, Snapshot, Token};
pub use loop_handle::{set_current_loop, BoxFuture, EnterGuard, Loop, LoopHandle, SpawnError};
pub use sync_await::{
    sync_await, sync_wait_coroutine, try_sync_await, wait_coroutine, SyncAwaitError,
};

mod admission;
mod backoff;
mod barrier;
pub use barrier::MEMBARRIER_ENV;
mod call;
mod cancel;
mod channel;
mod coop;
mod iterable;
mod placement;
mod pool;
mod pool_stream;
mod queue;
mod separate;
mod task;
mod timer;

pub use call::{threaded, threaded_separate, BlockingFn, Call, Threaded, ThreadedFn};
pub use cancel::{cancel_token, is_cancelled, CancelToken};
pub use channel::{
    blocking_iter, try_blocking_iter, BlockingIter, ChannelClosed, ChannelTimeout,
    FromThreadChannel, Get, GetError, ThreadSender, TryBlockingIter,
};
pub use iterable::{
    default_max_size, threaded_iterable, threaded_iterable_separate, Close, IterCall, IterFn,
    ThreadedIterable, TryIterCall, DEFAULT_MAX_SIZE, MAX_SIZE_ENV,
};
pub use pool::{
    default_pool, set_default_pool, spawn, Builder, Permit, Pool, Reserve, ShutdownReport,
    TrySpawnError, MAX_THREADS_ENV,
};
pub use separate::{spawn_separate, spawn_separate_named};
pub use task::{JoinError, JoinHandle, TryJoin};
pub use timer::{sleep, timeout, Elapsed, Sleep};
