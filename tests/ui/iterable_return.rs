#[aiothreads::threaded_iterable]
fn nothing_returned() {}

#[aiothreads::threaded_iterable]
fn no_item_type() -> impl Iterator {
    0..10
}

fn main() {}
