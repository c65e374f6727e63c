//! Attribute macros of the wasm-hotswap guest SDK. Use them through `hotswap-guest`, which
//! documents them with examples; this crate only turns Rust items into ABI glue.
//!
//! Misuse is reported as a compile error pointing at the offending tokens, never a panic.
#![deny(missing_docs, missing_debug_implementations)]

mod export;
mod guest;

use proc_macro::TokenStream;

/// Declare the guest's state type and metadata.
///
/// `#[guest(name = "counter", version = "1.0.0", schema = 1, migrates_from = [..],
/// migrates_to = [..])]` on a non-generic struct or enum that implements `GuestState`.
/// Emits the metadata custom section and the ABI exports `hotswap_alloc`, `hotswap_free`,
/// `hotswap_state_save` and `hotswap_state_load`. One per guest crate.
#[proc_macro_attribute]
pub fn guest(args: TokenStream, item: TokenStream) -> TokenStream {
    guest::expand(args.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Export a plain function from the guest.
///
/// The first parameter may be `&mut State` or `&State` (the type marked `#[guest]`). Then
/// either one bytes input (`&[u8]`, `&str`, `Vec<u8>` or `String`) returning bytes (`Vec<u8>`,
/// `String`, `&str`, `()`, or a `Result` of these whose `Err` traps with its message); or up to
/// six numbers (`i32`, `u32`, `i64`, `u64`, `f32`, `f64`) returning a number or nothing.
#[proc_macro_attribute]
pub fn export(args: TokenStream, item: TokenStream) -> TokenStream {
    export::expand(args.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}
