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

/// ABI 1.1 pre-copy, for guests whose state is too large to save and load inside the swap's
/// pause (a CRDT document with a long history, say). With `#[guest(…, precopy)]` the loader
/// converts the state off the main thread — on a copy of the guest's memory, which must hold
/// its whole state (Rust guests do) — and, in the pause, asks only for what changed since
/// that copy was taken: usually nothing.
///
/// ```no_run
/// # use hotswap_guest::{GuestState, Precopy, StateError};
/// # #[derive(Default)] struct Log { entries: Vec<String>, marked: usize }
/// # impl GuestState for Log {
/// #     fn save(&self, _: u32) -> Result<Vec<u8>, StateError> { Ok(vec![]) }
/// #     fn load(_: &[u8], _: u32) -> Result<Self, StateError> { Ok(Log::default()) }
/// # }
/// impl Precopy for Log {
///     fn mark(&mut self) {
///         self.marked = self.entries.len();
///     }
///     fn delta(&mut self, _schema: u32) -> Result<Vec<u8>, StateError> {
///         let new = self.entries[self.marked..].join("\n");
///         self.marked = self.entries.len();
///         Ok(new.into_bytes())
///     }
///     fn apply(&mut self, delta: &[u8], _schema: u32) -> Result<(), StateError> {
///         let text = std::str::from_utf8(delta).map_err(|_| StateError::malformed("not UTF-8"))?;
///         self.entries.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
///         Ok(())
///     }
/// }
/// ```
pub trait Precopy: GuestState {
    /// Remember the state as it is now, for [`Precopy::delta`]. Called right before the
    /// loader copies the memory, so it must be cheap (a CRDT's heads, a length).
    fn mark(&mut self);

    /// What changed since the mark, encoded for `schema` (the schema the whole state
    /// travels in); moves the mark to now. Empty when nothing changed.
    fn delta(&mut self, schema: u32) -> Result<Vec<u8>, StateError>;

    /// Apply what the previous version's `delta(schema)` produced, on top of the state the
    /// loader loaded (or copied) into this one.
    fn apply(&mut self, delta: &[u8], schema: u32) -> Result<(), StateError>;

    /// Run the code [`Precopy::apply`] runs, on scratch data, so that it is compiled before
    /// the pause. Must not touch the state. By default, nothing.
    fn warm() {}
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
