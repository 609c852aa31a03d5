//! Context Variables: a value set by the async caller is visible in the thread running its
//! call, for that call only.
//!
//! Python sets a `contextvars.ContextVar` in the task; in Rust the value is scoped around the
//! future that handles the request (`USER.scope(value, fut)`), like tokio's `task_local!` but
//! on any executor.

aiothreads::context_var! {
    /// The user the current request runs for.
    static USER_CONTEXT: String;
}

#[aiothreads::threaded]
fn process_user_data(data: String) -> String {
    // The context variable is available in the thread.
    let current_user = USER_CONTEXT.get();
    format!("Processing {data} for {current_user}")
}

async fn handle_request(user_id: &str, data: &str) -> String {
    let data = data.to_owned();
    USER_CONTEXT
        .scope(user_id.to_owned(), async move {
            // The context propagates to the thread.
            process_user_data(data).call().await
        })
        .await
}

#[tokio::main]
async fn main() {
    // Two requests at once: each call sees its own user.
    let (a, b) = tokio::join!(
        handle_request("alice", "invoice.pdf"),
        handle_request("bob", "report.csv"),
    );
    println!("{a}\n{b}");
    assert_eq!(a, "Processing invoice.pdf for alice");
    assert_eq!(b, "Processing report.csv for bob");
    // Outside any request: not set.
    assert_eq!(USER_CONTEXT.try_get(), None);
}
