//! Compile-fail tests of the attribute macros: each message is checked against its `.stderr`
//! file in `ui/` (regenerate with `TRYBUILD=overwrite`, then read the diff).

#[test]
fn macro_messages() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
