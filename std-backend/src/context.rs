//! Context carried from the submitting task to the thread that runs the job.
//!
//! (Interface stub; the full implementation carries context values and the loop handle.)

/// Everything captured at submission time and installed on the worker for one job.
#[derive(Debug, Default)]
pub(crate) struct Captured {}

impl Captured {
    /// Captures the caller's context. Cheap when nothing is set: no allocation.
    pub(crate) fn capture() -> Self {
        Self {}
    }

    /// Runs `f` on the current thread with the captured context installed, and restores the
    /// previous one afterwards (also on panic).
    pub(crate) fn scope<R>(self, f: impl FnOnce() -> R) -> R {
        f()
    }
}
