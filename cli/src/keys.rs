//! Key files: 64 hex digits, the 32-byte Ed25519 secret seed (`.key`) or public key (`.pub`).

use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};
use hotswap_registry::key_id;

use crate::CliError;

/// Write a new key pair; returns what was written.
pub fn keygen(out: &Path, name: &str) -> Result<String, CliError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| CliError::NoRandomness(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    let public = key.verifying_key().to_bytes();
    std::fs::create_dir_all(out).map_err(CliError::io(out))?;
    let (secret_path, public_path) = (out.join(format!("{name}.key")), out.join(format!("{name}.pub")));
    if secret_path.exists() {
        return Err(CliError::KeyExists(secret_path));
    }
    write_secret(&secret_path, &hex::encode(seed))?;
    std::fs::write(&public_path, format!("{}\n", hex::encode(public))).map_err(CliError::io(&public_path))?;
    Ok(format!("key id {}: secret {}, public {}", key_id(&public), secret_path.display(), public_path.display()))
}

/// Write `contents` to a new file only its owner can read (mode 0600 on Unix).
pub fn write_secret(path: &Path, contents: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(CliError::io(path))?;
    writeln!(file, "{contents}").map_err(CliError::io(path))
}

/// Read a secret key file.
pub fn signing_key(path: &Path) -> Result<SigningKey, CliError> {
    Ok(SigningKey::from_bytes(&read_32(path, "secret key")?))
}

/// Read a public key file.
pub fn verifying_key(path: &Path) -> Result<VerifyingKey, CliError> {
    VerifyingKey::from_bytes(&read_32(path, "public key")?)
        .map_err(|e| CliError::BadKey { path: path.to_path_buf(), what: format!("not an Ed25519 public key: {e}") })
}

fn read_32(path: &Path, what: &str) -> Result<[u8; 32], CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::BadKey { path: path.to_path_buf(), what: format!("missing {what}: {e}") })?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|_| CliError::BadKey {
        path: path.to_path_buf(),
        what: format!("a {what} file holds 64 hex digits"),
    })?;
    Ok(out)
}
