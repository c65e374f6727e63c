//! Why a module is refused, each with a stable code.

use hotswap_abi::{FuncSig, MetadataError, RuleError};

hotswap_abi::coded_error! {
    /// A module that is not an acceptable guest, or not one that may replace the running one.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum InspectError {
        wraps {
            /// The guest breaks an ABI or migration rule.
            Rule(RuleError),
        }
        codes {
            /// The bytes are not a WebAssembly module.
            #[error("not a WebAssembly module (no \\0asm header){}", if *looks_like_html {
                ": the bytes look like an HTML page (a mistyped URL answered by a dev server's fallback page?)"
            } else { "" })]
            NotWasm "NOT_WASM" {
                /// The bytes start like an HTML document.
                looks_like_html as "looksLikeHtml": bool,
            },
            /// The module is not well-formed, or the browser could not compile it.
            #[error("compiling the module failed: {reason}")]
            Malformed "COMPILE_FAILED" {
                /// What is wrong.
                reason: String,
            },
            /// The module has no metadata section.
            #[error("module has no `hotswap.meta` custom section: not a hotswap guest")]
            MetadataMissing "METADATA_MISSING" {},
            /// The metadata section does not parse.
            #[error("invalid metadata: {source}")]
            MetadataInvalid "METADATA_INVALID" {
                /// Why.
                #[from]
                source: MetadataError,
            },
            /// The new module is a different guest than the running one.
            #[error("guest mismatch: this slot runs `{expected}`, the module is `{found}`")]
            GuestMismatch "GUEST_MISMATCH" {
                /// The running guest's name.
                expected as "expected": String,
                /// The new module's guest name.
                found as "actual": String,
            },
            /// A required export is absent.
            #[error("failed to find export `{name}`")]
            MissingExport "MISSING_EXPORT" {
                /// The export's name.
                name as "exportName": String,
            },
            /// An export has the wrong type.
            #[error("export `{name}` has type {found}, expected {expected}")]
            ExportSignature "EXPORT_SIGNATURE" {
                /// The export's name.
                name as "exportName": String,
                /// The type required.
                expected as "expected": FuncSig,
                /// What was found (a function type, or what else the export is).
                found as "actual": String,
            },
            /// A user export uses types the loader cannot forward.
            #[error(
                "export `{name}` has type {found}: user exports take at most {} numbers and return at most {}",
                hotswap_abi::MAX_USER_PARAMS,
                hotswap_abi::MAX_USER_RESULTS
            )]
            UnsupportedExport "UNSUPPORTED_EXPORT" {
                /// The export's name.
                name as "exportName": String,
                /// The type found.
                found as "actual": String,
            },
            /// An import the host does not provide.
            #[error("module imports `{module}.{name}`, which is neither a `hotswap` host function nor one the app offers in `app`")]
            UnknownImport "UNKNOWN_IMPORT" {
                /// Import namespace.
                module as "importModule": String,
                /// Import name.
                name as "importName": String,
            },
            /// A host import with the wrong type.
            #[error("import `{module}.{name}` has type {found}, expected {expected}")]
            ImportSignature "IMPORT_SIGNATURE" {
                /// Import namespace.
                module as "importModule": String,
                /// Import name.
                name as "importName": String,
                /// The type required.
                expected as "expected": FuncSig,
                /// The type found.
                found as "actual": String,
            },
            /// The module asks for more initial memory than allowed.
            #[error("module needs {requested} memory pages, the limit is {limit}")]
            MemoryLimit "MEMORY_LIMIT" {
                /// The limit, in 64 KiB pages.
                limit as "limit": u64,
                /// Pages requested.
                requested as "actual": u64,
            },
        }
    }
}

impl InspectError {
    /// A module that is not well-formed.
    pub fn malformed(reason: impl Into<String>) -> Self {
        Self::Malformed { reason: reason.into() }
    }
}

impl From<wasmparser::BinaryReaderError> for InspectError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        Self::malformed(e.to_string())
    }
}
