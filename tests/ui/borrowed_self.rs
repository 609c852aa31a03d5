struct Service {
    factor: u32,
}

impl Service {
    #[aiothreads::threaded]
    fn scale(&self, x: u32) -> u32 {
        x * self.factor
    }
}

fn main() {}
