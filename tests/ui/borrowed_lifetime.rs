use std::borrow::Cow;

#[aiothreads::threaded]
fn show<'a>(text: Cow<'a, str>) -> String {
    text.into_owned()
}

fn main() {}
