#[aiothreads::threaded]
fn process_numbers(numbers: Vec<i32>, multiplier: f64) -> Vec<f64> {
    numbers.iter().map(|&n| f64::from(n) * multiplier).collect()
}

fn main() {
    let _ = process_numbers("not a list", 2.5);
}
