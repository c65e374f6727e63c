//! Benchmark only (`npm run bench`, row "loader size floor"): the checks the loader runs in
//! Rust — SHA-256 over every byte, the interface read from the same bytes — and nothing else:
//! no fetching, no instances, no swap. Its gzip size is what any loader that keeps these
//! two in Rust ships before it loads anything.
#![deny(missing_docs, missing_debug_implementations)]

use hotswap_inspect::Inspector;
use sha2::{Digest, Sha256};
use wasm_bindgen::prelude::wasm_bindgen;

/// A module's bytes, hashed and inspected as they arrive.
#[wasm_bindgen]
#[derive(Debug, Default)]
pub struct Checks {
    hash: Sha256,
    inspector: Inspector,
}

#[wasm_bindgen]
impl Checks {
    /// Nothing read yet.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Checks {
        console_error_panic_hook::set_once();
        Checks::default()
    }

    /// The next chunk.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.hash.update(chunk);
        self.inspector.feed(chunk);
    }

    /// The digest (hex) and the guest's name and version, or why the module is refused.
    pub fn finish(self) -> Result<String, String> {
        let digest = self.hash.finalize();
        let interface = self.inspector.finish().map_err(|e| e.to_string())?;
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok(format!("{hex} {}@{}", interface.metadata.name, interface.metadata.version))
    }
}
