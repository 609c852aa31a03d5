//! The original's seed scenarios on channels and context, ported: one Rust test per Python
//! test of `mosquito/aiothreads` where it maps, each naming the test it ports.
//!
//! Sources: `tests/test_iterator_wrapper.py` (`FromThreadChannel` and the iterator wrapper
//! built on it), `tests/test_decorators.py` (`test_context_vars`), and the "Context Variables"
//! section of the original's documentation. `tests/test_queue_wrapper.py` tests only that the
//! abstract `QueueWrapperBase` raises `NotImplementedError`: an abstract base class has no
//! counterpart here (the ring is the one queue), so nothing is ported from it;
//! `tests/test_threads.py` has no channel or context test.
//!
//! The original's iterables default to `max_size=0` (unbounded); here the default is 1024
//! and `max_size(0)` is unbounded, so the tests written without `max_size` run both ways
//! (`test_threaded_generator_exception_unbounded`). The channel tests of the original all use
//! `maxsize=1`; unbounded channels and streams have their own tests in `unbounded.rs`.
//!
//! Not ported, on purpose:
//! - `await channel` (`FromThreadChannel.__await__`): `rx.get().await` is the one spelling.
//!
//! The original's `threaded_decorator` fixture (`threaded`, `threaded_separate`) and
//! `iterator_decorator` fixture (`threaded_iterable`, `threaded_iterable_separate`) become a
//! loop over [`Deco`]; each async body runs on every executor of the matrix (tokio
//! current-thread and multi-thread, smol, `futures`, `aiothreads::block_on`), bounded by a
//! timeout that fails the test instead of hanging it.
//!
//! Timeouts: where the original bounds a wait that must succeed (`wait_for(..., timeout=5)`,
//! `async with timeout(2)`), the bound here is [`LIMIT`] (generous: a noisy 2-core machine);
//! where it expects a timeout, the short time is kept (the assertion is that nothing came,
//! which no scheduling delay can make false).

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use aiothreads::{
    threaded, threaded_iterable, threaded_iterable_separate, threaded_separate, ChannelClosed,
    FromThreadChannel, GetError, IterCall, JoinHandle, ThreadSender,
};
use aiothreads_tests::on_every_executor;
use futures::{FutureExt, StreamExt};

/// Bound of a wait that must succeed (the original's 2–5 s, made generous).
const LIMIT: Duration = Duration::from_secs(30);

/// The original's decorator fixtures: a pool (`threaded`, `threaded_iterable`) or a thread of
/// its own (`threaded_separate`, `threaded_iterable_separate`).
#[derive(Debug, Clone, Copy)]
enum Deco {
    Pool,
    Separate,
}

const DECOS: [Deco; 2] = [Deco::Pool, Deco::Separate];

/// Calls `f(tx)` the way the decorator `deco` would.
fn in_thread<T: Send + 'static>(
    deco: Deco,
    tx: ThreadSender<T>,
    f: fn(ThreadSender<T>),
) -> JoinHandle<()> {
    match deco {
        Deco::Pool => threaded(f).call((tx,)),
        Deco::Separate => threaded_separate(f).call((tx,)),
    }
}

/// Sets a flag when dropped: the Rust `finally` of a generator.
struct Finally(Arc<AtomicBool>, Option<mpsc::Sender<()>>);
impl Drop for Finally {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
        if let Some(done) = self.1.take() {
            let _ = done.send(());
        }
    }
}

/// The original's `noise()` generator: endless items, and a `finally` that reports the stop.
fn noise(finally: Finally) -> impl Iterator<Item = [u8; 32]> {
    (0u8..).map(move |i| {
        let _ = &finally;
        [i; 32]
    })
}

// ---- FromThreadChannel (tests/test_iterator_wrapper.py) ----

/// Ports `test_from_thread_channel_wait_before[threaded, threaded_separate]`: the receiver
/// waits before the producer starts (the original delays the producer by 0.1 s with
/// `call_later`; here the `get` is polled once, pending, before the producer is submitted);
/// the producer puts 0..10 through a 1-item channel (`maxsize=1`) and closes it (`with
/// channel:`); the receiver gets the ten items, then `ChannelClosed`.
#[test]
fn test_from_thread_channel_wait_before() {
    on_every_executor(|| async {
        for deco in DECOS {
            let (tx, mut rx) = FromThreadChannel::<u32>::new(1);
            let mut result = Vec::new();
            let producer;
            {
                let mut first = std::pin::pin!(rx.get());
                assert!(futures::poll!(first.as_mut()).is_pending(), "{deco:?}");
                producer = in_thread(deco, tx, |mut tx| {
                    for i in 0..10 {
                        tx.put(i).unwrap();
                    }
                    tx.close(); // `with channel:` closes on exit
                });
                result.push(aiothreads::timeout(LIMIT, first).await.unwrap().unwrap());
            }
            let closed = loop {
                match aiothreads::timeout(LIMIT, rx.get()).await.expect("bounded") {
                    Ok(item) => result.push(item),
                    Err(closed) => break closed,
                }
            };
            assert_eq!(closed, ChannelClosed(()));
            assert_eq!(result, (0..10).collect::<Vec<_>>(), "{deco:?}");
            producer.await;
        }
    });
}

/// Ports `test_from_thread_channel_close`: after the channel is closed (`with channel:`), a
/// `put` fails (`ChannelClosed`; here with the item back) while the item sent before is still
/// delivered; a `get` on an empty open channel does not complete (the original's
/// `wait_for(task, timeout=1)` raises `TimeoutError`), and after that cancelled `get` a `put`
/// (made on the loop's thread, as `call_soon(channel.put, 1)`: with room it does not block) is
/// received by the next `get`.
#[test]
fn test_from_thread_channel_close() {
    on_every_executor(|| async {
        let (mut tx, mut rx) = FromThreadChannel::<u32>::new(1);
        assert!(!tx.is_closed() && !rx.is_closed());
        tx.put(1).unwrap();
        tx.close();
        assert!(tx.is_closed() && rx.is_closed());
        assert_eq!(tx.put(2), Err(ChannelClosed(2)));
        assert_eq!(rx.get().await, Ok(1), "drained before closed");
        assert_eq!(rx.get().await, Err(ChannelClosed(())));

        let (mut tx, mut rx) = FromThreadChannel::<u32>::new(1);
        let waited = aiothreads::timeout(Duration::from_millis(50), rx.get()).await;
        assert!(waited.is_err(), "a get on an empty open channel timed out");
        tx.put(1).unwrap();
        assert_eq!(rx.get().await, Ok(1), "the cancelled get lost nothing");
    });
}

/// Ports `test_from_thread_channel_timeout`: no default timeout (`timeout=0`) and an item
/// waiting: `get()` returns it; `get(timeout=0.1)` on an empty channel raises
/// `ChannelTimeout`; a default timeout of 0.1 s (`FromThreadChannel(maxsize=1, timeout=0.1)`,
/// here `set_default_timeout`) makes `get()` raise it too; `get(timeout=0)` overrides the
/// default and waits forever (an item is there, so it returns at once).
///
/// The original's `get(timeout=None)` (the default timeout) is `get_default()` here, and
/// `get(timeout=t)` is `get_timeout(t)`.
#[test]
fn test_from_thread_channel_timeout() {
    on_every_executor(|| async {
        let (mut tx, mut rx) = FromThreadChannel::<&str>::new(1);
        tx.put("data").unwrap();
        assert_eq!(rx.get_default().await, Ok("data"));

        let (_tx, mut rx) = FromThreadChannel::<&str>::new(1);
        match rx.get_timeout(Duration::from_millis(100)).await {
            Err(GetError::Timeout(t)) => {
                assert_eq!(t.to_string(), "Channel get timed out after 0.1s");
            }
            other => panic!("expected ChannelTimeout, got {other:?}"),
        }

        let (_tx, mut rx) = FromThreadChannel::<&str>::new(1);
        rx.set_default_timeout(Duration::from_millis(100));
        assert!(matches!(
            rx.get_default().await,
            Err(GetError::Timeout(t)) if t.after() == Duration::from_millis(100)
        ));

        let (mut tx, mut rx) = FromThreadChannel::<&str>::new(1);
        rx.set_default_timeout(Duration::from_millis(100));
        tx.put("data").unwrap();
        assert_eq!(rx.get_timeout(Duration::ZERO).await, Ok("data"));
    });
}

/// Ports `test_from_thread_channel_timeout_with_data[threaded, threaded_separate]`: with a
/// default timeout (5 s in the original, [`LIMIT`] here), an item that a threaded job puts
/// after 0.1 s arrives in time. (The job's sleep only makes the item late; nothing waits on
/// it.)
#[test]
fn test_from_thread_channel_timeout_with_data() {
    on_every_executor(|| async {
        for deco in DECOS {
            let (tx, mut rx) = FromThreadChannel::<&str>::new(1);
            rx.set_default_timeout(LIMIT);
            let producer = in_thread(deco, tx, |mut tx| {
                std::thread::sleep(Duration::from_millis(100));
                tx.put("delayed_data").unwrap();
            });
            assert_eq!(rx.get_default().await, Ok("delayed_data"), "{deco:?}");
            producer.await;
        }
    });
}

// ---- The iterator wrapper on top of the channel (tests/test_iterator_wrapper.py) ----

/// Ports `test_threaded_generator`: a generator run in a thread (the original wraps it with
/// `threaded`; here a generator is an iterator, and `IterCall::new` is the closure form of
/// `threaded_iterable`) yields all its items in order.
#[test]
fn test_threaded_generator() {
    on_every_executor(|| async {
        let arange = |count: u32| IterCall::new(move || 0..count);
        let result: Vec<u32> = aiothreads::timeout(LIMIT, arange(10).collect())
            .await
            .expect("bounded");
        assert_eq!(result, (0..10).collect::<Vec<_>>());
    });
}

/// Ports `test_threaded_generator_max_size[threaded_iterable, threaded_iterable_separate]`:
/// with `max_size=1` (one item between the thread and the loop) every item still arrives in
/// order.
#[test]
fn test_threaded_generator_max_size() {
    on_every_executor(|| async {
        for deco in DECOS {
            let f = |count: u32| 0..count;
            let arange = match deco {
                Deco::Pool => threaded_iterable(f),
                Deco::Separate => threaded_iterable_separate(f),
            }
            .max_size(1);
            let result: Vec<u32> = aiothreads::timeout(LIMIT, arange.call(10).collect())
                .await
                .expect("bounded");
            assert_eq!(result, (0..10).collect::<Vec<_>>(), "{deco:?}");
        }
    });
}

/// Ports `test_threaded_generator_exception[threaded_iterable, threaded_iterable_separate]`:
/// a generator that raises after its items: the items arrive, then the exception (a panic
/// here, re-raised by the stream; `try_stream` gives it as an `Err` item instead).
#[test]
fn test_threaded_generator_exception() {
    on_every_executor(|| async {
        for deco in DECOS {
            let arange = |count: u32| {
                // `yield from range(count)`, then `raise ZeroDivisionError`.
                (0..count).chain(std::iter::from_fn(|| panic!("ZeroDivisionError")))
            };
            let arange = match deco {
                Deco::Pool => threaded_iterable(arange),
                Deco::Separate => threaded_iterable_separate(arange),
            };
            // As the original: the exception escapes the loop, after the items.
            let mut result = Vec::new();
            let mut stream = arange.call(10);
            let raised = std::panic::AssertUnwindSafe(async {
                while let Some(item) = stream.next().await {
                    result.push(item);
                }
            })
            .catch_unwind()
            .await
            .expect_err("the generator's exception is re-raised");
            assert_eq!(raised.downcast_ref::<&str>(), Some(&"ZeroDivisionError"));
            assert_eq!(result, (0..10).collect::<Vec<_>>(), "{deco:?}");
            // The same as items.
            let items: Vec<_> = arange.call(10).try_stream().collect().await;
            assert_eq!(items.len(), 11);
            assert!(items[..10].iter().all(Result::is_ok));
            assert_eq!(
                items[10].as_ref().unwrap_err().panic_message(),
                Some("ZeroDivisionError")
            );
        }
    });
}

/// `test_threaded_generator_exception` with the original's own default, `max_size=0`
/// (unbounded): the producer runs ahead without waiting, and still the items arrive first,
/// then the exception.
#[test]
fn test_threaded_generator_exception_unbounded() {
    on_every_executor(|| async {
        for deco in DECOS {
            let arange =
                |count: u32| (0..count).chain(std::iter::from_fn(|| panic!("ZeroDivisionError")));
            let arange = match deco {
                Deco::Pool => threaded_iterable(arange),
                Deco::Separate => threaded_iterable_separate(arange),
            }
            .max_size(0);
            let items: Vec<_> = arange.call(10).try_stream().collect().await;
            assert_eq!(items.len(), 11, "{deco:?}");
            assert!(items[..10].iter().all(Result::is_ok));
            assert_eq!(
                items[10].as_ref().unwrap_err().panic_message(),
                Some("ZeroDivisionError")
            );
        }
    });
}

/// Ports `test_threaded_generator_close[threaded_iterable, threaded_iterable_separate]`: an
/// endless generator (`max_size=2`) left after ten items with `async with noise() as gen`
/// (here `close().await`) runs its `finally` (here its `Drop`, on its thread). The original
/// polls the flag for up to 5 s; `close().await` resolves only after the `Drop` ran, so the
/// flag is checked at once.
#[test]
fn test_threaded_generator_close() {
    on_every_executor(|| async {
        for deco in DECOS {
            let stopped = Arc::new(AtomicBool::new(false));
            let flag = stopped.clone();
            let make = move |()| noise(Finally(flag.clone(), None));
            let mut gen = match deco {
                Deco::Pool => threaded_iterable(make),
                Deco::Separate => threaded_iterable_separate(make),
            }
            .max_size(2)
            .call(());
            let mut counter = 0;
            while let Some(_item) = gen.next().await {
                counter += 1;
                if counter > 9 {
                    break;
                }
            }
            aiothreads::timeout(LIMIT, gen.close())
                .await
                .expect("bounded")
                .unwrap();
            assert!(
                stopped.load(SeqCst),
                "{deco:?}: the generator's finally ran"
            );
        }
    });
}

/// Ports `test_threaded_generator_close_cm[threaded_iterable, threaded_iterable_separate]`:
/// the same with `max_size=1` and a `threading.Event` set by the `finally` (here a message
/// sent by the `Drop`), waited for (the original: `stopped.wait(timeout=5)`).
#[test]
fn test_threaded_generator_close_cm() {
    on_every_executor(|| async {
        for deco in DECOS {
            let (done_tx, done_rx) = mpsc::channel();
            let make = move |()| noise(Finally(Arc::default(), Some(done_tx.clone())));
            let mut gen = match deco {
                Deco::Pool => threaded_iterable(make),
                Deco::Separate => threaded_iterable_separate(make),
            }
            .max_size(1)
            .call(());
            let mut counter = 0;
            while let Some(_item) = gen.next().await {
                counter += 1;
                if counter > 9 {
                    break;
                }
            }
            gen.close().await.unwrap(); // the end of `async with`
            assert_eq!(done_rx.recv_timeout(LIMIT), Ok(()), "{deco:?}: stopped");
        }
    });
}

/// Ports `test_threaded_generator_close_break[threaded_iterable, threaded_iterable_separate]`:
/// no `async with`, only a `break` out of the loop (the stream is dropped): the generator's
/// `finally` still runs, on its thread, soon after (`stopped.wait(timeout=5)`).
#[test]
fn test_threaded_generator_close_break() {
    on_every_executor(|| async {
        for deco in DECOS {
            let (done_tx, done_rx) = mpsc::channel();
            let make = move |()| noise(Finally(Arc::default(), Some(done_tx.clone())));
            let arange = match deco {
                Deco::Pool => threaded_iterable(make),
                Deco::Separate => threaded_iterable_separate(make),
            }
            .max_size(1);
            let mut counter = 0;
            let mut gen = arange.call(());
            while let Some(_item) = gen.next().await {
                counter += 1;
                if counter > 9 {
                    break;
                }
            }
            drop(gen);
            assert_eq!(done_rx.recv_timeout(LIMIT), Ok(()), "{deco:?}: stopped");
        }
    });
}

/// Ports `test_threaded_generator_non_generator_raises[threaded_iterable,
/// threaded_iterable_separate]`: a function that raises before it makes any iterator: the
/// loop over its stream raises.
#[test]
fn test_threaded_generator_non_generator_raises() {
    on_every_executor(|| async {
        for deco in DECOS {
            let errored = |()| -> std::iter::Empty<u32> { panic!("Aaaaaaaa") };
            let errored = match deco {
                Deco::Pool => threaded_iterable(errored),
                Deco::Separate => threaded_iterable_separate(errored),
            };
            let mut stream = errored.call(());
            let raised =
                std::panic::AssertUnwindSafe(async { while stream.next().await.is_some() {} })
                    .catch_unwind()
                    .await
                    .expect_err("raises");
            assert_eq!(raised.downcast_ref::<&str>(), Some(&"Aaaaaaaa"), "{deco:?}");
        }
    });
}

/// Ports `test_threaded_generator_func_raises[threaded_iterable, threaded_iterable_separate]`:
/// a generator function taking an argument that raises on it, before its first item.
#[test]
fn test_threaded_generator_func_raises() {
    on_every_executor(|| async {
        for deco in DECOS {
            let errored = |val: bool| {
                if val {
                    panic!("Aaaaaaaa");
                }
                std::iter::once(())
            };
            let errored = match deco {
                Deco::Pool => threaded_iterable(errored),
                Deco::Separate => threaded_iterable_separate(errored),
            };
            let items: Vec<_> = errored.call(true).try_stream().collect().await;
            assert_eq!(items.len(), 1, "{deco:?}");
            assert_eq!(
                items[0].as_ref().unwrap_err().panic_message(),
                Some("Aaaaaaaa")
            );
            // The argument decides: with `false` the one item comes.
            assert_eq!(errored.call(false).count().await, 1);
        }
    });
}

// ---- Context variables ----

aiothreads::context_var! {
    static CTX_VAR: u32;
    static USER_CONTEXT: String;
}

/// Ports `test_context_vars[threaded, threaded_separate]` (tests/test_decorators.py): the
/// caller sets the variable to `i * i` before each call, and each job sees the value of its
/// own submission (captured when `call` submits it), all jobs running concurrently.
///
/// A `set` in async code lasts for the rest of the enclosing scoped future (the original's
/// task context); the body is wrapped in `CTX_VAR.scope` to have one.
#[test]
fn test_context_vars() {
    on_every_executor(|| async {
        for deco in DECOS {
            let check = |arg: u32| {
                let value = CTX_VAR.get();
                assert_eq!(value, arg * arg);
                value
            };
            let test = match deco {
                Deco::Pool => threaded(check),
                Deco::Separate => threaded_separate(check),
            };
            let seen = CTX_VAR
                .scope(0, async {
                    let mut futures = Vec::new();
                    for i in 0..8 {
                        let _token = CTX_VAR.set(i * i);
                        futures.push(test.call((i,)));
                    }
                    futures::future::join_all(futures).await
                })
                .await;
            assert_eq!(seen, [0, 1, 4, 9, 16, 25, 36, 49], "{deco:?}");
            assert!(!CTX_VAR.is_set(), "nothing outside the scope");
        }
    });
}

/// Ports the documentation's "Context Variables" example (`handle_request` sets
/// `user_context`, then awaits the threaded `process_user_data`, which reads it), with two
/// requests in flight at once, each seeing its own user.
#[test]
fn docs_context_variables_propagate_to_the_thread() {
    on_every_executor(|| async {
        let process_user_data =
            threaded(|data: &'static str| format!("Processing {data} for {}", USER_CONTEXT.get()));
        let handle_request = |user_id: &str, data: &'static str| {
            let process_user_data = process_user_data.clone();
            USER_CONTEXT.scope(user_id.to_owned(), async move {
                process_user_data.call((data,)).await
            })
        };
        let (a, b) = futures::join!(
            handle_request("alice", "orders"),
            handle_request("bob", "invoices")
        );
        assert_eq!(a, "Processing orders for alice");
        assert_eq!(b, "Processing invoices for bob");
    });
}

/// Python semantics of the original (each job runs in a copy of the caller's context, as
/// `contextvars.copy_context().run`): a `set` inside a job is visible for the rest of that
/// job, never to the caller, and never to the next job on the same worker (a one-thread pool
/// makes it the same worker). No Python test of its own; the original's behaviour comes from
/// `contextvars`.
#[test]
fn python_semantics_set_in_a_job_stays_in_the_job() {
    on_every_executor(|| async {
        let pool = aiothreads::Pool::builder().max_threads(1).build();
        let (in_job, worker) = CTX_VAR
            .scope(1, async {
                let job = aiothreads::Call::new(|| {
                    assert_eq!(CTX_VAR.get(), 1, "the caller's value reaches the job");
                    let _token = CTX_VAR.set(2);
                    (CTX_VAR.get(), std::thread::current().id())
                })
                .on(&pool)
                .await;
                assert_eq!(CTX_VAR.get(), 1, "the job's set did not flow back");
                job
            })
            .await;
        assert_eq!(in_job, 2);
        let (next, next_worker) =
            aiothreads::Call::new(|| (CTX_VAR.try_get(), std::thread::current().id()))
                .on(&pool)
                .await;
        assert_eq!(next_worker, worker, "the same worker ran both jobs");
        assert_eq!(next, None, "the job's set did not reach the next job");
        assert!(!CTX_VAR.is_set());
    });
}

/// Python semantics, iterators: a generator run by the iterator wrapper sees the caller's
/// context, and a `set` inside it lasts for the rest of that generator's run (across the
/// suspensions of a 1-item channel), not beyond it.
#[test]
fn python_semantics_set_inside_an_iterator_run() {
    on_every_executor(|| async {
        for deco in DECOS {
            let gen = |()| {
                (0..4u32).map(|i| {
                    if i == 2 {
                        let _ = CTX_VAR.set(9);
                    }
                    CTX_VAR.get()
                })
            };
            let gen = match deco {
                Deco::Pool => threaded_iterable(gen),
                Deco::Separate => threaded_iterable_separate(gen),
            }
            .max_size(1);
            let seen: Vec<u32> = CTX_VAR.scope(5, gen.call(()).collect()).await;
            assert_eq!(seen, [5, 5, 9, 9], "{deco:?}");
            assert!(
                !CTX_VAR.is_set(),
                "{deco:?}: the generator's set did not flow back"
            );
            let later = aiothreads::spawn(|| CTX_VAR.try_get()).await;
            assert_eq!(later, None, "{deco:?}: nor into a later job");
        }
    });
}
