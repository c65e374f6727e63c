//! Misusing the SDK's macros is a compile error that points at the offending tokens.
//! The expected messages live beside each case in `tests/ui/*.stderr`.

#[test]
fn macro_misuse_is_a_spanned_compile_error() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
