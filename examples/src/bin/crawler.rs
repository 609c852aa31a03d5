//! "The `@threaded_iterable` Decorator": `crawl_api_pages` with `max_size=1`, fetching pages
//! until the consumer finds its target and breaks — after which no more requests are made.
//!
//! The original uses `requests` against a remote API; here a tiny HTTP/1.0 server on
//! 127.0.0.1 (a `TcpListener` on port 0 and one thread) answers `GET /data?page=N` with a
//! small JSON body, and the iterator fetches each page with a plain `TcpStream`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;

const TOTAL_PAGES: u32 = 5;
const ITEMS_PER_PAGE: u32 = 3;
/// The target is the first item of page 3.
const TARGET_ID: u32 = 2 * ITEMS_PER_PAGE + 1;

/// HTTP requests the server answered.
static REQUESTS: AtomicUsize = AtomicUsize::new(0);

/// Starts the local API server; returns its base URL's address.
fn start_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    std::thread::Builder::new()
        .name("api-server".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                REQUESTS.fetch_add(1, Ordering::SeqCst);
                serve(conn);
            }
        })
        .unwrap();
    addr
}

/// Answers one request: `GET /data?page=N`.
fn serve(mut conn: TcpStream) {
    let mut request_line = String::new();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let page = request_line
        .split_whitespace()
        .nth(1)
        .and_then(|path| path.strip_prefix("/data?page="))
        .and_then(|n| n.parse::<u32>().ok());
    let (status, body) = match page {
        Some(page @ 1..=TOTAL_PAGES) => {
            let items: Vec<String> = (0..ITEMS_PER_PAGE)
                .map(|i| {
                    let id = (page - 1) * ITEMS_PER_PAGE + i + 1;
                    let kind = if id == TARGET_ID {
                        "target_item"
                    } else {
                        "regular"
                    };
                    format!(r#"{{"id": {id}, "type": "{kind}"}}"#)
                })
                .collect();
            let body = format!(
                r#"{{"page": {page}, "total_pages": {TOTAL_PAGES}, "items": [{}]}}"#,
                items.join(", ")
            );
            ("200 OK", body)
        }
        _ => ("404 Not Found", "{}".to_owned()),
    };
    let _ = write!(
        conn,
        "HTTP/1.0 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

/// `requests.get(url)`: the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut conn = TcpStream::connect(addr)?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    conn.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

#[derive(Debug, Clone, PartialEq)]
struct Item {
    id: u32,
    kind: String,
}

/// `response.json()` for this API: `total_pages` and the items (a parser for this shape only).
fn parse_page(body: &str) -> (u32, Vec<Item>) {
    let number_after = |s: &str, key: &str| -> Option<u32> {
        let rest = &s[s.find(key)? + key.len()..];
        let digits: String = rest
            .trim_start_matches([':', ' '])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let total_pages = number_after(body, r#""total_pages""#).unwrap_or(0);
    let items = body
        .split(r#"{"id""#)
        .skip(1)
        .filter_map(|chunk| {
            let id = number_after(&format!(r#"{{"id"{chunk}"#), r#""id""#)?;
            let kind = chunk.split('"').nth(3)?.to_owned(); // `: N, "type": "KIND"}`
            Some(Item { id, kind })
        })
        .collect();
    (total_pages, items)
}

// To prefetch more than one item ahead (e.g. whole next pages), raise `max_size`.
/// Fetches API pages until there is no more data.
#[aiothreads::threaded_iterable(max_size = 1)]
fn crawl_api_pages(addr: SocketAddr, start_page: u32) -> impl Iterator<Item = Item> {
    let mut page = start_page;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let (status, body) = http_get(addr, &format!("/data?page={page}")).ok()?;
        if status != 200 {
            return None;
        }
        let (total_pages, items) = parse_page(&body);
        if items.is_empty() {
            return None; // no more data
        }
        println!("  [crawler] fetched page {page}: {} items", items.len());
        page += 1;
        done = page > total_pages;
        Some(items)
    })
    .flatten() // yield each item of the page
}

async fn process_item(_item: &Item) {
    tokio::time::sleep(Duration::from_millis(2)).await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = start_server();
    let mut processed_count = 0;
    let mut found = None;

    let mut pages = crawl_api_pages(addr, 1);
    while let Some(item) = pages.next().await {
        process_item(&item).await;
        processed_count += 1;
        // Break early when we find what we need.
        if item.kind == "target_item" {
            println!(
                "Found target after {processed_count} items (id {})",
                item.id
            );
            found = Some(item);
            break; // the iterator stops: no more HTTP requests
        }
        // Or stop after processing enough items.
        if processed_count >= 1000 {
            println!("Processed enough items");
            break;
        }
    }
    // Leaving the stream (here: closing it and waiting for the iterator to be dropped).
    pages.close().await.expect("crawler finished cleanly");

    let at_break = REQUESTS.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let later = REQUESTS.load(Ordering::SeqCst);
    println!(
        "HTTP requests: {at_break} when the loop broke, {later} 200 ms later \
         (the API has {TOTAL_PAGES} pages)"
    );
    assert_eq!(found.map(|i| i.id), Some(TARGET_ID));
    assert_eq!(processed_count, TARGET_ID);
    // max_size=1: one item queued and one held by the producer — both still on page 3.
    assert_eq!(at_break, 3, "pages fetched before the break");
    assert_eq!(later, at_break, "no request after the break");
}
