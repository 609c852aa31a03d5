//! Loop guards: `Loop::enter` is the one way to tie a thread to a loop (scoped, or for good
//! with `EnterGuard::keep`), its guard owns what it restores, and a thread that entered a loop
//! is refused a blocking wait on it instead of hanging — on smol, `futures` and custom
//! executors as on tokio.
//!
//! Every test runs under a timeout that fails it: `enter_on_the_executor_thread_...` hung
//! before (`enter` only made the loop current, so nothing told the executor's thread apart).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use aiothreads::{
    blocking_iter, set_current_loop, sync_await, try_sync_await, BoxFuture, EnterGuard, Loop,
    LoopHandle, SpawnError, SyncAwaitError,
};
use aiothreads_core::slot::oneshot;
use aiothreads_tests::{on_every_executor, panic_message, with_timeout};

const LIMIT: Duration = Duration::from_secs(20);

fn bounded<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    with_timeout(what, LIMIT, f)
}

/// The panic message of `f`, which must panic.
fn panic_of<R>(f: impl FnOnce() -> R) -> String {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic"),
        Err(payload) => panic_message(&*payload),
    }
}

fn is_would_deadlock<T>(r: &Result<T, SyncAwaitError>) -> bool {
    matches!(r, Err(SyncAwaitError::WouldDeadlock))
}

/// A loop that runs each future on a thread of its own: nobody needs to drive it.
fn thread_per_task() -> Loop {
    Loop::from_spawner(|fut| {
        thread::spawn(move || aiothreads::block_on(fut));
    })
}

/// Whether `a` and `b` are both `None` or name the same loop.
fn same(a: &Option<Loop>, b: &Option<Loop>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.same_loop(b),
        _ => false,
    }
}

/// A smol executor run by a thread of its own that entered its loop; stops when dropped.
struct SmolThread {
    lp: Loop,
    thread_id: thread::ThreadId,
    stop: Option<aiothreads_core::slot::Sender<()>>,
    runner: Option<thread::JoinHandle<()>>,
}

impl SmolThread {
    fn start() -> Self {
        let ex = Arc::new(smol::Executor::new());
        let lp = Loop::from(Arc::clone(&ex));
        let (stop, stopped) = oneshot::<()>();
        let (id_tx, id_rx) = mpsc::channel();
        let thread_lp = lp.clone();
        let runner = thread::spawn(move || {
            let _driver = thread_lp.enter();
            id_tx.send(thread::current().id()).unwrap();
            smol::block_on(ex.run(async move {
                let _ = stopped.await;
            }));
        });
        Self {
            lp,
            thread_id: id_rx.recv().unwrap(),
            stop: Some(stop),
            runner: Some(runner),
        }
    }

    /// Runs `f` in a task on the executor's thread; its result.
    async fn run_on<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = oneshot();
        self.lp
            .spawn(async move {
                let _ = tx.send(f());
            })
            .unwrap();
        rx.await.expect("the task ran")
    }
}

impl Drop for SmolThread {
    fn drop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.runner.take().unwrap().join().unwrap();
    }
}

#[test]
fn enter_on_the_executor_thread_refuses_instead_of_hanging() {
    // The hang this closes: the only thread running a smol executor entered its loop, then
    // blocked on that loop (the future it waits for could only ever run on this thread).
    let from_executor = |ex: &Arc<smol::Executor<'static>>| Loop::from(Arc::clone(ex));
    let from_spawner = |ex: &Arc<smol::Executor<'static>>| {
        let ex = Arc::clone(ex);
        Loop::from_spawner(move |fut| ex.spawn(fut).detach())
    };
    for make in [from_executor, from_spawner] {
        bounded("enter on a smol executor thread", move || {
            let ex = Arc::new(smol::Executor::new());
            let lp = make(&ex);
            let _guard = lp.enter();
            let here = thread::current().id();
            smol::block_on(ex.run(async {
                assert!(is_would_deadlock(&try_sync_await(async { 1 })));
                assert!(is_would_deadlock(&lp.try_sync_await(async { 1 })));
                let expected = SyncAwaitError::WouldDeadlock.to_string();
                assert_eq!(panic_of(|| sync_await(async { 1 })), expected);
                assert_eq!(
                    panic_of(|| blocking_iter(futures::stream::pending::<u8>(), 1).next()),
                    expected
                );
                // The thread still works as the loop's: a `threaded` call's `sync_await` runs
                // its future here.
                let ran_on =
                    aiothreads::spawn(|| sync_await(async { thread::current().id() })).await;
                assert_eq!(ran_on, here);
            }));
        });
    }
}

/// What the toy executors' threads receive.
enum Job {
    Run(BoxFuture),
    Stop,
}

/// A toy executor: threads that run the futures sent to them one after the other.
#[derive(Debug)]
struct OneByOne(mpsc::Sender<Job>);

impl LoopHandle for OneByOne {
    fn spawn_boxed(&self, fut: BoxFuture) -> Result<(), SpawnError> {
        self.0
            .send(Job::Run(fut))
            .map_err(|_| SpawnError::new("stopped"))
    }
}

/// Starts a toy executor of `threads` threads that calls `on_start` with its loop first on
/// each of its threads (a thread-start hook, as `futures`' `ThreadPool::after_start` or
/// tokio's `on_thread_start`). Returns the loop, a sender to stop the threads (one `Stop`
/// each), and the threads.
fn start_executor(
    threads: usize,
    on_start: impl Fn(Loop) + Send + Sync + 'static,
) -> (Loop, mpsc::Sender<Job>, Vec<thread::JoinHandle<()>>) {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let lp = Loop::new(OneByOne(tx.clone()));
    let on_start = Arc::new(on_start);
    let runners = (0..threads)
        .map(|_| {
            let (rx, on_start, lp) = (Arc::clone(&rx), Arc::clone(&on_start), lp.clone());
            thread::spawn(move || {
                on_start(lp);
                loop {
                    let next = rx.lock().unwrap().recv();
                    match next {
                        Ok(Job::Run(fut)) => aiothreads::block_on(fut),
                        Ok(Job::Stop) | Err(_) => break,
                    }
                }
            })
        })
        .collect();
    (lp, tx, runners)
}

fn stop(stopper: mpsc::Sender<Job>, runners: Vec<thread::JoinHandle<()>>) {
    for _ in &runners {
        stopper.send(Job::Stop).unwrap();
    }
    for runner in runners {
        runner.join().unwrap();
    }
}

#[test]
fn a_kept_guard_ties_a_custom_executors_thread_for_good() {
    bounded("custom executor thread", || {
        // The hook's `Loop` value is dropped at its end: the thread stays tied without it.
        let (lp, stopper, runners) = start_executor(1, |lp| lp.enter().keep());
        // From this (plain) thread: runs on the executor.
        assert_eq!(lp.sync_await(async { 2 }), 2);
        // In a task: the executor's only thread would wait for itself. Refused, not hung.
        let (current, drives, nested) = lp.sync_await(async {
            let current = Loop::current();
            let drives = current.as_ref().is_some_and(Loop::drives_current_thread);
            (current, drives, try_sync_await(async { 3 }))
        });
        assert!(
            same(&current, &Some(lp.clone())),
            "the kept loop is current"
        );
        assert!(drives);
        assert!(is_would_deadlock(&nested));
        stop(stopper, runners);
    });
}

#[test]
fn a_kept_guard_in_a_thread_start_hook_ties_every_pool_thread() {
    bounded("thread-start hook", || {
        let (lp, stopper, runners) = start_executor(2, |lp| lp.enter().keep());
        for _ in 0..8 {
            let (nested, blocked_iter) = lp.sync_await(async {
                let nested = try_sync_await(async { 1 });
                let msg = panic_of(|| blocking_iter(futures::stream::pending::<u8>(), 1).next());
                (nested, msg)
            });
            assert!(is_would_deadlock(&nested));
            assert_eq!(blocked_iter, SyncAwaitError::WouldDeadlock.to_string());
        }
        // A thread that does not run the pool may wait for it.
        assert_eq!(lp.sync_await(async { 4 }), 4);
        stop(stopper, runners);
    });
}

#[test]
fn guards_restore_the_previous_loop_and_marks_on_every_executor() {
    on_every_executor(|| async {
        let before = Loop::current(); // a tokio runtime on tokio's executors, else none
        let a = thread_per_task();
        let b = thread_per_task();
        {
            let outer = a.enter();
            assert!(same(&Loop::current(), &Some(a.clone())));
            assert!(a.drives_current_thread() && !b.drives_current_thread());
            assert!(is_would_deadlock(&try_sync_await(async { 1 })));
            {
                let _inner = b.enter();
                assert!(same(&Loop::current(), &Some(b.clone())));
                // Still tied to `a` too: entering `b` inside does not untie it.
                assert!(a.drives_current_thread() && b.drives_current_thread());
                assert!(is_would_deadlock(&a.try_sync_await(async { 1 })));
            }
            assert!(same(&Loop::current(), &Some(a.clone())));
            assert!(a.drives_current_thread() && !b.drives_current_thread());
            assert_eq!(b.try_sync_await(async { 2 }).ok(), Some(2));
            drop(outer);
        }
        assert!(same(&Loop::current(), &before));
        assert!(!a.drives_current_thread() && !b.drives_current_thread());
        assert_eq!(a.try_sync_await(async { 3 }).ok(), Some(3));
        // The executor's own runtime is as it was (tokio: found again through its context).
        if let Some(rt) = before {
            assert!(Loop::current().unwrap().same_loop(&rt));
        }
    });
}

#[test]
fn a_thread_that_entered_a_loop_sends_threaded_work_to_it_on_every_executor() {
    on_every_executor(|| async {
        let smol_thread = SmolThread::start();
        let lp = smol_thread.lp.clone();
        let guard = lp.enter();
        // Blocking here is refused: a thread that entered the loop counts as its own.
        assert!(is_would_deadlock(&try_sync_await(async { 1 })));
        // A `threaded` call made here captures the loop: its `sync_await` runs on the smol
        // thread. (The guard lives across the await: these executors poll this future on
        // this thread.)
        let ran_on = aiothreads::spawn(|| sync_await(async { thread::current().id() })).await;
        assert_eq!(ran_on, smol_thread.thread_id);
        drop(guard);
        // On the executor's own thread (it entered the loop): refused, not hung.
        let nested = smol_thread.run_on(|| try_sync_await(async { 1 })).await;
        assert!(is_would_deadlock(&nested));
    });
}

#[test]
fn a_guard_outlives_the_loop_value_it_came_from() {
    bounded("owned guard", || {
        let (ran_tx, ran_rx) = mpsc::channel();
        let guard: EnterGuard = {
            let lp = Loop::from_spawner(move |fut| {
                let ran_tx = ran_tx.clone();
                thread::spawn(move || {
                    aiothreads::block_on(fut);
                    let _ = ran_tx.send(());
                });
            });
            lp.enter()
        };
        // Stored away and moved around on this thread, like any owned value.
        let boxed = Box::new(guard);
        let current = Loop::current().expect("the loop lives on in the thread's state");
        assert!(current.drives_current_thread());
        current.spawn(async {}).unwrap();
        ran_rx.recv_timeout(LIMIT).expect("the loop ran the future");
        drop(current);
        drop(boxed);
        assert!(Loop::current().is_none());
    });
}

/// A loop whose handle, when the last clone goes, enters another loop (code that runs while
/// a guard restores the thread: the guard must not hold the thread's state borrowed then).
#[derive(Debug)]
struct EntersWhenDropped(mpsc::Sender<bool>);

impl LoopHandle for EntersWhenDropped {
    fn spawn_boxed(&self, _fut: BoxFuture) -> Result<(), SpawnError> {
        Err(SpawnError::new("never runs anything"))
    }
}

impl Drop for EntersWhenDropped {
    fn drop(&mut self) {
        let other = thread_per_task();
        let guard = other.enter();
        let tied = other.drives_current_thread();
        drop(guard);
        let _ = self.0.send(tied && !other.drives_current_thread());
    }
}

#[test]
fn the_last_clone_dropped_by_a_guard_may_run_code_that_enters() {
    bounded("drop runs code", || {
        let (tx, rx) = mpsc::channel();
        let guard = Loop::new(EntersWhenDropped(tx)).enter(); // the guard holds the last clones
        assert!(rx.try_recv().is_err(), "alive while entered");
        drop(guard);
        assert_eq!(
            rx.try_recv(),
            Ok(true),
            "dropped by the guard, and entered cleanly"
        );
        assert!(Loop::current().is_none());
    });
}

#[test]
fn dropping_an_outer_guard_first_panics_and_ends_the_inner_one() {
    bounded("out of order", || {
        let (a, b) = (thread_per_task(), thread_per_task());
        let outer = a.enter();
        let inner = b.enter();
        let msg = panic_of(move || drop(outer));
        assert!(msg.contains("reverse order"), "{msg}");
        // The thread is back as before `outer`: nothing current, nothing tied.
        assert!(Loop::current().is_none());
        assert!(!a.drives_current_thread() && !b.drives_current_thread());
        // Later guards are not confused with the ended one...
        let again = a.enter();
        let again_inner = b.enter();
        drop(inner); // ended already: restores nothing, does not panic
        assert!(same(&Loop::current(), &Some(b.clone())));
        assert!(a.drives_current_thread() && b.drives_current_thread());
        drop(again_inner);
        drop(again);
        assert!(Loop::current().is_none() && !a.drives_current_thread());
    });
}

#[test]
fn keep_lasts_until_an_enclosing_guard_restores() {
    bounded("keep", || {
        let (a, b) = (thread_per_task(), thread_per_task());
        // For good on a thread with no guard.
        let t = thread::spawn(move || {
            a.enter().keep();
            let tied = a.drives_current_thread();
            (tied, is_would_deadlock(&try_sync_await(async { 1 })))
        });
        assert_eq!(t.join().unwrap(), (true, true));

        // Inside an enclosing guard: that guard's drop undoes it.
        let (a, c) = (thread_per_task(), thread_per_task());
        let outer = c.enter();
        a.enter().keep();
        assert!(same(&Loop::current(), &Some(a.clone())));
        drop(outer);
        assert!(Loop::current().is_none());
        assert!(!a.drives_current_thread() && !c.drives_current_thread());

        // Only the innermost guard can be kept; the refused one is dropped (restores).
        let outer = a.enter();
        let inner = b.enter();
        let msg = panic_of(move || outer.keep());
        assert!(msg.contains("innermost"), "{msg}");
        assert!(Loop::current().is_none(), "restored as a drop would");
        drop(inner);
        assert!(Loop::current().is_none());
    });
}

/// A loop whose handle knows its threads: none of them is the caller's.
#[derive(Debug)]
struct KnowsItsThreads;

impl LoopHandle for KnowsItsThreads {
    fn spawn_boxed(&self, fut: BoxFuture) -> Result<(), SpawnError> {
        thread::spawn(move || aiothreads::block_on(fut));
        Ok(())
    }
    fn drives_current_thread(&self) -> Option<bool> {
        Some(false)
    }
}

#[test]
fn threads_that_only_wait_may_block() {
    bounded("waiting threads", || {
        // A thread of one's own that waits on the loop: the loop passed, or set as current
        // without tying the thread.
        let lp = thread_per_task();
        assert_eq!(lp.sync_await(async { 1 }), 1);
        let prev = set_current_loop(Some(lp.clone()));
        assert_eq!(sync_await(async { 2 }), 2);
        set_current_loop(prev);

        // A loop that tells its threads apart overrides the entering.
        let knows = Loop::new(KnowsItsThreads);
        let _in = knows.enter();
        assert_eq!(try_sync_await(async { 3 }).ok(), Some(3));
    });

    // Tokio finds its threads exactly: a plain thread that entered a tokio loop may block on
    // it, the runtime's own thread may not.
    bounded("tokio loop entered", || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let lp = Loop::from(rt.handle().clone());
        let _in = lp.enter();
        assert!(!lp.drives_current_thread());
        let slept = sync_await(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            5
        });
        assert_eq!(slept, 5);
        let on_worker = rt.block_on(async {
            tokio::spawn(async { try_sync_await(async { 6 }) })
                .await
                .unwrap()
        });
        assert!(is_would_deadlock(&on_worker));
    });
}

#[test]
fn enter_driver_is_enter() {
    bounded("alias", || {
        let lp = thread_per_task();
        let g = lp.enter_driver();
        assert!(same(&Loop::current(), &Some(lp.clone())));
        assert!(lp.drives_current_thread());
        drop(g);
        assert!(Loop::current().is_none() && !lp.drives_current_thread());
    });
}
