struct Reader;

impl Reader {
    #[aiothreads::threaded_iterable]
    fn lines(self: &mut Self) -> impl Iterator<Item = String> {
        std::iter::empty()
    }
}

fn main() {}
