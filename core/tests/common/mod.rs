//! Helpers shared by the core's behaviour tests (`ring.rs`, `unbounded.rs`): a drop counter,
//! a `Park` for std threads and a waker that counts its wakes.
// Each test crate that includes this module uses only some of it.
#![allow(dead_code)]

use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::Waker;
use std::sync::Arc;
use std::task::Wake;
use std::thread;

use aiothreads_core::park::Park;

/// Counts drops of its values.
#[derive(Debug)]
pub struct Counted(pub Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A `Park` for std threads: the waker unparks the thread that created it.
pub struct ThreadParker;
struct Unparker(thread::Thread);
impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}
impl Park for ThreadParker {
    fn waker(&self) -> Waker {
        Arc::new(Unparker(thread::current())).into()
    }
    fn park(&self) {
        thread::park();
    }
}

/// A waker that counts its wakes.
pub struct CountWake(pub AtomicUsize);
impl CountWake {
    /// The counter and a waker that increments it.
    pub fn pair() -> (Arc<Self>, Waker) {
        let wakes = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        (wakes, waker)
    }
}
impl Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
