//! aiothreads (being written).
#![forbid(unsafe_code)]

pub use aiothreads_core as core;

mod context;
