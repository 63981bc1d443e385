//! Compile-time behaviour of `#[remote]`, `#[aiomp::main]` and `#[aiomp::test]`:
//! misuse fails with the error in `tests/ui/*.stderr`, on the offending token;
//! the cases in `tests/ui/pass/` compile and run.
//!
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test --test remote_ui`,
//! then read every one: each must show the intended error on the intended token.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
