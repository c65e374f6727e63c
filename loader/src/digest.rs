//! SHA-256 digests: the identity of a module's bytes. Fed chunk by chunk as the bytes stream
//! in, compared in constant time with the digest the app expects.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl Digest {
    /// Parse 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Self(out))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Constant-time equality: the time taken does not tell how many bytes matched.
    pub fn matches(&self, other: &Digest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// SHA-256 fed chunk by chunk (one large cold call is ~10x slower in the browser).
#[derive(Default)]
pub(crate) struct StreamingHash(Sha256);

impl std::fmt::Debug for StreamingHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamingHash")
    }
}

impl StreamingHash {
    /// Hash the next chunk.
    pub(crate) fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    /// Hash the next bytes, held by JS: copied in 64 KiB pieces, so the loader's own memory
    /// does not grow with them.
    pub(crate) fn update_array(&mut self, bytes: &js_sys::Uint8Array) {
        const PIECE: u32 = 64 << 10;
        let mut piece = vec![0; PIECE.min(bytes.length()) as usize];
        for start in (0..bytes.length()).step_by(PIECE as usize) {
            let end = bytes.length().min(start + PIECE);
            let piece = &mut piece[..(end - start) as usize];
            bytes.subarray(start, end).copy_to(piece);
            self.0.update(piece);
        }
    }

    /// The digest of everything fed.
    pub(crate) fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

impl Digest {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let mut h = StreamingHash::default();
        h.update(bytes);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_and_hex_roundtrip() {
        let d = Digest::of(b"abc");
        assert_eq!(d.to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(Digest::from_hex(&d.to_hex().to_uppercase()), Some(d));
    }

    #[test]
    fn malformed_hex_is_refused() {
        assert_eq!(Digest::from_hex("abc"), None);
        assert_eq!(Digest::from_hex(&"g".repeat(64)), None);
        assert_eq!(Digest::from_hex(&"a".repeat(66)), None);
    }

    #[test]
    fn chunked_equals_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut h = StreamingHash::default();
        data.chunks(777).for_each(|c| h.update(c));
        assert!(h.finish().matches(&Digest::of(&data)));
    }
}
