//! Stage 5 (rollback): the previous version takes over again, in one synchronous step. The
//! state is carried back — the newer version down-migrates it — or, if that is impossible and
//! allowed, restored from the snapshot taken at the commit.

use std::rc::Rc;

use hotswap_abi::transfer_schema;

use crate::commit::{self, Snapshot, TransferReport};
use crate::error::LoaderError;
use crate::events::{Clock, StateSource};
use crate::instance::GuestInstance;
use crate::shim::CallTable;
use crate::version::CompiledVersion;

/// What a replaced version leaves behind: its compiled module (no instance) and its state
/// at the commit. Enough to roll back without a download or a compile.
#[derive(Debug)]
pub(crate) struct Previous {
    /// The version.
    pub compiled: CompiledVersion,
    /// Its state when it was replaced.
    pub snapshot: Option<Snapshot>,
}

/// A rollback that took effect.
#[derive(Debug)]
pub(crate) struct Restored {
    /// The version now bound.
    pub current: Rc<GuestInstance>,
    /// Where its state came from.
    pub source: StateSource,
    /// Timings.
    pub report: TransferReport,
    /// The whole pause, in milliseconds.
    pub pause_ms: f64,
}

/// Bind `target`, an instance of the previous version, with the state of `running`, or
/// (when `running` cannot hand it back and `allow_snapshot`) the snapshot — which, after a
/// pre-copy swap, is the replaced instance itself, bound in `target`'s place (`target` may be
/// that instance). Synchronous; on error nothing was rebound.
pub(crate) fn restore(
    running: &GuestInstance,
    target: Rc<GuestInstance>,
    snapshot: Option<&Snapshot>,
    allow_snapshot: bool,
    table: &CallTable,
    max_state: u64,
) -> Result<Restored, LoaderError> {
    let clock = Clock::start();
    let carried = carry(running, &target, max_state);
    let (current, source, report) = match (carried, snapshot) {
        (Ok(report), _) => (target, StateSource::Carried, report),
        (Err(_), Some(Snapshot::Frozen(frozen))) if allow_snapshot => {
            (frozen.clone(), StateSource::Snapshot, TransferReport::default())
        }
        (Err(_), Some(snapshot)) if allow_snapshot => {
            let report = commit::load_snapshot(&target, snapshot)?;
            (target, StateSource::Snapshot, report)
        }
        (Err(e), _) => return Err(e),
    };
    table.bind(&current);
    Ok(Restored { current, source, report, pause_ms: clock.elapsed() })
}

/// Move the state from the version being left to the previous one, down-migrated by the
/// newer guest if the two share a schema path.
fn carry(from: &GuestInstance, to: &GuestInstance, max_state: u64) -> Result<TransferReport, LoaderError> {
    let schema = transfer_schema(&from.compiled.interface.metadata, &to.compiled.interface.metadata)
        .map_err(LoaderError::from_rule)?;
    let (report, saved) = commit::transfer(from, to, schema, None, max_state)?;
    saved.release(from);
    Ok(report)
}
