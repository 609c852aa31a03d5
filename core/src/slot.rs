//! Oneshot slot.
