//! The hook by which a *thread* waits on the core's waker-based types.
//!
//! The core never assumes that threads exist: every wait in it is expressed as a `poll_*`
//! method that registers a [`Waker`] and returns [`Poll::Pending`]. A backend that owns threads
//! implements [`Park`] (a waker that unparks the thread, and a way to park it) and uses
//! [`wait`] to turn any `poll_*` method into a blocking call. An interrupt-driven firmware can
//! implement [`Park`] with `WFI`/`SEV`; the std backend implements it with
//! `std::thread::park`.
//!
//! # Examples
//!
//! ```
//! use core::task::{Poll, Waker};
//! use aiothreads_core::park::{wait, Park};
//!
//! // A parker for a single-threaded test: parking is a no-op because the condition is
//! // already true the second time it is polled.
//! struct Spin;
//! impl Park for Spin {
//!     fn waker(&self) -> Waker { Waker::noop().clone() }
//!     fn park(&self) {}
//! }
//!
//! let mut polls = 0;
//! let value = wait(&Spin, 0, |_cx| {
//!     polls += 1;
//!     if polls < 2 { Poll::Pending } else { Poll::Ready(42) }
//! });
//! assert_eq!(value, 42);
//! ```

use core::task::{Context, Poll, Waker};

/// A way for the current thread (or core) to sleep until its [`Waker`] is woken.
///
/// # Contract
/// - `waker()` returns a waker whose `wake` makes a concurrent or later `park()` return.
/// - `park()` may return spuriously; callers re-poll their condition after it returns.
/// - A wake that happens before `park()` is called must not be lost (a token, as
///   `std::thread::park` keeps one).
pub trait Park {
    /// The waker to register with the core's types; waking it unparks this parker.
    fn waker(&self) -> Waker;
    /// Blocks until the waker is woken (or spuriously).
    fn park(&self);
}

/// Blocks on `poll` with `parker`: polls, and while the result is pending, spins up to
/// `spin` times re-polling (with [`core::hint::spin_loop`] between polls), then parks.
///
/// The spin is bounded by `spin`; with `spin == 0` it parks at once. The waker is created once
/// and reused for every poll (no allocation per poll in the std backend's parker).
pub fn wait<P: Park + ?Sized, R>(
    parker: &P,
    spin: u32,
    mut poll: impl FnMut(&mut Context<'_>) -> Poll<R>,
) -> R {
    let waker = parker.waker();
    let mut cx = Context::from_waker(&waker);
    let mut spins = 0;
    loop {
        if let Poll::Ready(value) = poll(&mut cx) {
            return value;
        }
        if spins < spin {
            spins += 1;
            core::hint::spin_loop();
        } else {
            parker.park();
        }
    }
}
