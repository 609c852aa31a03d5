#[aiothreads::threaded_iterable(maxsize = 8)]
fn misspelt() -> impl Iterator<Item = u32> {
    0..10
}

#[aiothreads::threaded_iterable(max_size = 8, max_size = 9)]
fn twice() -> impl Iterator<Item = u32> {
    0..10
}

#[aiothreads::threaded_iterable(max_size)]
fn no_value() -> impl Iterator<Item = u32> {
    0..10
}

#[aiothreads::threaded(max_size = 8)]
fn not_iterable() -> u32 {
    1
}

#[aiothreads::threaded_separate("reader")]
fn named() -> u32 {
    1
}

fn main() {}
