//! Where a pool worker waits for its awaiter's next call depends on where the awaiter sleeps
//! (feature `placement`, Linux): on the awaiter's CPU it claims the call and yields to it
//! instead of spinning; on another CPU, while the pool explores (a new pool does), it parks
//! instead of spinning. With `Builder::placement(false)` it spins after every delivery.
//!
//! Both threads are pinned (`sched_setaffinity`) so that "same CPU" and "another CPU" hold
//! by construction, and the spin is made long (2 s) so that a worker that spins after the
//! loop's last delivery burns the whole of the idle window measured after it, and one that
//! does not burns next to nothing: a difference of hundreds of milliseconds of CPU time, not a
//! timing.
#![cfg(target_os = "linux")]

use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use aiothreads::Pool;
use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};
use rustix::time::{clock_gettime, ClockId};

/// How long the process is watched, idle, after the loop.
const IDLE: Duration = Duration::from_millis(300);

fn pin_current_thread(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).expect("sched_setaffinity");
}

/// The first `n` CPUs this process may run on, if it may run on that many.
fn allowed_cpus(n: usize) -> Option<Vec<usize>> {
    let set = sched_getaffinity(None).expect("sched_getaffinity");
    let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
        .filter(|&c| set.is_set(c))
        .take(n)
        .collect();
    (cpus.len() == n).then_some(cpus)
}

fn process_cpu_time() -> Duration {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// From a thread pinned to `awaiter_cpu`, awaits 20 calls one after another (each sleeps
/// 2 ms: long enough for the awaiter to go to sleep) on a new pool whose worker pins itself
/// to `worker_cpu`, with spin 2 s and placement `placement`; then returns the process's CPU
/// time over the next `IDLE`.
fn cpu_burnt_after_a_loop(awaiter_cpu: usize, worker_cpu: usize, placement: bool) -> Duration {
    // The CPU time is the process's: one measurement at a time.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    thread::spawn(move || {
        pin_current_thread(awaiter_cpu);
        let pool = Pool::builder()
            .max_threads(2)
            .spin(Duration::from_secs(2))
            .placement(placement)
            .build();
        aiothreads::block_on(async {
            for i in 0..20u32 {
                let got = pool
                    .spawn(move || {
                        pin_current_thread(worker_cpu);
                        thread::sleep(Duration::from_millis(2));
                        i
                    })
                    .await;
                assert_eq!(got, i);
            }
        });
        let before = process_cpu_time();
        thread::sleep(IDLE);
        let burnt = process_cpu_time() - before;
        pool.shutdown(Duration::from_secs(10));
        burnt
    })
    .join()
    .expect("the loop's thread")
}

#[test]
fn a_worker_on_its_sleeping_awaiters_cpu_yields_instead_of_spinning() {
    let cpu = allowed_cpus(1).expect("at least one CPU")[0];
    let spun = cpu_burnt_after_a_loop(cpu, cpu, false);
    assert!(
        spun >= IDLE / 2,
        "control: without placement the worker spins after its delivery (burnt {spun:?})"
    );
    let burnt = cpu_burnt_after_a_loop(cpu, cpu, true);
    assert!(
        burnt < IDLE / 4,
        "the worker shares its awaiter's CPU: it yields and parks, it does not spin (burnt {burnt:?})"
    );
}

#[test]
fn a_worker_on_another_cpu_than_its_sleeping_awaiter_parks_while_the_pool_explores() {
    let Some(cpus) = allowed_cpus(2) else {
        eprintln!("skipped: needs two CPUs");
        return;
    };
    let spun = cpu_burnt_after_a_loop(cpus[0], cpus[1], false);
    assert!(
        spun >= IDLE / 2,
        "control: without placement the worker spins after its delivery (burnt {spun:?})"
    );
    let burnt = cpu_burnt_after_a_loop(cpus[0], cpus[1], true);
    assert!(
        burnt < IDLE / 4,
        "a new pool explores: the worker parks after delivering across CPUs (burnt {burnt:?})"
    );
}
