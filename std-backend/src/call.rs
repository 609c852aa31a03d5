//! The user-facing call forms: [`Call`] (what `#[threaded]` functions return) and
//! [`Threaded`] (the closure form). The attribute macros live in `aiothreads-macros`.

use core::future::IntoFuture;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::pool::{default_pool, Pool};
use crate::separate::{run_on_new_thread, DEFAULT_NAME};
use crate::task::{JoinHandle, Task};

/// Where a call runs.
#[derive(Clone)]
enum Target {
    /// The default pool.
    Default,
    /// A chosen pool.
    Pool(Pool),
    /// A new OS thread with this name.
    Separate(Cow<'static, str>),
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("DefaultPool"),
            Self::Pool(_) => f.write_str("Pool"),
            Self::Separate(name) => write!(f, "Separate({name:?})"),
        }
    }
}

impl Target {
    fn submit<F, R>(self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match self {
            Self::Default => default_pool().spawn(f),
            Self::Pool(pool) => pool.spawn(f),
            Self::Separate(name) => run_on_new_thread(name, Task::new(f)),
        }
    }
}

/// One prepared call of a threaded function: the function's arguments are bound, nothing has
/// run yet. This is what functions marked [`#[threaded]`](macro@crate::threaded) and
/// [`#[threaded_separate]`](macro@crate::threaded_separate) return, and what
/// [`Threaded::bind`] gives.
///
/// - `.await` (through [`IntoFuture`]) submits it and waits for the result;
/// - [`call`](Self::call) / [`async_call`](Self::async_call) submit it at once and return the
///   [`JoinHandle`] (a `Future` of the result), as `spawn_blocking` does;
/// - [`sync_call`](Self::sync_call) runs it inline on the current thread;
/// - [`on`](Self::on) picks a pool, [`separate`](Self::separate) a new thread,
///   [`name`](Self::name) that thread's name.
///
/// # Examples
/// ```
/// use aiothreads::Call;
///
/// # futures::executor::block_on(async {
/// let call = Call::new(|| 2 + 2);
/// assert_eq!(call.await, 4);
/// assert_eq!(Call::new(|| 5).sync_call(), 5);
/// # });
/// ```
#[must_use = "a Call does nothing until it is awaited, called or sync-called"]
pub struct Call<F> {
    f: F,
    target: Target,
}

impl<F> fmt::Debug for Call<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<F, R> Call<F>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    /// A call of `f` on the default pool.
    ///
    /// # Examples
    /// ```
    /// let handle = aiothreads::Call::new(|| "hi").call();
    /// assert_eq!(futures::executor::block_on(handle), "hi");
    /// ```
    pub fn new(f: F) -> Self {
        Self {
            f,
            target: Target::Default,
        }
    }

    /// A call of `f` on a new OS thread named `name` (what `#[threaded_separate]` uses).
    ///
    /// # Examples
    /// ```
    /// let call = aiothreads::Call::new_separate("worker", || {
    ///     std::thread::current().name().unwrap().to_owned()
    /// });
    /// assert_eq!(futures::executor::block_on(call.into_future()), "worker");
    /// # use std::future::IntoFuture;
    /// ```
    pub fn new_separate(name: impl Into<Cow<'static, str>>, f: F) -> Self {
        Self {
            f,
            target: Target::Separate(name.into()),
        }
    }

    /// Runs the call on `pool` instead.
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder().thread_name_prefix("mine").build();
    /// let call = aiothreads::Call::new(|| std::thread::current().name().unwrap().to_owned());
    /// let name = futures::executor::block_on(call.on(&pool).call());
    /// assert!(name.starts_with("mine-"));
    /// ```
    pub fn on(mut self, pool: &Pool) -> Self {
        self.target = Target::Pool(pool.clone());
        self
    }

    /// Runs the call on a new OS thread instead of a pool (keeping the name of a
    /// `#[threaded_separate]` call; `aiothreads-separate` otherwise).
    ///
    /// # Examples
    /// ```
    /// let call = aiothreads::Call::new(|| std::thread::current().name().unwrap().to_owned());
    /// assert_eq!(futures::executor::block_on(call.separate().call()), "aiothreads-separate");
    /// ```
    pub fn separate(mut self) -> Self {
        if !matches!(self.target, Target::Separate(_)) {
            self.target = Target::Separate(Cow::Borrowed(DEFAULT_NAME));
        }
        self
    }

    /// Names the thread of a call that runs on a separate thread (`#[threaded_separate]`, or
    /// after [`separate`](Self::separate)). Pool threads keep their pool's names: for a pool
    /// call this does nothing.
    ///
    /// # Examples
    /// ```
    /// let call = aiothreads::Call::new_separate("a", || std::thread::current().name().unwrap().to_owned());
    /// assert_eq!(futures::executor::block_on(call.name("b").call()), "b");
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        if let Target::Separate(n) = &mut self.target {
            *n = name.into();
        }
        self
    }

    /// Submits the call at once and returns the handle of its result.
    ///
    /// # Examples
    /// ```
    /// let handle = aiothreads::Call::new(|| 1).call();
    /// assert_eq!(futures::executor::block_on(handle), 1);
    /// ```
    pub fn call(self) -> JoinHandle<R> {
        self.target.submit(self.f)
    }

    /// Same as [`call`](Self::call) (the name of the original's explicit async call).
    ///
    /// # Examples
    /// ```
    /// let handle = aiothreads::Call::new(|| 1).async_call();
    /// assert_eq!(futures::executor::block_on(handle), 1);
    /// ```
    pub fn async_call(self) -> JoinHandle<R> {
        self.call()
    }

    /// Runs the function inline on the current thread and returns its result (blocking this
    /// thread; no pool, no new thread).
    ///
    /// # Examples
    /// ```
    /// let me = std::thread::current().id();
    /// assert_eq!(aiothreads::Call::new(move || std::thread::current().id() == me).sync_call(), true);
    /// ```
    pub fn sync_call(self) -> R {
        (self.f)()
    }
}

impl<F, R> IntoFuture for Call<F>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    type Output = R;
    type IntoFuture = JoinHandle<R>;

    fn into_future(self) -> JoinHandle<R> {
        self.call()
    }
}

/// A function that a [`Threaded`] wrapper can call with its arguments packed in a tuple.
///
/// Implemented for every `Fn(A, B, …) -> R + Send + Sync + 'static` of 0 to 6 arguments,
/// with `Args = (A, B, …)`.
///
/// # Examples
/// ```
/// use aiothreads::ThreadedFn;
///
/// let add = |a: i32, b: i32| a + b;
/// assert_eq!(add.invoke((1, 2)), 3);
/// ```
pub trait ThreadedFn<Args>: Send + Sync + 'static {
    /// The function's return type.
    type Output: Send + 'static;
    /// Calls the function with the unpacked arguments.
    fn invoke(&self, args: Args) -> Self::Output;
}

macro_rules! impl_threaded_fn {
    ($($a:ident)*) => {
        impl<Func, Ret, $($a,)*> ThreadedFn<($($a,)*)> for Func
        where
            Func: Fn($($a),*) -> Ret + Send + Sync + 'static,
            Ret: Send + 'static,
        {
            type Output = Ret;
            #[allow(non_snake_case, clippy::unused_unit)]
            fn invoke(&self, ($($a,)*): ($($a,)*)) -> Ret {
                (self)($($a),*)
            }
        }
    };
}

impl_threaded_fn!();
impl_threaded_fn!(A);
impl_threaded_fn!(A B);
impl_threaded_fn!(A B C);
impl_threaded_fn!(A B C D);
impl_threaded_fn!(A B C D E);
impl_threaded_fn!(A B C D E G);

/// A function wrapped to run on a pool or on separate threads: the closure form of
/// [`#[threaded]`](macro@crate::threaded), made by [`threaded`](fn@threaded) or
/// [`threaded_separate`](fn@threaded_separate).
///
/// Arguments are passed as a tuple (`(x,)` for one argument, `()` for none) and are checked
/// statically against the function's signature. `Threaded` is `Clone` (an `Arc` inside), so
/// one wrapper can be shared by many tasks.
///
/// # Examples
/// ```
/// # futures::executor::block_on(async {
/// let compute = aiothreads::threaded(|x: i32, y: i32| x + y);
/// assert_eq!(compute.call((1, 2)).await, 3);
/// assert_eq!(compute.async_call((1, 2)).await, 3);
/// assert_eq!(compute.sync_call((1, 2)), 3);
/// assert_eq!(compute.bind((2, 2)).await, 4);
/// # });
/// ```
pub struct Threaded<F> {
    f: Arc<F>,
    target: Target,
}

impl<F> Clone for Threaded<F> {
    fn clone(&self) -> Self {
        Self {
            f: self.f.clone(),
            target: self.target.clone(),
        }
    }
}

impl<F> fmt::Debug for Threaded<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Threaded")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Wraps `f` so that each call runs on the default pool (see [`Threaded`]).
///
/// # Examples
/// ```
/// # futures::executor::block_on(async {
/// let shout = aiothreads::threaded(|s: String| s.to_uppercase());
/// assert_eq!(shout.call(("hi".to_owned(),)).await, "HI");
/// # });
/// ```
pub fn threaded<F: Send + Sync + 'static>(f: F) -> Threaded<F> {
    Threaded {
        f: Arc::new(f),
        target: Target::Default,
    }
}

/// Wraps `f` so that each call runs on a new OS thread named `aiothreads-separate` (change
/// it with [`Threaded::name`]).
///
/// # Examples
/// ```
/// # futures::executor::block_on(async {
/// let who = aiothreads::threaded_separate(|| std::thread::current().name().unwrap().to_owned())
///     .name("watcher");
/// assert_eq!(who.call(()).await, "watcher");
/// # });
/// ```
pub fn threaded_separate<F: Send + Sync + 'static>(f: F) -> Threaded<F> {
    Threaded {
        f: Arc::new(f),
        target: Target::Separate(Cow::Borrowed(DEFAULT_NAME)),
    }
}

impl<F: Send + Sync + 'static> Threaded<F> {
    /// Runs the calls on `pool` instead.
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder().max_threads(1).build();
    /// let f = aiothreads::threaded(|| 1).on(&pool);
    /// assert_eq!(futures::executor::block_on(f.call(())), 1);
    /// ```
    pub fn on(mut self, pool: &Pool) -> Self {
        self.target = Target::Pool(pool.clone());
        self
    }

    /// Names the threads of a separate-thread wrapper (no effect on a pool wrapper).
    ///
    /// # Examples
    /// ```
    /// let f = aiothreads::threaded_separate(|| ()).name("pipe-reader");
    /// futures::executor::block_on(f.call(()));
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        if let Target::Separate(n) = &mut self.target {
            *n = name.into();
        }
        self
    }

    /// Submits a call at once; the handle is a `Future` of the result.
    ///
    /// # Examples
    /// ```
    /// let square = aiothreads::threaded(|x: u64| x * x);
    /// let handles: Vec<_> = (0..5).map(|i| square.call((i,))).collect();
    /// let results = futures::executor::block_on(futures::future::join_all(handles));
    /// assert_eq!(results, [0, 1, 4, 9, 16]);
    /// ```
    pub fn call<A>(&self, args: A) -> JoinHandle<F::Output>
    where
        F: ThreadedFn<A>,
        A: Send + 'static,
    {
        let f = self.f.clone();
        self.target.clone().submit(move || f.invoke(args))
    }

    /// Same as [`call`](Self::call).
    ///
    /// # Examples
    /// ```
    /// let one = aiothreads::threaded(|| 1);
    /// assert_eq!(futures::executor::block_on(one.async_call(())), 1);
    /// ```
    pub fn async_call<A>(&self, args: A) -> JoinHandle<F::Output>
    where
        F: ThreadedFn<A>,
        A: Send + 'static,
    {
        self.call(args)
    }

    /// Runs the function inline on the current thread.
    ///
    /// # Examples
    /// ```
    /// let add = aiothreads::threaded(|a: i32, b: i32| a + b);
    /// assert_eq!(add.sync_call((2, 3)), 5);
    /// ```
    pub fn sync_call<A>(&self, args: A) -> F::Output
    where
        F: ThreadedFn<A>,
    {
        self.f.invoke(args)
    }

    /// Binds the arguments into a [`Call`] without submitting it (choose a pool with
    /// [`Call::on`], or `.await` it).
    ///
    /// # Examples
    /// ```
    /// let add = aiothreads::threaded(|a: i32, b: i32| a + b);
    /// let call = add.bind((2, 3));
    /// assert_eq!(futures::executor::block_on(call.call()), 5);
    /// ```
    pub fn bind<A>(&self, args: A) -> Call<impl FnOnce() -> F::Output + Send + 'static>
    where
        F: ThreadedFn<A>,
        A: Send + 'static,
    {
        let f = self.f.clone();
        Call {
            f: move || f.invoke(args),
            target: self.target.clone(),
        }
    }
}
