//! Attribute macros of [`aiothreads`](https://docs.rs/aiothreads): they turn a blocking
//! function into one whose calls run on a thread pool or a new thread, or whose iterator is
//! consumed as an async `Stream`.
//!
//! Use them through `aiothreads` (its default feature `macros` re-exports them):
//! `#[aiothreads::threaded]`, `#[aiothreads::threaded_separate]`,
//! `#[aiothreads::threaded_iterable(max_size = N)]`,
//! `#[aiothreads::threaded_iterable_separate]`. The expansion uses only `aiothreads`' public
//! API ([`Call`](https://docs.rs/aiothreads/latest/aiothreads/struct.Call.html) and
//! [`IterCall`](https://docs.rs/aiothreads/latest/aiothreads/struct.IterCall.html)), so a
//! build without this crate writes the same thing with closures.
//!
//! ```
//! #[aiothreads::threaded]
//! fn add(x: i32, y: i32) -> i32 {
//!     x + y
//! }
//!
//! futures::executor::block_on(async {
//!     assert_eq!(add(1, 2).await, 3);
//! });
//! ```

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned, ToTokens};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    Expr, FnArg, GenericArgument, GenericParam, Ident, ItemFn, MetaNameValue, Pat, PathArguments,
    ReturnType, Token, Type, TypeParamBound,
};

/// Makes a blocking function's calls run on the default thread pool.
///
/// `fn name(args) -> R { body }` becomes `fn name(args) -> Call<impl FnOnce() -> R>`: calling
/// it binds the arguments and returns an `aiothreads::Call`, which runs nothing until it is
/// - `.await`ed: submitted to the default pool, the task waits for the result;
/// - `.call()`ed: submitted at once, giving a `JoinHandle` (a `Future` of the result, like
///   `spawn_blocking`'s). **Dropping the handle cancels the job**: `.detach()` lets it run
///   unobserved;
/// - `.sync_call()`ed: run inline, blocking the current thread;
/// - `.on(&pool)`: sent to another pool.
///
/// The whole function grammar is kept: visibility, attributes and doc comments, generic
/// parameters and `where` clauses, `mut` arguments and patterns. Every argument moves into the
/// call and is dropped on the thread that runs it.
///
/// Arguments and generic parameters must be `Send + 'static`, because they cross to another
/// thread and the body runs after the function has returned: a borrowed argument (`&str`,
/// `&[T]`, `Foo<'a>`) is a compile error that says so (take `String`, `Vec<T>`, an `Arc`).
///
/// # Methods
/// In an `impl` block, the receiver says how the object reaches the thread: `self` or
/// `mut self` moves it, `self: Arc<Self>` shares it, no receiver is an associated ("static")
/// function, and one returning `Self` is a constructor ("class method"). `&self` and
/// `&mut self` are refused at compile time: take `self: Arc<Self>`.
///
/// # Examples
/// ```
/// use std::sync::Arc;
///
/// /// Adds two numbers on a pool thread.
/// #[aiothreads::threaded]
/// pub fn compute(x: i32, y: i32) -> i32 {
///     x + y
/// }
///
/// /// Generic, with a `where` clause, a pattern and a `mut` argument.
/// #[aiothreads::threaded]
/// fn total<T>((a, b): (T, T), mut extra: Vec<T>) -> T
/// where
///     T: std::ops::Add<Output = T> + std::iter::Sum + Send + 'static,
/// {
///     extra.push(a + b);
///     extra.into_iter().sum()
/// }
///
/// struct Processor {
///     factor: i32,
/// }
///
/// impl Processor {
///     /// Shared receiver.
///     #[aiothreads::threaded]
///     pub fn process(self: Arc<Self>, x: i32) -> i32 {
///         x * self.factor
///     }
///
///     /// Constructor.
///     #[aiothreads::threaded]
///     pub fn from_config(factor: i32) -> Self {
///         Processor { factor }
///     }
/// }
///
/// futures::executor::block_on(async {
///     assert_eq!(compute(1, 2).await, 3); // submitted and awaited
///     assert_eq!(compute(1, 2).call().await, 3); // submitted at once, then awaited
///     assert_eq!(compute(1, 2).sync_call(), 3); // inline
///     assert_eq!(total((1, 2), vec![3]).await, 6);
///     let p = Arc::new(Processor::from_config(10).await);
///     assert_eq!(p.process(4).await, 40);
///     compute(5, 5).call().detach(); // runs with nobody waiting
/// });
/// ```
#[proc_macro_attribute]
pub fn threaded(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(&THREADED, attr.into(), item.into()).into()
}

/// Makes a blocking function's calls each run on a new OS thread named after the function.
///
/// The same grammar and call forms as [`macro@threaded`]; the thread of a call is named after
/// the function unless renamed with `.name("…")`. For work that may block for long or never
/// return (reading a pipe, waiting for a device): it never occupies a pool worker. A failure
/// to create the thread reaches the awaiter as `JoinError::SpawnFailed`.
///
/// # Examples
/// ```
/// /// Blocks on something that may never answer.
/// #[aiothreads::threaded_separate]
/// fn wait_for_device() -> String {
///     std::thread::current().name().unwrap().to_owned()
/// }
///
/// futures::executor::block_on(async {
///     assert_eq!(wait_for_device().await, "wait_for_device");
///     assert_eq!(wait_for_device().name("dev0").await, "dev0");
/// });
/// ```
#[proc_macro_attribute]
pub fn threaded_separate(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(&THREADED_SEPARATE, attr.into(), item.into()).into()
}

/// Makes a function that returns a blocking iterator into one that returns an async `Stream`
/// of its items, produced on a pool thread.
///
/// `fn name(args) -> impl Iterator<Item = T> { body }` (or `impl IntoIterator<Item = T>`, or
/// a concrete iterable type) becomes `fn name(args) -> IterCall<impl IterFn<Item = T>>`. The
/// `aiothreads::IterCall` is a `Stream` started on its first poll; at most `max_size` items
/// wait between the threads (the producer parks while the queue is full); dropping the stream
/// stops the iterator and drops it on its thread; `.close().await` waits for that;
/// `.sync_call()` gives the plain iterator.
///
/// Option: `max_size = N`, a `usize` expression (default: `aiothreads::default_max_size()`,
/// 1024 or `THREADED_ITERABLE_DEFAULT_MAX_SIZE`); `0` means unbounded, as in the original
/// (the producer never waits; memory grows with a slow consumer). The function grammar and the rules for
/// arguments and receivers are those of [`macro@threaded`]. The call (the arguments and the
/// body) is boxed once per stream, so that the stream is `Unpin` — `.next().await` works —
/// whatever the arguments are.
///
/// # Examples
/// ```
/// use futures::StreamExt;
///
/// /// Pages, fetched on a pool thread, one page ahead of the consumer.
/// #[aiothreads::threaded_iterable(max_size = 1)]
/// pub fn pages(count: u32) -> impl Iterator<Item = String> {
///     (1..=count).map(|page| format!("page {page}"))
/// }
///
/// futures::executor::block_on(async {
///     let mut stream = pages(100);
///     assert_eq!(stream.next().await.as_deref(), Some("page 1"));
///     drop(stream); // the iterator stops and is dropped on its thread
///     assert_eq!(pages(3).sync_call().count(), 3);
/// });
/// ```
#[proc_macro_attribute]
pub fn threaded_iterable(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(&THREADED_ITERABLE, attr.into(), item.into()).into()
}

/// Like [`macro@threaded_iterable`], but each stream's iterator runs on a new OS thread named
/// after the function: for long-lived streams that must not hold a pool worker.
///
/// # Examples
/// ```
/// use futures::StreamExt;
///
/// #[aiothreads::threaded_iterable_separate(max_size = 4)]
/// fn ticks(n: u32) -> impl Iterator<Item = Option<String>> {
///     (0..n).map(|_| std::thread::current().name().map(str::to_owned))
/// }
///
/// futures::executor::block_on(async {
///     let names: Vec<_> = ticks(2).collect().await;
///     assert_eq!(names, [Some("ticks".to_owned()), Some("ticks".to_owned())]);
/// });
/// ```
#[proc_macro_attribute]
pub fn threaded_iterable_separate(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(&THREADED_ITERABLE_SEPARATE, attr.into(), item.into()).into()
}

/// What one of the four attributes makes.
struct Form {
    /// The attribute's name, for messages.
    name: &'static str,
    /// A new named thread per call instead of the pool.
    separate: bool,
    /// A stream of the iterator's items instead of one result.
    iterable: bool,
}

const THREADED: Form = Form {
    name: "threaded",
    separate: false,
    iterable: false,
};
const THREADED_SEPARATE: Form = Form {
    name: "threaded_separate",
    separate: true,
    iterable: false,
};
const THREADED_ITERABLE: Form = Form {
    name: "threaded_iterable",
    separate: false,
    iterable: true,
};
const THREADED_ITERABLE_SEPARATE: Form = Form {
    name: "threaded_iterable_separate",
    separate: true,
    iterable: true,
};

/// Collects errors so that all of them are reported at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push_error(syn::Error::new(span, msg));
    }

    fn push_spanned(&mut self, tokens: impl ToTokens, msg: impl std::fmt::Display) {
        self.push_error(syn::Error::new_spanned(tokens, msg));
    }

    fn push_error(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
}

fn expand(form: &Form, attr: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(e) => {
            let msg = format!(
                "`#[{}]` applies to a function with a body: `fn name(args) -> R {{ .. }}` ({e})",
                form.name
            );
            let err = syn::Error::new(e.span(), msg).to_compile_error();
            return quote!(#err #item);
        }
    };
    let mut errors = Errors::default();
    let max_size = parse_options(form, attr, &mut errors);
    check_signature(form, &func, &mut errors);
    let iter_ret = if form.iterable {
        iterable_return(form, &func.sig, &mut errors)
    } else {
        None
    };
    if let Some(err) = errors.0 {
        // The function as written, so that its uses don't add errors of their own.
        let err = err.to_compile_error();
        return quote!(#err #func);
    }
    if form.iterable {
        expand_iterable(form, func, max_size, iter_ret.expect("checked"))
    } else {
        expand_call(form, func)
    }
}

/// The attribute's arguments: none for the call forms, `max_size = N` for the iterables.
fn parse_options(form: &Form, attr: TokenStream2, errors: &mut Errors) -> Option<Expr> {
    if attr.is_empty() {
        return None;
    }
    if !form.iterable {
        let hint = if form.separate {
            "name a call's thread with `.name(\"…\")`"
        } else {
            "choose a call's pool with `.on(&pool)`"
        };
        errors.push_spanned(
            attr,
            format!("`#[{}]` takes no arguments; {hint}", form.name),
        );
        return None;
    }
    let parser = Punctuated::<MetaNameValue, Token![,]>::parse_terminated;
    let options = match syn::parse::Parser::parse2(parser, attr) {
        Ok(options) => options,
        Err(e) => {
            errors.push(
                e.span(),
                format!(
                    "`#[{}]` takes `max_size = N` (a `usize`; 0: unbounded): {e}",
                    form.name
                ),
            );
            return None;
        }
    };
    let mut max_size = None;
    for option in options {
        if !option.path.is_ident("max_size") {
            errors.push_spanned(
                &option.path,
                format!(
                    "unknown option `{}`: `#[{}]` takes `max_size = N`",
                    option.path.to_token_stream(),
                    form.name
                ),
            );
        } else if max_size.is_some() {
            errors.push_spanned(&option.path, "`max_size` is given twice");
        } else {
            max_size = Some(option.value);
        }
    }
    max_size
}

/// Refuses what cannot run later on another thread, with a message at the offending tokens.
fn check_signature(form: &Form, func: &ItemFn, errors: &mut Errors) {
    let sig = &func.sig;
    let attr = form.name;
    let fn_name = &sig.ident;
    if let Some(token) = &sig.asyncness {
        errors.push_spanned(
            token,
            format!(
                "`#[{attr}]` runs a blocking function on another thread; an `async fn` is \
                 already a future: remove `async`, or `.await` the function without `#[{attr}]`"
            ),
        );
    }
    if let Some(token) = &sig.constness {
        errors.push_spanned(
            token,
            format!("`#[{attr}]` cannot make a `const fn`: each call submits work at run time"),
        );
    }
    if let Some(token) = &sig.unsafety {
        errors.push_spanned(
            token,
            format!(
                "`#[{attr}]` does not take an `unsafe fn`: its body would run later, on \
                 another thread; make a safe function that calls it"
            ),
        );
    }
    if let Some(abi) = &sig.abi {
        errors.push_spanned(
            abi,
            format!("`#[{attr}]` does not take an `extern` function"),
        );
    }
    for param in &sig.generics.params {
        if let GenericParam::Lifetime(lt) = param {
            errors.push_spanned(
                lt,
                format!(
                    "`{fn_name}` cannot have lifetime parameters: arguments must be owned or \
                     `'static`, because they cross to another thread and the body runs after \
                     `{fn_name}` has returned"
                ),
            );
        }
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                let borrowed = receiver.reference.is_some()
                    || (receiver.colon_token.is_some() && find_borrow(&receiver.ty).is_some());
                if borrowed {
                    errors.push_spanned(
                        receiver,
                        format!(
                            "`{fn_name}` borrows `self`, which cannot cross to another thread: \
                             the body runs there after `{fn_name}` has returned; take \
                             `self: Arc<Self>` (shared) or `self` (moved) instead"
                        ),
                    );
                }
            }
            FnArg::Typed(arg) => {
                if let Some(borrow) = find_borrow(&arg.ty) {
                    let pat = pretty(&arg.pat);
                    let ty = pretty(&arg.ty);
                    errors.push_spanned(
                        borrow,
                        format!(
                            "argument `{pat}` is borrowed (`{ty}`): arguments of a \
                             `#[{attr}]` function must be owned or `'static`, because they \
                             cross to another thread and the body runs after `{fn_name}` has \
                             returned; take an owned value (`String` for `&str`, `Vec<T>` for \
                             `&[T]`, an `Arc` to share)"
                        ),
                    );
                }
            }
        }
    }
}

/// Tokens as a person writes them (`&str`, `Cow<'a, str>`), for messages.
fn pretty(tokens: impl ToTokens) -> String {
    let mut text = tokens.to_token_stream().to_string();
    for (from, to) in [
        ("& ", "&"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        (" :: ", "::"),
        (":: ", "::"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
    ] {
        text = text.replace(from, to);
    }
    text
}

/// The tokens of the first borrow with a lifetime other than `'static` in `ty` (a reference, or
/// a lifetime argument), skipping higher-ranked places (`fn(&str)`, `Fn(&str)`,
/// `for<'a> ..`), whose borrows belong to the function called, not to the value.
fn find_borrow(ty: &Type) -> Option<TokenStream2> {
    struct Finder(Option<TokenStream2>);

    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            let is_static = r.lifetime.as_ref().is_some_and(|lt| lt.ident == "static");
            if !is_static && self.0.is_none() {
                self.0 = Some(r.to_token_stream());
            }
            syn::visit::visit_type(self, &r.elem);
        }
        fn visit_lifetime(&mut self, lt: &'ast syn::Lifetime) {
            if lt.ident != "static" && self.0.is_none() {
                self.0 = Some(lt.to_token_stream());
            }
        }
        fn visit_type_bare_fn(&mut self, _: &'ast syn::TypeBareFn) {}
        fn visit_parenthesized_generic_arguments(
            &mut self,
            _: &'ast syn::ParenthesizedGenericArguments,
        ) {
        }
        fn visit_trait_bound(&mut self, bound: &'ast syn::TraitBound) {
            if bound.lifetimes.is_none() {
                syn::visit::visit_trait_bound(self, bound);
            }
        }
        fn visit_type_macro(&mut self, _: &'ast syn::TypeMacro) {}
    }

    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

/// What a threaded iterable's declared return type says about its items.
enum IterReturn {
    /// `impl Iterator<Item = T>` / `impl IntoIterator<Item = T>`: the item type.
    Opaque(Type),
    /// A concrete iterable type.
    Concrete(Type),
}

fn iterable_return(form: &Form, sig: &syn::Signature, errors: &mut Errors) -> Option<IterReturn> {
    let ident_span = sig.ident.span();
    let ty = match &sig.output {
        ReturnType::Default => {
            errors.push(
                ident_span,
                format!(
                    "`#[{}]` needs the iterator's type: add `-> impl Iterator<Item = T>` (or a \
                     concrete iterable type)",
                    form.name
                ),
            );
            return None;
        }
        ReturnType::Type(_, ty) => ty,
    };
    let Type::ImplTrait(opaque) = &**ty else {
        return Some(IterReturn::Concrete((**ty).clone()));
    };
    for bound in &opaque.bounds {
        let TypeParamBound::Trait(t) = bound else {
            continue;
        };
        let Some(last) = t.path.segments.last() else {
            continue;
        };
        if let PathArguments::AngleBracketed(args) = &last.arguments {
            for arg in &args.args {
                if let GenericArgument::AssocType(assoc) = arg {
                    if assoc.ident == "Item" {
                        return Some(IterReturn::Opaque(assoc.ty.clone()));
                    }
                }
            }
        }
    }
    errors.push_spanned(
        ty,
        format!(
            "`#[{}]` needs the item type: write `impl Iterator<Item = T>`",
            form.name
        ),
    );
    None
}

/// `let _ = &binding;` for every binding of the arguments: the closure then captures each
/// argument whole (not only the fields the body uses), so all of them move to the thread
/// that runs the call and are dropped there.
fn capture_all(func: &ItemFn) -> TokenStream2 {
    let mut names: Vec<TokenStream2> = Vec::new();
    for input in &func.sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                let token = &r.self_token;
                names.push(quote!(#token));
            }
            FnArg::Typed(arg) => pattern_bindings(&arg.pat, &mut names),
        }
    }
    quote!(#(let _ = &#names;)*)
}

fn pattern_bindings(pat: &Pat, out: &mut Vec<TokenStream2>) {
    match pat {
        Pat::Ident(p) => {
            let ident: &Ident = &p.ident;
            out.push(quote!(#ident));
            if let Some((_, sub)) = &p.subpat {
                pattern_bindings(sub, out);
            }
        }
        Pat::Tuple(p) => p.elems.iter().for_each(|p| pattern_bindings(p, out)),
        Pat::TupleStruct(p) => p.elems.iter().for_each(|p| pattern_bindings(p, out)),
        Pat::Struct(p) => p.fields.iter().for_each(|f| pattern_bindings(&f.pat, out)),
        Pat::Slice(p) => p.elems.iter().for_each(|p| pattern_bindings(p, out)),
        Pat::Paren(p) => pattern_bindings(&p.pat, out),
        Pat::Reference(p) => pattern_bindings(&p.pat, out),
        Pat::Type(p) => pattern_bindings(&p.pat, out),
        _ => {}
    }
}

/// `arguments_cross_to_another_thread::<T>()` (a `Send + 'static` bound) for the type of every argument and receiver, spanned on that
/// type: an argument that cannot cross to another thread (not `Send`, not `'static`) is
/// reported on the argument, not on the generated closure.
fn argument_checks(func: &ItemFn) -> TokenStream2 {
    let mut checks = TokenStream2::new();
    for input in &func.sig.inputs {
        let ty = match input {
            FnArg::Receiver(r) => &r.ty,
            FnArg::Typed(arg) => &arg.ty,
        };
        if contains_impl_trait(ty) {
            // An anonymous type parameter: its bounds are in the signature.
            continue;
        }
        let span = ty.span();
        checks.extend(quote_spanned! {span=>
            ::aiothreads::__private::arguments_cross_to_another_thread::<#ty>();
        });
    }
    checks
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}

/// The span that errors about the generated return type (a non-`Send` or non-`'static`
/// result or capture) should point at: the user's return type, else the function's name.
fn output_span(func: &ItemFn) -> Span {
    match &func.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => func.sig.ident.span(),
    }
}

fn expand_call(form: &Form, func: ItemFn) -> TokenStream2 {
    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = func.clone();
    let span = output_span(&func);
    let captures = capture_all(&func);
    let (ret, closure_ret) = match &sig.output {
        ReturnType::Default => (quote!(()), quote!()),
        ReturnType::Type(_, ty) => (quote!(#ty), quote!(-> #ty)),
    };
    sig.output = syn::parse_quote_spanned! {span=>
        -> ::aiothreads::__private::Call<
            impl ::core::ops::FnOnce() -> #ret + ::core::marker::Send + 'static
        >
    };
    let checks = argument_checks(&func);
    let closure = quote!(move || #closure_ret { #captures #block });
    let body = if form.separate {
        let name = sig.ident.to_string();
        quote_spanned!(span=> ::aiothreads::__private::Call::new_separate(#name, #closure))
    } else {
        quote_spanned!(span=> ::aiothreads::__private::Call::new(#closure))
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #checks
            #body
        }
    }
}

fn expand_iterable(
    form: &Form,
    func: ItemFn,
    max_size: Option<Expr>,
    ret: IterReturn,
) -> TokenStream2 {
    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = func.clone();
    let span = output_span(&func);
    let captures = capture_all(&func);
    let (item, closure_ret) = match ret {
        IterReturn::Opaque(item) => (quote!(#item), quote!()),
        IterReturn::Concrete(ty) => (
            quote!(<#ty as ::core::iter::IntoIterator>::Item),
            quote!(-> #ty),
        ),
    };
    sig.output = syn::parse_quote_spanned! {span=>
        -> ::aiothreads::__private::IterCall<
            impl ::aiothreads::__private::IterFn<Item = #item> + ::core::marker::Unpin
        >
    };
    // Boxed: the stream is `Unpin` (so `.next().await` works) whatever the arguments are;
    // one allocation per stream, beside the ring and the job that starting it allocates.
    let checks = argument_checks(&func);
    let closure = quote!(::std::boxed::Box::new(move || #closure_ret { #captures #block }));
    let mut body = if form.separate {
        let name = sig.ident.to_string();
        quote_spanned!(span=> ::aiothreads::__private::IterCall::new_separate(#name, #closure))
    } else {
        quote_spanned!(span=> ::aiothreads::__private::IterCall::new(#closure))
    };
    if let Some(max) = max_size {
        body = quote!(#body.max_size(#max));
    }
    quote! {
        #(#attrs)*
        #vis #sig {
            #checks
            #body
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn borrow_in(ty: &str) -> Option<String> {
        let ty: Type = syn::parse_str(ty).expect("a type");
        find_borrow(&ty).map(pretty)
    }

    #[test]
    fn borrows_are_found() {
        assert_eq!(borrow_in("&str").as_deref(), Some("&str"));
        assert_eq!(borrow_in("&mut Vec<u8>").as_deref(), Some("&mut Vec<u8>"));
        assert_eq!(borrow_in("Cow<'a, str>").as_deref(), Some("'a"));
        assert_eq!(borrow_in("Option<&'_ [u8]>").as_deref(), Some("&'_ [u8]"));
        assert_eq!(borrow_in("(u8, &'a u8)").as_deref(), Some("&'a u8"));
        assert_eq!(borrow_in("Box<dyn Send + 'a>").as_deref(), Some("'a"));
    }

    #[test]
    fn owned_static_and_higher_ranked_types_pass() {
        for ty in [
            "String",
            "&'static str",
            "Vec<&'static [u8]>",
            "fn(&str) -> usize",
            "Box<dyn Fn(&str) -> usize + Send>",
            "Box<dyn for<'a> Fn(&'a str) -> &'a str + Send>",
            "impl FnOnce(&mut Vec<u8>) + Send + 'static",
            "std::sync::Arc<Self>",
        ] {
            assert_eq!(borrow_in(ty), None, "{ty}");
        }
    }

    #[test]
    fn pattern_bindings_are_all_collected() {
        let pat = |s: &str| {
            let arg: syn::FnArg = syn::parse_str(s).expect("an argument");
            let FnArg::Typed(arg) = arg else {
                unreachable!()
            };
            let mut out = Vec::new();
            pattern_bindings(&arg.pat, &mut out);
            out.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        assert_eq!(pat("mut x: u8"), ["x"]);
        assert_eq!(pat("(a, (b, _)): (u8, (u8, u8))"), ["a", "b"]);
        assert_eq!(pat("Point { x, y: yy }: Point"), ["x", "yy"]);
        assert_eq!(pat("[first, rest @ ..]: [u8; 3]"), ["first", "rest"]);
        assert_eq!(pat("whole @ Wrapper(inner): Wrapper"), ["whole", "inner"]);
    }
}
