//! Dev versions: `1.1.0` built for the 7th time is `1.1.0-dev.7`, written into the module's
//! `hotswap.meta` section, so the page's loader sees a new release (a new digest, never on
//! its "failed here" list) whose version says it is a dev build of 1.1.0.

use hotswap_abi::{GuestMetadata, METADATA_SECTION};
use semver::{Prerelease, Version};
use wasm_encoder::{CustomSection, RawSection};
use wasmparser::{Parser, Payload};

/// Why a module could not be stamped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StampError {
    /// The bytes are not a WebAssembly module.
    #[error("not a well-formed WebAssembly module: {0}")]
    Malformed(String),
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

/// `module` with the version in its metadata replaced by `version`; every other section
/// as it was, in place. Returns the module's metadata as it was.
pub fn stamp_version(module: &[u8], version: &Version) -> Result<(Vec<u8>, GuestMetadata), StampError> {
    let original = read_metadata(module)?;
    let text = GuestMetadata { version: version.clone(), ..original.clone() }.encode();
    let mut out = wasm_encoder::Module::new();
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload.map_err(malformed)?;
        match &payload {
            Payload::CustomSection(reader) if reader.name() == METADATA_SECTION => {
                out.section(&CustomSection { name: METADATA_SECTION.into(), data: text.as_bytes().into() });
            }
            _ => {
                if let Some((id, range)) = payload.as_section() {
                    let data = usize::try_from(range.start)
                        .ok()
                        .zip(usize::try_from(range.end).ok())
                        .and_then(|(start, end)| module.get(start..end))
                        .ok_or_else(|| StampError::Malformed("a section past the end".into()))?;
                    out.section(&RawSection { id, data });
                }
            }
        }
    }
    Ok((out.finish(), original))
}

/// The module's metadata (its one `hotswap.meta` section, parsed).
pub(crate) fn read_metadata(module: &[u8]) -> Result<GuestMetadata, StampError> {
    let mut sections = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        if let Payload::CustomSection(reader) = payload.map_err(malformed)? {
            if reader.name() == METADATA_SECTION {
                sections.push(reader.data().to_vec());
            }
        }
    }
    match sections.as_slice() {
        [one] => GuestMetadata::parse(one).map_err(|e| StampError::Metadata(e.to_string())),
        other => Err(StampError::Sections(other.len())),
    }
}

fn malformed(error: wasmparser::BinaryReaderError) -> StampError {
    StampError::Malformed(error.message().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::test_guest::guest;

    #[test]
    fn a_stamped_module_says_its_dev_version_and_the_loader_accepts_it() {
        let version = dev_version(&Version::new(1, 1, 0), 7);
        let (stamped, before) = stamp_version(&guest("1.1.0"), &version).expect("stamped");
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
        let good = guest("1.1.0");
        let version = Version::new(1, 0, 0);
        assert!(matches!(stamp_version(b"\0asm", &version), Err(StampError::Malformed(_))));
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
