//! Two-thread throughput of the SPSC ring against its peers (`rtrb` 0.4, `heapless` 0.9
//! `spsc`), measured in the same run: `u64` items, capacity 1024, median of several runs.

use std::hint::spin_loop;
use std::thread;
use std::time::{Duration, Instant};

use aiothreads_core::ring;

/// Items moved per run.
const ITEMS: u64 = 20_000_000;
/// Ring capacity (heapless needs one more slot for the same capacity).
const CAPACITY: usize = 1024;
/// Runs per case; the median is reported.
const RUNS: usize = 7;
/// Items per `push_slice` / `pop_slice` in the batched case.
const CHUNK: usize = 256;

/// Runs the ring cases if `filter` is part of their name (`ring/...`), then prints the
/// comparison and the goals. The runs of the contenders are interleaved, so that noise from
/// other processes hits them alike.
pub fn run(filter: &str) {
    if !"ring/single ring/batched".contains(filter) {
        return;
    }
    println!("ring: {ITEMS} u64 items between two threads, capacity {CAPACITY}, median of {RUNS}");
    let [ours, rtrb, heapless, batched] = measure([
        ("ring/single ours push+pop", ours_single),
        ("ring/single rtrb push+pop", rtrb_single),
        ("ring/single heapless enqueue+dequeue", heapless_single),
        ("ring/batched ours push_slice+pop_slice", ours_batched),
    ]);
    // One thread, no contention: the instruction cost of push + pop alone, far less sensitive
    // to scheduling noise than the two-thread runs.
    let [ours_solo, rtrb_solo] = measure([
        ("ring/solo ours push+pop (1 thread)", ours_solo),
        ("ring/solo rtrb push+pop (1 thread)", rtrb_solo),
    ]);
    println!(
        "ring: ours/rtrb one thread       = {:.2}x",
        ours_solo / rtrb_solo
    );
    println!("ring: ours/rtrb single-item      = {:.2}x", ours / rtrb);
    println!("ring: ours/heapless single-item  = {:.2}x", ours / heapless);
    println!("ring: ours batched/rtrb single   = {:.2}x", batched / rtrb);
    goal("single-item >= 1.0x rtrb", ours >= rtrb);
    goal("batched >= 2x rtrb single-item", batched >= 2.0 * rtrb);
}

fn goal(name: &str, ok: bool) {
    println!("{} ring: {name}", if ok { "PASS" } else { "FAIL" });
}

/// A named case: one timed run of `ITEMS` items.
type Case = (&'static str, fn() -> Duration);

/// Runs the cases `RUNS` times, interleaved, and returns each one's median (M items/s).
fn measure<const C: usize>(cases: [Case; C]) -> [f64; C] {
    let mut rates = [[0.0; RUNS]; C];
    for run in 0..RUNS {
        for ((_, f), rates) in cases.iter().zip(rates.iter_mut()) {
            rates[run] = ITEMS as f64 / f().as_secs_f64() / 1e6;
        }
    }
    core::array::from_fn(|case| report(cases[case].0, &mut rates[case]))
}

/// Prints and returns the median of `rates` (M items/s).
fn report(name: &str, rates: &mut [f64; RUNS]) -> f64 {
    rates.sort_by(f64::total_cmp);
    let median = rates[RUNS / 2];
    println!(
        "{name:<40} {median:8.1} M items/s  (min {:.1}, max {:.1})",
        rates[0],
        rates[RUNS - 1]
    );
    median
}

/// Checks the consumer saw 0, 1, 2, ... in order by their sum.
fn check_sum(sum: u64) {
    assert_eq!(sum, ITEMS * (ITEMS - 1) / 2, "items lost or reordered");
}

fn ours_single() -> Duration {
    let (mut tx, mut rx) = ring::with_capacity::<u64>(CAPACITY);
    let start = Instant::now();
    let consumer = thread::spawn(move || {
        let mut sum = 0;
        for _ in 0..ITEMS {
            loop {
                match rx.pop() {
                    Ok(v) => {
                        sum += v;
                        break;
                    }
                    Err(_) => spin_loop(),
                }
            }
        }
        sum
    });
    for i in 0..ITEMS {
        while tx.push(i).is_err() {
            spin_loop();
        }
    }
    check_sum(consumer.join().unwrap());
    start.elapsed()
}

fn rtrb_single() -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(CAPACITY);
    let start = Instant::now();
    let consumer = thread::spawn(move || {
        let mut sum = 0;
        for _ in 0..ITEMS {
            loop {
                match rx.pop() {
                    Ok(v) => {
                        sum += v;
                        break;
                    }
                    Err(_) => spin_loop(),
                }
            }
        }
        sum
    });
    for i in 0..ITEMS {
        while tx.push(i).is_err() {
            spin_loop();
        }
    }
    check_sum(consumer.join().unwrap());
    start.elapsed()
}

fn heapless_single() -> Duration {
    let mut queue = Box::new(heapless::spsc::Queue::<u64, { CAPACITY + 1 }>::new());
    let (mut tx, mut rx) = queue.split();
    let start = Instant::now();
    thread::scope(|s| {
        let consumer = s.spawn(move || {
            let mut sum = 0;
            for _ in 0..ITEMS {
                loop {
                    if let Some(v) = rx.dequeue() {
                        sum += v;
                        break;
                    }
                    spin_loop();
                }
            }
            sum
        });
        for i in 0..ITEMS {
            while tx.enqueue(i).is_err() {
                spin_loop();
            }
        }
        check_sum(consumer.join().unwrap());
    });
    start.elapsed()
}

fn ours_batched() -> Duration {
    let (mut tx, mut rx) = ring::with_capacity::<u64>(CAPACITY);
    let start = Instant::now();
    let consumer = thread::spawn(move || {
        let mut sum = 0;
        let mut received = 0;
        let mut buf = [0u64; CHUNK];
        while received < ITEMS {
            let n = rx.pop_slice(&mut buf);
            if n == 0 {
                spin_loop();
                continue;
            }
            sum += buf[..n].iter().sum::<u64>();
            received += n as u64;
        }
        sum
    });
    let mut chunk = [0u64; CHUNK];
    let mut next = 0;
    while next < ITEMS {
        let len = (ITEMS - next).min(CHUNK as u64) as usize;
        for (k, c) in chunk[..len].iter_mut().enumerate() {
            *c = next + k as u64;
        }
        let mut sent = 0;
        while sent < len {
            let n = tx.push_slice(&chunk[sent..len]);
            if n == 0 {
                spin_loop();
            }
            sent += n;
        }
        next += len as u64;
    }
    check_sum(consumer.join().unwrap());
    start.elapsed()
}

/// Fills and drains the ring on one thread, `CAPACITY` items at a time.
fn ours_solo() -> Duration {
    let (mut tx, mut rx) = ring::with_capacity::<u64>(CAPACITY);
    let start = Instant::now();
    let mut sum = 0;
    let mut i = 0;
    while i < ITEMS {
        for k in 0..CAPACITY as u64 {
            tx.push(std::hint::black_box(i + k)).unwrap();
        }
        for _ in 0..CAPACITY {
            sum += rx.pop().unwrap();
        }
        i += CAPACITY as u64;
    }
    std::hint::black_box(sum);
    start.elapsed()
}

/// [`ours_solo`] for `rtrb`.
fn rtrb_solo() -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(CAPACITY);
    let start = Instant::now();
    let mut sum = 0;
    let mut i = 0;
    while i < ITEMS {
        for k in 0..CAPACITY as u64 {
            tx.push(std::hint::black_box(i + k)).unwrap();
        }
        for _ in 0..CAPACITY {
            sum += rx.pop().unwrap();
        }
        i += CAPACITY as u64;
    }
    std::hint::black_box(sum);
    start.elapsed()
}
