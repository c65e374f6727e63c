//! Rolling back: the previous version takes over again, with the state carried back (the
//! newer version down-migrates it) or, if that is impossible and allowed, the snapshot taken
//! when it was replaced. After a pre-copy swap the state is carried back by pre-copy too,
//! and the snapshot is the replaced instance itself.

use std::rc::Rc;

use hotswap_abi::transfer_schema;

use super::swap::Change;
use super::Slot;
use crate::commit::Snapshot;
use crate::error::LoaderError;
use crate::events::{Event, RollbackReason};
use crate::instance::GuestInstance;
use crate::options::SwapOptions;
use crate::probation::Standby;
use crate::rollback;
use crate::version::VersionInfo;

impl Slot {
    /// Go back to the previous version, carrying the state back (the newer version
    /// down-migrates it). With `allow_snapshot`, a version that cannot hand its state back
    /// is replaced by the state saved when it was swapped in; otherwise that is refused.
    pub async fn rollback(self: &Rc<Self>, allow_snapshot: bool) -> Result<VersionInfo, LoaderError> {
        let _turn = self.queue.enter().await;
        let previous =
            self.state.borrow().previous.as_ref().map(|p| (p.compiled.digest.to_hex(), p.compiled.version()));
        if let Some((sha256, version)) = previous {
            self.trying(Some(sha256), Some(version));
        }
        let result = self.rollback_now(allow_snapshot).await;
        let result = result.map_err(|e| self.unless_disposed(e));
        if let Err(e) = &result {
            self.emit_error(e);
        }
        self.trying.take();
        result
    }

    async fn rollback_now(self: &Rc<Self>, allow_snapshot: bool) -> Result<VersionInfo, LoaderError> {
        let standby = self.state.borrow_mut().probation.end();
        if let Some(Standby::Fresh(target)) = standby {
            return self.restore_previous(Rc::new(target), RollbackReason::Manual, allow_snapshot);
        }
        let running = self.current_instance()?;
        let previous = self.state.borrow().previous.as_ref().map(|p| p.compiled.clone());
        let previous = previous.ok_or(LoaderError::RollbackUnavailable {})?;
        // dispose() stops a rollback under way as it does a swap.
        let options = self.following_disposal(SwapOptions::default());
        if let Some(converter) = self.converter_for(&running, &previous, options.abort_signal()).await? {
            let carried = match transfer_schema(&running.compiled.interface.metadata, &previous.interface.metadata) {
                Ok(schema) => match self.prepare_precopy(&running, &previous, schema, &converter, &options).await {
                    Ok(prepared) => self.pause_until_caught_up(prepared, Some(converter), &options, Change::Back).await,
                    Err(e) => Err(e),
                },
                Err(rule) => Err(LoaderError::from_rule(rule)),
            };
            if carried.is_err() {
                self.release_converted();
            }
            match carried {
                Ok(Some(info)) => return Ok(info),
                Ok(None) => {
                    return Err(LoaderError::Internal { what: "the running version changed during a rollback".into() })
                }
                Err(e) if !allow_snapshot || !self.has_snapshot_instance() => return Err(e),
                Err(_) => return self.restore_snapshot_instance(RollbackReason::Manual),
            }
        }
        let target = self.instantiate(&previous).await?;
        self.restore_previous(Rc::new(target), RollbackReason::Manual, allow_snapshot)
    }

    fn has_snapshot_instance(&self) -> bool {
        matches!(self.state.borrow().previous.as_ref().and_then(|p| p.snapshot.as_ref()), Some(Snapshot::Frozen(_)))
    }

    /// Synchronously rebind the previous version's snapshot instance (pre-copy), with its
    /// state as it was when it was replaced, or the state carried back to it if the running
    /// version can hand it over.
    pub(super) fn restore_snapshot_instance(&self, reason: RollbackReason) -> Result<VersionInfo, LoaderError> {
        let frozen = match self.state.borrow().previous.as_ref().and_then(|p| p.snapshot.as_ref()) {
            Some(Snapshot::Frozen(instance)) => instance.clone(),
            _ => return Err(LoaderError::RollbackUnavailable {}),
        };
        self.restore_previous(frozen, reason, true)
    }

    /// Synchronously bind `target` (an instance of the previous version) with the state
    /// carried back from the current one, or the snapshot.
    pub(super) fn restore_previous(
        &self,
        target: Rc<GuestInstance>,
        reason: RollbackReason,
        allow_snapshot: bool,
    ) -> Result<VersionInfo, LoaderError> {
        let running = self.current_instance()?;
        let restored = {
            let state = self.state.try_borrow().map_err(|_| LoaderError::Reentrant {})?;
            let previous = state.previous.as_ref().ok_or(LoaderError::RollbackUnavailable {})?;
            let table = self.table.try_borrow().map_err(|_| LoaderError::Reentrant {})?;
            let max_state = self.options.limits.max_state_bytes;
            rollback::restore(&running, target, previous.snapshot.as_ref(), allow_snapshot, &table, max_state)?
        };
        let info = restored.current.compiled.info();
        let frozen = {
            let mut state = self.state.borrow_mut();
            state.current = Some(restored.current.clone());
            drop(state.probation.end());
            state.set_previous(None)
        };
        if let Some(frozen) = frozen.filter(|f| !Rc::ptr_eq(f, &restored.current)) {
            self.retire(frozen);
        }
        self.emit(&Event::Rollback {
            version: info.version.clone(),
            duration_ms: restored.pause_ms,
            from_version: running.version(),
            bytes: restored.report.bytes,
            reason,
            state_source: restored.source,
        });
        self.retire(running);
        Ok(info)
    }
}
