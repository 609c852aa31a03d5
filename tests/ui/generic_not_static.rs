#[aiothreads::threaded]
fn echo<T: Send>(value: T) -> T {
    value
}

fn main() {}
