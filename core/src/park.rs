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

use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

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

/// The state behind a waker that is *lent* to one poll and becomes a real waker only if the
/// poll keeps it: see [`poll_with_lazy_waker`].
///
/// Implementations are `Sync` because a poll may lend its context to other threads (a scoped
/// thread that clones or wakes the waker while the poll runs).
pub trait LazyWaker: Sync {
    /// The real waker; a clone of the lent waker is a clone of this one. Called at each clone
    /// of the lent waker, from whichever thread clones it; may create the waker on first call.
    fn waker(&self) -> &Waker;
    /// The lent waker was woken during the poll (`wake_by_ref`, or `wake` of the lent waker
    /// itself): the poller should poll again.
    fn woken(&self);
}

/// Polls `future` once with a waker backed by `lazy` that costs nothing to make: a pointer to
/// `lazy` and a static table, no reference count, no allocation, no atomic operation.
///
/// A future that completes at once never keeps its waker, so an executor that gives the
/// first poll such a waker pays for a real one only when the future is pending: cloning the
/// lent waker clones [`LazyWaker::waker`], and waking it (by reference, during the poll)
/// calls [`LazyWaker::woken`]. The lent waker cannot outlive the poll (the context only
/// borrows it); everything that can be kept is a clone, hence a real waker.
///
/// # Examples
///
/// ```
/// use core::pin::pin;
/// use core::sync::atomic::{AtomicBool, Ordering};
/// use core::task::{Poll, Waker};
/// use aiothreads_core::park::{poll_with_lazy_waker, LazyWaker};
///
/// struct Lazy { woken: AtomicBool }
/// impl LazyWaker for Lazy {
///     fn waker(&self) -> &Waker { Waker::noop() }
///     fn woken(&self) { self.woken.store(true, Ordering::Relaxed); }
/// }
///
/// let lazy = Lazy { woken: AtomicBool::new(false) };
/// // Ready at once: no waker was ever made.
/// assert_eq!(poll_with_lazy_waker(&lazy, pin!(async { 7 })), Poll::Ready(7));
///
/// // A future that yields once: it wakes the lent waker, the poller learns it.
/// let mut yielded = false;
/// let yield_once = core::future::poll_fn(|cx| {
///     if yielded { return Poll::Ready(()) }
///     yielded = true;
///     cx.waker().wake_by_ref();
///     Poll::Pending
/// });
/// assert!(poll_with_lazy_waker(&lazy, pin!(yield_once)).is_pending());
/// assert!(lazy.woken.load(Ordering::Relaxed));
/// ```
#[inline]
pub fn poll_with_lazy_waker<L: LazyWaker, F: Future + ?Sized>(
    lazy: &L,
    future: Pin<&mut F>,
) -> Poll<F::Output> {
    let raw = RawWaker::new((lazy as *const L).cast(), Lent::<L>::VTABLE);
    // SAFETY: `Lent::<L>`'s functions uphold the `RawWaker` contract for a `data` that points
    // to a live `L`: they only take `&L` (and `L: Sync`, so any thread may call them), `clone`
    // returns an owned clone of a real waker, and `wake`/`drop` own nothing (the lent waker
    // owns no resource). `lazy` outlives every call: the waker is only lent, by reference, to
    // the one poll below (a `Context` cannot give it away; a clone is a real waker), and is
    // dropped (a no-op) before this function returns.
    let waker = unsafe { Waker::from_raw(raw) };
    future.poll(&mut Context::from_waker(&waker))
}

/// The vtable of a waker lent by [`poll_with_lazy_waker`]: `data` is a `&L`.
struct Lent<L>(PhantomData<L>);

impl<L: LazyWaker> Lent<L> {
    const VTABLE: &'static RawWakerVTable =
        &RawWakerVTable::new(Self::clone, Self::wake, Self::wake, Self::drop);

    /// A clone of the lent waker: a clone of the real one, whose ownership moves into the
    /// returned `RawWaker`.
    unsafe fn clone(data: *const ()) -> RawWaker {
        // SAFETY: `data` is the `&L` of `poll_with_lazy_waker`, alive while its poll runs, and
        // this is only called through the waker that poll lends (see there).
        let lazy = unsafe { &*data.cast::<L>() };
        let real = core::mem::ManuallyDrop::new(lazy.waker().clone());
        RawWaker::new(real.data(), real.vtable())
    }

    /// `wake` and `wake_by_ref` of the lent waker.
    unsafe fn wake(data: *const ()) {
        // SAFETY: as in `clone`.
        let lazy = unsafe { &*data.cast::<L>() };
        lazy.woken();
    }

    /// The lent waker owns nothing.
    unsafe fn drop(_: *const ()) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// Counts clones through the real waker it hands out.
    struct Counting {
        woken: AtomicBool,
        claims: AtomicUsize,
    }

    impl LazyWaker for Counting {
        fn waker(&self) -> &Waker {
            self.claims.fetch_add(1, Ordering::Relaxed);
            Waker::noop()
        }
        fn woken(&self) {
            self.woken.store(true, Ordering::Relaxed);
        }
    }

    fn counting() -> Counting {
        Counting {
            woken: AtomicBool::new(false),
            claims: AtomicUsize::new(0),
        }
    }

    #[test]
    fn a_clone_is_the_real_waker_and_outlives_the_poll() {
        let lazy = counting();
        let mut kept = None;
        let mut fut = core::pin::pin!(core::future::poll_fn(|cx| {
            kept = Some(cx.waker().clone());
            // Waking the lent one by value (a clone of it) and by reference.
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        }));
        assert!(poll_with_lazy_waker(&lazy, fut.as_mut()).is_pending());
        assert_eq!(lazy.claims.load(Ordering::Relaxed), 1);
        assert!(lazy.woken.load(Ordering::Relaxed));
        let kept = kept.expect("the future kept a clone");
        assert!(
            !core::ptr::eq(kept.vtable(), Lent::<Counting>::VTABLE),
            "the clone is the real waker, not the lent one"
        );
        kept.wake();
    }

    #[test]
    fn a_ready_future_claims_nothing() {
        let lazy = counting();
        assert_eq!(
            poll_with_lazy_waker(&lazy, core::pin::pin!(async { 3 })),
            Poll::Ready(3)
        );
        assert_eq!(lazy.claims.load(Ordering::Relaxed), 0);
        assert!(!lazy.woken.load(Ordering::Relaxed));
    }
}
