//! The `tracing` span travels with the job (feature `tracing`).
//!
//! With the feature on, every capture (a `threaded` call, [`Snapshot::capture`](crate::Snapshot::capture),
//! a [`sync_await`](crate::sync_await)) takes `tracing::Span::current()`, and the job (or each
//! poll of the awaited future) runs inside it (`Span::in_scope`), so events logged in the
//! worker nest under the caller's span — what `tracing::Instrument` does for futures, done for
//! threads. Outside any span (or without a subscriber) nothing is carried and nothing is
//! entered.
//!
//! # Examples
//! ```
//! let span = tracing::info_span!("request", id = 7);
//! let snapshot = span.in_scope(aiothreads::Snapshot::capture);
//! std::thread::spawn(move || {
//!     snapshot.scope(|| tracing::info!("inside the worker, under `request`"));
//! })
//! .join()
//! .unwrap();
//! ```

/// `Span::current()`, or `None` outside any span (so a capture stays free of clones).
pub(crate) fn capture() -> Option<tracing::Span> {
    let span = tracing::Span::current();
    (!span.is_none()).then_some(span)
}
