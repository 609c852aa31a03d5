//! The user-facing call forms: [`Call`] (what `#[threaded]` functions return) and
//! [`Threaded`] (the closure form). The attribute macros live in `aiothreads-macros`.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::pool::{default_pool, Pool, Reserve};
use crate::separate::{spawn_on, ThreadSpec, DEFAULT_NAME};
use crate::task::JoinHandle;

/// Where a call runs.
#[derive(Clone)]
enum Target {
    /// The default pool.
    Default,
    /// A chosen pool.
    Pool(Pool),
    /// A new OS thread.
    Separate(ThreadSpec),
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("DefaultPool"),
            Self::Pool(_) => f.write_str("Pool"),
            Self::Separate(spec) => write!(f, "Separate({:?})", spec.name),
        }
    }
}

impl Target {
    /// Submits at once (past a bounded queue's bound: see [`Pool::spawn`]).
    fn submit<F: BlockingFn>(self, f: F) -> JoinHandle<F::Output> {
        match self {
            Self::Default => default_pool().spawn(move || f.run()),
            Self::Pool(pool) => pool.spawn(move || f.run()),
            Self::Separate(spec) => spawn_on(spec, move || f.run()),
        }
    }

    /// The pool to reserve a place in before submitting, for an awaited call.
    fn pool(&self) -> Option<&Pool> {
        match self {
            Self::Default => Some(default_pool()),
            Self::Pool(pool) => Some(pool),
            Self::Separate(_) => None,
        }
    }

    fn separate(&mut self) -> &mut ThreadSpec {
        if !matches!(self, Self::Separate(_)) {
            *self = Self::Separate(ThreadSpec::named(Cow::Borrowed(DEFAULT_NAME)));
        }
        match self {
            Self::Separate(spec) => spec,
            _ => unreachable!("just set"),
        }
    }
}

/// A blocking function a [`Call`] runs: every `FnOnce() -> R + Send + 'static` with
/// `R: Send + 'static`.
///
/// # Examples
/// ```
/// use aiothreads::BlockingFn;
///
/// let f = || 6 * 7;
/// assert_eq!(f.run(), 42);
/// ```
pub trait BlockingFn: Send + 'static {
    /// What the function returns.
    type Output: Send + 'static;
    /// Calls the function.
    fn run(self) -> Self::Output;
}

impl<F, R> BlockingFn for F
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    type Output = R;
    fn run(self) -> R {
        self()
    }
}

/// One prepared call of a threaded function: the function's arguments are bound, nothing has
/// run yet. This is what functions marked [`#[threaded]`](macro@crate::threaded) and
/// [`#[threaded_separate]`](macro@crate::threaded_separate) return, and what
/// [`Threaded::bind`] gives.
///
/// - **A `Call` is a [`Future`]**, lazy as Rust futures are: nothing is submitted before its
///   first poll. Awaiting it submits the job (waiting first, as `Pending`, for a place in a
///   bounded pool's queue: see [`Builder::max_queued`](crate::Builder::max_queued)) and
///   waits for the result. It works with `join!`, `select!`, `FuturesUnordered`, `join_all`
///   and `buffer_unordered` like any future. Dropping it cancels the job (see
///   [`JoinHandle`]).
/// - [`call`](Self::call) / [`async_call`](Self::async_call) submit it at once and return
///   the [`JoinHandle`] (a `Future` of the result), as `spawn_blocking` does;
/// - [`sync_call`](Self::sync_call) runs it inline on the current thread;
/// - [`on`](Self::on) picks a pool, [`separate`](Self::separate) a new thread,
///   [`name`](Self::name) that thread's name, [`stack_size`](Self::stack_size) its stack.
///
/// A `Call` is `Unpin` whatever its function: the function is never pinned (it is moved to
/// its thread at the first poll).
///
/// # Examples
/// ```
/// use aiothreads::Call;
///
/// # futures::executor::block_on(async {
/// let call = Call::new(|| 2 + 2);
/// assert_eq!(call.await, 4);
/// assert_eq!(Call::new(|| 5).sync_call(), 5);
/// // Calls are futures: combine them with anything that takes futures.
/// let (a, b) = futures::join!(Call::new(|| 1), Call::new(|| 2));
/// assert_eq!(a + b, 3);
/// # });
/// ```
#[must_use = "a Call does nothing until it is awaited, `.call()`ed (then `.detach()` to let it run unobserved) or sync-called"]
pub struct Call<F: BlockingFn> {
    state: CallState<F>,
}

enum CallState<F: BlockingFn> {
    /// Not polled yet.
    Ready { f: F, target: Target },
    /// Waiting for a place in `pool`'s bounded queue.
    Reserving { f: F, pool: Pool, reserve: Reserve },
    /// Submitted.
    Running(JoinHandle<F::Output>),
    /// Finished (or its function was moved out).
    Done,
}

impl<F: BlockingFn> fmt::Debug for Call<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Call");
        match &self.state {
            CallState::Ready { target, .. } => d.field("target", target),
            CallState::Reserving { .. } => d.field("state", &"waiting for a place"),
            CallState::Running(handle) => d.field("handle", handle),
            CallState::Done => d.field("state", &"done"),
        };
        d.finish_non_exhaustive()
    }
}

impl<F: BlockingFn> Call<F> {
    /// A call of `f` on the default pool.
    ///
    /// # Examples
    /// ```
    /// let handle = aiothreads::Call::new(|| "hi").call();
    /// assert_eq!(futures::executor::block_on(handle), "hi");
    /// ```
    pub fn new(f: F) -> Self {
        Self {
            state: CallState::Ready {
                f,
                target: Target::Default,
            },
        }
    }

    /// A call of `f` on a new OS thread named `name` (what `#[threaded_separate]` uses).
    ///
    /// # Examples
    /// ```
    /// let call = aiothreads::Call::new_separate("worker", || {
    ///     std::thread::current().name().unwrap().to_owned()
    /// });
    /// assert_eq!(futures::executor::block_on(call), "worker");
    /// ```
    pub fn new_separate(name: impl Into<Cow<'static, str>>, f: F) -> Self {
        Self {
            state: CallState::Ready {
                f,
                target: Target::Separate(ThreadSpec::named(name.into())),
            },
        }
    }

    /// The target of a call not yet polled.
    ///
    /// # Panics
    /// If the call was already polled (its settings are fixed then).
    #[track_caller]
    fn target_mut(&mut self) -> &mut Target {
        match &mut self.state {
            CallState::Ready { target, .. } => target,
            _ => panic!("aiothreads::Call: settings cannot change after the call was polled"),
        }
    }

    /// Runs the call on `pool` instead.
    ///
    /// # Panics
    /// If the call was already polled.
    ///
    /// # Examples
    /// ```
    /// let pool = aiothreads::Pool::builder().thread_name_prefix("mine").build();
    /// let call = aiothreads::Call::new(|| std::thread::current().name().unwrap().to_owned());
    /// let name = futures::executor::block_on(call.on(&pool).call());
    /// assert!(name.starts_with("mine-"));
    /// ```
    #[track_caller]
    pub fn on(mut self, pool: &Pool) -> Self {
        *self.target_mut() = Target::Pool(pool.clone());
        self
    }

    /// Runs the call on a new OS thread instead of a pool (keeping the name of a
    /// `#[threaded_separate]` call; `aiothreads-separate` otherwise).
    ///
    /// # Panics
    /// If the call was already polled.
    ///
    /// # Examples
    /// ```
    /// let call = aiothreads::Call::new(|| std::thread::current().name().unwrap().to_owned());
    /// assert_eq!(futures::executor::block_on(call.separate().call()), "aiothreads-separate");
    /// ```
    #[track_caller]
    pub fn separate(mut self) -> Self {
        self.target_mut().separate();
        self
    }

    /// Names the thread of a call that runs on a separate thread (`#[threaded_separate]`, or
    /// after [`separate`](Self::separate)). Pool threads keep their pool's names: for a pool
    /// call this does nothing. A name with a NUL byte makes the call fail with
    /// [`JoinError::SpawnFailed`](crate::JoinError::SpawnFailed).
    ///
    /// # Panics
    /// If the call was already polled.
    ///
    /// # Examples
    /// ```
    /// let call = aiothreads::Call::new_separate("a", || std::thread::current().name().unwrap().to_owned());
    /// assert_eq!(futures::executor::block_on(call.name("b").call()), "b");
    /// ```
    #[track_caller]
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        if let Target::Separate(spec) = self.target_mut() {
            spec.name = name.into();
        }
        self
    }

    /// Stack size in bytes of the thread of a call that runs on a separate thread (default:
    /// the platform's, 2 MiB on Linux). Pool threads take theirs from
    /// [`Builder::stack_size`](crate::Builder::stack_size): for a pool call this does nothing.
    ///
    /// # Panics
    /// If the call was already polled.
    ///
    /// # Examples
    /// ```
    /// let call = aiothreads::Call::new_separate("big", || [0u8; 4 << 20].len());
    /// assert_eq!(futures::executor::block_on(call.stack_size(16 << 20)), 4 << 20);
    /// ```
    #[track_caller]
    pub fn stack_size(mut self, bytes: usize) -> Self {
        if let Target::Separate(spec) = self.target_mut() {
            spec.stack_size = Some(bytes);
        }
        self
    }

    /// Submits the call at once and returns the handle of its result. On a pool with a full
    /// bounded queue the job is queued past the bound (see [`Pool::spawn`]); `.await` the
    /// `Call` itself to wait for a place instead.
    ///
    /// Dropping the handle cancels the job: for fire-and-forget, call
    /// [`detach`](JoinHandle::detach) on it.
    ///
    /// # Examples
    /// ```
    /// let handle = aiothreads::Call::new(|| 1).call();
    /// assert_eq!(futures::executor::block_on(handle), 1);
    /// aiothreads::Call::new(|| println!("runs unobserved")).call().detach();
    /// ```
    pub fn call(self) -> JoinHandle<F::Output> {
        let mut this = self;
        match core::mem::replace(&mut this.state, CallState::Done) {
            CallState::Ready { f, target } => target.submit(f),
            CallState::Reserving { f, pool, reserve } => {
                // Give up the turn; queue past the bound (as `Pool::spawn` does).
                drop(reserve);
                pool.spawn(move || f.run())
            }
            CallState::Running(handle) => handle,
            CallState::Done => panic!("aiothreads::Call::call after the call completed"),
        }
    }

    /// Same as [`call`](Self::call) (the name of the original's explicit async call).
    ///
    /// # Examples
    /// ```
    /// let handle = aiothreads::Call::new(|| 1).async_call();
    /// assert_eq!(futures::executor::block_on(handle), 1);
    /// ```
    pub fn async_call(self) -> JoinHandle<F::Output> {
        self.call()
    }

    /// Runs the function inline on the current thread and returns its result (blocking this
    /// thread; no pool, no new thread).
    ///
    /// # Panics
    /// If the call was already polled (its function went to a thread).
    ///
    /// # Examples
    /// ```
    /// let me = std::thread::current().id();
    /// assert_eq!(aiothreads::Call::new(move || std::thread::current().id() == me).sync_call(), true);
    /// ```
    #[track_caller]
    pub fn sync_call(self) -> F::Output {
        let mut this = self;
        match core::mem::replace(&mut this.state, CallState::Done) {
            CallState::Ready { f, .. } | CallState::Reserving { f, .. } => f.run(),
            _ => panic!("aiothreads::Call::sync_call after the call was submitted"),
        }
    }
}

// The function is only ever moved, never pinned: nothing relies on `Call`'s address.
impl<F: BlockingFn> Unpin for Call<F> {}

impl<F: BlockingFn> Future for Call<F> {
    type Output = F::Output;

    /// Submits on the first poll (after a place in a bounded queue is granted), then polls the
    /// job's handle.
    ///
    /// # Panics
    /// Re-raises the job's panic; panics with the [`JoinError`](crate::JoinError) message if
    /// the job could not run; and if polled after it completed.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                CallState::Ready { .. } => {
                    let CallState::Ready { f, target } =
                        core::mem::replace(&mut this.state, CallState::Done)
                    else {
                        unreachable!()
                    };
                    this.state = match target.pool() {
                        Some(pool) if pool.is_bounded() => CallState::Reserving {
                            f,
                            reserve: pool.reserve(),
                            pool: pool.clone(),
                        },
                        _ => CallState::Running(target.submit(f)),
                    };
                }
                CallState::Reserving { reserve, .. } => {
                    let Poll::Ready(permit) = reserve.poll_place(cx) else {
                        return Poll::Pending;
                    };
                    let CallState::Reserving { f, .. } =
                        core::mem::replace(&mut this.state, CallState::Done)
                    else {
                        unreachable!()
                    };
                    this.state = CallState::Running(permit.spawn(move || f.run()));
                }
                CallState::Running(handle) => {
                    let out = Pin::new(handle).poll(cx);
                    if out.is_ready() {
                        this.state = CallState::Done;
                    }
                    return out;
                }
                CallState::Done => panic!("aiothreads::Call polled after it completed"),
            }
        }
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
        target: Target::Separate(ThreadSpec::named(Cow::Borrowed(DEFAULT_NAME))),
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
        if let Target::Separate(spec) = &mut self.target {
            spec.name = name.into();
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
            state: CallState::Ready {
                f: move || f.invoke(args),
                target: self.target.clone(),
            },
        }
    }
}
