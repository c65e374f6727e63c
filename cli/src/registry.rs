//! The registry operations: inspect a module, publish it, verify a registry, roll back.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hotswap_inspect::{AppImports, ModuleInterface, Policy};
use hotswap_registry::{
    Envelope, GuestReleases, Manifest, PinnedKey, RegistryError, Release, MANIFEST_FILE, MODULES_DIR,
};
use sha2::{Digest, Sha256};

use crate::{keys, CliError};

/// Check a module the way the loader will, before it is published anywhere. The app's own
/// limits are unknown here: any `app` import and up to 4 GiB of memory pass.
fn check_module(bytes: &[u8], path: &Path) -> Result<ModuleInterface, CliError> {
    let module_error = |source| CliError::Module { path: path.to_path_buf(), source };
    let interface = hotswap_inspect::inspect(bytes).map_err(module_error)?;
    let policy = Policy { app_functions: AppImports::Any, required_exports: &[], max_memory_pages: 65536 };
    interface.check(&policy).map_err(module_error)?;
    Ok(interface)
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `hotswap inspect`.
pub fn inspect(path: &Path) -> Result<String, CliError> {
    let bytes = std::fs::read(path).map_err(CliError::io(path))?;
    let interface = check_module(&bytes, path)?;
    let m = &interface.metadata;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}  (ABI {}: accepted by this loader, ABI {})",
        m.name,
        m.version,
        m.abi,
        hotswap_abi::LOADER_ABI
    );
    let _ = writeln!(out, "sha256 {}  size {} bytes", sha256_hex(&bytes), bytes.len());
    let list = |v: &[u32]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        }
    };
    let _ = writeln!(
        out,
        "state schema {}  migrates from {}  migrates to {}",
        m.state_schema,
        list(&m.migrates_from),
        list(&m.migrates_to)
    );
    let _ = writeln!(
        out,
        "memory {} initial pages{}",
        interface.initial_pages,
        if interface.has_dispose { ", exports dispose" } else { "" }
    );
    let _ = writeln!(out, "exports:");
    for export in &interface.user_exports {
        let bytes_fn = if export.sig == hotswap_abi::BYTES_FN { "  (bytes)" } else { "" };
        let _ = writeln!(out, "  {} {}{bytes_fn}", export.name, export.sig);
    }
    let _ = write!(
        out,
        "app imports: {}",
        if interface.app_imports.is_empty() { "-".into() } else { interface.app_imports.join(", ") }
    );
    Ok(out)
}

/// `inspect --json`: what a build needs to load the module with `HotSwap.load` — its SHA-256
/// and size — with its metadata and exports, as one JSON object.
pub fn inspect_json(path: &Path) -> Result<String, CliError> {
    let bytes = std::fs::read(path).map_err(CliError::io(path))?;
    let interface = check_module(&bytes, path)?;
    let m = &interface.metadata;
    let exports: serde_json::Map<String, serde_json::Value> =
        interface.user_exports.iter().map(|e| (e.name.clone(), e.sig.to_string().into())).collect();
    let json = serde_json::json!({
        "sha256": sha256_hex(&bytes),
        "size": bytes.len(),
        "name": m.name,
        "version": m.version.to_string(),
        "abi": m.abi.to_string(),
        "stateSchema": m.state_schema,
        "migratesFrom": m.migrates_from,
        "migratesTo": m.migrates_to,
        "precopy": m.precopy,
        "exports": exports,
        "appImports": interface.app_imports,
    });
    Ok(json.to_string())
}

/// File locked (exclusively) while a manifest is read, changed and written: concurrent
/// `hotswap` processes (or threads) change the registry one at a time.
const LOCK_FILE: &str = ".manifest.lock";

/// A registry directory, its manifest verified against the signing keys before any change.
/// Holds the registry's lock until dropped.
struct Registry {
    dir: PathBuf,
    manifest: Manifest,
    _lock: std::fs::File,
}

impl Registry {
    fn open(dir: &Path, signers: &[SigningKey]) -> Result<Self, CliError> {
        std::fs::create_dir_all(dir).map_err(CliError::io(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(CliError::io(&lock_path))?;
        lock.lock().map_err(CliError::io(&lock_path))?;
        let path = dir.join(MANIFEST_FILE);
        if !path.exists() {
            return Ok(Self { dir: dir.to_path_buf(), manifest: Manifest::default(), _lock: lock });
        }
        let pinned: Vec<VerifyingKey> = signers.iter().map(SigningKey::verifying_key).collect();
        let manifest = read_verified(&path, &pinned, 1)?;
        Ok(Self { dir: dir.to_path_buf(), manifest, _lock: lock })
    }

    /// Sign and write the manifest as the next version — above `floor` too — atomically: a
    /// temporary file of this process, synced, renamed over the manifest.
    fn save(&mut self, signers: &[SigningKey], expires_days: u64, floor: u64) -> Result<u64, CliError> {
        self.manifest.version = self.manifest.version.max(floor) + 1;
        self.manifest.expires = now() + expires_days * 86_400;
        let publics: Vec<[u8; 32]> = signers.iter().map(|k| k.verifying_key().to_bytes()).collect();
        let envelope = Envelope::seal(&self.manifest, &publics, |i, message| signers[i].sign(message).to_bytes());
        let json = envelope.to_json();
        let tmp = self.dir.join(format!("{MANIFEST_FILE}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut file, &json)?;
            file.sync_all()
        };
        write().map_err(CliError::io(&tmp))?;
        let path = self.dir.join(MANIFEST_FILE);
        std::fs::rename(&tmp, &path).map_err(CliError::io(path))?;
        Ok(self.manifest.version)
    }
}

/// Parse `path` and accept it only with `threshold` valid signatures by `pinned` keys.
fn read_verified(path: &Path, pinned: &[VerifyingKey], threshold: usize) -> Result<Manifest, CliError> {
    let bytes = std::fs::read(path).map_err(CliError::io(path))?;
    verify_manifest(&bytes, pinned, threshold)
        .map_err(|source| CliError::Untrusted { path: path.to_path_buf(), source })
}

/// The manifest in `bytes` (a `manifest.json`), if it is no larger than pages read by
/// default, `threshold` of the `pinned` keys signed it and its content is valid — the checks
/// the loader makes, in the same order, with ed25519-dalek in place of WebCrypto.
pub fn verify_manifest(bytes: &[u8], pinned: &[VerifyingKey], threshold: usize) -> Result<Manifest, RegistryError> {
    hotswap_registry::check_size(bytes.len() as u64, hotswap_registry::MAX_MANIFEST_BYTES)?;
    let envelope = Envelope::parse(bytes)?;
    let message = hotswap_registry::signed_message(&envelope.payload_bytes()?);
    let keys: Vec<PinnedKey> = pinned.iter().map(|k| PinnedKey { public: k.to_bytes() }).collect();
    let valid = envelope
        .candidates(&keys)
        .iter()
        .filter(|c| {
            let key = VerifyingKey::from_bytes(&c.public);
            key.is_ok_and(|k| k.verify(&message, &Signature::from_bytes(&c.signature)).is_ok())
        })
        .count();
    envelope.accept(valid, threshold)
}

fn signers(paths: &[PathBuf]) -> Result<Vec<SigningKey>, CliError> {
    paths.iter().map(|p| keys::signing_key(p)).collect()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `hotswap publish`: returns a one-line report.
pub fn publish(
    wasm: &Path,
    dir: &Path,
    key_paths: &[PathBuf],
    make_current: bool,
    expires_days: u64,
) -> Result<String, CliError> {
    let bytes = std::fs::read(wasm).map_err(CliError::io(wasm))?;
    publish_bytes(&bytes, wasm, dir, key_paths, make_current, expires_days).map(|p| p.report)
}

/// What [`publish_bytes`] did.
#[derive(Clone, Debug)]
pub struct Publication {
    /// The one-line report `hotswap publish` prints.
    pub report: String,
    /// The module's SHA-256, lower-case hex.
    pub sha256: String,
}

/// [`publish`] for a module in memory; `source` names it in errors.
pub fn publish_bytes(
    bytes: &[u8],
    source: &Path,
    dir: &Path,
    key_paths: &[PathBuf],
    make_current: bool,
    expires_days: u64,
) -> Result<Publication, CliError> {
    let interface = check_module(bytes, source)?;
    let keys = signers(key_paths)?;
    let mut registry = Registry::open(dir, &keys)?;
    let sha256 = sha256_hex(bytes);
    let url = format!("{MODULES_DIR}/{sha256}.wasm");
    store_module(&dir.join(&url), bytes)?;
    let m = &interface.metadata;
    let version = m.version.to_string();
    let release = Release {
        sha256: sha256.clone(),
        size: bytes.len() as u64,
        abi: m.abi.to_string(),
        state_schema: m.state_schema,
        migrates_from: m.migrates_from.clone(),
        url,
    };
    let guest = registry.manifest.guests.entry(m.name.clone()).or_insert_with(GuestReleases::default);
    if let Some(listed) = guest.versions.get(&version) {
        if listed.sha256 != sha256 {
            return Err(CliError::Immutable { guest: m.name.clone(), version, listed: listed.sha256.clone() });
        }
    }
    guest.versions.insert(version.clone(), release);
    if make_current || guest.current.is_empty() {
        guest.current = version.clone();
    }
    let current = guest.current.clone();
    let manifest_version = registry.save(&keys, expires_days, 0)?;
    let report = format!(
        "published {} {version} (sha256 {sha256}); current {current}; manifest version {manifest_version}",
        m.name
    );
    Ok(Publication { report, sha256 })
}

/// Take releases of `guest` off the manifest (never the current one), in a new manifest
/// version, and delete the module files no release lists any more. Returns the versions
/// taken off. `hotswap dev` keeps its registry to the last few dev builds with it.
pub fn unlist(
    dir: &Path,
    guest: &str,
    versions: &[String],
    key_paths: &[PathBuf],
    expires_days: u64,
) -> Result<Vec<String>, CliError> {
    let keys = signers(key_paths)?;
    let mut registry = Registry::open(dir, &keys)?;
    let Some(releases) = registry.manifest.guests.get_mut(guest) else { return Ok(Vec::new()) };
    let current = releases.current.clone();
    let gone: Vec<String> =
        versions.iter().filter(|v| **v != current && releases.versions.remove(*v).is_some()).cloned().collect();
    if gone.is_empty() {
        return Ok(gone);
    }
    let listed: std::collections::HashSet<String> =
        registry.manifest.guests.values().flat_map(|g| g.versions.values().map(|r| r.url.clone())).collect();
    registry.save(&keys, expires_days, 0)?;
    // Still under the registry's lock: no publish is storing a module meanwhile.
    let modules = registry.dir.join(MODULES_DIR);
    for entry in std::fs::read_dir(&modules).map_err(CliError::io(&modules))?.flatten() {
        let url = format!("{MODULES_DIR}/{}", entry.file_name().to_string_lossy());
        if !listed.contains(&url) {
            // A file left behind costs only disk; the manifest no longer names it.
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(gone)
}

/// Write a module under its digest; an existing file must hold the same bytes.
fn store_module(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(CliError::io(parent))?;
    }
    match std::fs::read(path) {
        Ok(existing) if existing == bytes => Ok(()),
        Ok(_) => Err(CliError::StoredModuleMismatch(path.to_path_buf())),
        Err(_) => std::fs::write(path, bytes).map_err(CliError::io(path)),
    }
}

/// `hotswap verify`: `min_version` is the manifest version a mirror must not go below
/// (what a page that has seen it would refuse: MANIFEST_ROLLBACK).
pub fn verify(
    dir: &Path,
    pub_paths: &[PathBuf],
    threshold: usize,
    min_version: Option<u64>,
) -> Result<String, CliError> {
    let pinned = pub_paths.iter().map(|p| keys::verifying_key(p)).collect::<Result<Vec<_>, _>>()?;
    let manifest = read_verified(&dir.join(MANIFEST_FILE), &pinned, threshold)?;
    manifest.check_fresh(now(), min_version)?;
    let mut modules = 0;
    for (guest, releases) in &manifest.guests {
        for (version, release) in &releases.versions {
            check_module_file(dir, guest, version, release)?;
            modules += 1;
        }
    }
    Ok(format!(
        "registry ok: manifest version {}, expires {}, {} guest(s), {modules} module(s) match their digests",
        manifest.version,
        manifest.expires,
        manifest.guests.len()
    ))
}

/// The module file of a listed release must hold exactly the listed bytes.
pub fn check_module_file(dir: &Path, guest: &str, version: &str, release: &Release) -> Result<(), CliError> {
    let path = dir.join(&release.url);
    let bytes = std::fs::read(&path).map_err(CliError::io(&path))?;
    let found = sha256_hex(&bytes);
    if found != release.sha256 || bytes.len() as u64 != release.size {
        return Err(CliError::TamperedModule {
            guest: guest.to_string(),
            version: version.to_string(),
            path,
            listed: release.sha256.clone(),
            listed_size: release.size,
            found,
            found_size: bytes.len() as u64,
        });
    }
    Ok(())
}

/// Which way [`set_current`] may move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `hotswap promote`: to any listed release.
    Any,
    /// `hotswap rollback`: only to a release older than the current one.
    Back,
}

/// `hotswap promote` / `hotswap rollback`: make a listed release current, in a new (higher)
/// manifest version. Module files are not touched.
pub fn set_current(
    dir: &Path,
    guest: &str,
    version: &str,
    key_paths: &[PathBuf],
    expires_days: u64,
    direction: Direction,
) -> Result<String, CliError> {
    set_current_above(dir, guest, version, key_paths, expires_days, direction, 0)
}

/// [`set_current`], with a manifest version above `floor` as well: a registry whose
/// manifest was replaced by an older copy (a replay) still publishes a version that clients
/// which saw the newer ones accept.
pub fn set_current_above(
    dir: &Path,
    guest: &str,
    version: &str,
    key_paths: &[PathBuf],
    expires_days: u64,
    direction: Direction,
    floor: u64,
) -> Result<String, CliError> {
    let keys = signers(key_paths)?;
    if !dir.join(MANIFEST_FILE).exists() {
        return Err(CliError::NoManifest(dir.to_path_buf()));
    }
    let mut registry = Registry::open(dir, &keys)?;
    registry.manifest.release(guest, Some(version))?;
    let not_listed = || hotswap_registry::RegistryError::NotListed { what: format!("guest `{guest}`") };
    let releases = registry.manifest.guests.get_mut(guest).ok_or_else(not_listed)?;
    if direction == Direction::Back && !is_older(version, &releases.current) {
        return Err(CliError::NotOlder {
            guest: guest.to_string(),
            version: version.to_string(),
            current: releases.current.clone(),
        });
    }
    let previous = std::mem::replace(&mut releases.current, version.to_string());
    let manifest_version = registry.save(&keys, expires_days, floor)?;
    Ok(format!("{guest}: current {previous} -> {version}; manifest version {manifest_version}"))
}

fn is_older(version: &str, than: &str) -> bool {
    matches!((semver::Version::parse(version), semver::Version::parse(than)), (Ok(a), Ok(b)) if a < b)
}

/// The registry's manifest, verified with the public halves of `key_paths` (none yet: an
/// empty manifest).
pub fn manifest(dir: &Path, key_paths: &[PathBuf]) -> Result<Manifest, CliError> {
    Ok(Registry::open(dir, &signers(key_paths)?)?.manifest)
}
