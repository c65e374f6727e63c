//! Guests written by hand in WebAssembly text: one valid guest (proof that the ABI needs no
//! SDK) and variants of it that each break exactly one rule the loader enforces.

use hotswap_abi::{exports, host, HOST_MODULE, METADATA_SECTION};

/// The knobs a variant turns on the valid guest.
#[derive(Default)]
struct Variant {
    /// Metadata section text; `None` leaves the section out.
    metadata: Option<&'static str>,
    /// Leave out the `hotswap_state_load` export.
    drop_state_load: bool,
    /// Add a start function that traps.
    trapping_start: bool,
    /// Import a function from a namespace the ABI does not allow.
    foreign_import: bool,
    /// Declare `hotswap_alloc` with an `i64` parameter.
    wrong_alloc_signature: bool,
    /// Import `app.notify(i64)` and call it with every new count.
    app_import: bool,
    /// Initial memory in 64 KiB pages.
    memory_pages: u32,
    /// A start function that asks for random bytes (the memory is not reachable yet).
    random_in_start: bool,
    /// `state_save` returns a buffer at 2 GiB (a negative BigInt in JS), outside memory.
    save_high_pointer: bool,
    /// `state_load` calls `app.loading()` before loading (a hook into the pause).
    load_calls_app: bool,
    /// ABI 1.1 pre-copy exports (the state is one global: every delta is empty) and a
    /// `grow(pages)` export, to reach memories too large to pre-copy.
    precopy: bool,
}

const VALID_META: &str = "abi=1.0\nname=counter\nversion=1.0.2\nstate-schema=1\n";

const PRECOPY_META_V1: &str = "abi=1.1\nname=counter\nversion=1.0.2\nstate-schema=1\nprecopy=1\n";
const PRECOPY_META_V2: &str = "abi=1.1\nname=counter\nversion=1.0.3\nstate-schema=1\nprecopy=1\n";

/// Every WAT guest: (output name, text).
pub fn all() -> Vec<(&'static str, String)> {
    let base = || Variant { metadata: Some(VALID_META), memory_pages: 1, ..Variant::default() };
    vec![
        ("wat-counter", render(base())),
        ("wat-counter-notifies", render(Variant { app_import: true, ..base() })),
        ("fault-missing-export", render(Variant { drop_state_load: true, ..base() })),
        ("fault-no-metadata", render(Variant { metadata: None, ..base() })),
        (
            "fault-bad-metadata",
            render(Variant { metadata: Some("abi=1.0\nname=counter\nversion=banana\nstate-schema=1\n"), ..base() }),
        ),
        (
            "fault-abi-major",
            render(Variant { metadata: Some("abi=2.0\nname=counter\nversion=1.0.2\nstate-schema=1\n"), ..base() }),
        ),
        (
            "fault-other-guest",
            render(Variant { metadata: Some("abi=1.0\nname=editor\nversion=1.0.0\nstate-schema=1\n"), ..base() }),
        ),
        (
            "fault-schema-gap",
            render(Variant { metadata: Some("abi=1.0\nname=counter\nversion=3.0.0\nstate-schema=3\n"), ..base() }),
        ),
        ("fault-start-traps", render(Variant { trapping_start: true, ..base() })),
        ("fault-foreign-import", render(Variant { foreign_import: true, ..base() })),
        ("fault-alloc-signature", render(Variant { wrong_alloc_signature: true, ..base() })),
        ("fault-huge-memory", render(Variant { memory_pages: 4096, ..base() })),
        ("fault-random-in-start", render(Variant { random_in_start: true, ..base() })),
        ("fault-save-high-pointer", render(Variant { save_high_pointer: true, ..base() })),
        ("wat-counter-load-calls-app", render(Variant { load_calls_app: true, ..base() })),
        ("wat-precopy-v1", render(Variant { metadata: Some(PRECOPY_META_V1), precopy: true, ..base() })),
        ("wat-precopy-v2", render(Variant { metadata: Some(PRECOPY_META_V2), precopy: true, ..base() })),
    ]
}

/// A counter guest: state is one i64; a bump allocator that never frees is enough for it.
fn render(v: Variant) -> String {
    let (log, _) = host::LOG;
    let alloc = exports::ALLOC.0;
    let free = exports::FREE.0;
    let save = exports::STATE_SAVE.0;
    let load = exports::STATE_LOAD.0;
    let alloc_param = if v.wrong_alloc_signature { "i64" } else { "i32" };
    let alloc_len = if v.wrong_alloc_signature { "(i32.wrap_i64 (local.get $len))" } else { "(local.get $len)" };
    let pages = v.memory_pages;
    let mut wat = format!(
        r#"(module
  (import "{HOST_MODULE}" "{log}" (func $log (param i32 i32 i32)))
  (memory (export "memory") {pages})
  (global $count (mut i64) (i64.const 0))
  (global $heap (mut i32) (i32.const 1024))
  (func $alloc (export "{alloc}") (param $len {alloc_param}) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.add (local.get $ptr) {alloc_len}))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (local.get $end) (i32.const 16)) (i32.const 1))) (i32.const -1))
        (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $ptr))
  (func (export "{free}") (param i32 i32))
  (func (export "{save}") (param $schema i32) (result i64)
    (local $ptr i32)
    (local.set $ptr (call $alloc ({alloc_param}.const 8)))
    (i64.store (local.get $ptr) (global.get $count))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.const 8)))
  (func $load (param $ptr i32) (param $len i32) (param $schema i32) (result i32)
    (if (i32.ne (local.get $len) (i32.const 8)) (then (return (i32.const 1))))
    (global.set $count (i64.load (local.get $ptr)))
    (i32.const 0))
  (func (export "increment") (result i64)
    (global.set $count (i64.add (global.get $count) (i64.const 1)))
    (global.get $count))
  (func (export "count") (result i64) (global.get $count))
  (func (export "hello") (call $log (i32.const 2) (i32.const 0) (i32.const 5)))
  (data (i32.const 0) "hello")
"#
    );
    if !v.drop_state_load {
        wat.push_str(&format!("  (export \"{load}\" (func $load))\n"));
    }
    if v.trapping_start {
        wat.push_str("  (func $boom unreachable)\n  (start $boom)\n");
    }
    if v.app_import {
        add_import(&mut wat, "  (import \"app\" \"notify\" (func $notify (param i64)))\n");
        wat = wat.replace(
            "(global.set $count (i64.add (global.get $count) (i64.const 1)))",
            "(global.set $count (i64.add (global.get $count) (i64.const 1)))\n    (call $notify (global.get $count))",
        );
    }
    if v.random_in_start {
        let (random_fill, _) = host::RANDOM_FILL;
        add_import(
            &mut wat,
            &format!("  (import \"{HOST_MODULE}\" \"{random_fill}\" (func $random (param i32 i32)))\n"),
        );
        wat.push_str("  (func $seed (call $random (i32.const 512) (i32.const 32)))\n  (start $seed)\n");
    }
    if v.save_high_pointer {
        wat = wat.replace(
            "(i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.const 8)))",
            "(i64.const 0x8000000000000008))",
        );
    }
    if v.load_calls_app {
        add_import(&mut wat, "  (import \"app\" \"loading\" (func $loading))\n");
        wat = wat.replace(
            "(result i32)\n    (if (i32.ne (local.get $len)",
            "(result i32)\n    (call $loading)\n    (if (i32.ne (local.get $len)",
        );
    }
    if v.precopy {
        let (mark, save, load) = (
            hotswap_abi::precopy::DELTA_MARK.0,
            hotswap_abi::precopy::DELTA_SAVE.0,
            hotswap_abi::precopy::DELTA_LOAD.0,
        );
        wat.push_str(&format!(
            "  (func (export \"{mark}\"))\n  (func (export \"{save}\") (param i32) (result i64) (i64.const 0))\n  \
             (func (export \"{load}\") (param i32 i32 i32) (result i32) (i32.const 0))\n  \
             (func (export \"grow\") (param i32) (result i32) (memory.grow (local.get 0)))\n"
        ));
    }
    if v.foreign_import {
        add_import(&mut wat, "  (import \"env\" \"getrandom\" (func (param i32 i32) (result i32)))\n");
    }
    if let Some(meta) = v.metadata {
        let escaped = meta.replace('\n', "\\n");
        wat.push_str(&format!("  (@custom \"{METADATA_SECTION}\" \"{escaped}\")\n"));
    }
    wat.push_str(")\n");
    wat
}

/// Add an import line: imports must precede definitions, so it goes in before the memory.
fn add_import(wat: &mut String, line: &str) {
    let at = wat.find("  (memory").unwrap_or(0);
    wat.insert_str(at, line);
}
