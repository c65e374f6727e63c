//! Stage 3 (validate): read the module's interface — metadata, exports, imports, memory —
//! and check it against the ABI, the app's options and the running version, before any
//! of its code runs. Plain Rust over `wasmparser`, so it is unit-tested natively.

use hotswap_abi::{
    check_abi, exports, host, transfer_schema, FuncSig, GuestMetadata, ValType, APP_MODULE, HOST_MODULE,
    METADATA_SECTION, RESERVED_PREFIX,
};
use wasmparser::{CompositeInnerType, ExternalKind, Parser, Payload, TypeRef};

use crate::error::LoaderError;

/// Most parameters a user export may take (the call shim's guard forwards this many).
pub const MAX_USER_PARAMS: usize = 6;

/// What a module offers and needs.
#[derive(Clone, Debug)]
pub struct Interface {
    /// Its metadata.
    pub metadata: GuestMetadata,
    /// Function exports not reserved by the ABI, in module order.
    pub user_exports: Vec<(String, FuncSig)>,
    /// Does it export `hotswap_dispose`?
    pub has_dispose: bool,
    /// Names of the `app` functions it imports.
    pub app_imports: Vec<String>,
    /// Initial memory, in 64 KiB pages.
    pub initial_pages: u64,
}

/// The raw facts read from the binary.
#[derive(Default)]
struct Sections {
    types: Vec<Option<FuncSig>>,
    func_types: Vec<u32>,
    exports: Vec<(String, ExternalKind, u32)>,
    imports: Vec<(String, String, Option<u32>)>,
    memory_pages: Option<u64>,
    metadata: Option<Vec<u8>>,
}

/// Which `app.*` imports a module may have.
#[derive(Clone, Copy, Debug)]
pub enum AppImports<'a> {
    /// Exactly the functions the app offers (the loader).
    Only(&'a [String]),
    /// Any (tools that inspect a module without knowing the app, such as the CLI).
    Any,
}

/// What the app allows, for [`inspect`].
pub struct Policy<'a> {
    /// Functions offered in the `app` import namespace.
    pub app_functions: AppImports<'a>,
    /// User exports every version must have.
    pub required_exports: &'a [String],
    /// Initial memory cap, in pages.
    pub max_memory_pages: u64,
}

/// Read and check one module on its own.
pub fn inspect(bytes: &[u8], policy: &Policy) -> Result<Interface, LoaderError> {
    let sections = read_sections(bytes)?;
    let metadata = GuestMetadata::parse(sections.metadata.as_deref().ok_or(LoaderError::MetadataMissing)?)?;
    check_abi(metadata.abi)?;
    let app_imports = check_imports(&sections, policy.app_functions)?;
    let (user_exports, has_dispose) = check_exports(&sections, policy.required_exports)?;
    let initial_pages = sections.memory_pages.unwrap_or(0);
    if initial_pages > policy.max_memory_pages {
        return Err(LoaderError::MemoryLimit { limit: policy.max_memory_pages, requested: initial_pages });
    }
    Ok(Interface { metadata, user_exports, has_dispose, app_imports, initial_pages })
}

/// Check that `new` may replace `running`, whose slot already hands out `slot_exports`;
/// returns the schema the state travels in.
pub fn check_replacement(
    running: &GuestMetadata,
    new: &Interface,
    slot_exports: &[(String, FuncSig)],
) -> Result<u32, LoaderError> {
    if running.name != new.metadata.name {
        return Err(LoaderError::GuestMismatch { expected: running.name.clone(), found: new.metadata.name.clone() });
    }
    for (name, sig) in &new.user_exports {
        if let Some((_, held)) = slot_exports.iter().find(|(n, _)| n == name) {
            if held != sig {
                return Err(LoaderError::ExportSignature { name: name.clone(), expected: held.clone(), found: sig.clone() });
            }
        }
    }
    Ok(transfer_schema(running, &new.metadata)?)
}

fn read_sections(bytes: &[u8]) -> Result<Sections, LoaderError> {
    let mut s = Sections::default();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(parse_error)? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group.map_err(parse_error)?.into_types() {
                        s.types.push(match sub.composite_type.inner {
                            CompositeInnerType::Func(f) => func_sig(f.params(), f.results()),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(parse_error)?;
                    let ty = match import.ty {
                        TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                            s.func_types.push(t);
                            Some(t)
                        }
                        _ => None,
                    };
                    s.imports.push((import.module.to_string(), import.name.to_string(), ty));
                }
            }
            Payload::FunctionSection(reader) => {
                for t in reader {
                    s.func_types.push(t.map_err(parse_error)?);
                }
            }
            Payload::MemorySection(reader) => {
                for m in reader {
                    s.memory_pages.get_or_insert(m.map_err(parse_error)?.initial);
                }
            }
            Payload::ExportSection(reader) => {
                for e in reader {
                    let e = e.map_err(parse_error)?;
                    s.exports.push((e.name.to_string(), e.kind, e.index));
                }
            }
            Payload::CustomSection(c) if c.name() == METADATA_SECTION => {
                if s.metadata.is_some() {
                    return Err(LoaderError::MetadataInvalid(hotswap_abi::MetadataError::DuplicateKey(
                        METADATA_SECTION.into(),
                    )));
                }
                s.metadata = Some(c.data().to_vec());
            }
            _ => {}
        }
    }
    Ok(s)
}

fn parse_error(e: wasmparser::BinaryReaderError) -> LoaderError {
    LoaderError::CompileFailed(e.to_string())
}

/// `None` for types that cannot cross the boundary (references, v128).
fn func_sig(params: &[wasmparser::ValType], results: &[wasmparser::ValType]) -> Option<FuncSig> {
    let map = |t: &wasmparser::ValType| match t {
        wasmparser::ValType::I32 => Some(ValType::I32),
        wasmparser::ValType::I64 => Some(ValType::I64),
        wasmparser::ValType::F32 => Some(ValType::F32),
        wasmparser::ValType::F64 => Some(ValType::F64),
        _ => None,
    };
    Some(FuncSig::owned(params.iter().map(map).collect::<Option<_>>()?, results.iter().map(map).collect::<Option<_>>()?))
}

impl Sections {
    fn sig_of_func(&self, func_index: u32) -> Option<FuncSig> {
        let ty = *self.func_types.get(func_index as usize)?;
        self.types.get(ty as usize)?.clone()
    }

    fn export(&self, name: &str) -> Option<(ExternalKind, u32)> {
        self.exports.iter().find(|(n, _, _)| n == name).map(|(_, k, i)| (*k, *i))
    }
}

fn check_imports(s: &Sections, app_functions: AppImports) -> Result<Vec<String>, LoaderError> {
    let mut app = Vec::new();
    for (module, name, ty) in &s.imports {
        let unknown = || LoaderError::UnknownImport { module: module.clone(), name: name.clone() };
        let found = ty.and_then(|t| s.types.get(t as usize).cloned().flatten()).ok_or_else(unknown)?;
        if module == HOST_MODULE {
            let expected = host::lookup(name).ok_or_else(unknown)?;
            if expected != found {
                return Err(LoaderError::ImportSignature { module: module.clone(), name: name.clone(), expected, found });
            }
        } else if module == APP_MODULE && app_functions.allows(name) {
            app.push(name.clone());
        } else {
            return Err(unknown());
        }
    }
    Ok(app)
}

impl AppImports<'_> {
    fn allows(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

fn check_exports(s: &Sections, required: &[String]) -> Result<(Vec<(String, FuncSig)>, bool), LoaderError> {
    let missing = |name: &str| LoaderError::MissingExport { name: name.to_string() };
    match s.export(exports::MEMORY) {
        Some((ExternalKind::Memory, 0)) => {}
        _ => return Err(missing(exports::MEMORY)),
    }
    for (name, expected) in exports::REQUIRED.iter().chain([&exports::DISPOSE]) {
        let Some((kind, index)) = s.export(name) else {
            if *name == exports::DISPOSE.0 {
                continue;
            }
            return Err(missing(name));
        };
        let found = (kind == ExternalKind::Func).then(|| s.sig_of_func(index)).flatten();
        if found.as_ref() != Some(expected) {
            return Err(LoaderError::ExportSignature {
                name: name.to_string(),
                expected: expected.clone(),
                found: found.unwrap_or(FuncSig::new(&[], &[])),
            });
        }
    }
    let mut user = Vec::new();
    for (name, kind, index) in &s.exports {
        if *kind != ExternalKind::Func || name.starts_with(RESERVED_PREFIX) {
            continue;
        }
        match s.sig_of_func(*index) {
            Some(sig) if sig.params.len() <= MAX_USER_PARAMS && sig.results.len() <= 1 => user.push((name.clone(), sig)),
            other => {
                return Err(LoaderError::UnsupportedExport {
                    name: name.clone(),
                    found: other.map(|s| s.to_string()).unwrap_or_else(|| "with reference or vector types".into()),
                })
            }
        }
    }
    if let Some(name) = required.iter().find(|r| !user.iter().any(|(n, _)| n == *r)) {
        return Err(missing(name));
    }
    Ok((user, s.export(exports::DISPOSE.0).is_some()))
}

// Native only: the fixtures are assembled with `wat`, a host dev-dependency.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    const GUEST: &str = r#"(module
      (import "hotswap" "log" (func (param i32 i32 i32)))
      (memory (export "memory") 1)
      (func (export "hotswap_alloc") (param i32) (result i32) i32.const 0)
      (func (export "hotswap_free") (param i32 i32))
      (func (export "hotswap_state_save") (param i32) (result i64) i64.const 0)
      (func (export "hotswap_state_load") (param i32 i32 i32) (result i32) i32.const 0)
      (func (export "increment") (result i64) i64.const 1)
      (@custom "hotswap.meta" "abi=1.0\nname=counter\nversion=1.0.0\nstate-schema=1\n"))"#;

    fn policy() -> Policy<'static> {
        Policy { app_functions: AppImports::Only(&[]), required_exports: &[], max_memory_pages: 100 }
    }

    fn inspect_wat(wat: &str) -> Result<Interface, LoaderError> {
        inspect(&wat::parse_str(wat).unwrap(), &policy())
    }

    #[test]
    fn a_valid_guest_yields_its_user_exports_and_metadata() {
        let i = inspect_wat(GUEST).unwrap();
        assert_eq!(i.metadata.name, "counter");
        assert_eq!(i.user_exports, vec![("increment".to_string(), FuncSig::new(&[], &[ValType::I64]))]);
        assert!(!i.has_dispose);
    }

    #[test]
    fn missing_state_load_is_named() {
        let err = inspect_wat(&GUEST.replace("(export \"hotswap_state_load\")", "")).unwrap_err();
        assert_eq!(err.code(), "MISSING_EXPORT");
        assert_eq!(err.to_string(), "failed to find export `hotswap_state_load`");
    }

    #[test]
    fn wrong_abi_signature_says_expected_and_found() {
        let err = inspect_wat(&GUEST.replace("(param i32) (result i32) i32.const 0", "(param i64) (result i32) i32.const 0"))
            .unwrap_err();
        assert_eq!(err.to_string(), "export `hotswap_alloc` has type (i64) -> i32, expected (i32) -> i32");
    }

    #[test]
    fn foreign_imports_are_refused_and_app_imports_need_the_app() {
        let wat = GUEST.replace("(memory", "(import \"app\" \"notify\" (func)) (memory");
        assert_eq!(inspect_wat(&wat).unwrap_err().code(), "UNKNOWN_IMPORT");
        let allowed = ["notify".to_string()];
        let p = Policy { app_functions: AppImports::Only(&allowed), ..policy() };
        assert_eq!(inspect(&wat::parse_str(&wat).unwrap(), &p).unwrap().app_imports, allowed);
    }

    #[test]
    fn host_import_with_wrong_type_is_refused() {
        let wat = GUEST.replace("(func (param i32 i32 i32)))", "(func (param i32)))");
        assert_eq!(inspect_wat(&wat).unwrap_err().code(), "IMPORT_SIGNATURE");
    }

    #[test]
    fn metadata_missing_malformed_and_abi_major_are_distinct_codes() {
        let no_meta = GUEST.replace("(@custom", ";; (@custom").replace("\"))", "\")\n)");
        assert_eq!(inspect_wat(&no_meta).unwrap_err().code(), "METADATA_MISSING");
        assert_eq!(inspect_wat(&GUEST.replace("version=1.0.0", "version=x")).unwrap_err().code(), "METADATA_INVALID");
        assert_eq!(inspect_wat(&GUEST.replace("abi=1.0", "abi=2.0")).unwrap_err().code(), "ABI_INCOMPATIBLE");
    }

    #[test]
    fn memory_over_the_limit_is_refused() {
        let err = inspect_wat(&GUEST.replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 101)")).unwrap_err();
        assert_eq!(err.code(), "MEMORY_LIMIT");
    }

    #[test]
    fn required_user_export_must_be_present() {
        let required = ["decrement".to_string()];
        let p = Policy { required_exports: &required, ..policy() };
        let err = inspect(&wat::parse_str(GUEST).unwrap(), &p).unwrap_err();
        assert_eq!(err.to_string(), "failed to find export `decrement`");
    }

    #[test]
    fn replacement_must_be_same_guest_same_signatures_and_migratable() {
        let running = inspect_wat(GUEST).unwrap();
        let slot = running.user_exports.clone();
        let other = inspect_wat(&GUEST.replace("name=counter", "name=editor")).unwrap();
        assert_eq!(check_replacement(&running.metadata, &other, &slot).unwrap_err().code(), "GUEST_MISMATCH");
        let changed = inspect_wat(&GUEST.replace("(result i64) i64.const 1", "(result i32) i32.const 1")).unwrap();
        assert_eq!(check_replacement(&running.metadata, &changed, &slot).unwrap_err().code(), "EXPORT_SIGNATURE");
        let v3 = inspect_wat(&GUEST.replace("state-schema=1", "state-schema=3")).unwrap();
        assert_eq!(check_replacement(&running.metadata, &v3, &slot).unwrap_err().code(), "SCHEMA_INCOMPATIBLE");
        assert_eq!(check_replacement(&running.metadata, &running, &slot).unwrap(), 1);
    }
}
