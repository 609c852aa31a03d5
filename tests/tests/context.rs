//! Context propagation: `ContextVar` values, the loop, hooks and the `tracing` span travel
//! from the async caller to the worker for that job only, on every executor.

use std::any::Any;
use std::cell::Cell;
use std::sync::Once;
use std::thread;
use std::time::Duration;

use aiothreads::{ContextVar, Loop, Snapshot};

aiothreads::context_var! {
    static USER: String;
    static REQUEST: u64;
}

const LIMIT: Duration = Duration::from_secs(20);

use aiothreads_tests::on_every_executor;
use futures::StreamExt;

/// Runs `f` on a fresh thread and fails the test if it takes longer than [`LIMIT`].
fn bounded<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    aiothreads_tests::with_timeout("context test", LIMIT, f)
}

#[test]
fn values_reach_the_worker_per_call() {
    on_every_executor(|| async {
        let handle_request = |user: &str, id: u64| {
            let user = user.to_owned();
            USER.scope(
                user,
                REQUEST.scope(id, async {
                    aiothreads::spawn(|| format!("{} #{}", USER.get(), REQUEST.get())).await
                }),
            )
        };
        let (a, b) = futures::join!(handle_request("alice", 1), handle_request("bob", 2));
        assert_eq!(a, "alice #1");
        assert_eq!(b, "bob #2");
        // Outside the scopes: nothing, here and in a job.
        assert!(!USER.is_set());
        assert_eq!(aiothreads::spawn(|| USER.try_get()).await, None);
    });
}

#[test]
fn worker_changes_do_not_flow_back() {
    on_every_executor(|| {
        USER.scope("caller".to_owned(), async {
            let seen_in_worker =
                aiothreads::spawn(|| USER.sync_scope("worker".to_owned(), || USER.get())).await;
            assert_eq!(seen_in_worker, "worker");
            assert_eq!(USER.get(), "caller");
            // A later job sees the caller's value again, not the worker's.
            assert_eq!(aiothreads::spawn(|| USER.get()).await, "caller");
        })
    });
}

#[test]
fn value_follows_the_task_across_tokio_worker_threads() {
    bounded(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let task = rt.spawn(REQUEST.scope(42, async {
            let mut threads = std::collections::HashSet::new();
            for _ in 0..200 {
                threads.insert(thread::current().id());
                assert_eq!(REQUEST.get(), 42);
                tokio::task::yield_now().await;
            }
            threads.len()
        }));
        let threads = rt.block_on(task).unwrap();
        assert!(threads >= 1);
    });
}

#[test]
fn separate_threads_and_snapshots_carry_values() {
    on_every_executor(|| {
        USER.scope("carol".to_owned(), async {
            assert_eq!(aiothreads::spawn_separate(|| USER.get()).await, "carol");
            // A hand-rolled thread (asyncio.to_thread style).
            let snapshot = Snapshot::capture();
            let t = thread::spawn(move || snapshot.scope(|| USER.get()));
            assert_eq!(t.join().unwrap(), "carol");
            // Into a spawned task of the same executor.
            let task = Snapshot::capture().wrap(async { USER.get() });
            assert_eq!(
                aiothreads::spawn(move || aiothreads::block_on(task)).await,
                "carol"
            );
        })
    });
}

#[test]
fn the_worker_context_reaches_sync_await_futures() {
    bounded(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(USER.scope("dave".to_owned(), async {
            let seen = aiothreads::spawn(|| {
                REQUEST.sync_scope(9, || {
                    aiothreads::sync_await(async {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        (USER.get(), REQUEST.get())
                    })
                })
            })
            .await;
            assert_eq!(seen, ("dave".to_owned(), 9));
        }));
    });
}

/// What a `sync_await` future sets stays in it, with a loop (the future runs in the context
/// captured for it) and without one (it runs here, in a copy of this thread's context): the
/// job's context is the same afterwards on every executor.
#[test]
fn what_a_sync_await_future_sets_stays_in_it() {
    on_every_executor(|| {
        REQUEST.scope(3, async {
            let seen = aiothreads::spawn(|| {
                let inside = aiothreads::sync_await(async {
                    let _kept = REQUEST.set(4);
                    REQUEST.get()
                });
                (inside, REQUEST.get())
            })
            .await;
            assert_eq!(seen, (4, 3), "(inside the future, in the job after it)");
        })
    });
}

#[test]
fn the_loop_is_captured_and_installed() {
    bounded(|| {
        let custom = Loop::from_spawner(|f| {
            thread::spawn(move || aiothreads::block_on(f));
        });
        let _g = custom.enter();
        let (in_pool, in_separate) = aiothreads::block_on(async {
            (
                aiothreads::spawn(Loop::current).await,
                aiothreads::spawn_separate(Loop::current).await,
            )
        });
        assert!(in_pool.unwrap().same_loop(&custom));
        assert!(in_separate.unwrap().same_loop(&custom));
        // Not left behind on the worker: a job submitted without a loop sees none.
        drop(_g);
        assert!(aiothreads::block_on(aiothreads::spawn(Loop::current)).is_none());
    });
}

thread_local! { static TENANT: Cell<u32> = const { Cell::new(0) }; }

struct TenantHook;

impl aiothreads::ContextHook for TenantHook {
    fn capture(&self) -> Option<Box<dyn Any + Send>> {
        let t = TENANT.with(Cell::get);
        (t != 0).then(|| Box::new(t) as Box<dyn Any + Send>)
    }
    fn scope(&self, captured: &mut (dyn Any + Send), f: &mut dyn FnMut()) {
        let t = *captured.downcast_ref::<u32>().unwrap();
        let prev = TENANT.with(|c| c.replace(t));
        f();
        TENANT.with(|c| c.set(prev));
    }
}

#[test]
fn user_hooks_carry_their_context() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| aiothreads::register_context_hook(TenantHook));
    bounded(|| {
        TENANT.with(|c| c.set(17));
        let seen = aiothreads::block_on(aiothreads::spawn(|| TENANT.with(Cell::get)));
        assert_eq!(seen, 17);
        TENANT.with(|c| c.set(0));
        assert_eq!(
            aiothreads::block_on(aiothreads::spawn(|| TENANT.with(Cell::get))),
            0
        );
    });
}

#[test]
fn tracing_span_is_visible_in_the_worker() {
    static SUBSCRIBER: Once = Once::new();
    SUBSCRIBER.call_once(|| {
        // The worker threads need the subscriber too: global default.
        tracing::subscriber::set_global_default(tracing_subscriber::registry()).unwrap();
    });
    bounded(|| {
        let current_name = || tracing::Span::current().metadata().map(|m| m.name());
        let span = tracing::info_span!("handle_request");
        let (in_pool, in_separate) = span.in_scope(|| {
            aiothreads::block_on(async {
                (
                    aiothreads::spawn(current_name).await,
                    aiothreads::spawn_separate(current_name).await,
                )
            })
        });
        assert_eq!(in_pool, Some("handle_request"));
        assert_eq!(in_separate, Some("handle_request"));
        // Outside the span the worker is outside it too.
        assert_eq!(aiothreads::block_on(aiothreads::spawn(current_name)), None);
        // And the waiting worker's span reaches the future run by sync_await.
        let rt = tokio::runtime::Runtime::new().unwrap();
        let lp = Loop::from(rt.handle().clone());
        let on_loop = tracing::info_span!("worker_span")
            .in_scope(|| lp.sync_await(async move { current_name() }));
        assert_eq!(on_loop, Some("worker_span"));
    });
}

#[test]
fn context_var_api() {
    static LOCAL: ContextVar<Vec<u8>> = ContextVar::new("local");
    assert_eq!(LOCAL.name(), "local");
    assert!(std::panic::catch_unwind(|| LOCAL.get()).is_err());
    LOCAL.sync_scope(vec![1, 2], || {
        assert_eq!(LOCAL.with(|v| v.map(Vec::len)), Some(2));
        assert_eq!(LOCAL.try_get(), Some(vec![1, 2]));
    });
}

aiothreads::context_var! {
    static SET_IN_JOB: u32;
    static OTHER: u32;
}

/// `ContextVar::set` inside a job lasts for the rest of that job only: never into the next
/// job on the same worker, never back to the caller.
#[test]
fn set_in_a_job_does_not_leak_into_the_next_job() {
    on_every_executor(|| async {
        let pool = aiothreads::Pool::builder().max_threads(1).build();
        let first = aiothreads::Call::new(|| {
            let _token = SET_IN_JOB.set(5);
            let later_in_job = SET_IN_JOB.get();
            // A job submitted from here sees the value (captured at submission).
            let nested = aiothreads::block_on(aiothreads::spawn(|| SET_IN_JOB.try_get()));
            (later_in_job, nested)
        })
        .on(&pool)
        .await;
        assert_eq!(first, (5, Some(5)));
        let next = aiothreads::Call::new(|| SET_IN_JOB.try_get())
            .on(&pool)
            .await;
        assert_eq!(
            next, None,
            "a job's set leaked into the next job on its worker"
        );
        assert_eq!(
            SET_IN_JOB.try_get(),
            None,
            "a job's set flowed back to the caller"
        );
    });
}

/// `set` inside an iterator lasts for the rest of that stream's producer, across the
/// suspensions of a pool producer (a tiny ring makes it suspend after every item).
#[test]
fn set_in_an_iterator_lasts_for_its_stream() {
    on_every_executor(|| async {
        let pool = aiothreads::Pool::builder().max_threads(1).build();
        let items: Vec<Option<u32>> = aiothreads::IterCall::new(|| {
            (0..6u32).map(|i| {
                if i == 2 {
                    let _ = SET_IN_JOB.set(9);
                }
                SET_IN_JOB.try_get()
            })
        })
        .max_size(1)
        .on(&pool)
        .collect()
        .await;
        assert_eq!(items, [None, None, Some(9), Some(9), Some(9), Some(9)]);
        let next = aiothreads::Call::new(|| SET_IN_JOB.try_get())
            .on(&pool)
            .await;
        assert_eq!(next, None, "the stream's set leaked into a later job");
    });
}

aiothreads::context_var! {
    static AT_ITER_DROP: u32;
}

/// An iterator that reports what it sees when it is dropped.
struct ReportsAtDrop(std::sync::mpsc::Sender<Option<u32>>);

impl Iterator for ReportsAtDrop {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        Some(1)
    }
}

impl Drop for ReportsAtDrop {
    fn drop(&mut self) {
        let _ = self.0.send(AT_ITER_DROP.try_get());
    }
}

/// A stream's iterator is dropped in the stream's context, whether its producer runs on the
/// pool (suspended between jobs) or on a thread of its own.
#[test]
fn a_streams_iterator_is_dropped_in_its_context() {
    on_every_executor(|| {
        AT_ITER_DROP.scope(7, async {
            for separate in [false, true] {
                let (tx, rx) = std::sync::mpsc::channel();
                let mut stream = aiothreads::IterCall::new(move || ReportsAtDrop(tx)).max_size(2);
                if separate {
                    stream = stream.separate();
                }
                assert_eq!(stream.next().await, Some(1));
                stream.close().await.expect("the stream ends cleanly");
                let seen = rx.recv_timeout(LIMIT).expect("the iterator was dropped");
                assert_eq!(seen, Some(7), "separate: {separate}");
            }
        })
    });
}

/// `reset` undoes its `set` even when other values were set in between, and `set` in a
/// scoped future lasts for the rest of that future only.
#[test]
fn reset_and_scoped_set() {
    std::thread::spawn(|| {
        let outer = SET_IN_JOB.set(1);
        let token = SET_IN_JOB.set(2);
        let _other = OTHER.set(7);
        assert_eq!(SET_IN_JOB.get(), 2);
        SET_IN_JOB.reset(token);
        assert_eq!((SET_IN_JOB.get(), OTHER.get()), (1, 7));
        SET_IN_JOB.reset(outer);
        assert_eq!(SET_IN_JOB.try_get(), None);
        let in_scope = aiothreads::block_on(OTHER.scope(1, async {
            let _ = SET_IN_JOB.set(3);
            futures::future::ready(()).await;
            SET_IN_JOB.try_get()
        }));
        assert_eq!(in_scope, Some(3));
        assert_eq!(
            SET_IN_JOB.try_get(),
            None,
            "a scoped set leaked out of its future"
        );
    })
    .join()
    .unwrap();
}

aiothreads::context_var! {
    static IN_STREAM: u32;
}

/// A stream of `items` items, each listing what `IN_STREAM` was at the polls that made it (a
/// pending poll, woken at once, then the ready one); its drop sends what it sees there.
struct Probe {
    items: u32,
    polls: Vec<Option<u32>>,
    dropped: std::sync::mpsc::Sender<Option<u32>>,
}

impl Probe {
    fn new(items: u32) -> (Self, std::sync::mpsc::Receiver<Option<u32>>) {
        let (dropped, seen_at_drop) = std::sync::mpsc::channel();
        let probe = Self {
            items,
            polls: Vec::new(),
            dropped,
        };
        (probe, seen_at_drop)
    }
}

impl futures::Stream for Probe {
    type Item = Vec<Option<u32>>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.items == 0 {
            return Poll::Ready(None);
        }
        self.polls.push(IN_STREAM.try_get());
        if self.polls.len() < 2 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.items -= 1;
        Poll::Ready(Some(std::mem::take(&mut self.polls)))
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.dropped.send(IN_STREAM.try_get());
    }
}

/// Every poll of a stream consumed with `blocking_iter` in a job, and its drop, see the
/// context of the `blocking_iter` call: a value the job sets, or the one it inherited from
/// the caller — whether the stream is driven on the caller's loop (tokio) or inline (no
/// loop), as `sync_await`'s future does.
#[test]
fn blocking_iter_streams_see_the_callers_context() {
    on_every_executor(|| {
        IN_STREAM.scope(5, async {
            let seen = aiothreads::spawn(|| {
                let wait = |rx: std::sync::mpsc::Receiver<Option<u32>>| {
                    rx.recv_timeout(LIMIT).expect("the stream was not dropped")
                };
                let both = |v| vec![v, v];
                // Set in the job, consumed to the end.
                let (probe, at_drop) = Probe::new(4);
                let items: Vec<_> =
                    IN_STREAM.sync_scope(6, || aiothreads::blocking_iter(probe, 1).collect());
                assert_eq!(items, vec![both(Some(6)); 4], "set in the job");
                assert_eq!(wait(at_drop), Some(6), "drop, set in the job");
                // Inherited from the caller.
                let (probe, at_drop) = Probe::new(3);
                let items: Vec<_> = aiothreads::blocking_iter(probe, 2).collect();
                assert_eq!(items, vec![both(Some(5)); 3], "inherited");
                assert_eq!(wait(at_drop), Some(5), "drop, inherited");
                // Dropped early: the stream is dropped in its context too.
                let (probe, at_drop) = Probe::new(100);
                IN_STREAM.sync_scope(7, || {
                    let mut it = aiothreads::blocking_iter(probe, 1);
                    assert_eq!(it.next(), Some(both(Some(7))), "before the early drop");
                });
                assert_eq!(wait(at_drop), Some(7), "early drop");
                // Made in a scope, consumed after it: the context of the call.
                let (probe, at_drop) = Probe::new(2);
                let it = IN_STREAM.sync_scope(8, || aiothreads::blocking_iter(probe, 1));
                let items: Vec<_> = it.collect();
                assert_eq!(items, vec![both(Some(8)); 2], "made in a scope");
                assert_eq!(wait(at_drop), Some(8), "drop, made in a scope");
                // A threaded iterable's producer, started by the stream's first poll.
                IN_STREAM.sync_scope(9, || {
                    let s = aiothreads::IterCall::new(|| std::iter::once(IN_STREAM.try_get()));
                    aiothreads::blocking_iter(s, 1).collect::<Vec<_>>()
                })
            })
            .await;
            assert_eq!(seen, [Some(9)], "IterCall producer");
            assert_eq!(IN_STREAM.get(), 5);
        })
    });
}
