//! Reading a module as it streams in. Only the sections that describe its interface are
//! kept (types, imports, functions, memory, exports and the `hotswap.meta` custom section);
//! code, data and every other section are counted and dropped, so inspecting a module costs
//! a few KiB of memory whatever its size.

use hotswap_abi::METADATA_SECTION;

use crate::error::InspectError;

const MAGIC: &[u8; 4] = b"\0asm";
const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];
/// Section ids whose bodies are kept (custom sections are decided by name).
const KEPT_IDS: [u8; 5] = [TYPE, IMPORT, FUNCTION, MEMORY, EXPORT];
pub(crate) const TYPE: u8 = 1;
pub(crate) const IMPORT: u8 = 2;
pub(crate) const FUNCTION: u8 = 3;
pub(crate) const MEMORY: u8 = 5;
pub(crate) const EXPORT: u8 = 7;
/// Stands for the `hotswap.meta` custom section among the kept ones.
pub(crate) const METADATA: u8 = 0;
/// A custom section name longer than this cannot be `hotswap.meta`: no need to read it all.
const LONGEST_NAME_READ: u32 = 64;
/// Room reserved for a kept section up front: its declared size is the sender's word and
/// may be 4 GiB in a 14-byte body, so a body grows with the bytes that really arrive.
const RESERVE_AT_MOST: u32 = 64 << 10;

/// The most the kept sections may declare in all. Their bytes are copied into the reader's
/// memory (the loader's own wasm memory, which never shrinks) before any digest is known.
/// A guest's take a few KiB; the function section adds a byte or two per function, so this
/// leaves room for some 400,000 functions.
pub const MAX_INTERFACE_BYTES: u64 = 1 << 20;

/// An empty body with room for `declared` bytes, or [`RESERVE_AT_MOST`].
fn body_for(declared: u32) -> Vec<u8> {
    Vec::with_capacity(declared.min(RESERVE_AT_MOST) as usize)
}

/// A kept section: its id, where its body starts in the module, and the body.
#[derive(Debug)]
pub(crate) struct Section {
    pub id: u8,
    pub offset: u64,
    pub body: Vec<u8>,
}

#[derive(Debug)]
enum State {
    /// Reading the 8-byte magic and version.
    Preamble,
    /// Reading a section id and its LEB128 size.
    SectionHeader,
    /// Reading the name at the start of a custom section of `size` bytes.
    CustomName { size: u32 },
    /// Appending `remaining` more bytes to the last kept section.
    Keep { remaining: u32 },
    /// Dropping `remaining` more bytes.
    Skip { remaining: u32 },
}

/// Feeds on a module's bytes in any chunks, keeping what [`Inspector::finish`] needs.
///
/// ```
/// # let bytes = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
/// let mut inspector = hotswap_inspect::Inspector::default();
/// for chunk in bytes.chunks(7) {
///     inspector.feed(chunk);
/// }
/// // Not a guest: it has no metadata section.
/// assert_eq!(inspector.finish().unwrap_err().code(), "METADATA_MISSING");
/// ```
#[derive(Debug)]
pub struct Inspector {
    state: State,
    /// Bytes of a preamble, section header or custom section name not yet complete.
    pending: Vec<u8>,
    /// Module bytes consumed before `pending`.
    offset: u64,
    pub(crate) kept: Vec<Section>,
    /// Bytes the kept sections declare in all.
    declared: u64,
    failed: Option<InspectError>,
}

impl Default for Inspector {
    fn default() -> Self {
        Self { state: State::Preamble, pending: Vec::new(), offset: 0, kept: Vec::new(), declared: 0, failed: None }
    }
}

impl Inspector {
    /// Read the next bytes of the module.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.failed.is_none() {
            let used = match self.state {
                State::Preamble => self.preamble(data),
                State::SectionHeader => self.section_header(data[0]),
                State::CustomName { size } => self.custom_name(data[0], size),
                State::Keep { remaining } => self.keep(data, remaining),
                State::Skip { remaining } => {
                    let used = data.len().min(remaining as usize);
                    self.skip(used as u32);
                    used
                }
            };
            data = &data[used..];
        }
    }

    /// How many of the next bytes it would only count, not look at (the rest of a section it
    /// does not keep, such as the code): a caller may [`Inspector::skip`] them instead of
    /// feeding them, and never copy a module's code just to have it counted.
    pub fn skippable(&self) -> u32 {
        match self.state {
            State::Skip { remaining } if self.failed.is_none() => remaining,
            _ => 0,
        }
    }

    /// Count the next `n` bytes as read without seeing them; `n` is capped at
    /// [`Inspector::skippable`].
    pub fn skip(&mut self, n: u32) {
        let n = n.min(self.skippable());
        if let State::Skip { remaining } = self.state {
            self.offset += u64::from(n);
            self.state = State::Skip { remaining: remaining - n };
            self.settle_empty_body();
        }
    }

    /// The error found so far, if any: a caller streaming a download can stop it early (a
    /// body that is not wasm at all is known from its first bytes).
    pub fn error(&self) -> Option<&InspectError> {
        self.failed.as_ref()
    }

    /// The kept sections, once the whole module has been fed.
    pub(crate) fn into_sections(self) -> Result<Vec<Section>, InspectError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match self.state {
            State::SectionHeader if self.pending.is_empty() => Ok(self.kept),
            State::Preamble
                if !MAGIC.starts_with(&self.pending[..self.pending.len().min(4)]) || self.pending.is_empty() =>
            {
                Err(not_wasm(&self.pending))
            }
            _ => Err(InspectError::malformed(format!(
                "the module ends in the middle of a section, after {} bytes",
                self.consumed()
            ))),
        }
    }

    fn consumed(&self) -> u64 {
        self.offset + self.pending.len() as u64
    }

    fn fail(&mut self, error: InspectError) {
        self.failed = Some(error);
    }

    fn preamble(&mut self, data: &[u8]) -> usize {
        let used = (8 - self.pending.len()).min(data.len());
        self.pending.extend_from_slice(&data[..used]);
        let seen = self.pending.len().min(4);
        if !MAGIC.starts_with(&self.pending[..seen]) {
            self.fail(not_wasm(&self.pending));
        } else if self.pending.len() == 8 {
            if self.pending[4..] != CORE_VERSION {
                let version = u32::from_le_bytes([self.pending[4], self.pending[5], self.pending[6], self.pending[7]]);
                self.fail(InspectError::malformed(format!(
                    "binary version {version:#x} is not a core module (a component?)"
                )));
            }
            self.advance(State::SectionHeader);
        }
        used
    }

    /// One byte of `id, LEB128 size`.
    fn section_header(&mut self, byte: u8) -> usize {
        self.pending.push(byte);
        let Some(size) = self.leb_after(1) else { return 1 };
        let size = match size {
            Ok(size) => size,
            Err(e) => {
                self.fail(e);
                return 1;
            }
        };
        let id = self.pending[0];
        let body_offset = self.consumed();
        let next = if id == 0 {
            State::CustomName { size }
        } else if KEPT_IDS.contains(&id) {
            if !self.room_for(size) {
                return 1;
            }
            self.kept.push(Section { id, offset: body_offset, body: body_for(size) });
            State::Keep { remaining: size }
        } else {
            State::Skip { remaining: size }
        };
        self.advance(next);
        self.settle_empty_body();
        1
    }

    /// One byte of a custom section's `LEB128 length, name`; then keep or skip the rest.
    fn custom_name(&mut self, byte: u8, size: u32) -> usize {
        self.pending.push(byte);
        let read = self.pending.len() as u32;
        let Some(len) = self.leb_after(0) else {
            if read >= size {
                self.fail(InspectError::malformed("a custom section without a name"));
            }
            return 1;
        };
        let (name_len, leb_len) = match len {
            Ok(len) => (len, leb_width(&self.pending)),
            Err(e) => {
                self.fail(e);
                return 1;
            }
        };
        let header = leb_len + name_len;
        if header > size {
            self.fail(InspectError::malformed("a custom section name runs past its section"));
            return 1;
        }
        if name_len > LONGEST_NAME_READ {
            self.advance(State::Skip { remaining: size - read });
            self.settle_empty_body();
            return 1;
        }
        if read < header {
            return 1;
        }
        let is_metadata = &self.pending[leb_len as usize..] == METADATA_SECTION.as_bytes();
        if is_metadata && self.kept.iter().any(|s| s.id == METADATA) {
            self.fail(InspectError::from(hotswap_abi::MetadataError::DuplicateKey(METADATA_SECTION.into())));
            return 1;
        }
        let remaining = size - read;
        if is_metadata && !self.room_for(remaining) {
            return 1;
        }
        let next = if is_metadata {
            self.kept.push(Section { id: METADATA, offset: self.consumed(), body: body_for(remaining) });
            State::Keep { remaining }
        } else {
            State::Skip { remaining }
        };
        self.advance(next);
        self.settle_empty_body();
        1
    }

    /// Whether a kept section of `size` more bytes stays within [`MAX_INTERFACE_BYTES`];
    /// fails the module if not.
    fn room_for(&mut self, size: u32) -> bool {
        self.declared += u64::from(size);
        if self.declared <= MAX_INTERFACE_BYTES {
            return true;
        }
        self.fail(InspectError::malformed(format!(
            "its interface sections (types, imports, functions, memory, exports, hotswap.meta) declare {} bytes, over the {MAX_INTERFACE_BYTES} a guest may use",
            self.declared
        )));
        false
    }

    fn keep(&mut self, data: &[u8], remaining: u32) -> usize {
        let used = data.len().min(remaining as usize);
        if let Some(section) = self.kept.last_mut() {
            section.body.extend_from_slice(&data[..used]);
        }
        self.offset += used as u64;
        self.state = State::Keep { remaining: remaining - used as u32 };
        self.settle_empty_body();
        used
    }

    /// A body with nothing left to read ends its section.
    fn settle_empty_body(&mut self) {
        if matches!(self.state, State::Keep { remaining: 0 } | State::Skip { remaining: 0 }) {
            self.state = State::SectionHeader;
        }
    }

    /// Consume `pending` and move on.
    fn advance(&mut self, next: State) {
        self.offset += self.pending.len() as u64;
        self.pending.clear();
        self.state = next;
    }

    /// The LEB128 u32 in `pending[start..]`: `None` while incomplete.
    fn leb_after(&self, start: usize) -> Option<Result<u32, InspectError>> {
        decode_leb_u32(self.pending.get(start..)?)
    }
}

/// Decode an unsigned LEB128 u32: `None` if `bytes` ends before it does.
fn decode_leb_u32(bytes: &[u8]) -> Option<Result<u32, InspectError>> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if i == 5 {
            return Some(Err(InspectError::malformed("a section size longer than 5 bytes")));
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(u32::try_from(value).map_err(|_| InspectError::malformed("a size over 4 GiB")));
        }
    }
    None
}

/// How many bytes the complete LEB128 at the start of `bytes` takes.
fn leb_width(bytes: &[u8]) -> u32 {
    bytes.iter().position(|b| b & 0x80 == 0).map_or(bytes.len(), |i| i + 1) as u32
}

fn not_wasm(start: &[u8]) -> InspectError {
    InspectError::NotWasm { looks_like_html: start.trim_ascii_start().first() == Some(&b'<') }
}
