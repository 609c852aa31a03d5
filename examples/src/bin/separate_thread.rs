//! `threaded_separate!`: work that may block indefinitely gets its own named OS thread, so it
//! can never starve the pool.
//!
//! The original reads a named pipe that blocks until a writer connects; here a local socket
//! pair stands in for the pipe, with a writer thread on the other end.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

aiothreads::threaded_separate! {
    /// Reads lines until the writer closes its end (blocking, possibly for a long time).
    fn read_unix_pipe(pipe: UnixStream) -> Vec<String> {
        let thread = std::thread::current();
        println!("reading on thread {:?}", thread.name().unwrap_or("?"));
        BufReader::new(pipe).lines().map_while(Result::ok).map(|l| l.trim().to_owned()).collect()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (reader, mut writer) = UnixStream::pair().expect("socket pair");
    let producer = std::thread::spawn(move || {
        for i in 0..3 {
            std::thread::sleep(Duration::from_millis(20));
            writeln!(writer, "line {i}").unwrap();
        }
        // Dropping `writer` closes the pipe: the reader sees end of input.
    });

    for line in read_unix_pipe(reader).await {
        println!("Received line: {line}");
    }
    producer.join().unwrap();
}
