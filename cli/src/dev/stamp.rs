//! Dev versions: `1.1.0` built for the 7th time is `1.1.0-dev.7`, written into the module's
//! `hotswap.meta` section, so the page's loader sees a new release (a new digest, never on
//! its "failed here" list) whose version says it is a dev build of 1.1.0.

use hotswap_abi::{GuestMetadata, METADATA_SECTION};
use semver::{Prerelease, Version};

/// Why a module could not be stamped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StampError {
    /// The bytes are not a WebAssembly module, or a section runs past the end.
    #[error("not a well-formed WebAssembly module: {0}")]
    Malformed(&'static str),
    /// No `hotswap.meta` section, or more than one.
    #[error("the module must have exactly one `{METADATA_SECTION}` section, found {0}")]
    Sections(usize),
    /// The section does not parse.
    #[error("its `{METADATA_SECTION}` section: {0}")]
    Metadata(String),
}

/// `base` as the `n`th dev build: `1.1.0` → `1.1.0-dev.7`; a base that is a prerelease
/// already keeps it (`2.0.0-rc.1` → `2.0.0-rc.1.dev.7`), so dev builds order after their
/// base's own prereleases and by build number.
pub fn dev_version(base: &Version, n: u64) -> Version {
    let pre = if base.pre.is_empty() { format!("dev.{n}") } else { format!("{}.dev.{n}", base.pre) };
    Version { pre: Prerelease::new(&pre).unwrap_or(Prerelease::EMPTY), build: base.build.clone(), ..base.clone() }
}

/// The dev build number of `version` (`1.1.0-dev.7` → 7), if it is one.
pub(crate) fn dev_number(version: &str) -> Option<u64> {
    let pre = Version::parse(version).ok()?.pre;
    let (_, n) = pre.as_str().rsplit_once("dev.")?;
    n.parse().ok()
}

/// `module` with the version in its metadata replaced by `version`; every other byte in
/// place. Returns the module's metadata as it was.
pub fn stamp_version(module: &[u8], version: &Version) -> Result<(Vec<u8>, GuestMetadata), StampError> {
    let (section, original) = metadata_section(module)?;
    let text = GuestMetadata { version: version.clone(), ..original.clone() }.encode();
    let mut payload = Vec::new();
    write_leb(&mut payload, METADATA_SECTION.len() as u64);
    payload.extend_from_slice(METADATA_SECTION.as_bytes());
    payload.extend_from_slice(text.as_bytes());
    let mut out = Vec::with_capacity(module.len() + 16);
    out.extend_from_slice(&module[..section.whole.start]);
    out.push(0);
    write_leb(&mut out, payload.len() as u64);
    out.extend_from_slice(&payload);
    out.extend_from_slice(&module[section.whole.end..]);
    Ok((out, original))
}

/// The module's metadata (its `hotswap.meta` section, parsed).
pub(crate) fn read_metadata(module: &[u8]) -> Result<GuestMetadata, StampError> {
    Ok(metadata_section(module)?.1)
}

fn metadata_section(module: &[u8]) -> Result<(Section, GuestMetadata), StampError> {
    let mut meta: Vec<Section> =
        sections(module)?.into_iter().filter(|s| s.name.as_deref() == Some(METADATA_SECTION)).collect();
    if meta.len() != 1 {
        return Err(StampError::Sections(meta.len()));
    }
    let section = meta.remove(0);
    let parsed =
        GuestMetadata::parse(&module[section.content.clone()]).map_err(|e| StampError::Metadata(e.to_string()))?;
    Ok((section, parsed))
}

/// A section: where it is (id byte to end), a custom section's name, and its content.
struct Section {
    whole: std::ops::Range<usize>,
    name: Option<String>,
    content: std::ops::Range<usize>,
}

fn sections(module: &[u8]) -> Result<Vec<Section>, StampError> {
    if module.get(..8) != Some(b"\0asm\x01\0\0\0".as_slice()) {
        return Err(StampError::Malformed("no wasm header"));
    }
    let mut at = 8;
    let mut out = Vec::new();
    while at < module.len() {
        let start = at;
        let id = module[at];
        at += 1;
        let size = read_leb(module, &mut at)?;
        let end =
            at.checked_add(size).filter(|e| *e <= module.len()).ok_or(StampError::Malformed("section too long"))?;
        let (name, content) = if id == 0 {
            let mut inner = at;
            let len = read_leb(module, &mut inner)?;
            let name_end =
                inner.checked_add(len).filter(|e| *e <= end).ok_or(StampError::Malformed("name too long"))?;
            (Some(String::from_utf8_lossy(&module[inner..name_end]).into_owned()), name_end..end)
        } else {
            (None, at..end)
        };
        out.push(Section { whole: start..end, name, content });
        at = end;
    }
    Ok(out)
}

fn read_leb(bytes: &[u8], at: &mut usize) -> Result<usize, StampError> {
    let mut value: u64 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(*at).ok_or(StampError::Malformed("truncated length"))?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return usize::try_from(value).map_err(|_| StampError::Malformed("length too large"));
        }
    }
    Err(StampError::Malformed("length longer than 5 bytes"))
}

fn write_leb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST: &str = r#"(module
        (memory (export "memory") 1)
        (func (export "hotswap_alloc") (param i32) (result i32) i32.const 8)
        (func (export "hotswap_free") (param i32 i32))
        (func (export "hotswap_state_save") (param i32) (result i64) i64.const 0)
        (func (export "hotswap_state_load") (param i32 i32 i32) (result i32) i32.const 0)
        (@custom "hotswap.meta" "abi=1.0\nname=g\nversion=1.1.0\nstate-schema=1\n"))"#;

    fn guest() -> Vec<u8> {
        wat::parse_str(GUEST).expect("valid WAT")
    }

    #[test]
    fn a_stamped_module_says_its_dev_version_and_the_loader_accepts_it() {
        let version = dev_version(&Version::new(1, 1, 0), 7);
        let (stamped, before) = stamp_version(&guest(), &version).expect("stamped");
        assert_eq!(before.version.to_string(), "1.1.0");
        let interface = hotswap_inspect::inspect(&stamped).expect("still a guest");
        assert_eq!(interface.metadata.version.to_string(), "1.1.0-dev.7");
        assert_eq!(interface.metadata.name, "g");
        assert_eq!(dev_number("1.1.0-dev.7"), Some(7));
        assert_eq!(dev_number("1.1.0"), None);
    }

    #[test]
    fn dev_versions_order_after_their_base_prereleases_and_by_number() {
        let rc = Version::parse("2.0.0-rc.1").expect("semver");
        assert_eq!(dev_version(&rc, 3).to_string(), "2.0.0-rc.1.dev.3");
        assert!(dev_version(&rc, 3) > rc);
        assert!(dev_version(&Version::new(1, 0, 0), 10) > dev_version(&Version::new(1, 0, 0), 9));
    }

    #[test]
    fn damaged_modules_are_refused_with_a_reason_never_a_panic() {
        let good = guest();
        let version = Version::new(1, 0, 0);
        assert_eq!(stamp_version(b"\0asm", &version).unwrap_err(), StampError::Malformed("no wasm header"));
        for cut in 8..good.len() {
            let _ = stamp_version(&good[..cut], &version);
        }
        let mut long = good[..8].to_vec();
        long.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(stamp_version(&long, &version).is_err());
        let bare = wat::parse_str("(module)").expect("valid WAT");
        assert_eq!(stamp_version(&bare, &version).unwrap_err(), StampError::Sections(0));
    }
}
