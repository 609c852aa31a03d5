//! Separate Thread Execution: `read_unix_pipe`, a generator that reads a named pipe (FIFO) which
//! blocks until a writer connects, run on its own thread so it can never starve the pool.
//!
//! The original decorates a generator with `@threaded_separate`; in Rust a generator is an
//! iterator, and the form that streams it from a dedicated thread is
//! `#[threaded_iterable_separate]` (each line reaches the async loop as soon as it is read).
//! `#[threaded_separate]` (a plain blocking call on a new thread) is shown too. A real FIFO is made
//! with `mkfifo` in a temporary directory; a writer thread plays the other program.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;

/// Yields the lines of the pipe at `pipe_path`; opening it blocks until a writer connects.
#[aiothreads::threaded_iterable_separate]
fn read_unix_pipe(pipe_path: PathBuf) -> impl Iterator<Item = String> {
    println!(
        "  opening the pipe on thread {:?} (blocks until a writer connects)",
        std::thread::current().name().unwrap_or("?")
    );
    let pipe = File::open(&pipe_path).expect("open the FIFO");
    BufReader::new(pipe)
        .lines()
        .map_while(Result::ok)
        .map(|line| line.trim().to_owned())
}

/// A blocking call that may take a long time: it gets its own thread too.
#[aiothreads::threaded_separate]
fn wait_for_device(delay_ms: u64) -> String {
    std::thread::sleep(Duration::from_millis(delay_ms));
    format!(
        "device ready (on {:?})",
        std::thread::current().name().unwrap_or("?")
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = std::env::temp_dir().join(format!("aiothreads-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pipe_path = dir.join("my_pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&pipe_path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo failed");

    // The "other program": connects late, writes three lines slowly, then closes the pipe.
    let writer_path = pipe_path.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let mut pipe = std::fs::OpenOptions::new()
            .write(true)
            .open(&writer_path)
            .expect("open the FIFO for writing");
        for i in 0..3 {
            writeln!(pipe, "line {i}").unwrap();
            pipe.flush().unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    });

    let start = Instant::now();
    let mut lines = Vec::new();
    let mut stream = read_unix_pipe(pipe_path.clone());
    // While the reader's thread blocks in `open`, the async loop is free: the other call runs
    // meanwhile, and neither occupies a pool worker.
    let (first, device) = futures::join!(stream.next(), wait_for_device(10).call());
    println!("  {device}");
    let first = first.expect("the first line");
    println!("Received line: {first} (after {:?})", start.elapsed());
    lines.push(first);
    while let Some(line) = stream.next().await {
        println!("Received line: {line} (after {:?})", start.elapsed());
        lines.push(line);
    }
    writer.join().unwrap();
    assert_eq!(lines, ["line 0", "line 1", "line 2"]);
    std::fs::remove_dir_all(&dir).expect("clean up");
}
