//! The demo's signed registry, `<data>/registry` (`manifest.json` + `modules/<sha256>.wasm`),
//! managed only through the `hotswap` CLI's library (the same code as the `hotswap` binary,
//! which `npm run deploy` runs): the server signs with the demo key `<data>/keys/demo.key`,
//! created on first start. Pages pin its public half (served in `/api/config`) and verify
//! every manifest themselves; the server is just the registry's host and push channel.
//!
//! The server serves the manifest file as it is on disk, whoever wrote it: a change (a
//! deploy through the API, `npm run deploy`, or someone tampering with the files) is noticed
//! within [`POLL`] and announced on the push channel.
//!
//! Module files are content-addressed, and the server never serves bytes that do not match
//! their address: each file is hashed when it is served (and watched for changes, so a
//! tampered file is reported once and a repaired one announced on the push channel, which
//! makes pages retry it). The highest manifest version ever seen is remembered in
//! `<data>/manifest-high-water`, so a deploy on top of a replayed (older) manifest still
//! publishes a version every page accepts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use hotswap_cli::registry::{self as cli, Direction};
use hotswap_cli::CliError;
use hotswap_registry::{RegistryError, MANIFEST_FILE, MODULES_DIR};
use serde::Deserialize;
use tokio::sync::broadcast;

/// The guest this demo serves.
pub const GUEST: &str = "editor";

/// How often the manifest file is checked for changes.
pub const POLL: Duration = Duration::from_millis(200);

/// Days a manifest signed by the demo stays valid; a start re-signs one expiring sooner
/// than [`RENEW_DAYS`].
const EXPIRES_DAYS: u64 = 30;
const RENEW_DAYS: u64 = 7;

/// The manifest as served.
#[derive(Clone)]
pub struct Served {
    /// The file's bytes.
    pub bytes: Arc<Vec<u8>>,
    /// Its ETag (quoted).
    pub etag: String,
    stamp: Stamp,
}

/// What identifies a version of a file cheaply: its length and modification time.
type Stamp = (u64, Option<SystemTime>);

/// Why a module is not served.
#[derive(Debug, PartialEq, Eq)]
pub enum ModuleRefusal {
    /// No such file (or not a `<sha256>.wasm` name).
    NotFound,
    /// The file's bytes do not hash to its name.
    Tampered,
}

/// The registry, the demo key, and the built fallback guest.
pub struct DemoRegistry {
    dir: PathBuf,
    key: PathBuf,
    /// The demo key's public half, 64 hex digits.
    pub public_hex: String,
    /// The guest pages fall back to: the oldest built editor, pinned by digest.
    pub fallback: Option<(Vec<u8>, String)>,
    served: RwLock<Option<Served>>,
    /// Announces each new manifest (its ETag) to the push channel.
    pub changes: broadcast::Sender<String>,
    /// The highest manifest version seen or published, and where it is kept.
    high_water: AtomicU64,
    high_water_path: PathBuf,
    /// Each module file's last stamp, and whether its bytes matched its name then.
    modules: Mutex<HashMap<String, (Stamp, bool)>>,
}

/// Why the registry could not be prepared at start-up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The CLI library refused (keys, manifest, modules, files).
    #[error(transparent)]
    Cli(#[from] CliError),
    /// `target/guests/index.json` does not parse.
    #[error("{}: {source}", path.display())]
    Index {
        /// The index file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// The HTTP status and message a failed deploy answers with: 404 for a release that is
/// not listed; 500 for anything that is the server's fault, without the server's file
/// paths (those go to the server's log).
pub fn deploy_refusal(error: &CliError) -> (u16, String) {
    match error {
        CliError::Registry(e @ RegistryError::NotListed { .. }) => (404, e.to_string()),
        CliError::Untrusted { source, .. } => {
            (500, format!("the registry's manifest on the server does not verify ({source}); see the server log"))
        }
        _ => (500, "the registry could not be updated; see the server log".into()),
    }
}

/// An entry of `target/guests/index.json`, written by `cargo run -p xtask -- guests`.
#[derive(Deserialize)]
struct BuiltGuest {
    file: String,
}

impl DemoRegistry {
    /// Open (or create) the registry `<home>/registry`, signed with `<keys>/demo.key`, listing
    /// every editor built under `built` that it does not list yet; the first one published
    /// becomes current. `home` is the data directory (`<data>/dev` for the dev registry of
    /// `--dev`, which pages find at another URL, so its manifest versions never meet these).
    pub fn open(built: &Path, home: &Path, keys: &Path) -> Result<Self, StartError> {
        let key = ensure_key(keys)?;
        let dir = home.join("registry");
        let guests = built_editors(built)?;
        publish_new(&dir, &key, &guests)?;
        renew_if_expiring(&dir, &key)?;
        let public = key.with_extension("pub");
        let public_hex = std::fs::read_to_string(&public).map_err(CliError::io(public))?;
        let fallback = guests.first().map(|(_, path)| std::fs::read(path).map_err(CliError::io(path))).transpose()?;
        let (changes, _) = broadcast::channel(16);
        let high_water_path = home.join("manifest-high-water");
        let high_water =
            std::fs::read_to_string(&high_water_path).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        let registry = Self {
            dir,
            key,
            public_hex: public_hex.trim().to_string(),
            fallback: fallback.map(|bytes| {
                let sha256 = cli::sha256_hex(&bytes);
                (bytes, sha256)
            }),
            served: RwLock::new(None),
            changes,
            high_water: AtomicU64::new(high_water),
            high_water_path,
            modules: Mutex::default(),
        };
        registry.refresh();
        registry.check_modules();
        Ok(registry)
    }

    /// The signing key's file.
    pub fn key(&self) -> &Path {
        &self.key
    }

    /// The registry directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Make `version` current (a new manifest version, signed), as `hotswap promote` does,
    /// above every manifest version published so far. Deploys run one at a time (the
    /// CLI's registry lock).
    pub fn deploy(&self, version: &str) -> Result<String, CliError> {
        let floor = self.high_water.load(Ordering::SeqCst);
        let keys = std::slice::from_ref(&self.key);
        let report = cli::set_current_above(&self.dir, GUEST, version, keys, EXPIRES_DAYS, Direction::Any, floor)?;
        self.refresh();
        Ok(report)
    }

    /// Remember `version` if it is the highest seen; say so once if the manifest went back.
    fn note_version(&self, version: u64) {
        let high = self.high_water.fetch_max(version, Ordering::SeqCst);
        if version > high {
            if let Err(e) = std::fs::write(&self.high_water_path, format!("{version}\n")) {
                eprintln!("demo-app: recording the manifest version in {}: {e}", self.high_water_path.display());
            }
        } else if version < high {
            eprintln!(
                "demo-app: manifest.json is version {version}, older than version {high} already published (a replay?); pages that saw {high} refuse it, and the next deploy publishes version {}",
                high + 1
            );
        }
    }

    /// Re-read the manifest file if it changed; announce it if so.
    pub fn refresh(&self) {
        let path = self.dir.join(MANIFEST_FILE);
        let Ok(meta) = std::fs::metadata(&path) else { return };
        let stamp = (meta.len(), meta.modified().ok());
        if self.served.read().map(|s| s.as_ref().is_some_and(|s| s.stamp == stamp)).unwrap_or(false) {
            return;
        }
        let Ok(bytes) = std::fs::read(&path) else { return };
        let etag = format!("\"{}\"", &cli::sha256_hex(&bytes)[..16]);
        let unchanged = self.served.read().map(|s| s.as_ref().is_some_and(|s| s.etag == etag)).unwrap_or(false);
        if let Ok(manifest) = self.manifest_verified() {
            self.note_version(manifest.version);
        }
        if let Ok(mut served) = self.served.write() {
            *served = Some(Served { bytes: Arc::new(bytes), etag: etag.clone(), stamp });
        }
        if !unchanged {
            let _ = self.changes.send(etag);
        }
    }

    /// The manifest on disk, verified with the demo key.
    pub fn manifest_verified(&self) -> Result<hotswap_registry::Manifest, CliError> {
        cli::manifest(&self.dir, std::slice::from_ref(&self.key))
    }

    /// The manifest as last read.
    pub fn manifest(&self) -> Option<Served> {
        self.served.read().ok().and_then(|s| s.clone())
    }

    /// The bytes of module `<sha256>.wasm`, only if they hash to that name.
    pub fn module(&self, file: &str) -> Result<Vec<u8>, ModuleRefusal> {
        let sha256 = file.strip_suffix(".wasm").ok_or(ModuleRefusal::NotFound)?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(ModuleRefusal::NotFound);
        }
        let path = self.dir.join(MODULES_DIR).join(file);
        let (stamp, bytes) = read_stamped(&path).ok_or(ModuleRefusal::NotFound)?;
        let intact = cli::sha256_hex(&bytes) == sha256;
        self.note_module(file, stamp, intact);
        if intact {
            Ok(bytes)
        } else {
            Err(ModuleRefusal::Tampered)
        }
    }

    /// Check every module file that changed since the last look.
    pub fn check_modules(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir.join(MODULES_DIR)) else { return };
        for entry in entries.flatten() {
            let Ok(file) = entry.file_name().into_string() else { continue };
            let Some(sha256) = file.strip_suffix(".wasm") else { continue };
            let stamp = entry.metadata().ok().map(|m| (m.len(), m.modified().ok()));
            let known = self.modules.lock().ok().and_then(|m| m.get(&file).map(|(s, _)| *s));
            if stamp.is_none() || stamp == known {
                continue;
            }
            if let Some((stamp, bytes)) = read_stamped(&entry.path()) {
                self.note_module(&file, stamp, cli::sha256_hex(&bytes) == sha256);
            }
        }
    }

    /// Record a module's state; log a change of it once, and announce a repair so that
    /// pages which could not fetch it retry.
    fn note_module(&self, file: &str, stamp: Stamp, intact: bool) {
        let Ok(mut modules) = self.modules.lock() else { return };
        let before = modules.insert(file.to_string(), (stamp, intact)).map(|(_, ok)| ok);
        drop(modules);
        match (before, intact) {
            (Some(true) | None, false) => eprintln!(
                "demo-app: {MODULES_DIR}/{file} does not match its digest: not serving it until the file is repaired"
            ),
            (Some(false), true) => {
                eprintln!("demo-app: {MODULES_DIR}/{file} matches its digest again: serving it");
                if let Some(served) = self.manifest() {
                    let _ = self.changes.send(served.etag);
                }
            }
            _ => {}
        }
    }
}

/// A file's stamp and bytes (the stamp taken before reading, so a change while reading
/// shows as a new stamp next time).
fn read_stamped(path: &Path) -> Option<(Stamp, Vec<u8>)> {
    let meta = std::fs::metadata(path).ok()?;
    let stamp = (meta.len(), meta.modified().ok());
    Some((stamp, std::fs::read(path).ok()?))
}

/// `<keys>/demo.key`, created (with `hotswap keygen`'s code) if absent.
fn ensure_key(keys: &Path) -> Result<PathBuf, CliError> {
    let key = keys.join("demo.key");
    if !key.exists() {
        let report = hotswap_cli::keys::keygen(keys, "demo")?;
        eprintln!("demo-app: new demo signing key: {report}");
    }
    Ok(key)
}

/// The built editor modules, oldest version first.
fn built_editors(built: &Path) -> Result<Vec<(semver::Version, PathBuf)>, StartError> {
    let path = built.join("index.json");
    let index = std::fs::read(&path).map_err(CliError::io(&path))?;
    let index: std::collections::BTreeMap<String, BuiltGuest> =
        serde_json::from_slice(&index).map_err(|source| StartError::Index { path, source })?;
    let prefix = format!("{GUEST}-");
    let mut guests: Vec<_> = index
        .iter()
        .filter_map(|(name, entry)| {
            Some((semver::Version::parse(name.strip_prefix(&prefix)?).ok()?, built.join(&entry.file)))
        })
        .collect();
    guests.sort();
    Ok(guests)
}

/// Publish every built release the registry does not list yet, without making it current
/// (the CLI makes the very first one current).
fn publish_new(dir: &Path, key: &Path, guests: &[(semver::Version, PathBuf)]) -> Result<(), CliError> {
    let keys = [key.to_path_buf()];
    let manifest = cli::manifest(dir, &keys)?;
    let listed = manifest.guests.get(GUEST);
    for (version, path) in guests {
        if listed.is_some_and(|g| g.versions.contains_key(&version.to_string())) {
            continue;
        }
        match cli::publish(path, dir, &keys, false, EXPIRES_DAYS) {
            Ok(report) => eprintln!("demo-app: {report}"),
            // A rebuilt module under a listed version: releases are immutable; keep serving.
            Err(e) => eprintln!("demo-app: not publishing {}: {e}", path.display()),
        }
    }
    Ok(())
}

/// Re-sign the manifest (same current release) when it expires within [`RENEW_DAYS`].
fn renew_if_expiring(dir: &Path, key: &Path) -> Result<(), CliError> {
    let keys = [key.to_path_buf()];
    let manifest = cli::manifest(dir, &keys)?;
    let Some(current) = manifest.guests.get(GUEST).map(|g| g.current.clone()) else { return Ok(()) };
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    if manifest.expires > now + RENEW_DAYS * 86_400 {
        return Ok(());
    }
    let report = cli::set_current(dir, GUEST, &current, &keys, EXPIRES_DAYS, Direction::Any)?;
    eprintln!("demo-app: renewed the manifest: {report}");
    Ok(())
}
