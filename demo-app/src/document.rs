//! The server's own copy of the collaborative document, and the check every change from a
//! page must pass before it is stored or relayed.
//!
//! The editor guest's document has a fixed schema: the root map holds exactly `text` (a
//! text object) and `authors` (a map of actor id → display name), both created by one
//! initial change that every peer makes byte-identically (fixed actor, fixed time). A change
//! from a page is accepted only if it
//!
//! 1. decodes as exactly one automerge change, within [`MAX_CHANGE_BYTES`];
//! 2. depends only on changes the server has (so it applies now, not "some day");
//! 3. touches nothing but the text (characters inserted or deleted) and the authors map
//!    (string names put or deleted): no operation on the root, no new objects, no marks,
//!    no counters; and
//! 4. leaves the document with the schema above once applied (checked again after
//!    applying, in case automerge resolved something in a way the op check did not foresee;
//!    the document is then rebuilt from the stored changes, without it).
//!
//! A change the server already has is a duplicate (a page resending after a reconnect): it
//! is acknowledged and neither stored nor relayed again.

use automerge::legacy::{Key, ObjectId, OpType};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, AutoCommit, Change, ExpandedChange, ObjId, ObjType, ReadDoc, ScalarValue, TextEncoding, Value, ROOT,
};

/// Largest change accepted from a page. A keystroke is ~100 bytes; a paste of a few
/// hundred KiB of text fits.
pub const MAX_CHANGE_BYTES: usize = 256 << 10;

/// Largest document, counted as the bytes of every stored change.
pub const MAX_DOCUMENT_BYTES: usize = 8 << 20;

/// Longest author name (in bytes) a change may put; the page allows 40 characters.
const MAX_NAME_BYTES: usize = 256;

/// The document's root keys, each with the type of object it must hold.
const SCHEMA: [(&str, ObjType); 2] = [("text", ObjType::Text), ("authors", ObjType::Map)];

/// Why a change was refused. The code is what the page sees; the message says what was
/// expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A text frame where a change (binary) was expected.
    #[error("expected a binary automerge change, got a text message")]
    NotBinary,
    /// Larger than [`MAX_CHANGE_BYTES`].
    #[error("change of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not one automerge change.
    #[error("not an automerge change: {0}")]
    Malformed(String),
    /// It depends on changes the server does not have.
    #[error("the change depends on {missing} change(s) the server does not have")]
    MissingDependencies {
        /// How many.
        missing: usize,
    },
    /// It would break the document's schema.
    #[error("the change breaks the document's schema: {0}")]
    Schema(String),
    /// Storing it would exceed [`MAX_DOCUMENT_BYTES`].
    #[error("the document is full: {size} bytes stored, limit {limit} bytes")]
    DocumentFull {
        /// Bytes stored so far.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The connection sent more than its rate allows.
    #[error("too many changes: this connection may send {burst} at once and {per_second} per second; try again in {retry_ms} ms")]
    RateLimited {
        /// Bucket size.
        burst: u32,
        /// Refill rate.
        per_second: u32,
        /// When a token is available again.
        retry_ms: u64,
    },
    /// The server could not store it.
    #[error("the server could not store the change (see its log)")]
    Storage,
}

impl Refusal {
    /// The stable code the page sees.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotBinary => "NOT_BINARY",
            Self::TooLarge { .. } => "TOO_LARGE",
            Self::Malformed(_) => "MALFORMED_CHANGE",
            Self::MissingDependencies { .. } => "MISSING_DEPENDENCIES",
            Self::Schema(_) => "SCHEMA_VIOLATION",
            Self::DocumentFull { .. } => "DOCUMENT_FULL",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Storage => "STORAGE_FAILED",
        }
    }
}

/// What [`Document::check`] found acceptable.
#[derive(Debug)]
pub enum Checked {
    /// A new change: store it, then [`Document::apply`] it.
    New(Box<Change>),
    /// The server has it already.
    Duplicate,
}

/// The document as the server holds it.
#[derive(Debug)]
pub struct Document {
    doc: AutoCommit,
    /// The initial change's objects, whose identity never changes.
    objects: [ObjId; 2],
    /// Bytes of every change applied (the initial one excluded).
    stored_bytes: usize,
    /// The most it may hold.
    max_bytes: usize,
}

impl Default for Document {
    fn default() -> Self {
        Self::new()
    }
}

impl Document {
    /// The document every peer starts from (see the editor guest's `initial_doc`).
    pub fn new() -> Self {
        let mut doc =
            AutoCommit::new_with_encoding(TextEncoding::Utf16CodeUnit).with_actor(ActorId::from(&[0u8; 16][..]));
        let text = doc.put_object(ROOT, "text", ObjType::Text);
        let authors = doc.put_object(ROOT, "authors", ObjType::Map);
        doc.commit_with(CommitOptions::default().with_time(0));
        // Creating two objects in an empty document cannot fail; Root would fail the schema
        // check of every change, loudly, if it ever did.
        let objects = [text.unwrap_or(ObjId::Root), authors.unwrap_or(ObjId::Root)];
        Self { doc, objects, stored_bytes: 0, max_bytes: MAX_DOCUMENT_BYTES }
    }

    /// An initial document that holds at most `max_bytes` of changes.
    #[cfg(test)]
    pub fn with_limit(max_bytes: usize) -> Self {
        Self { max_bytes, ..Self::new() }
    }

    /// The document made of `changes` (the stored log), each checked; returns it and the
    /// indices of the changes it refused.
    pub fn from_changes<'a>(changes: impl IntoIterator<Item = &'a [u8]>) -> (Self, Vec<(usize, Refusal)>) {
        let mut document = Self::new();
        let mut accepted: Vec<&[u8]> = Vec::new();
        let mut refused = Vec::new();
        for (i, bytes) in changes.into_iter().enumerate() {
            match document.check(bytes) {
                Ok(Checked::New(change)) => match document.apply(*change) {
                    Ok(()) => accepted.push(bytes),
                    Err(e) => {
                        refused.push((i, e));
                        // The failed apply may have left part of it behind: start again
                        // from the changes accepted so far (each applied cleanly before).
                        document = Self::new();
                        for bytes in &accepted {
                            if let Ok(Checked::New(change)) = document.check(bytes) {
                                let _ = document.apply(*change);
                            }
                        }
                    }
                },
                Ok(Checked::Duplicate) => {}
                Err(e) => refused.push((i, e)),
            }
        }
        (document, refused)
    }

    /// Check a change from a page without applying it.
    pub fn check(&mut self, bytes: &[u8]) -> Result<Checked, Refusal> {
        if bytes.len() > MAX_CHANGE_BYTES {
            return Err(Refusal::TooLarge { size: bytes.len(), limit: MAX_CHANGE_BYTES });
        }
        let (change, expanded) = decode(bytes)?;
        if self.doc.get_change_by_hash(&change.hash()).is_some() {
            return Ok(Checked::Duplicate);
        }
        if self.stored_bytes + bytes.len() > self.max_bytes {
            return Err(Refusal::DocumentFull { size: self.stored_bytes, limit: self.max_bytes });
        }
        let missing = change.deps().iter().filter(|d| self.doc.get_change_by_hash(d).is_none()).count();
        if missing > 0 {
            return Err(Refusal::MissingDependencies { missing });
        }
        self.check_operations(&expanded)?;
        Ok(Checked::New(Box::new(change)))
    }

    /// Apply a change [`Document::check`] accepted. If the result breaks the schema after
    /// all, the change is refused and this document must not be used any more: the caller
    /// rebuilds it from the stored changes ([`Document::from_changes`]), which lack it.
    pub fn apply(&mut self, change: Change) -> Result<(), Refusal> {
        let size = change.raw_bytes().len();
        // automerge 0.12 panics on some damaged changes that decode (found by the property
        // tests below: an unwrap in `import_ops`); that is a refusal here, not a crash.
        let doc = &mut self.doc;
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| doc.apply_changes([change])));
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Refusal::Malformed(e.to_string())),
            Err(_) => return Err(Refusal::Malformed("automerge could not apply the change".into())),
        }
        self.check_schema()?;
        self.stored_bytes += size;
        Ok(())
    }

    /// The whole document, for a page that joins.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// The text, as pages show it.
    #[cfg(test)]
    pub fn text(&self) -> String {
        self.doc.text(&self.objects[0]).unwrap_or_default()
    }

    /// Bytes of every change stored.
    pub fn stored_bytes(&self) -> usize {
        self.stored_bytes
    }

    fn check_operations(&self, expanded: &ExpandedChange) -> Result<(), Refusal> {
        let [text, authors] = self.objects.clone().map(|id| match id {
            ObjId::Id(counter, actor, _) => Some((counter, actor)),
            ObjId::Root => None,
        });
        for (i, op) in expanded.operations.iter().enumerate() {
            let bad = |what: &str| Err(Refusal::Schema(format!("operation {i}: {what}")));
            let target = match &op.obj {
                ObjectId::Root => return bad("the root map is fixed (keys `text` and `authors`)"),
                ObjectId::Id(id) => Some((id.counter(), id.actor().clone())),
            };
            match &op.action {
                OpType::Make(kind) => {
                    return bad(&format!("creates a {kind} object; the document has no room for one"))
                }
                OpType::Increment(_) => return bad("increments a counter; the document has none"),
                OpType::MarkBegin(_) | OpType::MarkEnd(_) => return bad("marks text; the editor does not"),
                OpType::Delete => {}
                OpType::Put(value) => {
                    let ScalarValue::Str(s) = value else {
                        return bad(&format!("puts a {} value; only strings are stored", value_kind(value)));
                    };
                    if target == authors && s.len() > MAX_NAME_BYTES {
                        return bad(&format!("an author name of {} bytes (at most {MAX_NAME_BYTES})", s.len()));
                    }
                }
            }
            if target == text {
                let is_seq = matches!(op.key, Key::Seq(_));
                let put_inserts = !matches!(op.action, OpType::Put(_)) || op.insert;
                if !is_seq || !put_inserts {
                    return bad("the text only takes inserted or deleted characters");
                }
            } else if target == authors {
                if !matches!(op.key, Key::Map(_)) || op.insert {
                    return bad("the authors map only takes names by key");
                }
            } else {
                return bad("targets an object that is neither the text nor the authors map");
            }
        }
        Ok(())
    }

    /// The root holds exactly the schema's keys, each the initial object, uncontested.
    fn check_schema(&self) -> Result<(), Refusal> {
        let keys: Vec<String> = self.doc.keys(ROOT).collect();
        if keys.len() != SCHEMA.len() {
            return Err(Refusal::Schema(format!("root keys {keys:?}, expected `text` and `authors`")));
        }
        for ((key, kind), id) in SCHEMA.iter().zip(&self.objects) {
            let values = self.doc.get_all(ROOT, *key).map_err(|e| Refusal::Schema(e.to_string()))?;
            match values.as_slice() {
                [(Value::Object(found), found_id)] if found == kind && found_id == id => {}
                _ => return Err(Refusal::Schema(format!("`{key}` is no longer the document's {kind} object"))),
            }
        }
        Ok(())
    }
}

/// Exactly one change, no trailing bytes. automerge validates while parsing; a panic in
/// it on hostile bytes would be a bug there, caught here so it refuses one message rather
/// than ending the connection's task.
fn decode(bytes: &[u8]) -> Result<(Change, ExpandedChange), Refusal> {
    let parsed = std::panic::catch_unwind(|| {
        Change::from_bytes(bytes.to_vec()).map(|change| {
            let expanded = change.decode();
            (change, expanded)
        })
    });
    let (change, expanded) = match parsed {
        Ok(Ok(decoded)) => decoded,
        Ok(Err(e)) => return Err(Refusal::Malformed(e.to_string())),
        Err(_) => return Err(Refusal::Malformed("the decoder gave up on these bytes".into())),
    };
    if change.raw_bytes().len() != bytes.len() {
        return Err(Refusal::Malformed(format!(
            "{} bytes after the change",
            bytes.len().saturating_sub(change.raw_bytes().len())
        )));
    }
    Ok((change, expanded))
}

fn value_kind(value: &ScalarValue) -> &'static str {
    match value {
        ScalarValue::Bytes(_) => "bytes",
        ScalarValue::Str(_) => "string",
        ScalarValue::Int(_) | ScalarValue::Uint(_) | ScalarValue::F64(_) => "number",
        ScalarValue::Counter(_) => "counter",
        ScalarValue::Timestamp(_) => "timestamp",
        ScalarValue::Boolean(_) => "boolean",
        ScalarValue::Null => "null",
        _ => "non-string",
    }
}
