const QUEUE: usize = 0;

#[aiothreads::threaded_iterable_separate(max_size = QUEUE)]
fn numbers() -> impl Iterator<Item = u32> {
    0..10
}

fn main() {
    drop(numbers());
}
