use std::fmt;

use hotswap_abi::status;

/// The state a guest keeps across hot swaps.
///
/// `save` and `load` are the only way state crosses from one version to the next, so they
/// must be inverse: `load(&save(s, n)?, n)` gives back `s`. `Default` is the state of a
/// guest loaded for the first time.
pub trait GuestState: Default + 'static {
    /// Serialize the state in `schema`: the guest's own schema, or one it listed in
    /// `migrates_to` (a down-migration, used when the loader rolls back or downgrades).
    fn save(&self, schema: u32) -> Result<Vec<u8>, StateError>;

    /// Rebuild the state from bytes written in `schema`: the guest's own schema, or one it
    /// listed in `migrates_from` (the migration happens here).
    fn load(bytes: &[u8], schema: u32) -> Result<Self, StateError>;
}

/// Why state could not be saved or loaded. The loader sees the matching status code from
/// `hotswap_abi::status` and keeps the running version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The bytes do not decode.
    Malformed(String),
    /// This guest cannot read or write the schema.
    UnsupportedSchema(u32),
    /// Any other failure.
    Failed(String),
}

impl StateError {
    /// Shorthand for [`StateError::Malformed`].
    pub fn malformed(why: impl Into<String>) -> Self {
        Self::Malformed(why.into())
    }

    /// The `state_load` status code for this error.
    pub fn status(&self) -> i32 {
        match self {
            Self::Malformed(_) => status::MALFORMED,
            Self::UnsupportedSchema(_) => status::UNSUPPORTED_SCHEMA,
            Self::Failed(_) => status::FAILED,
        }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed state: {why}"),
            Self::UnsupportedSchema(n) => write!(f, "unsupported state schema {n}"),
            Self::Failed(why) => write!(f, "state error: {why}"),
        }
    }
}
