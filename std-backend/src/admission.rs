//! Bounded admission: the [`Gate`] in front of a bounded pool's queue, and the owned
//! [`Waiter`] through which an async submitter waits for a place.
//!
//! A gate counts *places*: a job in the queue holds one, and so does a place granted to a
//! waiter that has not used it yet. A submitter that finds no place joins a FIFO list and is
//! woken when one is granted to it. The protocol is correct by construction, not by timing:
//!
//! - **One waiter per freed place.** A freed place goes to the first waiter in the list, which
//!   is marked granted *before* it is woken; nobody else can take that place. A gate never
//!   wakes a waiter without granting it a place, and never grants a place without waking.
//! - **A dropped waiter deregisters itself.** Dropped while waiting, it leaves the list; dropped
//!   after it was granted a place it did not use, it passes the place on to the next waiter.
//! - **A re-polled waiter replaces its waker** (a handle polled by one task, then awaited by
//!   another, is woken through the task that polls it now).
//! - **No queue jumping.** A newcomer takes a free place only when nobody waits.
//!
//! All state sits under one mutex (the gate is on the slow path: it is consulted only by
//! pools built with `max_queued`); wakers are woken after the lock is released. A loom model
//! (`loom_models` below) checks that every waiter is admitted while places are freed, with
//! waiters dropped and re-polled in every order.

use core::task::{Context, Poll, Waker};
use std::collections::VecDeque;
use std::fmt;

#[cfg(not(aiothreads_loom))]
use std::sync::{Mutex, MutexGuard, PoisonError};

#[cfg(aiothreads_loom)]
use loom::sync::{Mutex, MutexGuard};

/// The admission gate of a bounded pool.
pub(crate) struct Gate {
    state: Mutex<GateState>,
}

struct GateState {
    /// The number of places.
    max: usize,
    /// Places held: queued jobs plus places granted and not yet used or given back.
    held: usize,
    /// Waiters in arrival order, with the waker of their latest poll.
    waiting: VecDeque<(u64, Waker)>,
    /// Waiters that were granted a place and have not collected it yet.
    granted: Vec<u64>,
    /// Source of waiter ids.
    next_id: u64,
    /// Set by [`Gate::close`]: every waiter gets `Closed`.
    closed: bool,
}

/// The gate was closed (the pool shut down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

impl Gate {
    /// A gate with `max` places (`max >= 1`).
    pub(crate) fn new(max: usize) -> Self {
        Self {
            state: Mutex::new(GateState {
                max,
                held: 0,
                waiting: VecDeque::new(),
                granted: Vec::new(),
                next_id: 0,
                closed: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        #[cfg(not(aiothreads_loom))]
        return self.state.lock().unwrap_or_else(PoisonError::into_inner);
        #[cfg(aiothreads_loom)]
        return self.state.lock().unwrap();
    }

    /// Takes a place if one is free and nobody waits for one.
    pub(crate) fn try_enter(&self) -> Result<bool, Closed> {
        let mut st = self.lock();
        if st.closed {
            return Err(Closed);
        }
        Ok(st.take_free())
    }

    /// Takes a place even if none is free (a submitter that must not wait nor be refused).
    pub(crate) fn force_enter(&self) {
        self.lock().held += 1;
    }

    /// Gives a place back (a queued job left the queue, or a granted place went unused) and
    /// grants it to the first waiter, if any.
    pub(crate) fn leave(&self) {
        let woken = {
            let mut st = self.lock();
            st.held = st.held.saturating_sub(1);
            st.grant()
        };
        if let Some(w) = woken {
            wake_quietly(w);
        }
    }

    /// Closes the gate: waiting and later submitters get [`Closed`].
    pub(crate) fn close(&self) {
        let waiting = {
            let mut st = self.lock();
            st.closed = true;
            core::mem::take(&mut st.waiting)
        };
        for (_, w) in waiting {
            wake_quietly(w);
        }
    }

    /// Polls `waiter` for a place: `Ready(Ok(()))` once it holds one (the caller must then
    /// use it or give it back with [`leave`](Self::leave)).
    pub(crate) fn poll_enter(
        &self,
        waiter: &mut Waiter,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Closed>> {
        let mut st = self.lock();
        match waiter.id {
            None => {
                if st.closed {
                    return Poll::Ready(Err(Closed));
                }
                if st.take_free() {
                    return Poll::Ready(Ok(()));
                }
                let id = st.next_id;
                st.next_id += 1;
                st.waiting.push_back((id, cx.waker().clone()));
                waiter.id = Some(id);
                Poll::Pending
            }
            Some(id) => {
                if let Some(i) = st.granted.iter().position(|&g| g == id) {
                    st.granted.swap_remove(i);
                    waiter.id = None;
                    return Poll::Ready(Ok(()));
                }
                if st.closed {
                    waiter.id = None;
                    return Poll::Ready(Err(Closed));
                }
                if let Some(entry) = st.waiting.iter_mut().find(|(w, _)| *w == id) {
                    if !entry.1.will_wake(cx.waker()) {
                        entry.1 = cx.waker().clone();
                    }
                }
                Poll::Pending
            }
        }
    }

    /// A waiter went away before it collected a place: it leaves the list, or passes the
    /// place it was granted on to the next waiter.
    pub(crate) fn cancel(&self, waiter: &mut Waiter) {
        let Some(id) = waiter.id.take() else {
            return;
        };
        let woken = {
            let mut st = self.lock();
            if let Some(i) = st.waiting.iter().position(|(w, _)| *w == id) {
                // Still waiting: just leave (removing keeps the order of the others).
                drop(st.waiting.remove(i));
                None
            } else if let Some(i) = st.granted.iter().position(|&g| g == id) {
                // Granted, never collected: the place goes to the next waiter.
                st.granted.swap_remove(i);
                st.held = st.held.saturating_sub(1);
                st.grant()
            } else {
                None
            }
        };
        if let Some(w) = woken {
            wake_quietly(w);
        }
    }

    /// Places held and places in all (for `Debug` and tests).
    pub(crate) fn usage(&self) -> (usize, usize) {
        let st = self.lock();
        (st.held, st.max)
    }
}

/// Wakes `w`; a panic of the waker is reported by the panic hook and goes no further. The
/// gate is opened from pool workers and from other submitters' `Drop`: one faulty waker must
/// not kill a worker or stop the others' wake-ups. The place stays granted: the waiter
/// collects it when it is polled again.
fn wake_quietly(w: Waker) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.wake()));
}

impl GateState {
    fn take_free(&mut self) -> bool {
        if self.waiting.is_empty() && self.held < self.max {
            self.held += 1;
            true
        } else {
            false
        }
    }

    /// If a place is free, grants it to the first waiter and returns the waker to wake.
    fn grant(&mut self) -> Option<Waker> {
        if self.closed || self.held >= self.max {
            return None;
        }
        let (id, waker) = self.waiting.pop_front()?;
        self.held += 1;
        self.granted.push(id);
        Some(waker)
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (held, max) = self.usage();
        f.debug_struct("Gate")
            .field("held", &held)
            .field("max", &max)
            .finish_non_exhaustive()
    }
}

/// A submitter's place in a gate's waiting list: `None` until it first had to wait, and again
/// once it collected its place. Whoever owns a `Waiter` must call [`Gate::cancel`] when it
/// gives up (the owners do so in their `Drop`).
#[derive(Debug, Default)]
pub(crate) struct Waiter {
    id: Option<u64>,
}

#[cfg(all(test, not(aiothreads_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(std::sync::atomic::AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(0.into()));
        (c.clone(), Waker::from(c))
    }
    fn wakes(c: &Count) -> usize {
        c.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn dropped_waiter_passes_its_turn_on() {
        let gate = Gate::new(1);
        assert_eq!(gate.try_enter(), Ok(true));
        let (ca, wa) = counter();
        let (cb, wb) = counter();
        let (mut a, mut b) = (Waiter::default(), Waiter::default());
        assert!(gate
            .poll_enter(&mut a, &mut Context::from_waker(&wa))
            .is_pending());
        assert!(gate
            .poll_enter(&mut b, &mut Context::from_waker(&wb))
            .is_pending());
        gate.leave(); // the place goes to `a`
        assert_eq!((wakes(&ca), wakes(&cb)), (1, 0));
        gate.cancel(&mut a); // `a` never collects it: `b` gets it
        assert_eq!(wakes(&cb), 1);
        let got = gate.poll_enter(&mut b, &mut Context::from_waker(&wb));
        assert_eq!(got, Poll::Ready(Ok(())));
        assert_eq!(gate.usage(), (1, 1));
    }

    #[test]
    fn repoll_replaces_the_waker() {
        let gate = Gate::new(1);
        assert_eq!(gate.try_enter(), Ok(true));
        let (c1, w1) = counter();
        let (c2, w2) = counter();
        let mut a = Waiter::default();
        assert!(gate
            .poll_enter(&mut a, &mut Context::from_waker(&w1))
            .is_pending());
        assert!(gate
            .poll_enter(&mut a, &mut Context::from_waker(&w2))
            .is_pending());
        gate.leave();
        assert_eq!((wakes(&c1), wakes(&c2)), (0, 1));
    }

    #[test]
    fn newcomers_do_not_jump_the_queue() {
        let gate = Gate::new(1);
        assert_eq!(gate.try_enter(), Ok(true));
        let (_c, w) = counter();
        let mut a = Waiter::default();
        assert!(gate
            .poll_enter(&mut a, &mut Context::from_waker(&w))
            .is_pending());
        gate.leave(); // granted to `a`
        assert_eq!(gate.try_enter(), Ok(false));
        gate.close();
        // A granted place is still collected after close; new ones are refused.
        assert_eq!(
            gate.poll_enter(&mut a, &mut Context::from_waker(&w)),
            Poll::Ready(Ok(()))
        );
        assert_eq!(gate.try_enter(), Err(Closed));
    }
}

/// Loom model of the admission protocol. Run:
/// `RUSTFLAGS="--cfg aiothreads_loom" cargo test -p aiothreads --lib --release loom_models`.
#[cfg(all(test, aiothreads_loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;

    /// A future that waits for a place, then holds it until dropped or `release`d.
    struct Enter<'a> {
        gate: &'a Gate,
        waiter: Waiter,
        polls: usize,
        give_up_after: Option<usize>,
    }

    impl core::future::Future for Enter<'_> {
        type Output = bool;
        fn poll(mut self: core::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
            let this = &mut *self;
            this.polls += 1;
            if this.give_up_after == Some(this.polls) {
                return Poll::Ready(false);
            }
            match this.gate.poll_enter(&mut this.waiter, cx) {
                Poll::Ready(r) => Poll::Ready(r.is_ok()),
                Poll::Pending => Poll::Pending,
            }
        }
    }

    impl Drop for Enter<'_> {
        fn drop(&mut self) {
            self.gate.cancel(&mut self.waiter);
        }
    }

    /// One place held by the "worker"; two submitters wait. The worker frees the place; each
    /// admitted submitter frees its place again. One submitter gives up after its first poll
    /// (its turn must pass on): the other is always admitted — loom fails the model if a
    /// thread blocks forever.
    #[test]
    fn every_waiter_is_admitted() {
        loom::model(|| {
            let gate = Arc::new(Gate::new(1));
            assert_eq!(gate.try_enter(), Ok(true));
            let submitter = |give_up_after| {
                let gate = gate.clone();
                loom::thread::spawn(move || {
                    let admitted = loom::future::block_on(Enter {
                        gate: &gate,
                        waiter: Waiter::default(),
                        polls: 0,
                        give_up_after,
                    });
                    if admitted {
                        gate.leave();
                    }
                    admitted
                })
            };
            let quitter = submitter(Some(2));
            let patient = submitter(None);
            gate.leave();
            let _ = quitter.join().unwrap();
            assert!(patient.join().unwrap());
            let (held, _) = gate.usage();
            assert_eq!(held, 0);
        });
    }
}
