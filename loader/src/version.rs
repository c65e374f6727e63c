//! A guest version: what callers see of it ([`VersionInfo`]) and what the loader keeps of it
//! once compiled ([`CompiledVersion`]: the module, its interface, its digest), which is
//! enough to instantiate it again — a rollback needs no download and no compile.

use std::rc::Rc;

use hotswap_inspect::ModuleInterface;
use js_sys::WebAssembly;

use crate::digest::Digest;
use crate::js::js_output;

js_output! {
    /// What callers see of a version.
    pub struct VersionInfo as "VersionInfo" {
        /// Guest name.
        name: String as "name",
        /// SemVer version.
        version: String as "version",
        /// ABI version it was built against.
        abi: String as "abi",
        /// State schema it saves.
        state_schema: u32 as "stateSchema",
        /// Schemas it migrates up from.
        migrates_from: Vec<u32> as "migratesFrom",
        /// Schemas it can save down to.
        migrates_to: Vec<u32> as "migratesTo",
        /// SHA-256 of the module, hex.
        sha256: String as "sha256",
        /// Its user exports.
        exports: Vec<String> as "exports",
    }
}

/// A compiled, verified, validated module: cheap to clone, enough to instantiate.
#[derive(Clone, Debug)]
pub(crate) struct CompiledVersion {
    /// The compiled module (never run by itself).
    pub module: WebAssembly::Module,
    /// Its interface, checked.
    pub interface: Rc<ModuleInterface>,
    /// The digest of its bytes.
    pub digest: Digest,
}

impl CompiledVersion {
    /// Its SemVer version, as text.
    pub(crate) fn version(&self) -> String {
        self.interface.metadata.version.to_string()
    }

    /// What callers see of it.
    pub(crate) fn info(&self) -> VersionInfo {
        let m = &self.interface.metadata;
        VersionInfo {
            name: m.name.clone(),
            version: m.version.to_string(),
            abi: m.abi.to_string(),
            state_schema: m.state_schema,
            migrates_from: m.migrates_from.clone(),
            migrates_to: m.migrates_to.clone(),
            sha256: self.digest.to_hex(),
            exports: self.interface.user_exports.iter().map(|e| e.name.clone()).collect(),
        }
    }
}
