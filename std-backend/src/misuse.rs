//! The one misuse check of every blocking entry point: would blocking *this* thread wait for
//! work that only this thread can do?
//!
//! Every call that parks a thread until something async happens asks here first, at the
//! moment it would actually park (a call that can finish without waiting never pays for the
//! check):
//!
//! | entry point | waits for | check |
//! |---|---|---|
//! | [`Loop::try_sync_await`] (and `sync_await`, `wait_coroutine`, `sync_wait_coroutine`, `Loop::sync_await` through it) | the given / current loop | [`check_may_block`]`(Some(&lp))` |
//! | `sync_await` with no loop known (falls back to `block_on`) | a future run on this thread | [`check_may_block`]`(None)` when the first poll is pending |
//!
//! A refusal is [`WouldDeadlock`]; the panicking forms panic with [`REASON`], the same text
//! everywhere (it is also `SyncAwaitError::WouldDeadlock`'s `Display`).
//!
//! A `join`-style blocking wait on a job handle should call [`check_may_block`] with the loop
//! it would wait for (`None` if it drives the wait itself with `block_on`) before it parks.

use core::fmt;

use crate::loop_handle::{self, Loop};

/// The reason of every `WouldDeadlock` refusal: the panic message of the panicking forms and
/// the `Display` of [`SyncAwaitError::WouldDeadlock`](crate::SyncAwaitError::WouldDeadlock).
pub(crate) const REASON: &str =
    "aiothreads: this thread drives the event loop that this blocking call waits for; blocking \
     it would wait for work that only this thread can do. Use `.await` here, or make the \
     blocking call from a `threaded` worker or a `spawn_blocking` thread";

/// A blocking wait refused because this thread is the one that would have to make progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WouldDeadlock;

impl WouldDeadlock {
    /// Panics with [`REASON`], blaming the caller's caller.
    #[track_caller]
    pub(crate) fn raise(self) -> ! {
        panic!("{REASON}")
    }
}

impl fmt::Display for WouldDeadlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REASON)
    }
}

/// Whether the current thread may block until something happens on `lp`.
///
/// - `Some(lp)`: the wait is for a task on `lp`; refused when this thread drives `lp`
///   ([`Loop::drives_current_thread`]: a tokio scheduler thread of that runtime, or a thread
///   marked with [`Loop::enter_driver`]).
/// - `None`: the wait is driven on this thread with `block_on` (no loop known); refused when
///   this thread drives *some* loop (a tokio scheduler thread, or one marked with
///   `enter_driver`), whose tasks the future may be waiting for.
///
/// Cost: a thread-local read for marked loops; for tokio, `Handle::try_current` and one poll
/// of `yield_now` with a flag waker (one small allocation). Call it only when the caller is
/// about to park, not per item.
///
/// # Errors
/// [`WouldDeadlock`] when blocking here could never end.
pub(crate) fn check_may_block(lp: Option<&Loop>) -> Result<(), WouldDeadlock> {
    let drives = match lp {
        Some(lp) => lp.drives_current_thread(),
        None => loop_handle::drives_some_loop(),
    };
    if drives {
        Err(WouldDeadlock)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_loop_no_refusal_on_a_plain_thread() {
        assert_eq!(check_may_block(None), Ok(()));
        let lp = Loop::from_spawner(drop);
        assert_eq!(check_may_block(Some(&lp)), Ok(()));
        let _driver = lp.enter_driver();
        assert_eq!(check_may_block(Some(&lp)), Err(WouldDeadlock));
        assert_eq!(check_may_block(None), Err(WouldDeadlock));
    }

    #[test]
    fn message_is_the_reason() {
        let p = std::panic::catch_unwind(|| WouldDeadlock.raise()).unwrap_err();
        assert_eq!(p.downcast_ref::<String>().map(String::as_str), Some(REASON));
        assert_eq!(WouldDeadlock.to_string(), REASON);
    }
}
