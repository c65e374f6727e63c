use std::fmt;

use crate::rules::AbiVersion;

/// Longest guest name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// What a guest says about itself, carried in the [`crate::METADATA_SECTION`] custom section.
///
/// The section holds UTF-8 text, one `key=value` per line:
///
/// ```text
/// abi=1.0
/// name=counter
/// version=2.0.0
/// state-schema=2
/// migrates-from=1
/// migrates-to=1
/// ```
///
/// `abi`, `name`, `version` and `state-schema` are required; the two migration lists are
/// optional, comma-separated schema numbers. Unknown keys are ignored so that a later ABI
/// minor version can add keys; a repeated key is an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestMetadata {
    /// ABI version the guest was built against.
    pub abi: AbiVersion,
    /// Guest name (`[a-z0-9_-]`, 1..=64 chars); a slot only swaps between guests of one name.
    pub name: String,
    /// The guest's own SemVer version.
    pub version: semver::Version,
    /// Schema version of the state bytes this guest saves by default.
    pub state_schema: u32,
    /// Older schemas `state_load` can migrate up from.
    pub migrates_from: Vec<u32>,
    /// Other schemas `state_save` can write (down-migration, used for rollbacks and downgrades).
    pub migrates_to: Vec<u32>,
    /// ABI 1.1: the guest supports pre-copy transfer (`precopy=1`, see [`crate::precopy`]).
    pub precopy: bool,
}

/// Why a metadata section was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataError {
    /// The section is not UTF-8.
    NotUtf8,
    /// A line has no `=`.
    MissingEquals {
        /// 1-based line number.
        line: usize,
    },
    /// A key appears twice.
    DuplicateKey(String),
    /// A required key is absent.
    MissingKey(&'static str),
    /// A value does not parse.
    InvalidValue {
        /// The key.
        key: &'static str,
        /// The value found.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUtf8 => f.write_str("metadata is not UTF-8 text"),
            Self::MissingEquals { line } => write!(f, "metadata line {line} is not key=value"),
            Self::DuplicateKey(k) => write!(f, "metadata key `{k}` appears twice"),
            Self::MissingKey(k) => write!(f, "metadata lacks the required key `{k}`"),
            Self::InvalidValue { key, value, expected } => {
                write!(f, "metadata `{key}`: expected {expected}, found `{value}`")
            }
        }
    }
}

impl std::error::Error for MetadataError {}

impl GuestMetadata {
    /// Parse a metadata section.
    pub fn parse(section: &[u8]) -> Result<Self, MetadataError> {
        let text = std::str::from_utf8(section).map_err(|_| MetadataError::NotUtf8)?;
        let fields = Fields::split(text)?;
        let metadata = Self {
            abi: fields.parse("abi", "MAJOR.MINOR", |v| v.parse().ok())?,
            name: fields.parse("name", NAME_RULE, |v| is_valid_name(v).then(|| v.to_string()))?,
            version: fields.parse("version", "a SemVer version", |v| v.parse().ok())?,
            state_schema: fields.parse("state-schema", "an integer", |v| v.parse().ok())?,
            migrates_from: fields.parse_or_default("migrates-from", parse_list)?,
            migrates_to: fields.parse_or_default("migrates-to", parse_list)?,
            precopy: match fields.get(crate::precopy::METADATA_KEY) {
                None => false,
                Some(_) => fields.parse(crate::precopy::METADATA_KEY, "0 or 1", parse_flag)?,
            },
        };
        if metadata.precopy && metadata.abi < crate::LOADER_ABI {
            return Err(MetadataError::InvalidValue {
                key: "abi",
                value: metadata.abi.to_string(),
                expected: "1.1 or later with precopy=1 (pre-copy is ABI 1.1)",
            });
        }
        Ok(metadata)
    }

    /// The section text, in the form [`GuestMetadata::parse`] reads.
    pub fn encode(&self) -> String {
        let precopy = if self.precopy { "precopy=1\n" } else { "" };
        format!(
            "abi={}\nname={}\nversion={}\nstate-schema={}\nmigrates-from={}\nmigrates-to={}\n{precopy}",
            self.abi,
            self.name,
            self.version,
            self.state_schema,
            join(&self.migrates_from),
            join(&self.migrates_to),
        )
    }

    /// Can `state_load` read bytes written in `schema`?
    pub fn can_load(&self, schema: u32) -> bool {
        schema == self.state_schema || self.migrates_from.contains(&schema)
    }

    /// Can `state_save` write bytes in `schema`?
    pub fn can_save(&self, schema: u32) -> bool {
        schema == self.state_schema || self.migrates_to.contains(&schema)
    }
}

/// The key/value lines of a section, duplicates already refused.
struct Fields<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Fields<'a> {
    fn split(text: &'a str) -> Result<Self, MetadataError> {
        let mut fields: Vec<(&str, &str)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (key, value) = line.split_once('=').ok_or(MetadataError::MissingEquals { line: i + 1 })?;
            let key = key.trim();
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(MetadataError::DuplicateKey(key.to_string()));
            }
            fields.push((key, value.trim()));
        }
        Ok(Self(fields))
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn parse<T>(
        &self,
        key: &'static str,
        expected: &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, MetadataError> {
        let value = self.get(key).ok_or(MetadataError::MissingKey(key))?;
        parse(value).ok_or_else(|| MetadataError::InvalidValue { key, value: value.to_string(), expected })
    }

    fn parse_or_default(
        &self,
        key: &'static str,
        parse: impl Fn(&str) -> Option<Vec<u32>>,
    ) -> Result<Vec<u32>, MetadataError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(_) => self.parse(key, "comma-separated integers", parse),
        }
    }
}

/// What a guest name may be, in words.
pub const NAME_RULE: &str = "1-64 chars of [a-z0-9_-]";

/// Whether `name` is a valid guest name ([`NAME_RULE`]); the registry lists guests by it.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn parse_flag(value: &str) -> Option<bool> {
    match value {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

fn parse_list(value: &str) -> Option<Vec<u32>> {
    if value.is_empty() {
        return Some(Vec::new());
    }
    value.split(',').map(|n| n.trim().parse().ok()).collect()
}

fn join(list: &[u32]) -> String {
    list.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = "abi=1.0\nname=counter\nversion=2.0.0\nstate-schema=2\nmigrates-from=1\nmigrates-to=1\n";

    #[test]
    fn encode_then_parse_is_identity() {
        let meta = GuestMetadata::parse(V2.as_bytes()).unwrap();
        assert_eq!(meta.encode(), V2);
        assert_eq!(GuestMetadata::parse(meta.encode().as_bytes()).unwrap(), meta);
    }

    #[test]
    fn precopy_is_an_abi_1_1_flag() {
        let v = GuestMetadata::parse(format!("{}precopy=1\n", V2.replace("abi=1.0", "abi=1.1")).as_bytes()).unwrap();
        assert!(v.precopy);
        assert_eq!(GuestMetadata::parse(v.encode().as_bytes()).unwrap(), v);
        assert!(!GuestMetadata::parse(V2.as_bytes()).unwrap().precopy);
        let too_old = format!("{V2}precopy=1\n");
        assert!(matches!(
            GuestMetadata::parse(too_old.as_bytes()),
            Err(MetadataError::InvalidValue { key: "abi", .. })
        ));
        let bad = format!("{}precopy=yes\n", V2.replace("abi=1.0", "abi=1.1"));
        assert!(matches!(
            GuestMetadata::parse(bad.as_bytes()),
            Err(MetadataError::InvalidValue { key: "precopy", .. })
        ));
    }

    #[test]
    fn migration_lists_default_to_empty() {
        let meta = GuestMetadata::parse(b"abi=1.0\nname=a\nversion=0.1.0\nstate-schema=7").unwrap();
        assert!(meta.migrates_from.is_empty() && meta.migrates_to.is_empty());
        assert!(meta.can_load(7) && !meta.can_load(6));
    }

    #[test]
    fn unknown_keys_are_ignored_for_forward_compatibility() {
        let text = format!("{V2}future-key=anything\n");
        assert!(GuestMetadata::parse(text.as_bytes()).is_ok());
    }

    #[test]
    fn missing_required_key_is_named() {
        let err = GuestMetadata::parse(b"abi=1.0\nname=a\nstate-schema=1").unwrap_err();
        assert_eq!(err, MetadataError::MissingKey("version"));
        assert_eq!(err.to_string(), "metadata lacks the required key `version`");
    }

    #[test]
    fn non_semver_version_is_refused_with_what_was_found() {
        let err = GuestMetadata::parse(b"abi=1.0\nname=a\nversion=1.0\nstate-schema=1").unwrap_err();
        assert_eq!(err.to_string(), "metadata `version`: expected a SemVer version, found `1.0`");
    }

    #[test]
    fn malformed_sections_are_typed_errors() {
        assert_eq!(GuestMetadata::parse(&[0xff, 0xfe]), Err(MetadataError::NotUtf8));
        assert_eq!(GuestMetadata::parse(b"abi=1.0\ngarbage"), Err(MetadataError::MissingEquals { line: 2 }));
        assert_eq!(GuestMetadata::parse(b"abi=1.0\nabi=1.0"), Err(MetadataError::DuplicateKey("abi".into())));
        assert!(matches!(
            GuestMetadata::parse(b"abi=1.0\nname=Bad Name\nversion=1.0.0\nstate-schema=1"),
            Err(MetadataError::InvalidValue { key: "name", .. })
        ));
        assert!(matches!(
            GuestMetadata::parse(b"abi=1.0\nname=a\nversion=1.0.0\nstate-schema=1\nmigrates-from=1,x"),
            Err(MetadataError::InvalidValue { key: "migrates-from", .. })
        ));
    }
}
