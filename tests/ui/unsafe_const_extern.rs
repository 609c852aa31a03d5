#[aiothreads::threaded]
unsafe fn raw() -> u32 {
    1
}

#[aiothreads::threaded]
const fn constant() -> u32 {
    1
}

#[aiothreads::threaded_separate]
extern "C" fn exported() -> u32 {
    1
}

fn main() {}
