//! Cooperative scheduling: calls and streams that are ready at once still let the executor
//! run other tasks (tokio's budget inside tokio, a per-thread budget elsewhere).

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use aiothreads::{IterCall, JoinHandle};
use aiothreads_tests::{wait_until, with_timeout};
use futures::StreamExt;

const N: usize = 1000;

/// `N` finished jobs: awaiting them never waits.
fn finished_handles() -> Vec<JoinHandle<usize>> {
    let handles: Vec<_> = (0..N).map(|i| aiothreads::spawn(move || i)).collect();
    assert!(wait_until(Duration::from_secs(20), || handles
        .iter()
        .all(JoinHandle::is_finished)));
    handles
}

/// Awaits every handle; returns whether `other` ran before the last one was taken.
async fn drain(handles: Vec<JoinHandle<usize>>, other: Arc<AtomicBool>) -> bool {
    let mut seen_before_end = false;
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await, i);
        if i + 1 < N {
            seen_before_end |= other.load(SeqCst);
        }
    }
    seen_before_end
}

#[test]
fn a_loop_of_ready_calls_yields_on_tokio() {
    with_timeout("tokio coop", Duration::from_secs(60), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let handles = finished_handles();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let yielded = rt.block_on(async move {
            tokio::spawn(async move { r.store(true, SeqCst) });
            drain(handles, ran).await
        });
        assert!(
            yielded,
            "the other task never ran while the calls were awaited"
        );
    });
}

#[test]
fn a_loop_of_ready_calls_yields_elsewhere() {
    with_timeout("own coop", Duration::from_secs(60), || {
        let mut pool = futures::executor::LocalPool::new();
        let handles = finished_handles();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let result = Arc::new(AtomicBool::new(false));
        let out = result.clone();
        use futures::task::LocalSpawnExt;
        pool.spawner()
            .spawn_local(async move { out.store(drain(handles, ran).await, SeqCst) })
            .unwrap();
        pool.spawner()
            .spawn_local(async move { r.store(true, SeqCst) })
            .unwrap();
        pool.run();
        assert!(
            result.load(SeqCst),
            "the other task never ran while the calls were awaited"
        );
    });
}

/// Inside tokio a stream spends tokio's budget (128 units per task poll, one per item), as
/// tokio's own channels do: a task woken beside a draining stream runs within about 128 items,
/// not after the stream's own budget of 2 048.
#[test]
fn a_fast_stream_spends_tokios_budget() {
    with_timeout("stream tokio budget", Duration::from_secs(60), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let first_seen = rt.block_on(async move {
            let mut s = IterCall::new(|| 0..100_000u32).max_size(4096);
            assert_eq!(s.next().await, Some(0));
            // Let the producer fill the ring, so that every item below is there at once (a
            // slower producer only makes the stream return `Pending` sooner).
            std::thread::sleep(Duration::from_millis(50));
            tokio::spawn(async move { r.store(true, SeqCst) });
            for want in 1..4096 {
                assert_eq!(s.next().await, Some(want));
                if ran.load(SeqCst) {
                    return want;
                }
            }
            u32::MAX
        });
        assert!(
            first_seen <= 2 * 128,
            "the other task first ran after item {first_seen}: tokio's budget was not spent"
        );
    });
}
