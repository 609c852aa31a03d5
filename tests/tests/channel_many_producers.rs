//! Many producers on one `FromThreadChannel`: `ThreadSender` clones, one per thread (the
//! original's `FromThreadChannel.put` is thread-safe). Each async body runs on every executor
//! of the matrix (tokio current-thread and multi-thread, smol, `futures`, `aiothreads::block_on`),
//! bounded by a timeout that fails the test instead of hanging it.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use aiothreads::{ChannelClosed, FromThreadChannel, SyncAwaitError, ThreadSender};
use aiothreads_core::ring::PopError;
use aiothreads_tests::{on_every_executor, panic_message, wait_until, with_timeout};

const PRODUCERS: u32 = 8;
const ITEMS: u32 = 10_000;

/// Waits (bounded) until the thread named `name` of this process sleeps in the kernel (Linux:
/// `/proc/self/task/*/stat` state `S`); the threads of these tests that sleep are blocked in
/// `put`. Without `/proc` it returns at once: the test then still checks its outcome, only
/// perhaps without the `put` having started to wait yet.
fn wait_until_asleep(name: &str) {
    if std::fs::read_dir("/proc/self/task").is_err() {
        return;
    }
    // The new thread names itself when it starts: look until it has.
    let find = || {
        std::fs::read_dir("/proc/self/task")
            .ok()?
            .flatten()
            .map(|t| t.path())
            .find(|path| {
                std::fs::read_to_string(path.join("comm")).is_ok_and(|comm| comm.trim_end() == name)
            })
    };
    let mut task = None;
    let found = wait_until(Duration::from_secs(30), || {
        task = find();
        task.is_some()
    });
    assert!(found, "no thread named {name}");
    let task = task.expect("found");
    let asleep = wait_until(Duration::from_secs(30), || {
        let stat = std::fs::read_to_string(task.join("stat")).unwrap_or_default();
        // The state follows the command name in parentheses: "tid (comm) S ...".
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('S'))
    });
    assert!(asleep, "thread {name} never went to sleep in `put`");
}

/// Starts a named thread that puts `item` with `tx` and reports the result.
fn put_on_thread(
    name: &str,
    mut tx: ThreadSender<u32>,
    item: u32,
) -> thread::JoinHandle<Result<(), ChannelClosed<u32>>> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || tx.put(item))
        .expect("spawn producer")
}

/// 8 threads × 10 000 items through clones of one sender: every item arrives exactly once,
/// each producer's items in the order it sent them, and the stream ends when the last clone
/// is dropped.
#[test]
fn eight_producers_every_item_once_in_order() {
    on_every_executor(|| async {
        let (tx, mut rx) = FromThreadChannel::<(u32, u32)>::new(64);
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let mut tx = tx.clone();
                thread::spawn(move || {
                    for i in 0..ITEMS {
                        tx.put((p, i)).expect("the receiver is alive");
                    }
                })
            })
            .collect();
        drop(tx);
        let mut next: HashMap<u32, u32> = HashMap::new();
        let mut total = 0;
        while let Ok((p, i)) = rx.get().await {
            let want = next.entry(p).or_default();
            assert_eq!(i, *want, "producer {p}: out of order or duplicated");
            *want += 1;
            total += 1;
        }
        assert_eq!(total, PRODUCERS * ITEMS);
        for p in 0..PRODUCERS {
            assert_eq!(next.get(&p), Some(&ITEMS), "producer {p} lost items");
        }
        for producer in producers {
            producer.join().unwrap();
        }
    });
}

/// One producer calls `close()` while the others send: every later `put` fails with its item
/// back, the receiver gets exactly the accepted items (each producer's a prefix of what it
/// tried to send) and then ends — although clones are still alive.
#[test]
fn close_of_one_clone_ends_the_channel_for_all() {
    on_every_executor(|| async {
        let (tx, mut rx) = FromThreadChannel::<(u32, u32)>::new(4);
        let keep_alive = tx.clone();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let mut tx = tx.clone();
                thread::spawn(move || {
                    let mut accepted = 0;
                    loop {
                        if p == 0 && accepted == 100 {
                            tx.close();
                            assert!(tx.is_closed());
                        }
                        match tx.put((p, accepted)) {
                            Ok(()) => accepted += 1,
                            Err(ChannelClosed(back)) => {
                                assert_eq!(back, (p, accepted), "the refused item comes back");
                                assert!(tx.is_closed());
                                return accepted;
                            }
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let mut got: HashMap<u32, u32> = HashMap::new();
        while let Ok((p, i)) = rx.get().await {
            let want = got.entry(p).or_default();
            assert_eq!(i, *want, "producer {p}: out of order or duplicated");
            *want += 1;
        }
        assert!(rx.is_closed());
        assert!(keep_alive.is_closed(), "a clone still alive sees the close");
        for (p, producer) in producers.into_iter().enumerate() {
            let accepted = producer.join().unwrap();
            let p = p as u32;
            assert_eq!(
                got.get(&p).copied().unwrap_or(0),
                accepted,
                "producer {p}: every accepted item is delivered, no other"
            );
            if p == 0 {
                assert_eq!(accepted, 100);
            }
        }
        drop(keep_alive);
    });
}

/// The receiver does not end while a clone is alive and not closed — also after the original
/// sender and other clones are gone — and ends when the last clone goes (on another thread,
/// while the receiver waits).
#[test]
fn receiver_waits_while_a_clone_lives() {
    on_every_executor(|| async {
        let (tx, mut rx) = FromThreadChannel::<u32>::new(4);
        let mut last = tx.clone();
        let other = tx.clone();
        drop(tx);
        drop(other);
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let producer = thread::spawn(move || {
            for i in 0..3 {
                last.put(i).unwrap();
            }
            go_rx.recv().unwrap(); // keep `last` alive until the receiver checked
            drop(last);
        });
        for want in 0..3 {
            assert_eq!(rx.get().await, Ok(want));
        }
        assert_eq!(
            rx.try_get(),
            Err(PopError::Empty),
            "not ended: a clone lives"
        );
        assert!(!rx.is_closed());
        {
            let mut next = std::pin::pin!(rx.get());
            assert!(futures::poll!(next.as_mut()).is_pending());
            go_tx.send(()).unwrap();
            assert!(next.await.is_err(), "ends once the last clone is gone");
        }
        producer.join().unwrap();
    });
}

/// A `put` waiting on a full channel (and a second one waiting behind it for the clones'
/// mutex) does not block another clone's `close()` or `is_closed()`; both `put`s then return
/// their items, and the receiver drains what was sent before the end.
#[test]
fn blocked_put_does_not_block_close_of_another_clone() {
    on_every_executor(|| async {
        let (mut tx, mut rx) = FromThreadChannel::<u32>::new(1);
        let mut closer = tx.clone();
        let second = tx.clone();
        tx.put(0).unwrap(); // full
        let waiting = put_on_thread("mp-blocked-put", tx, 1);
        wait_until_asleep("mp-blocked-put");
        let queued = put_on_thread("mp-queued-put", second, 2);
        wait_until_asleep("mp-queued-put");
        // Bounded: a `close` that waited for the blocked `put` would hang here.
        let closer = with_timeout("close beside a blocked put", Duration::from_secs(30), {
            move || {
                assert!(!closer.is_closed());
                closer.close();
                assert!(closer.is_closed());
                closer
            }
        });
        assert_eq!(waiting.join().unwrap(), Err(ChannelClosed(1)));
        assert_eq!(queued.join().unwrap(), Err(ChannelClosed(2)));
        assert_eq!(rx.get().await, Ok(0));
        assert!(rx.get().await.is_err());
        drop(closer);
    });
}

/// A clone's `put` on the receiver's thread, behind another clone's `put` that waits for
/// room, is refused (the receiver could never make that room) instead of hanging.
#[test]
fn clone_put_on_the_receivers_thread_behind_a_blocked_put_is_refused() {
    with_timeout("refused, not hung", Duration::from_secs(30), || {
        let (mut tx, mut rx) = FromThreadChannel::<u32>::new(1);
        let mut mine = tx.clone();
        tx.put(0).unwrap(); // full
        aiothreads::block_on(async move {
            let waiting = {
                // The receiver waits on this thread: it takes the one item, then finds none.
                assert_eq!(rx.get().await, Ok(0));
                let mut next = std::pin::pin!(rx.get());
                assert!(futures::poll!(next.as_mut()).is_pending());
                mine.put(1).unwrap(); // room: fine, and full again
                let waiting = put_on_thread("mp-blocked-put2", tx, 2);
                wait_until_asleep("mp-blocked-put2");
                let refused = catch_unwind(AssertUnwindSafe(|| mine.put(3))).unwrap_err();
                assert_eq!(
                    panic_message(&*refused),
                    SyncAwaitError::WouldDeadlock.to_string()
                );
                assert_eq!(next.await, Ok(1));
                waiting
            };
            assert_eq!(rx.get().await, Ok(2));
            assert_eq!(waiting.join().unwrap(), Ok(()));
            drop(mine);
            assert!(rx.get().await.is_err());
        });
    });
}
