//! Bad input: every misuse gives a clear error or a documented behaviour — never a hang, an
//! abort or undefined behaviour. Each test is bounded by a timeout that fails it.
//!
//! Environment variables are read once per process, so the tests of invalid values run in a
//! child process: this test binary re-executed with a name filter and the variable set.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use aiothreads::{
    IterCall, JoinError, Pool, SyncAwaitError, TrySpawnError, MAX_SIZE_ENV, MAX_THREADS_ENV,
};
use aiothreads_core::ring;
use futures::executor::block_on;
use futures::StreamExt;

const LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on its own thread; fails the test if it takes longer than `limit`.
fn bounded<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    aiothreads_tests::with_timeout(what, LIMIT, f)
}

/// The message of a panic payload.
fn message(payload: &(dyn Any + Send)) -> String {
    aiothreads_tests::panic_message(payload)
}

/// Runs `f`, expects it to panic, returns the message.
fn panic_message<R>(f: impl FnOnce() -> R) -> String {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic"),
        Err(p) => message(&*p),
    }
}

#[test]
fn max_size_zero_means_unbounded_where_the_original_says_so() {
    // Iterables and channels: 0 is the original's "unbounded" (no panic, no bound).
    let (_tx, rx) = aiothreads::FromThreadChannel::<u8>::new(0);
    assert_eq!(rx.max_size(), 0);
    let items: Vec<u32> = aiothreads::block_on(futures::StreamExt::collect(
        IterCall::new(|| 0..3).max_size(0),
    ));
    assert_eq!(items, [0, 1, 2]);
    // The reverse bridge has no unbounded mode: its bound is a clear panic.
    let msg = panic_message(|| aiothreads::blocking_iter(futures::stream::iter(0..3), 0));
    assert_eq!(msg, "blocking_iter: max_size must be at least 1");
    assert!(ring::try_with_capacity::<u8>(0).is_err());
}

#[test]
fn absurd_max_size_is_a_clear_panic_not_an_abort() {
    bounded("absurd max_size", || {
        // More slots than an index can address: refused before any allocation.
        let msg = panic_message(|| {
            block_on(
                IterCall::new(|| 0..3u64)
                    .max_size(usize::MAX)
                    .collect::<Vec<_>>(),
            )
        });
        assert_eq!(
            msg,
            format!(
                "threaded iterable: ring capacity {} is too large",
                usize::MAX
            )
        );
        // A buffer larger than `isize::MAX` bytes: refused by the layout check.
        assert!(ring::try_with_capacity::<u64>(usize::MAX / 2).is_err());
        // 1 << 40 eight-byte items = 8 TiB: the allocation fails (or, with overcommit, is
        // merely reserved). Either way a clean result, never `handle_alloc_error`'s abort.
        match ring::try_with_capacity::<u64>(1 << 40) {
            Err(e) => assert_eq!(e.capacity(), 1 << 40),
            Ok((mut tx, mut rx)) => {
                tx.push(7).unwrap();
                assert_eq!(rx.pop(), Ok(7));
            }
        }
        let outcome = catch_unwind(|| {
            block_on(
                IterCall::new(|| 0..3u64)
                    .max_size(1 << 40)
                    .collect::<Vec<_>>(),
            )
        });
        match outcome {
            Ok(items) => assert_eq!(items, [0, 1, 2]),
            Err(p) => assert!(message(&*p).contains("too large"), "{}", message(&*p)),
        }
    });
}

#[test]
fn zero_sized_items_and_tiny_queues() {
    bounded("ZST items", || {
        let n = block_on(
            IterCall::new(|| std::iter::repeat_n((), 10_000))
                .max_size(1)
                .count(),
        );
        assert_eq!(n, 10_000);
        let (mut tx, mut rx) = ring::try_with_capacity::<()>(1).unwrap();
        tx.push(()).unwrap();
        assert!(tx.push(()).is_err());
        assert_eq!(rx.pop(), Ok(()));
    });
}

#[test]
fn pool_of_size_zero_is_a_clear_panic() {
    assert_eq!(
        panic_message(|| Pool::builder().max_threads(0)),
        "aiothreads::Builder::max_threads: the pool needs at least one thread"
    );
}

#[test]
fn calling_after_shutdown_is_an_error() {
    bounded("after shutdown", || {
        let pool = Pool::builder().max_threads(2).build();
        assert_eq!(block_on(pool.spawn(|| 1)), 1);
        pool.shutdown(Duration::from_secs(5));
        assert!(pool.is_shutdown());
        assert!(matches!(
            block_on(pool.spawn(|| 1).try_join()),
            Err(JoinError::Shutdown)
        ));
        match pool.try_spawn(|| 41 + 1) {
            Err(e @ TrySpawnError::Shutdown(_)) => {
                assert_eq!(e.to_string(), "the thread pool was shut down");
                assert_eq!((e.into_inner())(), 42, "the closure is handed back");
            }
            other => panic!("expected TrySpawnError::Shutdown, got {other:?}"),
        }
        // A plain `.await` panics with the error's message.
        assert_eq!(
            panic_message(|| block_on(pool.spawn(|| 1))),
            "the thread pool was shut down; the job did not run"
        );
        // The call forms and the iterables on that pool say the same.
        let f = aiothreads::threaded(|x: u32| x).on(&pool);
        assert!(matches!(
            block_on(f.call((1,)).try_join()),
            Err(JoinError::Shutdown)
        ));
        let items: Vec<_> = block_on(IterCall::new(|| 0..3).on(&pool).try_stream().collect());
        assert!(
            matches!(&items[..], [Err(JoinError::Shutdown)]),
            "{items:?}"
        );
        // Shutting down again is harmless.
        assert_eq!(
            pool.shutdown(Duration::ZERO),
            aiothreads::ShutdownReport::default()
        );
    });
}

#[test]
fn strict_sync_await_without_a_loop_is_an_error() {
    bounded("no loop", || {
        // A plain thread knows no loop.
        let r = aiothreads::try_sync_await(async { 1 });
        let err = r.unwrap_err();
        assert!(matches!(err, SyncAwaitError::NoLoop));
        assert!(
            err.to_string()
                .starts_with("sync_await: no event loop is known on this thread"),
            "{err}"
        );
        // A worker of a caller that runs on no loop (futures' block_on) knows none either.
        let r = block_on(aiothreads::spawn(|| {
            aiothreads::try_sync_await(async { 1 })
        }));
        assert!(matches!(r, Err(SyncAwaitError::NoLoop)), "{r:?}");
        // The lenient form runs the future inline instead (documented).
        assert_eq!(aiothreads::sync_await(async { 2 }), 2);
    });
}

#[test]
fn bounded_queue_of_zero_is_a_clear_panic() {
    // `max_queued(Some(0))` would admit no call ever (every awaiter would wait forever).
    assert_eq!(
        panic_message(|| Pool::builder().max_queued(Some(0))),
        "aiothreads::Builder::max_queued: the bound must be at least 1 (None: unbounded)"
    );
    // The smallest bound works.
    let pool = Pool::builder().max_queued(Some(1)).build();
    assert_eq!(
        bounded("max_queued(Some(1))", move || block_on(pool.spawn(|| 3))),
        3
    );
}

#[test]
fn extreme_durations_are_accepted() {
    bounded("Duration::MAX", || {
        // "Keep idle workers forever", "wait for running jobs however long it takes".
        let pool = Pool::builder()
            .max_threads(1)
            .keep_alive(Duration::MAX)
            .build();
        for i in 0..3 {
            assert_eq!(block_on(pool.spawn(move || i)), i);
            std::thread::sleep(Duration::from_millis(5)); // let the worker park
        }
        assert_eq!(pool.thread_count(), 1);
        let report = pool.shutdown(Duration::MAX);
        assert_eq!(report.left_running, 0);
        assert_eq!(pool.thread_count(), 0);
        let pool = Pool::builder()
            .keep_alive(Duration::ZERO)
            .spin(Duration::ZERO)
            .build();
        for i in 0..100 {
            assert_eq!(block_on(pool.spawn(move || i)), i);
        }
    });
}

#[test]
fn thread_name_with_a_nul_byte_is_a_clear_panic() {
    // `std::thread::Builder` refuses such a name at spawn time, inside a submission: refused
    // up front instead, so the pool never counts a thread that could not start.
    assert_eq!(
        panic_message(|| Pool::builder().thread_name_prefix("bad\0name")),
        "aiothreads::Builder::thread_name_prefix: a thread name may not contain a NUL byte"
    );
}

// ---- invalid environment values, in a child process -----------------------------------------

/// Set in the child: which probe to run.
const CHILD_ENV: &str = "AIOTHREADS_BAD_INPUT_CHILD";

/// The child side. Without [`CHILD_ENV`] (a normal test run) it does nothing.
#[test]
fn child_env_probe() {
    let Ok(probe) = std::env::var(CHILD_ENV) else {
        return;
    };
    match probe.as_str() {
        "max_size" => {
            let r = catch_unwind(|| block_on(IterCall::new(|| 0..3).count()));
            match r {
                Ok(n) => println!("CHILD-OK items={n}"),
                Err(p) => println!("CHILD-PANIC {}", message(&*p)),
            }
            // An explicit max_size does not read the variable.
            let n = block_on(IterCall::new(|| 0..3).max_size(2).count());
            println!("CHILD-EXPLICIT items={n}");
        }
        "max_threads" => match catch_unwind(Pool::new) {
            Ok(pool) => {
                println!("CHILD-MAX {}", pool.max_threads());
                println!("CHILD-RAN {}", block_on(aiothreads::spawn(|| 7)));
            }
            Err(p) => println!("CHILD-PANIC {}", message(&*p)),
        },
        other => panic!("unknown probe {other}"),
    }
}

/// Runs [`child_env_probe`] in a child process with `var=value`; returns (stdout, stderr).
fn run_child(probe: &str, var: &str, value: &str) -> (String, String) {
    let exe = std::env::current_exe().expect("current_exe");
    let (tx, rx) = mpsc::channel();
    let mut cmd = Command::new(exe);
    cmd.args([
        "child_env_probe",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, probe)
    .env_remove(MAX_SIZE_ENV)
    .env_remove(MAX_THREADS_ENV)
    .env(var, value);
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output());
    });
    let out = rx
        .recv_timeout(LIMIT)
        .expect("child process timed out")
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "child failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

#[test]
fn invalid_default_max_size_env_is_a_clear_panic() {
    for bad in ["abc", "-3", ""] {
        let (stdout, _) = run_child("max_size", MAX_SIZE_ENV, bad);
        let expected = format!(
            "CHILD-PANIC {MAX_SIZE_ENV} must be a non-negative integer (the queue size of \
             threaded iterables, 0: unbounded), got {bad:?}"
        );
        assert!(stdout.contains(&expected), "value {bad:?}: {stdout}");
        assert!(stdout.contains("CHILD-EXPLICIT items=3"), "{stdout}");
    }
    // `0` is the original's "unbounded", as `max_size(0)` is.
    for good in [" 5 ", "0"] {
        let (stdout, _) = run_child("max_size", MAX_SIZE_ENV, good);
        assert!(
            stdout.contains("CHILD-OK items=3"),
            "value {good:?}: {stdout}"
        );
    }
}

#[test]
fn invalid_max_threads_env_is_a_clear_panic() {
    // The same policy as the iterables' variable: a bad value fails loudly, naming the variable
    // and the value, where the pool is configured; it never silently becomes the default.
    for bad in ["abc", "0", "-1", "1.5", "64k", ""] {
        let (stdout, _) = run_child("max_threads", MAX_THREADS_ENV, bad);
        let expected = format!(
            "CHILD-PANIC {MAX_THREADS_ENV} must be a positive integer (the size of the default \
             thread pool), got {bad:?}"
        );
        assert!(stdout.contains(&expected), "value {bad:?}: {stdout}");
    }
    let (stdout, _) = run_child("max_threads", MAX_THREADS_ENV, " 3 ");
    assert!(stdout.contains("CHILD-MAX 3"), "{stdout}");
    assert!(stdout.contains("CHILD-RAN 7"), "{stdout}");
}
