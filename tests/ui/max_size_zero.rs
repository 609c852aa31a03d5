#[aiothreads::threaded_iterable(max_size = 0)]
fn numbers() -> impl Iterator<Item = u32> {
    0..10
}

fn main() {}
