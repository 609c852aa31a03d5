//! "Performance Considerations": `#[threaded_separate]` for long CPU-bound work, `#[threaded]` for
//! I/O-bound work, and the pool size set once for the process —
//! `loop.set_default_executor(ThreadPoolExecutor(max_workers=10))` becomes
//! `aiothreads::set_default_pool(Pool::builder().max_threads(10).build())`
//! (or the environment variable `AIOTHREADS_MAX_THREADS=10`).
//!
//! The I/O of the original (`requests.get(url)`) is simulated with a sleep.
//!
//! Rust has no GIL, so CPU-bound work runs in parallel on the pool too: `#[threaded]` is the
//! default choice for it as well (bounded by the pool size), `#[threaded_separate]` is for work
//! that may run so long it would monopolise a worker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aiothreads::Pool;

fn expensive_cpu_work(data: u64) -> u64 {
    (0..200_000u64).fold(data, |acc, k| {
        acc.wrapping_mul(6364136223846793005).wrapping_add(k)
    })
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MAX_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// For CPU-bound work that may run long: a thread of its own, named `cpu_bound_task`.
#[aiothreads::threaded_separate]
fn cpu_bound_task(data: u64) -> (u64, String) {
    let name = std::thread::current().name().unwrap_or("?").to_owned();
    (expensive_cpu_work(data), name)
}

/// For I/O-bound work the pool is usually sufficient.
#[aiothreads::threaded]
fn io_bound_task(url: String) -> String {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    MAX_RUNNING.fetch_max(now, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(50)); // the request
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    format!("response of {url}")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Control the pool size for the whole process: before the default pool is first used.
    aiothreads::set_default_pool(Pool::builder().max_threads(10).build())
        .expect("the default pool was not used yet");
    assert_eq!(aiothreads::default_pool().max_threads(), 10);
    // Once set (or used), it is fixed:
    assert!(aiothreads::set_default_pool(Pool::new()).is_err());

    let (values, names): (Vec<u64>, Vec<String>) =
        futures::future::join_all((0..3).map(|i| cpu_bound_task(i).call()))
            .await
            .into_iter()
            .unzip();
    println!("cpu_bound_task results {values:x?} on threads {names:?}");
    assert!(names.iter().all(|n| n == "cpu_bound_task"));
    assert_eq!(values[1], expensive_cpu_work(1));

    // 25 requests of 50 ms on a pool of 10: three waves, never more than 10 at once.
    let start = Instant::now();
    let urls = (0..25).map(|i| format!("http://example.com/{i}"));
    let responses = futures::future::join_all(urls.map(|u| io_bound_task(u).call())).await;
    let elapsed = start.elapsed();
    let max_running = MAX_RUNNING.load(Ordering::SeqCst);
    println!(
        "{} responses in {elapsed:?}, at most {max_running} at once (pool of {})",
        responses.len(),
        aiothreads::default_pool().max_threads()
    );
    assert_eq!(responses[24], "response of http://example.com/24");
    assert!(max_running <= 10, "{max_running} requests ran at once");
    assert!(
        elapsed >= Duration::from_millis(150),
        "25 jobs, 10 threads: 3 waves"
    );
}
