//! The attribute macros on the executor matrix: the whole function grammar (generics, `where`,
//! `mut`, patterns, `impl Trait` arguments, visibility, attributes), methods of generic `impl`
//! blocks, iterables with every kind of return type, and what moves to the worker thread.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};

use aiothreads::{threaded, threaded_iterable, threaded_separate};
use aiothreads_tests::on_every_executor;
use futures::StreamExt;

/// Generic over the item, with a `where` clause, a tuple pattern and a `mut` argument.
#[threaded]
pub(crate) fn total<T>((a, b): (T, T), mut rest: Vec<T>) -> T
where
    T: std::iter::Sum + Send + 'static,
{
    rest.push(a);
    rest.push(b);
    rest.into_iter().sum()
}

/// `impl Trait` arguments, a struct pattern and a lint attribute that must reach the function.
#[threaded]
#[allow(clippy::needless_pass_by_value)]
fn describe(label: impl Display + Send + 'static, Point { x, y }: Point) -> String {
    format!("{label}: ({x}, {y})")
}

#[derive(Debug, Clone, Copy)]
struct Point {
    x: i32,
    y: i32,
}

/// Nothing in, nothing out.
#[threaded]
fn nothing() {}

/// Early `return` and `?` leave the body, not the caller.
#[threaded]
fn parse_all(inputs: Vec<String>) -> Result<Vec<u32>, std::num::ParseIntError> {
    if inputs.is_empty() {
        return Ok(vec![]);
    }
    inputs.iter().map(|s| s.parse()).collect()
}

/// A generic function on a new thread named after it.
#[threaded_separate]
fn named<T: Send + 'static>(value: T) -> (T, Option<String>) {
    (value, thread::current().name().map(str::to_owned))
}

/// A generic container with methods of every receiver kind.
struct Holder<T> {
    value: T,
}

impl<T> Holder<T>
where
    T: Clone + Send + Sync + 'static,
{
    /// Shared receiver in a generic `impl`.
    #[threaded]
    fn get(self: Arc<Self>) -> T {
        self.value.clone()
    }

    /// Moved, mutable receiver plus a generic method parameter.
    #[threaded]
    fn replace_with<F: FnOnce(T) -> T + Send + 'static>(mut self, f: F) -> T {
        self.value = f(self.value.clone());
        self.value
    }

    /// Associated function returning `Self`.
    #[threaded]
    fn new(value: T) -> Self {
        Holder { value }
    }

    /// An iterable method with a shared receiver.
    #[threaded_iterable(max_size = 2)]
    fn repeated(self: Arc<Self>, n: usize) -> impl Iterator<Item = T> {
        std::iter::repeat_n(self.value.clone(), n)
    }
}

/// A generic iterable.
#[threaded_iterable]
fn cycle<T: Clone + Send + 'static>(items: Vec<T>, n: usize) -> impl Iterator<Item = T> {
    items.into_iter().cycle().take(n)
}

/// A concrete iterable return type.
#[threaded_iterable]
fn squares(n: u32) -> Vec<u32> {
    (0..n).map(|i| i * i).collect()
}

const QUEUE: usize = 3;

/// `impl IntoIterator` with extra bounds, and a constant `max_size`, on its own thread.
#[aiothreads::threaded_iterable_separate(max_size = QUEUE)]
fn letters(word: String) -> impl IntoIterator<Item = char> + Send {
    word.chars().collect::<Vec<_>>()
}

#[test]
fn generic_functions_and_patterns() {
    on_every_executor(|| async {
        assert_eq!(total((1, 2), vec![3, 4]).await, 10);
        assert_eq!(total((0.5, 0.25), vec![]).call().await, 0.75);
        assert_eq!(total((1u8, 1), vec![]).sync_call(), 2);
        let p = Point { x: 1, y: -2 };
        assert_eq!(describe("p", p).await, "p: (1, -2)");
        assert_eq!(describe(7, p).sync_call(), "7: (1, -2)");
        nothing().await;
        assert_eq!(parse_all(vec![]).await, Ok(vec![]));
        assert_eq!(
            parse_all(vec!["1".into(), "2".into()]).await,
            Ok(vec![1, 2])
        );
        assert!(parse_all(vec!["x".into()]).await.is_err());
        let (value, name) = named(vec![1u8]).await;
        assert_eq!((value, name.as_deref()), (vec![1u8], Some("named")));
    });
}

#[test]
fn methods_of_generic_impls() {
    on_every_executor(|| async {
        let h = Arc::new(Holder::new("a".to_owned()).await);
        assert_eq!(h.clone().get().await, "a");
        assert_eq!(h.clone().get().sync_call(), "a");
        let moved = Holder { value: 20u64 };
        assert_eq!(moved.replace_with(|v| v + 1).await, 21);
        let got: Vec<String> = h.repeated(3).collect().await;
        assert_eq!(got, ["a", "a", "a"]);
    });
}

#[test]
fn iterables_of_every_return_form() {
    on_every_executor(|| async {
        let got: Vec<char> = cycle(vec!['x', 'y'], 5).collect().await;
        assert_eq!(got, ['x', 'y', 'x', 'y', 'x']);
        assert_eq!(squares(4).collect::<Vec<_>>().await, [0, 1, 4, 9]);
        assert_eq!(squares(3).sync_call().sum::<u32>(), 5);
        let s = letters("ok".to_owned());
        // The option reaches the stream.
        assert!(format!("{s:?}").contains("max_size: Some(3)"), "{s:?}");
        assert_eq!(s.collect::<String>().await, "ok");
    });
}

/// Records the thread on which it is dropped.
struct Probe {
    id: u32,
    dropped_on: Arc<Mutex<Option<ThreadId>>>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        *self.dropped_on.lock().unwrap() = Some(thread::current().id());
    }
}

/// Uses one field only: a closure would capture just that field, and the rest of the argument
/// would be dropped on the caller's thread. The macro moves every argument whole.
#[threaded]
fn probe_id(probe: Probe, unused: Probe) -> (u32, ThreadId) {
    (probe.id, thread::current().id())
}

#[test]
fn arguments_move_whole_to_the_worker_and_drop_there() {
    on_every_executor(|| async {
        let first = Arc::new(Mutex::new(None));
        let second = Arc::new(Mutex::new(None));
        let call = probe_id(
            Probe {
                id: 7,
                dropped_on: first.clone(),
            },
            Probe {
                id: 8,
                dropped_on: second.clone(),
            },
        );
        assert!(
            first.lock().unwrap().is_none(),
            "dropped before the call ran"
        );
        let (id, worker) = call.await;
        assert_eq!(id, 7);
        assert_ne!(worker, thread::current().id());
        assert_eq!(*first.lock().unwrap(), Some(worker));
        assert_eq!(*second.lock().unwrap(), Some(worker));
    });
}

#[test]
fn attribute_and_closure_forms_share_their_names() {
    // `threaded` is both the attribute (macro namespace) and the closure form (value namespace).
    let closure_form = threaded(|x: i32| x * 2);
    let separate_form = threaded_separate(|| thread::current().name().map(str::to_owned));
    let iter_form = threaded_iterable(|n: u8| 0..n);
    futures::executor::block_on(async {
        assert_eq!(closure_form.call((21,)).await, 42);
        assert_eq!(
            separate_form.call(()).await.as_deref(),
            Some("aiothreads-separate")
        );
        assert_eq!(iter_form.call(3).count().await, 3);
    });
}

mod glob_import {
    // A glob import of the crate must not shadow the standard `core` crate.
    use aiothreads::*;

    #[threaded]
    fn doubled(x: u32) -> u32 {
        core::convert::identity(x) * 2
    }

    #[test]
    fn glob_import_keeps_core() {
        let map: super::HashMap<u8, u8> = core::iter::once((1, 2)).collect();
        assert_eq!(map[&1], 2);
        assert_eq!(block_on(doubled(4).call()), 8);
        let _ = aiothreads_core::ring::Ring::<u8, 2>::new();
    }
}
