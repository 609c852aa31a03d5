//! "Sync and Async Calling" and "Type Preservation": every call form has the signature of the
//! function marked `#[threaded]`.
//!
//! Python's `*args: str` and `**kwargs: str | int` have no direct Rust form: a Rust function
//! has a fixed list of typed parameters. The usual translations are a slice or `Vec` for the
//! variadic positional arguments, a `HashMap` (or, better, a struct with `Option` fields) for
//! the keyword arguments, and `Option<T>` for a parameter with a default value.

use std::collections::HashMap;

/// `Dict[str, Any]` for a fixed set of keys: a struct.
#[derive(Debug, PartialEq)]
struct SumProduct {
    sum: i64,
    product: i64,
}

/// A keyword argument of type `str | int`.
#[derive(Debug, Clone, PartialEq)]
enum StrOrInt {
    Str(String),
    Int(i64),
}

/// `**kwargs` with known names: a struct whose fields are optional (`..Default::default()`
/// plays the part of the omitted keywords).
#[derive(Debug, Default, Clone, PartialEq)]
struct Options {
    label: Option<String>,
    retries: Option<u32>,
}

#[derive(Debug, PartialEq)]
struct Complex {
    required_arg: String,
    optional_arg: Option<i32>,
    args: Vec<String>,
    kwargs: HashMap<String, StrOrInt>,
}

#[aiothreads::threaded]
fn compute(x: i64, y: i64) -> SumProduct {
    SumProduct {
        sum: x + y,
        product: x * y,
    }
}

/// `complex_function(required_arg, optional_arg=None, *args, **kwargs)`.
#[aiothreads::threaded]
fn complex_function(
    required_arg: String,
    optional_arg: Option<i32>,
    args: Vec<String>,
    kwargs: HashMap<String, StrOrInt>,
) -> Complex {
    Complex {
        required_arg,
        optional_arg,
        args,
        kwargs,
    }
}

/// The same with the keywords as a struct: typos become compile errors.
#[aiothreads::threaded]
fn with_options(required_arg: String, options: Options) -> String {
    format!(
        "{required_arg}: label={:?} retries={}",
        options.label,
        options.retries.unwrap_or(3)
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Async call (default): the `Call` is awaited.
    let result = compute(1, 2).await;
    // Explicit async call: submitted at once, a `JoinHandle<SumProduct>`.
    let handle: aiothreads::JoinHandle<SumProduct> = compute(1, 2).async_call();
    assert_eq!(handle.await, result);
    // Synchronous call (bypasses threading): returns `SumProduct` directly.
    let sync: SumProduct = compute(1, 2).sync_call();
    assert_eq!(sync, result);
    println!("compute(1, 2) = {result:?}");
    assert_eq!(result, SumProduct { sum: 3, product: 2 });

    // Type preservation: the three call forms take the same typed arguments.
    let make_kwargs = || {
        HashMap::from([
            ("name".to_owned(), StrOrInt::Str("x".into())),
            ("count".to_owned(), StrOrInt::Int(2)),
        ])
    };
    let args = vec!["a".to_owned(), "b".to_owned()];
    let a = complex_function("req".into(), None, args.clone(), make_kwargs()).await;
    let b = complex_function("req".into(), None, args.clone(), make_kwargs())
        .async_call()
        .await;
    let c = complex_function("req".into(), None, args, make_kwargs()).sync_call();
    println!("complex_function(..) = {a:?}");
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a.args, ["a", "b"]);
    assert_eq!(a.kwargs["count"], StrOrInt::Int(2));
    // This would not compile (expected `Vec<String>`, found integer):
    // complex_function("req".into(), Some(1), 5, HashMap::new());

    let opts = Options {
        label: Some("fast".into()),
        ..Default::default()
    };
    let line = with_options("job".into(), opts).await;
    println!("{line}");
    assert_eq!(line, "job: label=Some(\"fast\") retries=3");
}
