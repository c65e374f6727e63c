//! Key files: 64 hex digits, the 32-byte Ed25519 secret seed (`.key`) or public key (`.pub`).

use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};
use hotswap_registry::{hex, key_id};

/// Write a new key pair; returns what was written.
pub fn keygen(out: &Path, name: &str) -> Result<String, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness for a key: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    let public = key.verifying_key().to_bytes();
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let (secret_path, public_path) = (out.join(format!("{name}.key")), out.join(format!("{name}.pub")));
    if secret_path.exists() {
        return Err(format!("{} exists; not overwriting a key", secret_path.display()));
    }
    write_secret(&secret_path, &hex(&seed))?;
    std::fs::write(&public_path, format!("{}\n", hex(&public))).map_err(|e| format!("{}: {e}", public_path.display()))?;
    Ok(format!("key id {}: secret {}, public {}", key_id(&public), secret_path.display(), public_path.display()))
}

#[cfg(unix)]
fn write_secret(path: &Path, hex_seed: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(file, "{hex_seed}").map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(not(unix))]
fn write_secret(path: &Path, hex_seed: &str) -> Result<(), String> {
    std::fs::write(path, format!("{hex_seed}\n")).map_err(|e| format!("{}: {e}", path.display()))
}

/// Read a secret key file.
pub fn signing_key(path: &Path) -> Result<SigningKey, String> {
    Ok(SigningKey::from_bytes(&read_32(path, "secret key")?))
}

/// Read a public key file.
pub fn verifying_key(path: &Path) -> Result<VerifyingKey, String> {
    VerifyingKey::from_bytes(&read_32(path, "public key")?).map_err(|e| format!("{}: not an Ed25519 public key: {e}", path.display()))
}

fn read_32(path: &Path, what: &str) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("missing {what} {}: {e}", path.display()))?;
    let text = text.trim();
    let bytes: Option<Vec<u8>> = (text.len() == 64)
        .then(|| (0..32).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()).collect())
        .flatten();
    bytes
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{}: a {what} file holds 64 hex digits", path.display()))
}
