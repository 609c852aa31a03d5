//! Context carried from the submitting task to the thread that runs the job.
//!
//! Three things travel with every `threaded` call (and with [`sync_await`] and the stream of
//! a [`blocking_iter`](crate::blocking_iter), in the other direction), captured on the
//! submitting thread and installed on the worker for that job only (for the stream: for each
//! of its polls and its drop; the `Loop` does not travel that way):
//! 1. the current [`Loop`], so `sync_await` in the worker finds the caller's event loop;
//! 2. the [`ContextVar`] values set around the submitting future;
//! 3. whatever the registered [`ContextHook`]s capture (with the `tracing` feature: the current
//!    `tracing` span).
//!
//! # Context variables
//! A [`ContextVar`] is set for the duration of a future with [`ContextVar::scope`], the way
//! tokio's `task_local!` is: the value is visible during every poll of that future, on
//! whatever executor thread polls it, and anywhere code called from those polls looks. Nothing
//! is tied to an executor, so it works on tokio, smol, `futures::executor` and
//! [`block_on`](crate::block_on) alike. A `threaded` call (or [`Snapshot::capture`]) takes a
//! snapshot of all values visible at that moment; the worker sees the snapshot; values it
//! sets itself (with [`ContextVar::sync_scope`]) end with its job and never flow back.
//!
//! ## Representation
//! The visible values form an immutable linked list of frames `(variable, value, parent)`;
//! the thread-local "current frame" points at its head. A snapshot is one `Arc` clone of the
//! head (nothing at all when no value is set), installing one is a pointer swap. A scope
//! builds its frame once, at its first poll, on top of the values visible then — so
//! `A.scope(a, B.scope(b, fut))` sees both, and a future spawned as a new task sees the values
//! around its own polls (as with tokio's task-locals), not its spawner's, unless it is wrapped
//! with [`Snapshot::wrap`].

use core::any::Any;
use core::cell::Cell;
use core::future::{poll_fn, Future};
use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::fmt;
use std::pin::pin;
use std::sync::{Arc, PoisonError, RwLock};

use crate::loop_handle::{replace_current, Loop};

// ---------------------------------------------------------------------------------------------
// Frames

/// One visible value; `V` is `dyn Any + Send + Sync` behind the `Arc`.
struct Frame<V: ?Sized = dyn Any + Send + Sync> {
    /// Address of the `ContextVar` static.
    key: usize,
    /// The values visible when this one was set.
    parent: Option<Arc<Frame>>,
    value: V,
}

thread_local! {
    /// Head of the values visible on this thread right now.
    static FRAME: Cell<Option<Arc<Frame>>> = const { Cell::new(None) };
}

/// A clone of the current head (one reference-count increment, or nothing when empty).
fn current_frame() -> Option<Arc<Frame>> {
    FRAME
        .try_with(|c| {
            let head = c.take();
            let out = head.clone();
            c.set(head);
            out
        })
        .ok()
        .flatten()
}

/// Runs `f` with `*slot` as the current head, then moves it back into `*slot` (also on panic).
/// No reference count is touched.
fn with_frame<R>(slot: &mut Option<Arc<Frame>>, f: impl FnOnce() -> R) -> R {
    struct Restore<'a> {
        slot: &'a mut Option<Arc<Frame>>,
        prev: Option<Arc<Frame>>,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let prev = self.prev.take();
            if let Ok(mine) = FRAME.try_with(|c| c.replace(prev)) {
                *self.slot = mine;
            }
        }
    }
    let Ok(prev) = FRAME.try_with(|c| c.replace(slot.take())) else {
        // Thread-locals are being destroyed: run without the values.
        return f();
    };
    let _restore = Restore { slot, prev };
    f()
}

// ---------------------------------------------------------------------------------------------
// ContextVar

/// A context value, set around a future (or a closure) and visible to everything it calls —
/// including `threaded` jobs it submits, on their worker threads.
///
/// The Rust counterpart of Python's `contextvars.ContextVar`. Declare it as a `static` (with
/// [`ContextVar::new`] or [`context_var!`](crate::context_var)); the static's address is its
/// identity. Values are `Send + Sync + 'static` because snapshots share them across threads;
/// wrap a value that is not in an `Arc<Mutex<_>>` or similar.
///
/// # Examples
/// ```
/// use aiothreads::ContextVar;
///
/// static USER: ContextVar<String> = ContextVar::new("user");
///
/// let seen = aiothreads::block_on(USER.scope("alice".to_string(), async {
///     // Visible during the future's polls, and on a thread spawned with a snapshot:
///     let snapshot = aiothreads::Snapshot::capture();
///     std::thread::spawn(move || snapshot.scope(|| USER.get())).join().unwrap()
/// }));
/// assert_eq!(seen, "alice");
/// assert_eq!(USER.try_get(), None); // not outside the scope
/// ```
pub struct ContextVar<T> {
    name: &'static str,
    _value: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for ContextVar<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ContextVar").field(&self.name).finish()
    }
}

impl<T: Send + Sync + 'static> ContextVar<T> {
    /// A variable named `name` (used in messages only). `const`, for a `static`.
    ///
    /// # Examples
    /// ```
    /// static REQUEST_ID: aiothreads::ContextVar<u64> = aiothreads::ContextVar::new("request_id");
    /// assert_eq!(REQUEST_ID.name(), "request_id");
    /// ```
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            _value: PhantomData,
        }
    }

    /// The name given to [`ContextVar::new`].
    ///
    /// # Examples
    /// See [`ContextVar::new`].
    pub fn name(&'static self) -> &'static str {
        self.name
    }

    fn key(&'static self) -> usize {
        (self as *const Self).cast::<()>() as usize
    }

    /// Sets the variable to `value` for every poll of `fut`: the returned future, awaited or
    /// spawned anywhere, sees `value` (and the values visible at its first poll).
    ///
    /// The frame holding `value` is allocated once, at the first poll; later polls cost two
    /// thread-local pointer swaps.
    ///
    /// # Examples
    /// ```
    /// aiothreads::context_var! { static DEPTH: u32; }
    ///
    /// let out = aiothreads::block_on(DEPTH.scope(1, async {
    ///     let inner = DEPTH.scope(2, async { DEPTH.get() }).await;
    ///     (inner, DEPTH.get())
    /// }));
    /// assert_eq!(out, (2, 1));
    /// ```
    pub fn scope<F: Future>(&'static self, value: T, fut: F) -> impl Future<Output = F::Output> {
        let key = self.key();
        async move {
            let mut fut = pin!(fut);
            let mut value = Some(value);
            let mut frame: Option<Arc<Frame>> = None;
            poll_fn(move |cx| {
                if let Some(value) = value.take() {
                    frame = Some(Arc::new(Frame {
                        key,
                        parent: current_frame(),
                        value,
                    }));
                }
                with_frame(&mut frame, || fut.as_mut().poll(cx))
            })
            .await
        }
    }

    /// Sets the variable to `value` while `f` runs on this thread.
    ///
    /// # Examples
    /// ```
    /// aiothreads::context_var! { static MODE: &'static str; }
    /// assert_eq!(MODE.sync_scope("fast", || MODE.get()), "fast");
    /// assert!(!MODE.is_set());
    /// ```
    pub fn sync_scope<R>(&'static self, value: T, f: impl FnOnce() -> R) -> R {
        let mut frame: Option<Arc<Frame>> = Some(Arc::new(Frame {
            key: self.key(),
            parent: current_frame(),
            value,
        }));
        with_frame(&mut frame, f)
    }

    /// Calls `f` with the visible value, or `None` when the variable is not set here.
    ///
    /// # Examples
    /// ```
    /// aiothreads::context_var! { static NAMES: Vec<String>; }
    /// let n = NAMES.sync_scope(vec!["a".into(), "b".into()], || NAMES.with(|v| v.map_or(0, Vec::len)));
    /// assert_eq!(n, 2);
    /// ```
    pub fn with<R>(&'static self, f: impl FnOnce(Option<&T>) -> R) -> R {
        let key = self.key();
        // Hold our own clone of the head, so `f` may use context variables freely.
        let head = current_frame();
        let mut cur = head.as_deref();
        while let Some(frame) = cur {
            if frame.key == key {
                let value = &frame.value as &dyn Any;
                if let Some(Reset(earlier)) = value.downcast_ref::<Reset>() {
                    // `reset`: this variable's binding is the one visible at `earlier`.
                    cur = earlier.as_deref();
                    continue;
                }
                return f(value.downcast_ref::<T>());
            }
            cur = frame.parent.as_deref();
        }
        f(None)
    }

    /// Sets the variable to `value` for the rest of the current frame, like Python's
    /// `ContextVar.set`, and returns a [`Token`] that [`reset`](Self::reset) takes to undo it.
    ///
    /// The current frame is: inside a `threaded` job, the rest of that job (a job's `set`
    /// never leaks into the next job on the same worker, nor back to the caller); inside an
    /// iterator of a stream, the rest of that stream's producer; inside a future wrapped by
    /// [`scope`](Self::scope) (or a [`Snapshot`]'s scope), the rest of that future; on a plain
    /// thread, the rest of the thread. Jobs submitted afterwards from this frame see the new
    /// value. One allocation (the frame).
    ///
    /// In async code, call it inside a [`scope`](Self::scope)d future: outside any scope it
    /// sets the *thread's* frame, which every task that executor thread polls would see.
    ///
    /// # Examples
    /// ```
    /// aiothreads::context_var! { static LEVEL: u32; }
    ///
    /// let seen = aiothreads::block_on(aiothreads::Call::new(|| {
    ///     let token = LEVEL.set(3);
    ///     let inside = LEVEL.get();
    ///     LEVEL.reset(token);
    ///     (inside, LEVEL.try_get())
    /// }));
    /// assert_eq!(seen, (3, None));
    /// // Nothing flowed back:
    /// assert_eq!(LEVEL.try_get(), None);
    /// ```
    pub fn set(&'static self, value: T) -> Token<T> {
        self.push(value)
    }

    /// Undoes the [`set`](Self::set) that returned `token`: the variable has again the value
    /// (or absence of value) it had before that `set`, whatever was set since.
    ///
    /// # Panics
    /// If `token` belongs to another variable.
    ///
    /// # Examples
    /// See [`set`](Self::set).
    #[track_caller]
    pub fn reset(&'static self, token: Token<T>) {
        assert_eq!(
            token.key,
            self.key(),
            "ContextVar::reset: the token belongs to another variable"
        );
        let _ = FRAME.try_with(|c| {
            let head = c.take();
            let undone = match &head {
                // The `set` is still on top: pop it.
                Some(top) if Arc::ptr_eq(top, &token.frame) => token.frame.parent.clone(),
                // Other values were set since: bind this one to what was visible before.
                _ => Some(Arc::new(Frame {
                    key: token.key,
                    parent: head.clone(),
                    value: Reset(token.frame.parent.clone()),
                }) as Arc<Frame>),
            };
            c.set(undone);
        });
    }

    fn push(&'static self, value: T) -> Token<T> {
        let frame: Arc<Frame> = Arc::new(Frame {
            key: self.key(),
            parent: current_frame(),
            value,
        });
        let _ = FRAME.try_with(|c| c.set(Some(frame.clone())));
        Token {
            key: self.key(),
            frame,
            _value: PhantomData,
        }
    }

    /// Whether the variable has a value here.
    ///
    /// # Examples
    /// See [`ContextVar::sync_scope`].
    pub fn is_set(&'static self) -> bool {
        self.with(|v| v.is_some())
    }

    /// A clone of the visible value, or `None` when not set.
    ///
    /// # Examples
    /// ```
    /// aiothreads::context_var! { static ID: u64; }
    /// assert_eq!(ID.try_get(), None);
    /// assert_eq!(ID.sync_scope(7, || ID.try_get()), Some(7));
    /// ```
    pub fn try_get(&'static self) -> Option<T>
    where
        T: Clone,
    {
        self.with(|v| v.cloned())
    }

    /// A clone of the visible value.
    ///
    /// # Panics
    /// If the variable is not set here (Python's `LookupError`); use [`ContextVar::try_get`]
    /// to get an `Option`.
    ///
    /// # Examples
    /// ```
    /// aiothreads::context_var! { static ID: u64; }
    /// assert_eq!(ID.sync_scope(7, || ID.get()), 7);
    /// ```
    #[track_caller]
    pub fn get(&'static self) -> T
    where
        T: Clone,
    {
        match self.try_get() {
            Some(v) => v,
            None => panic!("context variable `{}` is not set here", self.name),
        }
    }
}

/// A frame value meaning "this variable's binding is the one visible at this earlier frame"
/// (written by [`ContextVar::reset`] when other values were set after the `set` it undoes).
struct Reset(Option<Arc<Frame>>);

/// What [`ContextVar::set`] returns: hand it to [`ContextVar::reset`] to undo that `set`.
///
/// # Examples
/// ```
/// aiothreads::context_var! { static MODE: &'static str; }
/// std::thread::spawn(|| {
///     let token = MODE.set("fast");
///     assert_eq!(MODE.get(), "fast");
///     MODE.reset(token);
///     assert!(!MODE.is_set());
/// })
/// .join()
/// .unwrap();
/// ```
#[must_use = "a Token is what `ContextVar::reset` takes to undo the `set`"]
pub struct Token<T> {
    key: usize,
    frame: Arc<Frame>,
    _value: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Token<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token").finish_non_exhaustive()
    }
}

/// Declares [`ContextVar`] statics.
///
/// ```
/// aiothreads::context_var! {
///     /// The user the current request runs for.
///     pub static USER: String;
///     static REQUEST_ID: u64;
/// }
/// assert_eq!(USER.name(), "USER");
/// assert_eq!(REQUEST_ID.sync_scope(3, || REQUEST_ID.get()), 3);
/// ```
#[macro_export]
macro_rules! context_var {
    ($($(#[$attr:meta])* $vis:vis static $name:ident : $ty:ty;)*) => {
        $(
            $(#[$attr])*
            $vis static $name: $crate::ContextVar<$ty> = $crate::ContextVar::new(stringify!($name));
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// Hooks

/// Carries a piece of context of your own from the submitting thread into workers (and into
/// futures run by `sync_await`), e.g. a thread-local of a logging or tracing library.
///
/// Register it once with [`register_context_hook`]. Every capture (each `threaded` call,
/// each [`Snapshot::capture`]) calls [`capture`](ContextHook::capture) on the submitting
/// thread; the worker calls [`scope`](ContextHook::scope) around the job with what was
/// captured.
///
/// # Examples
/// ```
/// use std::any::Any;
/// use std::cell::Cell;
///
/// thread_local! { static LOG_LEVEL: Cell<u8> = const { Cell::new(0) }; }
///
/// struct LogLevelHook;
/// impl aiothreads::ContextHook for LogLevelHook {
///     fn capture(&self) -> Option<Box<dyn Any + Send>> {
///         let level = LOG_LEVEL.with(Cell::get);
///         (level != 0).then(|| Box::new(level) as Box<dyn Any + Send>) // nothing to carry: no box
///     }
///     fn scope(&self, captured: &mut (dyn Any + Send), f: &mut dyn FnMut()) {
///         let level = *captured.downcast_ref::<u8>().unwrap();
///         let prev = LOG_LEVEL.with(|l| l.replace(level));
///         f();
///         LOG_LEVEL.with(|l| l.set(prev));
///     }
/// }
///
/// aiothreads::register_context_hook(LogLevelHook);
/// LOG_LEVEL.with(|l| l.set(3));
/// let snapshot = aiothreads::Snapshot::capture();
/// let seen = std::thread::spawn(move || snapshot.scope(|| LOG_LEVEL.with(Cell::get)));
/// assert_eq!(seen.join().unwrap(), 3);
/// ```
pub trait ContextHook: Send + Sync + 'static {
    /// Captures the context on the submitting thread; `None` when there is nothing to carry
    /// (then `scope` is not called for this capture).
    fn capture(&self) -> Option<Box<dyn Any + Send>>;

    /// Runs `f` exactly once with the captured context installed on the current thread.
    /// May be called several times with the same capture (once per poll of a future run by
    /// `sync_await`, or of a stream consumed with `blocking_iter`).
    fn scope(&self, captured: &mut (dyn Any + Send), f: &mut dyn FnMut());
}

type Hooks = Vec<Arc<dyn ContextHook>>;

/// Registered hooks; `HOOK_COUNT` lets a capture skip the lock when there are none.
static HOOKS: RwLock<Hooks> = RwLock::new(Vec::new());
static HOOK_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Registers a [`ContextHook`] for the rest of the process. Hooks run in registration order,
/// the first one outermost.
///
/// # Examples
/// A hook that carries a request id kept in a thread-local into every threaded call:
/// ```
/// use std::any::Any;
/// use std::cell::Cell;
///
/// thread_local! { static REQUEST: Cell<u64> = const { Cell::new(0) }; }
///
/// struct RequestHook;
/// impl aiothreads::ContextHook for RequestHook {
///     fn capture(&self) -> Option<Box<dyn Any + Send>> {
///         Some(Box::new(REQUEST.with(Cell::get)))
///     }
///     fn scope(&self, captured: &mut (dyn Any + Send), f: &mut dyn FnMut()) {
///         let id = *captured.downcast_ref::<u64>().unwrap();
///         let previous = REQUEST.with(|r| r.replace(id));
///         f();
///         REQUEST.with(|r| r.set(previous));
///     }
/// }
///
/// aiothreads::register_context_hook(RequestHook);
/// REQUEST.with(|r| r.set(42));
/// let seen = aiothreads::spawn(|| REQUEST.with(Cell::get)); // runs on a pool thread
/// assert_eq!(futures::executor::block_on(seen), 42);
/// ```
pub fn register_context_hook(hook: impl ContextHook) {
    let mut hooks = HOOKS.write().unwrap_or_else(PoisonError::into_inner);
    hooks.push(Arc::new(hook));
    // Release: a capture that sees the new count sees the hook under the read lock anyway;
    // the count only lets captures skip the lock.
    HOOK_COUNT.store(hooks.len(), Ordering::Release);
}

/// A hook and what it captured.
type HookCapture = (Arc<dyn ContextHook>, Box<dyn Any + Send>);
type HookCaptures = Vec<HookCapture>;

fn capture_hooks() -> Option<HookCaptures> {
    if HOOK_COUNT.load(Ordering::Acquire) == 0 {
        return None;
    }
    let hooks = HOOKS.read().unwrap_or_else(PoisonError::into_inner);
    let captured: HookCaptures = hooks
        .iter()
        .filter_map(|h| h.capture().map(|c| (Arc::clone(h), c)))
        .collect();
    (!captured.is_empty()).then_some(captured)
}

fn run_hooks(hooks: &mut [HookCapture], f: &mut dyn FnMut()) {
    match hooks.split_first_mut() {
        None => f(),
        Some(((hook, captured), rest)) => {
            hook.scope(&mut **captured, &mut || run_hooks(&mut *rest, &mut *f));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots

/// Context values, hook captures and span of one moment, without the loop.
pub(crate) struct ContextSnapshot {
    frame: Option<Arc<Frame>>,
    hooks: Option<HookCaptures>,
    #[cfg(feature = "tracing")]
    span: Option<tracing::Span>,
}

impl ContextSnapshot {
    /// Cost: one `Arc` clone when a context value is set (nothing otherwise); one atomic load
    /// for hooks, plus one `Vec` and each hook's capture only when hooks are registered; with
    /// the `tracing` feature, a dispatcher lookup (and a span clone inside a span).
    pub(crate) fn capture() -> Self {
        Self {
            frame: current_frame(),
            hooks: capture_hooks(),
            #[cfg(feature = "tracing")]
            span: crate::tracing_hook::capture(),
        }
    }

    /// A future that polls `fut` with this context installed (`enter` per poll: two
    /// thread-local swaps, plus hooks and span when there are some); what `fut` sets stays in
    /// this context, never in the polling thread's.
    pub(crate) async fn wrap<F: Future>(mut self, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        poll_fn(move |cx| self.enter(|| fut.as_mut().poll(cx))).await
    }

    /// Runs `f` with this context installed; reusable (once per poll of a future).
    pub(crate) fn enter<R>(&mut self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tracing")]
        let span = self.span.as_ref();
        #[cfg(not(feature = "tracing"))]
        let span = None::<&()>;
        let Self { frame, hooks, .. } = self;
        with_frame(frame, || match hooks {
            None => enter_span(span, f),
            Some(hooks) => {
                let mut f = Some(f);
                let mut out = None;
                run_hooks(hooks, &mut || {
                    if let Some(f) = f.take() {
                        out = Some(enter_span(span, f));
                    }
                });
                match (out, f) {
                    (Some(out), _) => out,
                    // A hook did not call `f`: run it anyway, without that hook's context.
                    (None, Some(f)) => enter_span(span, f),
                    (None, None) => unreachable!("the job ran but produced no output"),
                }
            }
        })
    }
}

#[cfg(feature = "tracing")]
fn enter_span<R>(span: Option<&tracing::Span>, f: impl FnOnce() -> R) -> R {
    match span {
        Some(span) => span.in_scope(f),
        None => f(),
    }
}

#[cfg(not(feature = "tracing"))]
fn enter_span<R>(_span: Option<&()>, f: impl FnOnce() -> R) -> R {
    f()
}

/// Everything captured at submission time and installed on the worker for one job.
pub(crate) struct Captured {
    lp: Option<Loop>,
    ctx: ContextSnapshot,
}

impl fmt::Debug for Captured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Captured")
            .field("loop", &self.lp)
            .field("has_values", &self.ctx.frame.is_some())
            .field("hooks", &self.ctx.hooks.as_ref().map_or(0, Vec::len))
            .finish_non_exhaustive()
    }
}

impl Captured {
    /// Captures the caller's context: the current loop ([`Loop::current`]: a thread-local read
    /// plus one reference-count increment when a loop is set or a tokio runtime is entered)
    /// and the [`ContextSnapshot`] (see its cost). No allocation unless hooks are registered.
    pub(crate) fn capture() -> Self {
        Self {
            lp: Loop::current(),
            ctx: ContextSnapshot::capture(),
        }
    }

    /// Runs `f` on the current thread with the captured context installed, and restores the
    /// previous one afterwards (also on panic).
    pub(crate) fn scope<R>(mut self, f: impl FnOnce() -> R) -> R {
        self.enter(f)
    }

    /// Like `scope`, reusable.
    pub(crate) fn enter<R>(&mut self, f: impl FnOnce() -> R) -> R {
        struct RestoreLoop<'a> {
            slot: &'a mut Option<Loop>,
            prev: Option<Loop>,
        }
        impl Drop for RestoreLoop<'_> {
            fn drop(&mut self) {
                *self.slot = replace_current(self.prev.take());
            }
        }
        // A tokio loop: enter its runtime context too, as `spawn_blocking` threads are, so that
        // tokio constructors (`tokio::time::sleep(..)`) work in the job (one `Arc` clone).
        #[cfg(feature = "tokio")]
        let runtime = self.lp.as_ref().and_then(Loop::tokio_handle).cloned();
        #[cfg(feature = "tokio")]
        let _runtime = runtime.as_ref().map(tokio::runtime::Handle::enter);
        let prev = replace_current(self.lp.take());
        let _restore = RestoreLoop {
            slot: &mut self.lp,
            prev,
        };
        self.ctx.enter(f)
    }
}

/// The async caller's context, captured for a thread you manage yourself.
///
/// `threaded` calls do this for you. Use it with `std::thread::spawn`, a thread pool of your
/// own, or anything `asyncio.to_thread`-like: capture on the async side, then run the work
/// inside [`Snapshot::scope`] on the thread. The work then sees the caller's
/// [`ContextVar`] values, its hooks' context, and its current [`Loop`] (so
/// [`sync_await`](crate::sync_await) works there without passing the loop by hand).
///
/// `Send + 'static`. Capturing allocates nothing unless [`ContextHook`]s are registered.
///
/// # Examples
/// ```
/// aiothreads::context_var! { static USER: String; }
///
/// # #[cfg(feature = "tokio")] {
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let out = rt.block_on(USER.scope("bob".into(), async {
///     let snapshot = aiothreads::Snapshot::capture(); // on the async side
///     tokio::task::spawn_blocking(move || {
///         snapshot.scope(|| {
///             // The caller's value, and its runtime for sync_await:
///             let n = aiothreads::sync_await(async { 40 + 2 });
///             format!("{} {n}", USER.get())
///         })
///     })
///     .await
///     .unwrap()
/// }));
/// assert_eq!(out, "bob 42");
/// # }
/// ```
#[derive(Debug)]
pub struct Snapshot {
    inner: Captured,
}

impl Snapshot {
    /// Captures the current context (values, hooks, loop).
    ///
    /// # Examples
    /// See [`Snapshot`].
    pub fn capture() -> Self {
        Self {
            inner: Captured::capture(),
        }
    }

    /// Runs `f` on this thread inside the snapshot; afterwards the thread's own context is
    /// back. Values `f` sets do not reach the snapshot.
    ///
    /// # Examples
    /// See [`Snapshot`].
    pub fn scope<R>(self, f: impl FnOnce() -> R) -> R {
        self.inner.scope(f)
    }

    /// Like [`Snapshot::scope`], without consuming the snapshot (run several closures in the
    /// same captured context). The snapshot then behaves as a task's context between its
    /// polls: what one `run` sets (`ContextVar::set`) is there in the next `run` of the same
    /// snapshot, never in the thread's own context ([`wrap`](Self::wrap) relies on it).
    ///
    /// # Examples
    /// ```
    /// aiothreads::context_var! { static N: u8; }
    /// let mut snapshot = N.sync_scope(1, aiothreads::Snapshot::capture);
    /// assert_eq!(snapshot.run(|| N.get()), 1);
    /// assert_eq!(snapshot.run(|| N.get()), 1);
    /// assert!(!N.is_set());
    /// ```
    pub fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        self.inner.enter(f)
    }

    /// A future that polls `fut` inside the snapshot: carries the context into a task you
    /// spawn (tokio's task-locals and our scopes are per task, so a spawned task does not see
    /// its spawner's values otherwise).
    ///
    /// # Examples
    /// ```
    /// aiothreads::context_var! { static USER: &'static str; }
    /// let task = USER.sync_scope("carol", || aiothreads::Snapshot::capture().wrap(async { USER.get() }));
    /// assert_eq!(aiothreads::block_on(task), "carol");
    /// ```
    pub async fn wrap<F: Future>(mut self, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        poll_fn(move |cx| self.run(|| fut.as_mut().poll(cx))).await
    }

    /// The loop captured (the caller's current loop), if any.
    ///
    /// # Examples
    /// ```
    /// assert!(aiothreads::Snapshot::capture().current_loop().is_none());
    /// ```
    pub fn current_loop(&self) -> Option<&Loop> {
        self.inner.lp.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_static<T: Send + 'static>() {}

    #[test]
    fn captured_is_send_static() {
        assert_send_static::<Captured>();
        assert_send_static::<Snapshot>();
    }

    crate::context_var! { static A: u32; static B: &'static str; }

    #[test]
    fn nested_scopes_and_restore() {
        A.sync_scope(1, || {
            B.sync_scope("b", || {
                assert_eq!(A.get(), 1);
                assert_eq!(B.get(), "b");
                A.sync_scope(2, || assert_eq!(A.get(), 2));
                assert_eq!(A.get(), 1);
            });
            assert!(!B.is_set());
        });
        assert!(!A.is_set());
    }

    #[test]
    fn worker_changes_do_not_flow_back() {
        let snap = A.sync_scope(1, Captured::capture);
        let t = std::thread::spawn(move || {
            snap.scope(|| {
                A.sync_scope(5, || assert_eq!(A.get(), 5));
                A.get()
            })
        });
        assert_eq!(t.join().unwrap(), 1);
        assert!(!A.is_set());
    }

    #[test]
    fn panic_restores_context() {
        let r = std::panic::catch_unwind(|| A.sync_scope(9, || panic!("boom")));
        assert!(r.is_err());
        assert!(!A.is_set());
    }
}
