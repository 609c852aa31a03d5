#[aiothreads::threaded]
fn shout(text: &str, times: usize) -> String {
    text.to_uppercase().repeat(times)
}

#[aiothreads::threaded_separate]
fn sum(values: &[u64]) -> u64 {
    values.iter().sum()
}

fn main() {}
