//! [`TakeCell`]: a value that can be taken out exactly once through a shared reference.
//!
//! The std backend stores a job's closure in the same allocation as its result slot and
//! shares that allocation between the queue and the awaiting handle; whichever worker runs the
//! job takes the closure out through `&self`. `TakeCell` makes that safe: the first `take`
//! wins, later ones get `None`, and an untaken value is dropped with the cell.
//!
//! # Memory ordering
//! `take` is one `swap(true, Acquire)` on the `taken` flag: the winner is the only thread that
//! ever reads the value, and `Acquire` orders that read after the flag's update. The value was
//! written before the cell was shared (at construction), so publication is done by whatever
//! shared the cell (an `Arc`, a channel, a `static` initializer).
//!
//! # Examples
//! ```
//! use aiothreads_core::take::TakeCell;
//!
//! let cell = TakeCell::new(String::from("job"));
//! assert_eq!(cell.take().as_deref(), Some("job"));
//! assert_eq!(cell.take(), None);
//! ```

use core::mem::MaybeUninit;

use crate::sync::{AtomicBool, Ordering, UnsafeCell};

/// A value that can be taken out once through `&self`. See the [module docs](self).
pub struct TakeCell<T> {
    /// `true` once the value has been moved out (or was never there).
    taken: AtomicBool,
    /// Initialised while `taken` is `false`.
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is moved out by at most one thread (the winner of the `swap`), and moving
// a `T` to another thread requires `T: Send`. No `&T` is ever handed out, so `T: Sync` is not
// needed for `TakeCell<T>: Sync`.
unsafe impl<T: Send> Sync for TakeCell<T> {}
// SAFETY: owning the cell is owning a `T`.
unsafe impl<T: Send> Send for TakeCell<T> {}

impl<T> TakeCell<T> {
    /// A cell holding `value`.
    #[cfg(not(aiothreads_loom))]
    pub const fn new(value: T) -> Self {
        Self {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(MaybeUninit::new(value)),
        }
    }

    /// A cell holding `value` (loom build: loom's atomics are not `const`).
    #[cfg(aiothreads_loom)]
    pub fn new(value: T) -> Self {
        Self {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(MaybeUninit::new(value)),
        }
    }

    /// Takes the value out; `None` if it was taken before.
    ///
    /// Cost: one atomic swap.
    pub fn take(&self) -> Option<T> {
        // Acquire: pairs with nothing written later; it keeps the value read below after the
        // flag update, so two threads can never both read it.
        if self.taken.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: we are the only thread that saw `taken == false`, so the value is still
        // initialised and nobody else will read or drop it.
        Some(self.value.with(|ptr| unsafe { (*ptr).assume_init_read() }))
    }

    /// Whether the value has been taken.
    pub fn is_taken(&self) -> bool {
        self.taken.load(Ordering::Acquire)
    }
}

impl<T> Drop for TakeCell<T> {
    fn drop(&mut self) {
        if !self.taken.load(Ordering::Relaxed) {
            // SAFETY: `&mut self` excludes every other access, and the value is still
            // initialised because nobody took it.
            self.value
                .with_mut(|ptr| unsafe { (*ptr).assume_init_drop() });
        }
    }
}

impl<T> core::fmt::Debug for TakeCell<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TakeCell")
            .field("taken", &self.is_taken())
            .finish_non_exhaustive()
    }
}
