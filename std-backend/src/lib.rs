//! aiothreads (being written).
#![forbid(unsafe_code)]

pub use aiothreads_core as core;

mod context;

mod call;
mod cancel;
mod pool;
mod separate;
mod task;

pub use call::{threaded, threaded_separate, Call, Threaded, ThreadedFn};
pub use cancel::{cancel_token, is_cancelled, CancelToken};
pub use pool::{
    default_pool, set_default_pool, spawn, Builder, Pool, ShutdownReport, TrySpawnError,
    MAX_THREADS_ENV,
};
pub use separate::{spawn_separate, spawn_separate_named};
pub use task::{JoinError, JoinHandle, TryJoin};
