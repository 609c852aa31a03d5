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

/// Spends the enclosing tokio budget (128 units) with ready receives, as any busy task may
/// have done before it blocks.
async fn spend_tokios_budget() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..256u32 {
        tx.send(i).unwrap();
    }
    for _ in 0..256 {
        rx.recv().await.unwrap();
    }
}

/// The thread in a multi-thread runtime's `block_on` may block (it is no worker), and its
/// blocking waits run outside the budget of the future it blocks: a hop made after that
/// future spent tokio's budget used to find tokio's `JoinHandle` always `Pending`
/// (self-woken), and spun at 100 % CPU for ever at the 128th `sync_await` in a row.
#[test]
fn sync_await_on_a_block_on_thread_after_the_budget_is_spent() {
    with_timeout("sync_await, budget spent", Duration::from_secs(60), || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            for i in 0..300u32 {
                assert_eq!(aiothreads::sync_await(async move { i }), i);
            }
            spend_tokios_budget().await;
            assert_eq!(aiothreads::try_sync_await(async { 7 }).unwrap(), 7);
        });
    });
}

/// The same for our own stream polled by the public `block_on` on that thread: the stream
/// spends tokio's budget inside a runtime, so an exhausted budget made it yield for ever.
#[test]
fn block_on_of_a_stream_on_a_block_on_thread_after_the_budget_is_spent() {
    with_timeout(
        "block_on stream, budget spent",
        Duration::from_secs(60),
        || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .build()
                .unwrap();
            rt.block_on(async {
                spend_tokios_budget().await;
                let items: Vec<u32> = aiothreads::block_on(IterCall::new(|| 0..1000u32).collect());
                assert_eq!(items, (0..1000).collect::<Vec<_>>());
            });
        },
    );
}

/// A waker that counts its wake-ups.
struct CountingWaker(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Outside tokio a stream whose items are all there still yields: after at most 2 048 items
/// in a row it wakes its own task and returns `Pending` once, then goes on — on its per-item
/// fast path as on the slow one, and again in every later run of items.
#[test]
fn a_fast_stream_yields_on_its_own_budget_outside_tokio() {
    use std::task::{Context, Poll};
    with_timeout("stream own budget", Duration::from_secs(60), || {
        const ITEMS: u32 = 10_000;
        let mut s = IterCall::new(|| 0..ITEMS).max_size(16_384);
        assert_eq!(futures::executor::block_on(s.next()), Some(0));
        // Let the producer push every item, so that no poll below finds the ring empty.
        std::thread::sleep(Duration::from_millis(100));
        let counter = Arc::new(CountingWaker(std::sync::atomic::AtomicUsize::new(0)));
        let waker = std::task::Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let (mut next, mut run, mut runs) = (1u32, 0u32, Vec::new());
        loop {
            match s.poll_next_unpin(&mut cx) {
                Poll::Ready(Some(item)) => {
                    assert_eq!(item, next, "items out of order");
                    next += 1;
                    run += 1;
                }
                Poll::Ready(None) => break,
                Poll::Pending => {
                    assert_eq!(
                        counter.0.load(SeqCst),
                        runs.len() + 1,
                        "a yield must wake its own task (and only a yield may return Pending here)"
                    );
                    runs.push(run);
                    run = 0;
                }
            }
        }
        assert_eq!(next, ITEMS, "items lost");
        assert!(runs.len() >= 4, "too few yields: runs {runs:?}");
        assert!(
            runs.iter().all(|&r| (1..=2048).contains(&r)),
            "a run outlasted the budget: {runs:?}"
        );
    });
}

/// A `FromThreadChannel` whose items are all there yields like a stream: inside tokio it
/// spends tokio's budget (a task woken beside the draining loop runs within about 128 items),
/// elsewhere its own (within 2 048), for bounded and unbounded channels.
#[test]
fn a_full_channel_yields_on_tokio_and_elsewhere() {
    use aiothreads::FromThreadChannel;
    const ITEMS: u32 = 20_000;
    /// A channel holding `0..ITEMS`, its sender gone.
    fn filled(max_size: usize) -> FromThreadChannel<u32> {
        let (mut tx, rx) = FromThreadChannel::new(max_size);
        std::thread::spawn(move || (0..ITEMS).for_each(|i| tx.put(i).unwrap()))
            .join()
            .unwrap();
        rx
    }
    /// Drains `rx`; returns the number of items taken before `ran` was first seen.
    async fn drain(mut rx: FromThreadChannel<u32>, ran: Arc<AtomicBool>) -> u32 {
        let mut seen_at = u32::MAX;
        for want in 0..ITEMS {
            assert_eq!(rx.next().await, Some(want));
            if seen_at == u32::MAX && ran.load(SeqCst) {
                seen_at = want;
            }
        }
        assert_eq!(rx.next().await, None);
        seen_at
    }
    with_timeout("channel coop", Duration::from_secs(60), || {
        for max_size in [ITEMS as usize, 0] {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let rx = filled(max_size);
            let ran = Arc::new(AtomicBool::new(false));
            let r = ran.clone();
            let seen_at = rt.block_on(async move {
                tokio::spawn(async move { r.store(true, SeqCst) });
                drain(rx, ran).await
            });
            assert!(
                seen_at <= 2 * 128,
                "max_size {max_size}, tokio: the other task first ran after item {seen_at}"
            );

            let mut pool = futures::executor::LocalPool::new();
            let rx = filled(max_size);
            let ran = Arc::new(AtomicBool::new(false));
            let (r, seen) = (ran.clone(), Arc::new(std::sync::atomic::AtomicU32::new(0)));
            let out = seen.clone();
            use futures::task::LocalSpawnExt;
            pool.spawner()
                .spawn_local(async move { out.store(drain(rx, ran).await, SeqCst) })
                .unwrap();
            pool.spawner()
                .spawn_local(async move { r.store(true, SeqCst) })
                .unwrap();
            pool.run();
            let seen_at = seen.load(SeqCst);
            assert!(
                seen_at <= 2048,
                "max_size {max_size}, LocalPool: the other task first ran after item {seen_at}"
            );
        }
    });
}
