#[aiothreads::threaded]
struct Job;

trait Blocking {
    #[aiothreads::threaded]
    fn run(self) -> u32;
}

fn main() {}
