//! Error types of the ring. Errors of the producer hand the value back.

use core::fmt;

/// Why [`Producer::send_iter`](super::Producer::send_iter) stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendIterEnd {
    /// The iterator returned `None`.
    Exhausted,
    /// No free slot (no item was taken from the iterator for it).
    Full,
    /// The ring is closed (no item was taken from the iterator after the close was seen).
    Closed,
    /// `max` items were sent.
    Limit,
}

/// Why [`Producer::push`](super::Producer::push) (or `try_send`) failed; holds the value.
///
/// `Debug` does not require `T: Debug`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PushError<T> {
    /// No free slot; the consumer has not caught up.
    Full(T),
    /// The ring is closed (the consumer left, or a half called `close`).
    Closed(T),
}

impl<T> PushError<T> {
    /// The value that could not be pushed.
    ///
    /// # Examples
    /// ```
    /// use aiothreads_core::ring::PushError;
    /// assert_eq!(PushError::Full(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(value) | Self::Closed(value) => value,
        }
    }

    /// `true` for [`PushError::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }

    /// `true` for [`PushError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("ring is full"),
            Self::Closed(_) => f.write_str("ring is closed"),
        }
    }
}

impl<T> core::error::Error for PushError<T> {}

/// Why [`Consumer::pop`](super::Consumer::pop) returned no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PopError {
    /// No item right now; the producer may push more.
    Empty,
    /// No item and none will come: the ring is closed and drained.
    Closed,
}

impl fmt::Display for PopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("ring is empty"),
            Self::Closed => f.write_str("ring is closed and empty"),
        }
    }
}

impl core::error::Error for PopError {}

/// The ring is closed. `Closed` (that is, `Closed<()>`) is returned by
/// [`Producer::poll_ready`](super::Producer::poll_ready); `Closed<T>` hands back the value
/// that a `send` or `push_blocking` could not deliver.
///
/// `Debug` does not require `T: Debug`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Closed<T = ()>(pub T);

impl<T> Closed<T> {
    /// The value that could not be sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Closed(..)")
    }
}

impl<T> fmt::Display for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ring is closed")
    }
}

impl<T> core::error::Error for Closed<T> {}
