use std::rc::Rc;

#[aiothreads::threaded]
fn count(shared: Rc<Vec<u32>>) -> usize {
    shared.len()
}

fn main() {}
