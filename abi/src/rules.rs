use std::fmt;
use std::str::FromStr;

use crate::GuestMetadata;

/// An ABI version, `MAJOR.MINOR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AbiVersion {
    /// Incompatible changes bump this.
    pub major: u16,
    /// Backwards-compatible additions bump this.
    pub minor: u16,
}

/// The ABI version this crate (and so the loader built with it) implements: 1.1 adds the
/// optional pre-copy transfer (see [`crate::precopy`]).
pub const LOADER_ABI: AbiVersion = AbiVersion { major: 1, minor: 1 };

/// The ABI version a guest that does not use pre-copy declares, so that loaders
/// implementing 1.0 accept it too.
pub const BASE_ABI: AbiVersion = AbiVersion { major: 1, minor: 0 };

impl fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for AbiVersion {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (major, minor) = s.split_once('.').ok_or(())?;
        Ok(Self { major: major.parse().map_err(|_| ())?, minor: minor.parse().map_err(|_| ())? })
    }
}

crate::coded_error! {
    /// A guest that breaks a compatibility rule.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum RuleError {
        wraps {}
        codes {
            /// The guest needs an ABI this loader does not implement.
            #[error("guest ABI {guest} is not supported: expected {}.x with minor <= {}", loader.major, loader.minor)]
            AbiIncompatible "ABI_INCOMPATIBLE" {
                /// What the loader implements.
                loader as "expected": AbiVersion,
                /// What the guest was built against.
                guest as "actual": AbiVersion,
            },
            /// Neither side can convert the running state into one the other reads.
            #[error("no migration between state schema {from} and {to}: the new guest must declare migrates-from={from}, or the running guest migrates-to={to}")]
            SchemaIncompatible "SCHEMA_INCOMPATIBLE" {
                /// Schema of the running version.
                from as "fromSchema": u32,
                /// Schema of the incoming version.
                to as "toSchema": u32,
            },
        }
    }
}

/// A guest is loadable when its ABI major equals the loader's and its minor is not newer
/// (a newer minor may rely on host functions this loader lacks).
pub fn check_abi(guest: AbiVersion) -> Result<(), RuleError> {
    if guest.major == LOADER_ABI.major && guest.minor <= LOADER_ABI.minor {
        Ok(())
    } else {
        Err(RuleError::AbiIncompatible { loader: LOADER_ABI, guest })
    }
}

/// The schema in which state travels from the running guest `from` to the incoming `to`.
///
/// The newer code knows both formats, so it does the conversion, whichever direction the
/// swap goes: an upgrade saves in `from`'s own schema and the new guest migrates it up
/// (`migrates-from`); a rollback or downgrade asks the running guest to save in the older
/// schema (`migrates-to`).
pub fn transfer_schema(from: &GuestMetadata, to: &GuestMetadata) -> Result<u32, RuleError> {
    if to.can_load(from.state_schema) {
        Ok(from.state_schema)
    } else if from.can_save(to.state_schema) {
        Ok(to.state_schema)
    } else {
        Err(RuleError::SchemaIncompatible { from: from.state_schema, to: to.state_schema })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(version: &str, schema: u32, from: &[u32], to: &[u32]) -> GuestMetadata {
        GuestMetadata {
            abi: LOADER_ABI,
            name: "g".into(),
            version: version.parse().unwrap(),
            state_schema: schema,
            migrates_from: from.to_vec(),
            migrates_to: to.to_vec(),
            precopy: false,
        }
    }

    #[test]
    fn same_schema_needs_no_migration() {
        assert_eq!(transfer_schema(&meta("1.0.0", 1, &[], &[]), &meta("1.1.0", 1, &[], &[])), Ok(1));
    }

    #[test]
    fn upgrade_uses_new_guests_migration_and_rollback_its_down_migration() {
        let v1 = meta("1.0.0", 1, &[], &[]);
        let v2 = meta("2.0.0", 2, &[1], &[1]);
        assert_eq!(transfer_schema(&v1, &v2), Ok(1));
        assert_eq!(transfer_schema(&v2, &v1), Ok(1));
    }

    #[test]
    fn major_without_declared_migration_is_refused() {
        let err = transfer_schema(&meta("1.0.0", 1, &[], &[]), &meta("2.0.0", 2, &[], &[]));
        assert_eq!(err, Err(RuleError::SchemaIncompatible { from: 1, to: 2 }));
        let err = transfer_schema(&meta("2.0.0", 2, &[1], &[]), &meta("1.0.0", 1, &[], &[]));
        assert_eq!(err, Err(RuleError::SchemaIncompatible { from: 2, to: 1 }));
    }

    #[test]
    fn abi_major_must_match_and_minor_must_not_be_newer() {
        assert!(check_abi(AbiVersion { major: 1, minor: 0 }).is_ok());
        assert!(check_abi(AbiVersion { major: 1, minor: 1 }).is_ok());
        assert!(check_abi(AbiVersion { major: 1, minor: 2 }).is_err());
        let err = check_abi(AbiVersion { major: 2, minor: 0 }).unwrap_err();
        assert_eq!(err.to_string(), "guest ABI 2.0 is not supported: expected 1.x with minor <= 1");
    }

    #[test]
    fn abi_version_parses_major_dot_minor_only() {
        assert_eq!("1.0".parse(), Ok(AbiVersion { major: 1, minor: 0 }));
        assert!("1".parse::<AbiVersion>().is_err());
        assert!("1.0.0".parse::<AbiVersion>().is_err());
    }
}
