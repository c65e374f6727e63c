//! Compiled modules kept by digest, least recently used first out. A module's bytes are its
//! identity (the digest the app expects is checked before anything is kept), so a swap or a
//! rollback to a digest compiled before neither downloads nor compiles it again — and the
//! compiled code of repeated compiles does not pile up in the renderer.

use std::cell::RefCell;

use crate::digest::Digest;
use crate::version::CompiledVersion;

/// A version kept, with the size of its bytes (for the `fetch` event).
#[derive(Clone, Debug)]
pub(crate) struct Cached {
    /// The compiled, validated version.
    pub version: CompiledVersion,
    /// How large its bytes were.
    pub bytes: u64,
}

/// At most `capacity` versions, most recently used last.
#[derive(Debug)]
pub(crate) struct ModuleCache {
    capacity: usize,
    entries: RefCell<Vec<Cached>>,
}

impl ModuleCache {
    /// A cache of `capacity` versions (0 keeps none).
    pub(crate) fn new(capacity: usize) -> Self {
        Self { capacity, entries: RefCell::new(Vec::with_capacity(capacity)) }
    }

    /// The version compiled from bytes of `digest`, if kept; it becomes the most recent.
    pub(crate) fn get(&self, digest: &Digest) -> Option<Cached> {
        let mut entries = self.entries.borrow_mut();
        let at = entries.iter().position(|e| e.version.digest == *digest)?;
        let hit = entries.remove(at);
        entries.push(hit.clone());
        Some(hit)
    }

    /// Keep `version`, dropping the least recently used past the capacity.
    pub(crate) fn put(&self, version: &CompiledVersion, bytes: u64) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.borrow_mut();
        entries.retain(|e| e.version.digest != version.digest);
        if entries.len() == self.capacity {
            entries.remove(0);
        }
        entries.push(Cached { version: version.clone(), bytes });
    }

    /// Forget everything (the slot is disposed).
    pub(crate) fn clear(&self) {
        self.entries.borrow_mut().clear();
    }
}
