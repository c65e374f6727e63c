//! A guest's interface, read from the kept sections, and the checks on it.

use crate::error::InspectError;
use crate::sections::{ExportKind, Sections};
use crate::stream::Inspector;
use hotswap_abi::{
    check_abi, exports, host, precopy, transfer_schema, FuncSig, GuestMetadata, APP_MODULE, HOST_MODULE,
    MAX_USER_PARAMS, MAX_USER_RESULTS, RESERVED_PREFIX,
};

/// One user export: a function callers reach through the loader's stable exports object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// Its name.
    pub name: String,
    /// Its type.
    pub sig: FuncSig,
}

/// What a guest module offers and needs, as far as the loader is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInterface {
    /// Its metadata.
    pub metadata: GuestMetadata,
    /// Function exports not reserved by the ABI, in module order.
    pub user_exports: Vec<Export>,
    /// Does it export `hotswap_dispose`?
    pub has_dispose: bool,
    /// ABI 1.1 pre-copy support, if the guest declares it (its exports are then checked).
    pub precopy: Option<PrecopySupport>,
    /// Names of the `app` functions it imports.
    pub app_imports: Vec<String>,
    /// Initial memory, in 64 KiB pages.
    pub initial_pages: u64,
}

/// What a guest declaring pre-copy offers besides the required exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrecopySupport {
    /// It exports `hotswap_warm`.
    pub warm: bool,
}

/// Which `app.*` imports a module may have.
#[derive(Clone, Copy, Debug)]
pub enum AppImports<'a> {
    /// Exactly the functions the app offers (what the loader knows).
    Only(&'a [String]),
    /// Any (tools that look at a module without knowing the app, such as the CLI).
    Any,
}

/// What the embedding app allows, for [`ModuleInterface::check`].
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    /// Functions offered in the `app` import namespace.
    pub app_functions: AppImports<'a>,
    /// User exports every version must have.
    pub required_exports: &'a [String],
    /// Initial memory cap, in 64 KiB pages.
    pub max_memory_pages: u64,
}

impl Inspector {
    /// The interface of the module fed so far, which must be complete.
    pub fn finish(self) -> Result<ModuleInterface, InspectError> {
        let sections = Sections::read(self.into_sections()?)?;
        let metadata = GuestMetadata::parse(sections.metadata.as_deref().ok_or(InspectError::MetadataMissing {})?)?;
        check_abi(metadata.abi)?;
        let app_imports = sections.check_imports()?;
        let (user_exports, has_dispose) = sections.check_exports()?;
        let precopy = metadata.precopy.then(|| sections.check_precopy()).transpose()?;
        Ok(ModuleInterface {
            metadata,
            user_exports,
            has_dispose,
            precopy,
            app_imports,
            initial_pages: sections.memory_pages.unwrap_or(0),
        })
    }
}

/// The interface of a whole module in memory.
pub fn inspect(bytes: &[u8]) -> Result<ModuleInterface, InspectError> {
    let mut inspector = Inspector::default();
    inspector.feed(bytes);
    inspector.finish()
}

impl ModuleInterface {
    /// Check the interface against what the app allows.
    pub fn check(&self, policy: &Policy) -> Result<(), InspectError> {
        if let AppImports::Only(offered) = policy.app_functions {
            if let Some(name) = self.app_imports.iter().find(|n| !offered.contains(n)) {
                return Err(InspectError::UnknownImport { module: APP_MODULE.into(), name: name.clone() });
            }
        }
        if let Some(name) = policy.required_exports.iter().find(|r| !self.user_exports.iter().any(|e| e.name == **r)) {
            return Err(InspectError::MissingExport { name: name.clone() });
        }
        if self.initial_pages > policy.max_memory_pages {
            return Err(InspectError::MemoryLimit { limit: policy.max_memory_pages, requested: self.initial_pages });
        }
        Ok(())
    }

    /// The user export named `name`.
    pub fn export(&self, name: &str) -> Option<&Export> {
        self.user_exports.iter().find(|e| e.name == name)
    }
}

/// Check that `new` may replace `running` in a slot whose callers already hold the exports
/// `held`; returns the schema the state travels in.
pub fn check_replacement(running: &GuestMetadata, new: &ModuleInterface, held: &[Export]) -> Result<u32, InspectError> {
    if running.name != new.metadata.name {
        return Err(InspectError::GuestMismatch { expected: running.name.clone(), found: new.metadata.name.clone() });
    }
    for export in &new.user_exports {
        if let Some(kept) = held.iter().find(|h| h.name == export.name) {
            if kept.sig != export.sig {
                return Err(InspectError::ExportSignature {
                    name: export.name.clone(),
                    expected: kept.sig.clone(),
                    found: export.sig.to_string(),
                });
            }
        }
    }
    Ok(transfer_schema(running, &new.metadata)?)
}

impl Sections {
    /// Host imports must have the ABI's types; `app` imports are collected; nothing else.
    fn check_imports(&self) -> Result<Vec<String>, InspectError> {
        let mut app = Vec::new();
        for import in &self.imports {
            let (module, name) = (&import.module, &import.name);
            let unknown = || InspectError::UnknownImport { module: module.clone(), name: name.clone() };
            let found =
                import.func_type.and_then(|t| self.types.get(t as usize).cloned().flatten()).ok_or_else(unknown)?;
            match module.as_str() {
                HOST_MODULE => {
                    let expected = host::lookup(name).ok_or_else(unknown)?;
                    if expected != found {
                        return Err(InspectError::ImportSignature {
                            module: module.clone(),
                            name: name.clone(),
                            expected,
                            found: found.to_string(),
                        });
                    }
                }
                APP_MODULE => app.push(name.clone()),
                _ => return Err(unknown()),
            }
        }
        Ok(app)
    }

    /// The ABI exports with their exact types, and the user exports.
    fn check_exports(&self) -> Result<(Vec<Export>, bool), InspectError> {
        match self.export(exports::MEMORY) {
            Some((ExportKind::Memory, 0)) => {}
            _ => return Err(InspectError::MissingExport { name: exports::MEMORY.into() }),
        }
        for (name, expected) in &exports::REQUIRED {
            self.check_abi_export(name, expected)?
                .ok_or_else(|| InspectError::MissingExport { name: name.to_string() })?;
        }
        let has_dispose = self.check_abi_export(exports::DISPOSE.0, &exports::DISPOSE.1)?.is_some();
        let user = self
            .exports
            .iter()
            .filter(|(name, kind, _)| *kind == ExportKind::Func && !name.starts_with(RESERVED_PREFIX));
        let user = user.map(|(name, _, index)| self.user_export(name, *index)).collect::<Result<_, _>>()?;
        Ok((user, has_dispose))
    }

    /// The pre-copy exports of a guest that declares `precopy=1`: all required, exact types.
    fn check_precopy(&self) -> Result<PrecopySupport, InspectError> {
        for (name, expected) in &precopy::REQUIRED {
            self.check_abi_export(name, expected)?
                .ok_or_else(|| InspectError::MissingExport { name: name.to_string() })?;
        }
        Ok(PrecopySupport { warm: self.check_abi_export(precopy::WARM.0, &precopy::WARM.1)?.is_some() })
    }

    /// `Some(())` if the ABI export `name` is there with type `expected`, `None` if absent.
    fn check_abi_export(&self, name: &str, expected: &FuncSig) -> Result<Option<()>, InspectError> {
        let Some((kind, index)) = self.export(name) else { return Ok(None) };
        let found = (kind == ExportKind::Func).then(|| self.sig_of_func(index)).flatten();
        match found {
            Some(sig) if sig == *expected => Ok(Some(())),
            Some(sig) => Err(signature_error(name, expected, sig.to_string())),
            None => Err(signature_error(name, expected, kind.describe().to_string())),
        }
    }

    fn user_export(&self, name: &str, index: u32) -> Result<Export, InspectError> {
        match self.sig_of_func(index) {
            Some(sig) if sig.params.len() <= MAX_USER_PARAMS && sig.results.len() <= MAX_USER_RESULTS => {
                Ok(Export { name: name.to_string(), sig })
            }
            other => Err(InspectError::UnsupportedExport {
                name: name.to_string(),
                found: other.map(|s| s.to_string()).unwrap_or_else(|| "with reference or vector types".into()),
            }),
        }
    }
}

fn signature_error(name: &str, expected: &FuncSig, found: String) -> InspectError {
    InspectError::ExportSignature { name: name.to_string(), expected: expected.clone(), found }
}
