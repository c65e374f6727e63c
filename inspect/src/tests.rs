use hotswap_abi::{FuncSig, ValType};
use proptest::prelude::*;

use super::*;

const GUEST: &str = r#"(module
  (import "hotswap" "log" (func (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "hotswap_alloc") (param i32) (result i32) i32.const 0)
  (func (export "hotswap_free") (param i32 i32))
  (func (export "hotswap_state_save") (param i32) (result i64) i64.const 0)
  (func (export "hotswap_state_load") (param i32 i32 i32) (result i32) i32.const 0)
  (func (export "increment") (result i64) i64.const 1)
  (data (i32.const 16) "some data the inspector skips")
  (@custom "other" "a custom section the inspector skips")
  (@custom "hotswap.meta" "abi=1.0\nname=counter\nversion=1.0.0\nstate-schema=1\n"))"#;

fn policy() -> Policy<'static> {
    Policy { app_functions: AppImports::Only(&[]), required_exports: &[], max_memory_pages: 100 }
}

fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap()
}

fn inspect_checked(wat: &str) -> Result<ModuleInterface, InspectError> {
    let interface = inspect(&wasm(wat))?;
    interface.check(&policy())?;
    Ok(interface)
}

#[test]
fn a_valid_guest_yields_its_user_exports_and_metadata() {
    let i = inspect_checked(GUEST).unwrap();
    assert_eq!(i.metadata.name, "counter");
    assert_eq!(i.user_exports, vec![Export { name: "increment".into(), sig: FuncSig::new(&[], &[ValType::I64]) }]);
    assert!(!i.has_dispose);
    assert_eq!(i.initial_pages, 1);
}

#[test]
fn missing_state_load_is_named() {
    let err = inspect_checked(&GUEST.replace("(export \"hotswap_state_load\")", "")).unwrap_err();
    assert_eq!(err.code(), "MISSING_EXPORT");
    assert_eq!(err.to_string(), "failed to find export `hotswap_state_load`");
}

#[test]
fn wrong_abi_signature_says_expected_and_found() {
    let err =
        inspect_checked(&GUEST.replace("(param i32) (result i32) i32.const 0", "(param i64) (result i32) i32.const 0"))
            .unwrap_err();
    assert_eq!(err.to_string(), "export `hotswap_alloc` has type (i64) -> i32, expected (i32) -> i32");
}

#[test]
fn foreign_imports_are_refused_and_app_imports_need_the_app() {
    let wat = GUEST.replace("(memory", "(import \"app\" \"notify\" (func)) (memory");
    assert_eq!(inspect_checked(&wat).unwrap_err().code(), "UNKNOWN_IMPORT");
    let allowed = ["notify".to_string()];
    let interface = inspect(&wasm(&wat)).unwrap();
    assert!(interface.check(&Policy { app_functions: AppImports::Only(&allowed), ..policy() }).is_ok());
    assert_eq!(interface.app_imports, allowed);
    let foreign = GUEST.replace("(memory", "(import \"wasi\" \"fd_write\" (func)) (memory");
    assert_eq!(inspect(&wasm(&foreign)).unwrap_err().code(), "UNKNOWN_IMPORT");
}

#[test]
fn host_import_with_wrong_type_is_refused() {
    let wat = GUEST.replace("(func (param i32 i32 i32)))", "(func (param i32)))");
    assert_eq!(inspect_checked(&wat).unwrap_err().code(), "IMPORT_SIGNATURE");
}

#[test]
fn metadata_missing_malformed_duplicated_and_abi_major_are_distinct_codes() {
    let no_meta = GUEST.replace("(@custom \"hotswap.meta\"", "(@custom \"hotswap.other\"");
    assert_eq!(inspect_checked(&no_meta).unwrap_err().code(), "METADATA_MISSING");
    assert_eq!(inspect_checked(&GUEST.replace("version=1.0.0", "version=x")).unwrap_err().code(), "METADATA_INVALID");
    assert_eq!(inspect_checked(&GUEST.replace("abi=1.0", "abi=2.0")).unwrap_err().code(), "ABI_INCOMPATIBLE");
    let twice = GUEST.replace("(@custom \"other\"", "(@custom \"hotswap.meta\"");
    assert_eq!(inspect_checked(&twice).unwrap_err().code(), "METADATA_INVALID");
}

#[test]
fn memory_over_the_limit_is_refused() {
    let err = inspect_checked(&GUEST.replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 101)"))
        .unwrap_err();
    assert_eq!(err, InspectError::MemoryLimit { limit: 100, requested: 101 });
}

#[test]
fn a_second_memory_counts_against_the_same_limit() {
    let two = GUEST.replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 1) (memory $big 65536)");
    let err = inspect_checked(&two).unwrap_err();
    assert_eq!(err, InspectError::MemoryLimit { limit: 100, requested: 65537 });
}

#[test]
fn required_user_export_must_be_present() {
    let required = ["decrement".to_string()];
    let err = inspect(&wasm(GUEST)).unwrap().check(&Policy { required_exports: &required, ..policy() }).unwrap_err();
    assert_eq!(err.to_string(), "failed to find export `decrement`");
}

#[test]
fn user_exports_with_too_many_parameters_are_unsupported() {
    let seven = GUEST.replace(
        "(func (export \"increment\") (result i64)",
        "(func (export \"increment\") (param i32 i32 i32 i32 i32 i32 i32) (result i64)",
    );
    assert_eq!(inspect_checked(&seven).unwrap_err().code(), "UNSUPPORTED_EXPORT");
}

#[test]
fn replacement_must_be_same_guest_same_signatures_and_migratable() {
    let running = inspect_checked(GUEST).unwrap();
    let held = running.user_exports.clone();
    let other = inspect_checked(&GUEST.replace("name=counter", "name=editor")).unwrap();
    assert_eq!(check_replacement(&running.metadata, &other, &held).unwrap_err().code(), "GUEST_MISMATCH");
    let changed = inspect_checked(&GUEST.replace("(result i64) i64.const 1", "(result i32) i32.const 1")).unwrap();
    assert_eq!(check_replacement(&running.metadata, &changed, &held).unwrap_err().code(), "EXPORT_SIGNATURE");
    let v3 = inspect_checked(&GUEST.replace("state-schema=1", "state-schema=3")).unwrap();
    assert_eq!(check_replacement(&running.metadata, &v3, &held).unwrap_err().code(), "SCHEMA_INCOMPATIBLE");
    assert_eq!(check_replacement(&running.metadata, &running, &held).unwrap(), 1);
}

#[test]
fn an_html_page_is_not_wasm_and_says_so() {
    let err = inspect(b"<!doctype html><html><body>Not found</body></html>").unwrap_err();
    assert_eq!(err, InspectError::NotWasm { looks_like_html: true });
    assert!(err.to_string().contains("HTML page"), "{err}");
    assert_eq!(inspect(b"").unwrap_err(), InspectError::NotWasm { looks_like_html: false });
    assert_eq!(inspect(b"\x7fELF....").unwrap_err(), InspectError::NotWasm { looks_like_html: false });
}

#[test]
fn a_truncated_module_and_a_component_are_malformed() {
    let bytes = wasm(GUEST);
    assert_eq!(inspect(&bytes[..bytes.len() - 3]).unwrap_err().code(), "COMPILE_FAILED");
    assert_eq!(inspect(&bytes[..6]).unwrap_err().code(), "COMPILE_FAILED");
    assert_eq!(inspect(b"\0asm\x0d\0\x01\0").unwrap_err().code(), "COMPILE_FAILED");
}

#[test]
fn the_streaming_inspector_stops_early_on_bytes_that_are_not_wasm() {
    let mut inspector = Inspector::default();
    inspector.feed(b"<html>");
    assert_eq!(inspector.error(), Some(&InspectError::NotWasm { looks_like_html: true }));
}

#[test]
fn a_section_that_declares_4_gib_in_a_14_byte_body_reserves_only_what_arrives() {
    // A type section and a `hotswap.meta` section each claiming about 4 GiB: the declared
    // size used to be reserved up front (a capacity overflow on wasm32, before any hash).
    let meta_header = [0u8, 0xf0, 0xff, 0xff, 0xff, 0x0f, 12];
    for section in [&[1u8, 0xff, 0xff, 0xff, 0xff, 0x0f][..], &[&meta_header[..], b"hotswap.meta"].concat()] {
        let mut inspector = Inspector::default();
        inspector.feed(&[b"\0asm\x01\0\0\0".as_slice(), section, &[1, 2, 3]].concat());
        assert!(inspector.kept.iter().all(|s| s.body.capacity() <= 64 << 10), "{:?}", inspector.kept);
        assert_eq!(inspector.finish().unwrap_err().code(), "COMPILE_FAILED");
    }
}

#[test]
fn interface_sections_over_1_mib_are_refused_before_their_bytes_are_kept() {
    // A `hotswap.meta` section, then an export section, that really hold 2 MiB: their bytes
    // would sit in the loader's own memory (which never shrinks) until the digest refused them.
    let leb = |n: u32| {
        vec![(n & 0x7f) as u8 | 0x80, ((n >> 7) & 0x7f) as u8 | 0x80, ((n >> 14) & 0x7f) as u8 | 0x80, (n >> 21) as u8]
    };
    let size = 2u32 << 20;
    let meta = [&[0u8][..], &leb(size), &[12], b"hotswap.meta"].concat();
    let export = [&[7u8][..], &leb(size)].concat();
    for header in [meta, export] {
        let mut inspector = Inspector::default();
        inspector.feed(&[b"\0asm\x01\0\0\0".as_slice(), &header].concat());
        inspector.feed(&vec![b'x'; size as usize]);
        let kept: usize = inspector.kept.iter().map(|s| s.body.capacity()).sum();
        assert!(kept as u64 <= MAX_INTERFACE_BYTES, "kept {kept} bytes");
        let err = inspector.finish().unwrap_err();
        assert_eq!(err.code(), "COMPILE_FAILED");
        assert!(err.to_string().contains("interface sections"), "{err}");
    }
}

#[test]
fn big_code_and_data_sections_are_not_kept() {
    let ballast = "x".repeat(200_000);
    let bytes = wasm(&GUEST.replace("some data the inspector skips", &ballast));
    let mut inspector = Inspector::default();
    inspector.feed(&bytes);
    let kept = inspector.into_sections().unwrap();
    let total: usize = kept.iter().map(|s| s.body.len()).sum();
    assert!(total < 1024, "kept {total} bytes");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if std::env::var("HOTSWAP_FUZZ_LONG").is_ok() { 200_000 } else { 2_000 }))]

    /// Untrusted bytes: never a panic, always a typed error or an interface.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = inspect(&bytes);
    }

    /// A valid guest with bytes flipped or cut: never a panic.
    #[test]
    fn damaged_guests_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let mut bytes = wasm(GUEST);
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = inspect(&bytes);
        let _ = inspect(&bytes[..cut.index(bytes.len())]);
    }

    /// However the bytes arrive, the answer is the same.
    #[test]
    fn chunking_does_not_change_the_result(sizes in proptest::collection::vec(1usize..64, 1..40)) {
        let bytes = wasm(GUEST);
        let mut inspector = Inspector::default();
        let mut rest = &bytes[..];
        for size in sizes.iter().cycle() {
            if rest.is_empty() { break; }
            let (chunk, tail) = rest.split_at((*size).min(rest.len()));
            inspector.feed(chunk);
            rest = tail;
        }
        prop_assert_eq!(inspector.finish(), inspect(&bytes));
    }

    /// Skipping what it offers to skip, instead of feeding it, changes nothing either — for
    /// damaged modules too (a section size that runs past the end).
    #[test]
    fn skipping_the_skippable_does_not_change_the_result(sizes in proptest::collection::vec(1usize..64, 1..40), cut in any::<prop::sample::Index>()) {
        let whole = wasm(GUEST_WITH_CODE);
        for bytes in [&whole[..], &whole[..cut.index(whole.len())]] {
            let mut inspector = Inspector::default();
            let mut rest = bytes;
            for size in sizes.iter().cycle() {
                if rest.is_empty() { break; }
                let skip = (inspector.skippable() as usize).min(rest.len());
                let (chunk, tail) = if skip > 0 {
                    inspector.skip(skip as u32);
                    rest.split_at(skip)
                } else {
                    let (chunk, tail) = rest.split_at((*size).min(rest.len()));
                    inspector.feed(chunk);
                    (chunk, tail)
                };
                let _ = chunk;
                rest = tail;
            }
            prop_assert_eq!(inspector.finish(), inspect(bytes));
        }
    }
}

/// A guest with a code section and a custom section to skip.
const GUEST_WITH_CODE: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "hotswap_alloc") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func (export "hotswap_free") (param i32 i32))
  (func (export "hotswap_state_save") (param i32) (result i64) (i64.const 0))
  (func (export "hotswap_state_load") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "work") (param i32) (result i32)
    (i32.mul (i32.add (local.get 0) (i32.const 7)) (i32.sub (local.get 0) (i32.const 3))))
  (data (i32.const 16) "some data the inspector never needs to look at, some data, some data")
  (@custom "name-of-something-else" "abcdefghijklmnopqrstuvwxyz")
  (@custom "hotswap.meta" "abi=1.0\nname=skipper\nversion=1.0.0\nstate-schema=1\n"))"#;

/// The section reader agrees with wasmparser's own parser on the export and import types
/// of modules that use numbers, references, v128, several memories and imports.
#[test]
fn exports_and_imports_agree_with_wasmparsers_full_parser() {
    let wat = r#"(module
      (type $pair (func (param i32 i32) (result i64)))
      (import "hotswap" "log" (func (param i32 i32 i32)))
      (import "app" "tick" (func (param f64) (result f32)))
      (memory (export "memory") 3 9)
      (table 1 funcref)
      (global (export "g") i32 (i32.const 0))
      (func (export "hotswap_alloc") (param i32) (result i32) i32.const 0)
      (func (export "hotswap_free") (param i32 i32))
      (func (export "hotswap_state_save") (param i32) (result i64) i64.const 0)
      (func (export "hotswap_state_load") (param i32 i32 i32) (result i32) i32.const 0)
      (func (export "bytes") (type $pair) i64.const 0)
      (func (export "mixed") (param i64 f32 f64 i32 i32 i32) (result f64) f64.const 0)
      (func $internal (param v128 externref))
      (@custom "hotswap.meta" "abi=1.0\nname=mix\nversion=1.0.0\nstate-schema=1\n"))"#;
    let bytes = wasm(wat);
    let ours = inspect(&bytes).unwrap();
    let mut reference = Vec::new();
    let mut types = Vec::new();
    let mut funcs: Vec<u32> = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        match payload.unwrap() {
            wasmparser::Payload::TypeSection(r) => {
                for t in r.into_iter_err_on_gc_types() {
                    types.push(t.unwrap());
                }
            }
            wasmparser::Payload::ImportSection(r) => {
                for i in r.into_imports() {
                    if let wasmparser::TypeRef::Func(t) = i.unwrap().ty {
                        funcs.push(t);
                    }
                }
            }
            wasmparser::Payload::FunctionSection(r) => funcs.extend(r.into_iter().map(Result::unwrap)),
            wasmparser::Payload::ExportSection(r) => {
                for e in r {
                    let e = e.unwrap();
                    if e.kind == wasmparser::ExternalKind::Func && !e.name.starts_with("hotswap_") {
                        let ty = &types[funcs[e.index as usize] as usize];
                        reference.push((e.name.to_string(), format!("{:?} -> {:?}", ty.params(), ty.results())));
                    }
                }
            }
            _ => {}
        }
    }
    let ours_listed: Vec<(String, String)> = ours
        .user_exports
        .iter()
        .map(|e| (e.name.clone(), format!("{:?} -> {:?}", e.sig.params, e.sig.results).to_uppercase()))
        .collect();
    let reference: Vec<(String, String)> = reference.into_iter().map(|(n, s)| (n, s.to_uppercase())).collect();
    assert_eq!(ours_listed, reference);
    assert_eq!(ours.app_imports, ["tick"]);
    assert_eq!(ours.initial_pages, 3);
}

#[test]
fn gc_types_and_non_function_imports_are_refused_with_their_codes() {
    let gc = GUEST.replace("(memory", "(type (struct (field i32))) (memory");
    let err = inspect(&wasm(&gc)).unwrap_err();
    assert_eq!(err.code(), "COMPILE_FAILED");
    assert!(err.to_string().contains("GC types"), "{err}");
    let imported_memory = GUEST.replace("(memory (export \"memory\") 1)", "(import \"env\" \"memory\" (memory 1))");
    assert_eq!(
        inspect(&wasm(&imported_memory)).unwrap_err(),
        InspectError::UnknownImport { module: "env".into(), name: "memory".into() }
    );
}

#[test]
fn a_guest_declaring_precopy_must_export_the_delta_functions_with_their_types() {
    let precopy = GUEST.replace("abi=1.0\\n", "abi=1.1\\nprecopy=1\\n").replace(
        "(func (export \"increment\")",
        r#"(func (export "hotswap_delta_mark"))
           (func (export "hotswap_delta_save") (param i32) (result i64) i64.const 0)
           (func (export "hotswap_delta_load") (param i32 i32 i32) (result i32) i32.const 0)
           (func (export "increment")"#,
    );
    let interface = inspect(&wasm(&precopy)).unwrap();
    assert_eq!(interface.precopy, Some(PrecopySupport { warm: false }));
    let missing = precopy.replace("(export \"hotswap_delta_load\")", "");
    assert_eq!(
        inspect(&wasm(&missing)).unwrap_err(),
        InspectError::MissingExport { name: "hotswap_delta_load".into() }
    );
    let wrong =
        precopy.replace("(func (export \"hotswap_delta_mark\"))", "(func (export \"hotswap_delta_mark\") (param i32))");
    assert_eq!(inspect(&wasm(&wrong)).unwrap_err().code(), "EXPORT_SIGNATURE");
    assert_eq!(inspect(&wasm(GUEST)).unwrap().precopy, None, "a 1.0 guest is transferred the v1 way");
}
