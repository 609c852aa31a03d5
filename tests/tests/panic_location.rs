//! A bad size is the caller's mistake: its panic names the caller's line (`#[track_caller]`),
//! not a line inside the library.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use aiothreads::Pool;

/// Runs `f`, which must panic, and returns the file and line the panic reported.
fn panic_location(f: impl FnOnce()) -> (String, u32) {
    let seen = Arc::new(Mutex::new(None));
    let hook_seen = seen.clone();
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let loc = info.location().expect("a location");
        *hook_seen.lock().unwrap() = Some((loc.file().to_owned(), loc.line()));
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(previous);
    assert!(result.is_err(), "expected a panic");
    let seen = seen.lock().unwrap().take();
    seen.expect("the hook ran")
}

// One test, so that no other test's panic reaches the temporary hook.
#[test]
fn bad_sizes_point_at_the_caller() {
    let here = file!();
    type Case = (&'static str, u32, Box<dyn FnOnce()>);
    let cases: [Case; 2] = [
        (
            "max_threads(0)",
            line!() + 1,
            Box::new(|| drop(Pool::builder().max_threads(0))),
        ),
        (
            "max_queued(Some(0))",
            line!() + 1,
            Box::new(|| drop(Pool::builder().max_queued(Some(0)))),
        ),
    ];
    for (what, line, f) in cases {
        let (file, at) = panic_location(f);
        assert_eq!((file.as_str(), at), (here, line), "{what}");
    }
}
