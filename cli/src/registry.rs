//! The registry operations: inspect a module, publish it, verify a registry, roll back.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hotswap_registry::{hex, Envelope, GuestReleases, Manifest, PinnedKey, Release, MANIFEST_FILE, MODULES_DIR};
use sha2::{Digest, Sha256};
use wasm_hotswap::validate::{self, AppImports, Interface, Policy};

use crate::keys;

/// Check a module the way the loader will, before it is published anywhere.
fn check_module(bytes: &[u8], path: &Path) -> Result<Interface, String> {
    if !bytes.starts_with(b"\0asm") {
        return Err(format!("{}: not a WebAssembly module (no \\0asm header)", path.display()));
    }
    let policy = Policy { app_functions: AppImports::Any, required_exports: &[], max_memory_pages: 65536 };
    validate::inspect(bytes, &policy).map_err(|e| format!("{}: {e} [{}]", path.display(), e.code()))
}

/// `hotswap inspect`.
pub fn inspect(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let interface = check_module(&bytes, path)?;
    let m = &interface.metadata;
    let mut out = String::new();
    let _ = writeln!(out, "{} {}  (ABI {}: accepted by this loader, ABI {})", m.name, m.version, m.abi, hotswap_abi::LOADER_ABI);
    let _ = writeln!(out, "sha256 {}  size {} bytes", hex(&Sha256::digest(&bytes)), bytes.len());
    let list = |v: &[u32]| if v.is_empty() { "-".to_string() } else { v.iter().map(u32::to_string).collect::<Vec<_>>().join(",") };
    let _ = writeln!(out, "state schema {}  migrates from {}  migrates to {}", m.state_schema, list(&m.migrates_from), list(&m.migrates_to));
    let _ = writeln!(out, "memory {} initial pages{}", interface.initial_pages, if interface.has_dispose { ", exports dispose" } else { "" });
    let _ = writeln!(out, "exports:");
    for (name, sig) in &interface.user_exports {
        let bytes_fn = if *sig == hotswap_abi::BYTES_FN { "  (bytes)" } else { "" };
        let _ = writeln!(out, "  {name} {sig}{bytes_fn}");
    }
    let _ = write!(out, "app imports: {}", if interface.app_imports.is_empty() { "-".into() } else { interface.app_imports.join(", ") });
    Ok(out)
}

/// A registry directory, its manifest verified against the signing keys before any change.
struct Registry {
    dir: PathBuf,
    manifest: Manifest,
}

impl Registry {
    fn open(dir: &Path, signers: &[SigningKey]) -> Result<Self, String> {
        let path = dir.join(MANIFEST_FILE);
        if !path.exists() {
            return Ok(Self { dir: dir.to_path_buf(), manifest: Manifest::default() });
        }
        let pinned: Vec<VerifyingKey> = signers.iter().map(SigningKey::verifying_key).collect();
        let manifest = read_verified(&path, &pinned, 1)?;
        Ok(Self { dir: dir.to_path_buf(), manifest })
    }

    /// Sign and write the manifest as the next version, atomically.
    fn save(mut self, signers: &[SigningKey], expires_days: u64) -> Result<u64, String> {
        self.manifest.version += 1;
        self.manifest.expires = now() + expires_days * 86_400;
        let publics: Vec<[u8; 32]> = signers.iter().map(|k| k.verifying_key().to_bytes()).collect();
        let envelope = Envelope::seal(&self.manifest, &publics, |i, message| signers[i].sign(message).to_bytes());
        let json = envelope.to_json();
        let tmp = self.dir.join(format!("{MANIFEST_FILE}.tmp"));
        std::fs::write(&tmp, json).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, self.dir.join(MANIFEST_FILE)).map_err(|e| format!("writing the manifest: {e}"))?;
        Ok(self.manifest.version)
    }
}

/// Parse `path` and accept it only with `threshold` valid signatures by `pinned` keys.
fn read_verified(path: &Path, pinned: &[VerifyingKey], threshold: usize) -> Result<Manifest, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let envelope = Envelope::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let message = hotswap_registry::signed_message(&envelope.payload_bytes().map_err(|e| e.to_string())?);
    let keys: Vec<PinnedKey> = pinned.iter().map(|k| PinnedKey { public: k.to_bytes() }).collect();
    let valid = envelope
        .candidates(&keys)
        .iter()
        .filter(|c| {
            let key = VerifyingKey::from_bytes(&c.public);
            key.is_ok_and(|k| k.verify(&message, &Signature::from_bytes(&c.signature)).is_ok())
        })
        .count();
    envelope.accept(valid, threshold).map_err(|e| format!("{}: tampered or untrusted registry: {e}", path.display()))
}

fn signers(paths: &[PathBuf]) -> Result<Vec<SigningKey>, String> {
    paths.iter().map(|p| keys::signing_key(p)).collect()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `hotswap publish`: returns a one-line report.
pub fn publish(wasm: &Path, dir: &Path, key_paths: &[PathBuf], make_current: bool, expires_days: u64) -> Result<String, String> {
    let bytes = std::fs::read(wasm).map_err(|e| format!("{}: {e}", wasm.display()))?;
    let interface = check_module(&bytes, wasm)?;
    let keys = signers(key_paths)?;
    let mut registry = Registry::open(dir, &keys)?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let url = format!("{MODULES_DIR}/{sha256}.wasm");
    store_module(&dir.join(&url), &bytes)?;
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
            return Err(format!("{} {version} is already published with sha256 {}; releases are immutable, bump the version", m.name, listed.sha256));
        }
    }
    guest.versions.insert(version.clone(), release);
    if make_current || guest.current.is_empty() {
        guest.current = version.clone();
    }
    let current = guest.current.clone();
    let manifest_version = registry.save(&keys, expires_days)?;
    Ok(format!("published {} {version} (sha256 {sha256}); current {current}; manifest version {manifest_version}", m.name))
}

/// Write a module under its digest; an existing file must hold the same bytes.
fn store_module(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    match std::fs::read(path) {
        Ok(existing) if existing == bytes => Ok(()),
        Ok(_) => Err(format!("{}: tampered registry: the file does not match its digest", path.display())),
        Err(_) => std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display())),
    }
}

/// `hotswap verify`.
pub fn verify(dir: &Path, pub_paths: &[PathBuf], threshold: usize) -> Result<String, String> {
    let pinned = pub_paths.iter().map(|p| keys::verifying_key(p)).collect::<Result<Vec<_>, _>>()?;
    let manifest = read_verified(&dir.join(MANIFEST_FILE), &pinned, threshold)?;
    manifest.check_fresh(now(), None).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut modules = 0;
    for (guest, releases) in &manifest.guests {
        releases.versions.get(&releases.current).ok_or_else(|| format!("{guest}: current {} is not listed", releases.current))?;
        for (version, release) in &releases.versions {
            let path = dir.join(&release.url);
            let bytes = std::fs::read(&path).map_err(|e| format!("{guest} {version}: {}: {e}", path.display()))?;
            let actual = hex(&Sha256::digest(&bytes));
            if actual != release.sha256 || bytes.len() as u64 != release.size {
                return Err(format!(
                    "{guest} {version}: tampered module {}: listed sha256 {} ({} bytes), found {actual} ({} bytes)",
                    path.display(),
                    release.sha256,
                    release.size,
                    bytes.len()
                ));
            }
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
pub fn set_current(dir: &Path, guest: &str, version: &str, key_paths: &[PathBuf], expires_days: u64, direction: Direction) -> Result<String, String> {
    let keys = signers(key_paths)?;
    if !dir.join(MANIFEST_FILE).exists() {
        return Err(format!("{}: no manifest (publish a release first)", dir.display()));
    }
    let mut registry = Registry::open(dir, &keys)?;
    registry.manifest.release(guest, Some(version)).map_err(|e| e.to_string())?;
    let releases = registry.manifest.guests.get_mut(guest).ok_or_else(|| format!("no guest {guest}"))?;
    if direction == Direction::Back && !is_older(version, &releases.current) {
        return Err(format!("{guest} {version} is not older than the current {}: use `hotswap promote`", releases.current));
    }
    let previous = std::mem::replace(&mut releases.current, version.to_string());
    let manifest_version = registry.save(&keys, expires_days)?;
    Ok(format!("{guest}: current {previous} -> {version}; manifest version {manifest_version}"))
}

fn is_older(version: &str, than: &str) -> bool {
    matches!((semver::Version::parse(version), semver::Version::parse(than)), (Ok(a), Ok(b)) if a < b)
}

/// The registry's manifest, verified with the public halves of `key_paths` (none yet: an
/// empty manifest).
pub fn manifest(dir: &Path, key_paths: &[PathBuf]) -> Result<Manifest, String> {
    Ok(Registry::open(dir, &signers(key_paths)?)?.manifest)
}
