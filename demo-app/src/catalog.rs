//! The guest versions the server can deploy, stored by content address, and which one is
//! deployed (persisted, so a restart keeps it).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One deployable version.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Version {
    /// Guest name, e.g. `editor`.
    pub guest: String,
    /// SemVer version.
    pub version: String,
    /// SHA-256 of the module, hex.
    pub sha256: String,
    /// Module size in bytes.
    pub size: u64,
    /// Where pages fetch it: `/modules/<sha256>.wasm`.
    pub url: String,
}

/// Versions by guest, and the deployed one.
pub struct Catalog {
    modules: PathBuf,
    deployed_file: PathBuf,
    versions: Vec<Version>,
    deployed: BTreeMap<String, String>,
}

/// An entry of `target/guests/index.json`, written by `cargo run -p xtask -- guests`.
#[derive(Deserialize)]
struct BuiltGuest {
    file: String,
}

impl Catalog {
    /// Import the built `<guest>-<version>.wasm` files of `guest` from `built` into the
    /// content-addressed store under `data`, and read the deployment state.
    pub fn open(built: &Path, guest: &str, data: &Path) -> io::Result<Self> {
        let modules = data.join("modules");
        std::fs::create_dir_all(&modules)?;
        let index: BTreeMap<String, BuiltGuest> = serde_json::from_slice(&std::fs::read(built.join("index.json"))?)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("index.json: {e}")))?;
        let prefix = format!("{guest}-");
        let mut versions = Vec::new();
        for (name, entry) in &index {
            let Some(version) = name.strip_prefix(&prefix) else { continue };
            let bytes = std::fs::read(built.join(&entry.file))?;
            let sha256 = hex(&Sha256::digest(&bytes));
            let stored = modules.join(format!("{sha256}.wasm"));
            if !stored.exists() {
                std::fs::write(&stored, &bytes)?;
            }
            versions.push(Version {
                guest: guest.to_string(),
                version: version.to_string(),
                url: format!("/modules/{sha256}.wasm"),
                sha256,
                size: bytes.len() as u64,
            });
        }
        versions.sort_by_cached_key(|v| semver::Version::parse(&v.version).ok());
        let deployed_file = data.join("deployed.json");
        let deployed = match std::fs::read(&deployed_file) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(_) => BTreeMap::new(),
        };
        let mut catalog = Self { modules, deployed_file, versions, deployed };
        if catalog.deployed(guest).is_none() {
            if let Some(first) = catalog.versions.first().map(|v| v.version.clone()) {
                catalog.deploy(guest, &first)?;
            }
        }
        Ok(catalog)
    }

    /// Every version, oldest first.
    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// The deployed version of `guest`.
    pub fn deployed(&self, guest: &str) -> Option<&Version> {
        let version = self.deployed.get(guest)?;
        self.find(guest, version)
    }

    fn find(&self, guest: &str, version: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.guest == guest && v.version == version)
    }

    /// Make `version` the deployed one (persisted before returning).
    pub fn deploy(&mut self, guest: &str, version: &str) -> io::Result<Version> {
        let found = self
            .find(guest, version)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no version {version} of {guest}")))?;
        self.deployed.insert(guest.to_string(), version.to_string());
        let tmp = self.deployed_file.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.deployed)?)?;
        std::fs::rename(&tmp, &self.deployed_file)?;
        Ok(found)
    }

    /// The stored module with this digest, if any.
    pub fn module_path(&self, sha256: &str) -> Option<PathBuf> {
        let valid = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
        let path = self.modules.join(format!("{sha256}.wasm"));
        (valid && path.exists()).then_some(path)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
