//! The facts the interface checks need, read from the kept sections with `wasmparser`'s
//! `BinaryReader` (bounds-checked LEB128, strings, bytes). Only the core-module encodings a
//! guest can use are read; anything else is a typed error, never a panic.

use hotswap_abi::{FuncSig, ValType};
use wasmparser::BinaryReader;

use crate::error::InspectError;
use crate::stream::{Section, EXPORT, FUNCTION, IMPORT, MEMORY, METADATA, TYPE};

/// What an export is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExportKind {
    Func,
    Table,
    Memory,
    Global,
    Tag,
}

impl ExportKind {
    /// How error messages name it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Func => "a function",
            Self::Table => "a table",
            Self::Memory => "a memory",
            Self::Global => "a global",
            Self::Tag => "a tag",
        }
    }
}

/// One import: its names, and its type index if it is a function (other kinds are refused).
pub(crate) struct Import {
    pub module: String,
    pub name: String,
    pub func_type: Option<u32>,
}

/// The facts read from the kept sections.
#[derive(Default)]
pub(crate) struct Sections {
    /// Function types by type index; `None` for types that cannot cross the boundary.
    pub types: Vec<Option<FuncSig>>,
    /// The type index of every function, imported ones first.
    pub func_types: Vec<u32>,
    pub exports: Vec<(String, ExportKind, u32)>,
    pub imports: Vec<Import>,
    /// Initial pages of every memory together: a second memory (multi-memory) counts
    /// against the same cap as the first.
    pub memory_pages: Option<u64>,
    pub metadata: Option<Vec<u8>>,
}

impl Sections {
    pub(crate) fn read(kept: Vec<Section>) -> Result<Self, InspectError> {
        let mut s = Sections::default();
        for section in kept {
            if section.id == METADATA {
                s.metadata = Some(section.body);
                continue;
            }
            let mut r = BinaryReader::new(&section.body, section.offset);
            match section.id {
                TYPE => s.types = vec_of(&mut r, read_type)?,
                IMPORT => s.imports = vec_of(&mut r, read_import)?,
                FUNCTION => s.func_types.extend(vec_of(&mut r, |r| Ok(r.read_var_u32()?))?),
                MEMORY => {
                    let pages = vec_of(&mut r, read_memory_initial)?;
                    s.memory_pages = Some(pages.iter().fold(0u64, |sum, p| sum.saturating_add(*p)));
                }
                EXPORT => s.exports = vec_of(&mut r, read_export)?,
                _ => {}
            }
            if !r.eof() {
                return Err(InspectError::malformed(format!("section {} has bytes after its entries", section.id)));
            }
        }
        // Imported functions come first in the function index space.
        let imported: Vec<u32> = s.imports.iter().filter_map(|i| i.func_type).collect();
        s.func_types.splice(0..0, imported);
        Ok(s)
    }

    pub(crate) fn sig_of_func(&self, func_index: u32) -> Option<FuncSig> {
        let ty = *self.func_types.get(func_index as usize)?;
        self.types.get(ty as usize)?.clone()
    }

    pub(crate) fn export(&self, name: &str) -> Option<(ExportKind, u32)> {
        self.exports.iter().find(|(n, _, _)| n == name).map(|(_, k, i)| (*k, *i))
    }
}

/// `vec(item)`: a LEB128 count, then the items.
fn vec_of<T>(
    r: &mut BinaryReader,
    mut item: impl FnMut(&mut BinaryReader) -> Result<T, InspectError>,
) -> Result<Vec<T>, InspectError> {
    let count = r.read_var_u32()?;
    // Each item takes at least one byte: a count larger than the section is malformed.
    if count as usize > r.bytes_remaining() {
        return Err(InspectError::malformed("a count larger than its section"));
    }
    (0..count).map(|_| item(r)).collect()
}

/// A type: `0x60 vec(valtype) vec(valtype)`. GC types are refused: a guest is a core module
/// with a linear memory.
fn read_type(r: &mut BinaryReader) -> Result<Option<FuncSig>, InspectError> {
    match r.read_u8()? {
        0x60 => {
            let params = vec_of(r, read_val_type)?;
            let results = vec_of(r, read_val_type)?;
            Ok(params
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .zip(results.into_iter().collect::<Option<Vec<_>>>())
                .map(|(params, results)| FuncSig::owned(params, results)))
        }
        other => Err(InspectError::malformed(format!(
            "type form 0x{other:02x} (GC types) is not supported: a guest is a core module"
        ))),
    }
}

/// A value type: a number type, or `None` for v128 and references (which cannot cross the
/// boundary).
fn read_val_type(r: &mut BinaryReader) -> Result<Option<ValType>, InspectError> {
    Ok(match r.read_u8()? {
        0x7f => Some(ValType::I32),
        0x7e => Some(ValType::I64),
        0x7d => Some(ValType::F32),
        0x7c => Some(ValType::F64),
        // v128 and the abstract reference shorthands.
        0x7b | 0x69..=0x74 => None,
        // (ref null ht) / (ref ht): a heap type follows, an s33 LEB128.
        0x63 | 0x64 => {
            skip_leb(r)?;
            None
        }
        other => return Err(InspectError::malformed(format!("value type 0x{other:02x}"))),
    })
}

fn skip_leb(r: &mut BinaryReader) -> Result<(), InspectError> {
    for _ in 0..5 {
        if r.read_u8()? & 0x80 == 0 {
            return Ok(());
        }
    }
    Err(InspectError::malformed("a LEB128 longer than 5 bytes"))
}

/// An import: a function's type index; any other kind is refused (the ABI allows only
/// functions), so its descriptor need not be read.
fn read_import(r: &mut BinaryReader) -> Result<Import, InspectError> {
    let module = r.read_string()?.to_string();
    let name = r.read_string()?.to_string();
    match r.read_u8()? {
        0x00 => Ok(Import { module, name, func_type: Some(r.read_var_u32()?) }),
        _ => Err(InspectError::UnknownImport { module, name }),
    }
}

/// A memory's initial size in pages (the limits' minimum).
fn read_memory_initial(r: &mut BinaryReader) -> Result<u64, InspectError> {
    let flags = r.read_u8()?;
    let memory64 = flags & 0x04 != 0;
    let initial = if memory64 { r.read_var_u64()? } else { u64::from(r.read_var_u32()?) };
    if flags & 0x01 != 0 {
        if memory64 {
            r.read_var_u64()?;
        } else {
            r.read_var_u32()?;
        }
    }
    if flags & 0x08 != 0 {
        // Custom page size: its log2.
        r.read_var_u32()?;
    }
    if flags & !0x0f != 0 {
        return Err(InspectError::malformed(format!("memory limits flags 0x{flags:02x}")));
    }
    Ok(initial)
}

fn read_export(r: &mut BinaryReader) -> Result<(String, ExportKind, u32), InspectError> {
    let name = r.read_string()?.to_string();
    let kind = match r.read_u8()? {
        0x00 => ExportKind::Func,
        0x01 => ExportKind::Table,
        0x02 => ExportKind::Memory,
        0x03 => ExportKind::Global,
        0x04 => ExportKind::Tag,
        other => return Err(InspectError::malformed(format!("export kind 0x{other:02x}"))),
    };
    Ok((name, kind, r.read_var_u32()?))
}
