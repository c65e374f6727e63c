//! The smallest guest the loader accepts, as the dev loop's unit tests build it.

/// A guest named `g` at `version`.
pub(crate) fn guest(version: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
            (memory (export "memory") 1)
            (func (export "hotswap_alloc") (param i32) (result i32) i32.const 8)
            (func (export "hotswap_free") (param i32 i32))
            (func (export "hotswap_state_save") (param i32) (result i64) i64.const 0)
            (func (export "hotswap_state_load") (param i32 i32 i32) (result i32) i32.const 0)
            (@custom "hotswap.meta" "abi=1.0\nname=g\nversion={version}\nstate-schema=1\n"))"#
    ))
    .expect("valid WAT")
}
