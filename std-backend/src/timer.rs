//! A small timer of our own, so that timeouts work on every executor — the built-in
//! [`block_on`](crate::block_on), smol, `futures::executor`, custom ones — without a runtime:
//! [`timeout`], [`sleep`], and [`FromThreadChannel::get_timeout`](crate::FromThreadChannel::get_timeout).
//!
//! # Design
//! One thread, `aiothreads-timer`, started on the first timer that has to wait, sleeps on a
//! `Condvar` until the earliest deadline of an ordered map `(deadline, id) → waker`. A pending
//! [`Sleep`] holds its key: polling it again replaces its waker, dropping it removes its entry
//! (a dropped waiter deregisters itself; the map never holds timers nobody waits for). The
//! thread wakes the expired entries' wakers after releasing the lock.
//!
//! Cost: a timer that expires before its first poll costs nothing; one that waits costs one
//! map insertion (one allocation for the waker clone, amortised node allocations) under one
//! lock, and a `Condvar` notification only when it becomes the earliest deadline.

use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::collections::BTreeMap;
use std::fmt;
use std::pin::pin;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::Instant;

/// The shared timer state.
struct Timer {
    entries: Mutex<Entries>,
    cv: Condvar,
}

#[derive(Default)]
struct Entries {
    map: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
    /// Whether the timer thread runs (it is started once, on first need).
    started: bool,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<Timer> = OnceLock::new();
    TIMER.get_or_init(|| Timer {
        entries: Mutex::new(Entries::default()),
        cv: Condvar::new(),
    })
}

impl Timer {
    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The timer thread: wakes expired entries, sleeps until the next deadline.
    fn run(&self) {
        let mut entries = self.lock();
        loop {
            let now = Instant::now();
            let mut expired = Vec::new();
            while let Some(entry) = entries.map.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                expired.push(entry.remove());
            }
            if !expired.is_empty() {
                drop(entries);
                for waker in expired {
                    // A waker that panics is reported by the panic hook; the timer goes on.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
                }
                entries = self.lock();
                continue;
            }
            entries = match entries.map.first_key_value() {
                Some((&(deadline, _), _)) => {
                    self.cv
                        .wait_timeout(entries, deadline.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .cv
                    .wait(entries)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

/// Future of [`sleep`]: ready once its deadline has passed.
///
/// Cancel-safe; dropping it removes its timer entry.
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Option<Instant>,
    /// The entry's key while one is registered.
    key: Option<(Instant, u64)>,
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// A future that is ready after `duration`, on any executor (the crate's own timer thread
/// wakes it; no runtime needed). `Duration::MAX` (or any duration too long to express as an
/// `Instant`) never ends.
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// aiothreads::block_on(aiothreads::sleep(Duration::from_millis(5)));
/// assert!(start.elapsed() >= Duration::from_millis(5));
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        deadline: Instant::now().checked_add(duration),
        key: None,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let Some(deadline) = this.deadline else {
            // Never: no entry is kept for it.
            return Poll::Pending;
        };
        if Instant::now() >= deadline {
            this.cancel();
            return Poll::Ready(());
        }
        let t = timer();
        let mut entries = t.lock();
        match this.key {
            Some(key) => match entries.map.get_mut(&key) {
                Some(waker) => {
                    if !waker.will_wake(cx.waker()) {
                        *waker = cx.waker().clone();
                    }
                }
                // The timer thread took it: the deadline passed meanwhile.
                None => {
                    this.key = None;
                    return Poll::Ready(());
                }
            },
            None => {
                let key = (deadline, entries.next_id);
                entries.next_id += 1;
                let earliest = entries.map.first_key_value().is_none_or(|(k, _)| key < *k);
                entries.map.insert(key, cx.waker().clone());
                this.key = Some(key);
                if !entries.started {
                    entries.started = true;
                    let spawned = thread::Builder::new()
                        .name("aiothreads-timer".into())
                        .spawn(|| timer().run());
                    if let Err(e) = spawned {
                        entries.started = false;
                        entries.map.remove(&key);
                        this.key = None;
                        drop(entries);
                        panic!("aiothreads: could not start the timer thread: {e}");
                    }
                } else if earliest {
                    t.cv.notify_one();
                }
            }
        }
        Poll::Pending
    }
}

impl Sleep {
    fn cancel(&mut self) {
        if let Some(key) = self.key.take() {
            timer().lock().map.remove(&key);
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The time ran out before the future completed (see [`timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed {
    after: Duration,
}

impl Elapsed {
    /// The time that ran out.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let r = aiothreads::block_on(aiothreads::timeout(
    ///     Duration::from_millis(1),
    ///     std::future::pending::<()>(),
    /// ));
    /// assert_eq!(r.unwrap_err().after(), Duration::from_millis(1));
    /// ```
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {}s", self.after.as_secs_f64())
    }
}

impl core::error::Error for Elapsed {}

/// Runs `fut` for at most `after`: its output, or [`Elapsed`] if the time runs out first (the
/// future is then dropped). Works on every executor, including [`block_on`](crate::block_on),
/// through the crate's timer thread.
///
/// # Errors
/// [`Elapsed`] when `after` passed before `fut` completed.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let quick = aiothreads::block_on(aiothreads::timeout(Duration::from_secs(5), async { 1 }));
/// assert_eq!(quick, Ok(1));
/// let slow = aiothreads::block_on(aiothreads::timeout(
///     Duration::from_millis(5),
///     aiothreads::sleep(Duration::from_secs(60)),
/// ));
/// assert!(slow.is_err());
/// ```
pub async fn timeout<F: Future>(after: Duration, fut: F) -> Result<F::Output, Elapsed> {
    let mut fut = pin!(fut);
    let mut sleep = sleep(after);
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            sleep.cancel();
            return Poll::Ready(Ok(out));
        }
        match Pin::new(&mut sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed { after })),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
