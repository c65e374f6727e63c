//! The wasm-hotswap registry format and the rules for trusting it.
//!
//! A registry is a directory: `modules/<sha256>.wasm` (content-addressed, immutable) and
//! `manifest.json`, a signed [`Envelope`] around a [`Manifest`]. The manifest lists every
//! release of every guest with its digest, and which release is current. It carries a
//! version number that only grows and an expiry time.
//!
//! A client trusts a manifest only if (the protections of The Update Framework, TUF):
//! - at least `threshold` of its pinned keys signed it ([`Envelope::accept`]) — arbitrary
//!   installation;
//! - it has not expired ([`Manifest::check_fresh`]) — freeze;
//! - its version is not lower than the last one it accepted — rollback;
//! - a module is accepted only if its digest is listed ([`Manifest::release`]) — mix-and-match,
//!   wrong software; and the client caps manifest and module sizes — endless data.
//!
//! Signatures are Ed25519 over [`SIGNING_CONTEXT`] followed by the payload's exact bytes, so
//! no JSON canonicalisation is involved. Verification is split in two ([`Envelope::candidates`],
//! then [`Envelope::accept`]) so a browser can check each signature with WebCrypto
//! (asynchronously) while the rules stay here.
#![deny(missing_docs, missing_debug_implementations)]

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Prefixed to the payload before signing, so a manifest signature cannot be replayed as a
/// signature over anything else.
pub const SIGNING_CONTEXT: &[u8] = b"wasm-hotswap manifest v1\n";

/// File name of the manifest inside a registry directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Directory of the module files inside a registry directory.
pub const MODULES_DIR: &str = "modules";

/// The largest manifest a client reads by default (the loader's `maxManifestBytes`); the
/// CLI refuses to vouch for a larger one, which pages would refuse.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// The signed manifest as stored: the payload (base64 of the manifest's JSON) and signatures.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Base64 (standard, padded) of the manifest's JSON bytes.
    pub payload: String,
    /// Signatures over `SIGNING_CONTEXT ‖ payload bytes`.
    pub signatures: Vec<SignatureEntry>,
}

/// One signature.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    /// [`key_id`] of the signing key.
    pub keyid: String,
    /// Base64 of the 64-byte Ed25519 signature.
    pub sig: String,
}

/// What the registry says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Grows with every manifest published; a client refuses a lower one than it has seen.
    pub version: u64,
    /// Seconds since the Unix epoch after which the manifest is refused.
    pub expires: u64,
    /// Releases by guest name.
    pub guests: BTreeMap<String, GuestReleases>,
}

/// The releases of one guest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct GuestReleases {
    /// The version clients should run.
    pub current: String,
    /// Every release, by SemVer version.
    pub versions: BTreeMap<String, Release>,
}

/// One release of a guest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Release {
    /// SHA-256 of the module, hex.
    pub sha256: String,
    /// Module size in bytes.
    pub size: u64,
    /// ABI version of the guest (`MAJOR.MINOR`).
    pub abi: String,
    /// The guest's state schema.
    pub state_schema: u32,
    /// Schemas its state load migrates from.
    pub migrates_from: Vec<u32>,
    /// Where to fetch it, relative to the manifest (`modules/<sha256>.wasm`).
    pub url: String,
}

impl Release {
    /// What is wrong with this release, if anything.
    fn validate(&self) -> Result<(), &'static str> {
        let hex_digest = self.sha256.len() == 64 && self.sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let checks = [
            (hex_digest, "sha256 is not 64 lowercase hex digits"),
            (self.abi.parse::<hotswap_abi::AbiVersion>().is_ok(), "abi is not MAJOR.MINOR"),
            (self.size > 0, "size is 0"),
            (!self.url.is_empty(), "url is empty"),
        ];
        checks.into_iter().find(|(ok, _)| !ok).map_or(Ok(()), |(_, what)| Err(what))
    }
}

/// A public key a client pins.
#[derive(Clone, Debug, PartialEq)]
pub struct PinnedKey {
    /// Its Ed25519 public key.
    pub public: [u8; 32],
}

impl PinnedKey {
    /// Its key id.
    pub fn id(&self) -> String {
        key_id(&self.public)
    }
}

/// A signature to check: by which pinned key, over which message.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The pinned key that claims to have signed.
    pub public: [u8; 32],
    /// The signature.
    pub signature: [u8; 64],
}

hotswap_abi::coded_error! {
    /// Why a registry or manifest is refused.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum RegistryError {
        wraps {}
        codes {
            /// Not an envelope, or a payload that is not a manifest.
            #[error("malformed manifest: {reason}")]
            Malformed "MANIFEST_INVALID" {
                /// What is wrong.
                reason: String,
            },
            /// The manifest is larger than the client reads.
            #[error("manifest exceeds the limit of {limit} bytes (at least {actual} bytes)")]
            TooLarge "MANIFEST_TOO_LARGE" {
                /// The limit.
                limit as "limit": u64,
                /// Bytes seen (or announced) when the limit was hit.
                actual as "actual": u64,
            },
            /// Fewer valid signatures by distinct pinned keys than required.
            #[error("manifest signed by {valid} trusted key(s), {threshold} required")]
            Signatures "MANIFEST_SIGNATURE" {
                /// Valid signatures by distinct pinned keys.
                valid as "valid": usize,
                /// Required.
                threshold as "threshold": usize,
            },
            /// The manifest has expired.
            #[error("manifest expired at {expires} (now {now})")]
            Expired "MANIFEST_EXPIRED" {
                /// Its expiry (seconds since the Unix epoch).
                expires as "expires": u64,
                /// The time now.
                now as "now": u64,
            },
            /// The manifest is older than one already accepted.
            #[error("manifest version {offered} is older than version {seen} already accepted")]
            Rollback "MANIFEST_ROLLBACK" {
                /// The version already accepted.
                seen as "seen": u64,
                /// The version offered.
                offered as "offered": u64,
            },
            /// The guest or release is not in the manifest.
            #[error("{what} is not listed in the signed manifest")]
            NotListed "NOT_LISTED" {
                /// What was looked for.
                what: String,
            },
        }
    }
}

impl RegistryError {
    fn malformed(reason: impl Into<String>) -> Self {
        Self::Malformed { reason: reason.into() }
    }

    fn not_listed(what: impl Into<String>) -> Self {
        Self::NotListed { what: what.into() }
    }
}

/// The id of a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(public: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(public)[..8])
}

/// The exact bytes a signature covers.
pub fn signed_message(payload: &[u8]) -> Vec<u8> {
    [SIGNING_CONTEXT, payload].concat()
}

impl Envelope {
    /// Wrap `manifest` with signatures made by `sign` (called once per key: (public key,
    /// message) -> signature).
    pub fn seal(manifest: &Manifest, keys: &[[u8; 32]], mut sign: impl FnMut(usize, &[u8]) -> [u8; 64]) -> Self {
        // Numbers, strings and string-keyed maps: serializing cannot fail.
        let payload = serde_json::to_vec_pretty(manifest).unwrap_or_default();
        let message = signed_message(&payload);
        let signatures = keys
            .iter()
            .enumerate()
            .map(|(i, public)| SignatureEntry { keyid: key_id(public), sig: B64.encode(sign(i, &message)) })
            .collect();
        Self { payload: B64.encode(payload), signatures }
    }

    /// The bytes of `manifest.json`.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings only: serializing cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parse an envelope (the bytes of `manifest.json`).
    pub fn parse(bytes: &[u8]) -> Result<Self, RegistryError> {
        serde_json::from_slice(bytes).map_err(|e| RegistryError::malformed(e.to_string()))
    }

    /// The payload's bytes.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, RegistryError> {
        B64.decode(&self.payload).map_err(|e| RegistryError::malformed(format!("payload: {e}")))
    }

    /// The signatures made by pinned keys, each to be checked over
    /// [`signed_message`]`(payload)`. Signatures by unknown keys are ignored; a key counts once.
    pub fn candidates(&self, pinned: &[PinnedKey]) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = Vec::new();
        for entry in &self.signatures {
            let Some(key) = pinned.iter().find(|k| k.id() == entry.keyid) else { continue };
            let Ok(sig) = B64.decode(&entry.sig) else { continue };
            let Ok(signature) = <[u8; 64]>::try_from(sig.as_slice()) else { continue };
            if !out.iter().any(|c| c.public == key.public) {
                out.push(Candidate { public: key.public, signature });
            }
        }
        out
    }

    /// The manifest, if `valid` (the candidates whose signature checked out) reach
    /// `threshold`. Only then is the payload parsed at all, and checked
    /// ([`Manifest::validate`]).
    pub fn accept(&self, valid: usize, threshold: usize) -> Result<Manifest, RegistryError> {
        if threshold == 0 || valid < threshold {
            return Err(RegistryError::Signatures { valid, threshold: threshold.max(1) });
        }
        let manifest: Manifest = serde_json::from_slice(&self.payload_bytes()?)
            .map_err(|e| RegistryError::malformed(format!("payload: {e}")))?;
        manifest.validate()?;
        Ok(manifest)
    }
}

/// Refuse a manifest of more than `limit` bytes (`actual`, or at least `actual`).
pub fn check_size(actual: u64, limit: u64) -> Result<(), RegistryError> {
    match actual > limit {
        true => Err(RegistryError::TooLarge { limit, actual }),
        false => Ok(()),
    }
}

impl Manifest {
    /// Refuse a manifest that no client could follow, even though its signers vouch for it:
    /// a guest name the ABI does not allow, a `current` release that is not listed, a version
    /// that is not SemVer, a digest that is not 64 lowercase hex digits, an ABI that is not
    /// `MAJOR.MINOR`, an empty module or URL. The loader and the CLI both check this, so a
    /// registry `hotswap verify` passes is one every page can follow.
    pub fn validate(&self) -> Result<(), RegistryError> {
        for (guest, releases) in &self.guests {
            if !hotswap_abi::is_valid_name(guest) {
                return Err(RegistryError::malformed(format!(
                    "guest name {guest:?}: expected {}",
                    hotswap_abi::NAME_RULE
                )));
            }
            if !releases.versions.contains_key(&releases.current) {
                return Err(RegistryError::malformed(format!("{guest}: current {:?} is not listed", releases.current)));
            }
            for (version, release) in &releases.versions {
                release.validate().map_err(|what| RegistryError::malformed(format!("{guest} {version:?}: {what}")))?;
                if version.parse::<semver::Version>().is_err() {
                    return Err(RegistryError::malformed(format!("{guest} {version:?}: not a SemVer version")));
                }
            }
        }
        Ok(())
    }

    /// Refuse an expired manifest, or one older than the last accepted (`seen`).
    pub fn check_fresh(&self, now: u64, seen: Option<u64>) -> Result<(), RegistryError> {
        if self.expires <= now {
            return Err(RegistryError::Expired { expires: self.expires, now });
        }
        match seen {
            Some(seen) if seen > self.version => Err(RegistryError::Rollback { seen, offered: self.version }),
            _ => Ok(()),
        }
    }

    /// The release `version` of `guest` (or its current one).
    pub fn release(&self, guest: &str, version: Option<&str>) -> Result<(&str, &Release), RegistryError> {
        let releases = self.guests.get(guest).ok_or_else(|| RegistryError::not_listed(format!("guest `{guest}`")))?;
        let version = version.unwrap_or(&releases.current);
        releases
            .versions
            .get_key_value(version)
            .map(|(v, r)| (v.as_str(), r))
            .ok_or_else(|| RegistryError::not_listed(format!("{guest} {version}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(version: u64, expires: u64) -> Manifest {
        let release = Release {
            sha256: "ab".repeat(32),
            size: 10,
            abi: "1.0".into(),
            state_schema: 1,
            migrates_from: vec![],
            url: format!("modules/{}.wasm", "ab".repeat(32)),
        };
        let mut guests = BTreeMap::new();
        guests.insert(
            "editor".into(),
            GuestReleases { current: "1.0.0".into(), versions: BTreeMap::from([("1.0.0".to_string(), release)]) },
        );
        Manifest { version, expires, guests }
    }

    /// A stand-in signer for the format tests: the "signature" is the message's hash twice.
    /// (Real Ed25519 is exercised by the CLI's tests.)
    fn fake_sign(message: &[u8]) -> [u8; 64] {
        let h = Sha256::digest(message);
        let mut out = [0; 64];
        out[..32].copy_from_slice(&h);
        out[32..].copy_from_slice(&h);
        out
    }

    #[test]
    fn sealed_manifest_round_trips_through_json() {
        let keys = [[1u8; 32]];
        let env = Envelope::seal(&manifest(3, 100), &keys, |_, m| fake_sign(m));
        let parsed = Envelope::parse(&env.to_json()).unwrap();
        let candidates = parsed.candidates(&[PinnedKey { public: keys[0] }]);
        assert_eq!(candidates.len(), 1);
        assert_eq!(candidates[0].signature, fake_sign(&signed_message(&parsed.payload_bytes().unwrap())));
        assert_eq!(parsed.accept(1, 1).unwrap(), manifest(3, 100));
    }

    #[test]
    fn unknown_keys_and_duplicate_signatures_do_not_count() {
        let keys = [[1u8; 32], [2u8; 32]];
        let mut env = Envelope::seal(&manifest(1, 100), &keys, |_, m| fake_sign(m));
        env.signatures.push(env.signatures[0].clone());
        let pinned = [PinnedKey { public: [1u8; 32] }];
        assert_eq!(env.candidates(&pinned).len(), 1);
        assert_eq!(env.accept(1, 2), Err(RegistryError::Signatures { valid: 1, threshold: 2 }));
        assert_eq!(env.accept(0, 0), Err(RegistryError::Signatures { valid: 0, threshold: 1 }));
    }

    #[test]
    fn expired_and_rolled_back_manifests_are_refused() {
        let m = manifest(5, 100);
        assert_eq!(m.check_fresh(100, None), Err(RegistryError::Expired { expires: 100, now: 100 }));
        assert_eq!(m.check_fresh(99, Some(6)), Err(RegistryError::Rollback { seen: 6, offered: 5 }));
        assert!(m.check_fresh(99, Some(5)).is_ok());
    }

    #[test]
    fn only_listed_releases_are_found() {
        let m = manifest(1, 100);
        assert_eq!(m.release("editor", None).unwrap().0, "1.0.0");
        assert!(matches!(m.release("editor", Some("9.9.9")), Err(RegistryError::NotListed { .. })));
        assert!(matches!(m.release("counter", None), Err(RegistryError::NotListed { .. })));
    }

    #[test]
    fn key_ids_are_stable_hex_prefixes() {
        assert_eq!(key_id(&[0u8; 32]), "66687aadf862bd77");
    }
}
