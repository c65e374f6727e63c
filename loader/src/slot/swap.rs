//! Swapping: fetch and validate the new version, prepare everything the pause needs — by
//! copy (ABI 1.0: reserve room, instantiate a rollback standby) or by pre-copy (ABI 1.1: the
//! state converted off the main thread) — then the pause, and the bookkeeping after it.

use std::rc::Rc;

use js_sys::{ArrayBuffer, Uint8Array};

use super::{Slot, State};
use crate::commit::{self, Attempt, Committed, PreparedSwap, Snapshot, Transfer};
use crate::error::LoaderError;
use crate::events::{Clock, Event, RollbackReason, StateSource, TransferKind};
use crate::instance::{buffer_bytes, GuestInstance, PendingInstance};
use crate::options::{ModuleSource, SwapOptions};
use crate::precopy::{Capture, Converter, GiveUp, LARGEST_MEMORY, ROUNDS};
use crate::probation::Standby;
use crate::queue::next_task;
use crate::rollback::Previous;
use crate::shim::GuardReason;
use crate::validate::check_replacement;
use crate::version::{CompiledVersion, VersionInfo};

/// While a capture is under way: calls take the guard's path, which completes it first.
struct CaptureBarrier<'a> {
    slot: &'a Slot,
}

impl<'a> CaptureBarrier<'a> {
    fn raise(slot: &'a Slot, capture: Rc<Capture>) -> Self {
        *slot.capturing.borrow_mut() = Some(capture);
        slot.table.borrow().flag().set(GuardReason::Capture, true);
        Self { slot }
    }
}

impl Drop for CaptureBarrier<'_> {
    fn drop(&mut self) {
        self.slot.capturing.borrow_mut().take();
        if let Ok(table) = self.slot.table.try_borrow() {
            table.flag().set(GuardReason::Capture, false);
        }
    }
}

/// What a pause is for: the bookkeeping after it differs.
#[derive(Clone, Copy, Debug)]
pub(super) enum Change {
    /// A new version replaces the running one, which becomes the previous one.
    Swap,
    /// The previous version comes back (pre-copy rollback, state carried back).
    Back,
}

/// How far a pre-copy got, for its event.
#[derive(Debug)]
struct PrecopyProgress {
    clock: Clock,
    rounds: u32,
    image_bytes: u64,
}

impl Slot {
    /// Replace the running version; resolves once the new one is committed and bound.
    pub async fn swap(self: &Rc<Self>, source: ModuleSource) -> Result<VersionInfo, LoaderError> {
        self.swap_with(source, SwapOptions::default()).await
    }

    /// [`Slot::swap`], with options (an abort signal).
    pub async fn swap_with(
        self: &Rc<Self>,
        source: ModuleSource,
        options: SwapOptions,
    ) -> Result<VersionInfo, LoaderError> {
        let _turn = self.queue.enter().await;
        let options = self.following_disposal(options);
        self.trying(Some(source.sha256.to_hex()), None);
        let result = match options.check() {
            Ok(()) => self.swap_now(source, &options).await,
            Err(aborted) => Err(aborted),
        };
        // The signal also stops a download (then failing as one): what the caller asked for
        // is ABORTED, and a swap that fails at all fails before its pause.
        let result = result.map_err(|e| options.check().err().unwrap_or(e));
        // Disposed meanwhile: whatever failed after that (a download cut short) is why.
        let result = result.map_err(|e| self.unless_disposed(e));
        if let Err(e) = &result {
            self.release_converted();
            self.emit_error(e);
        }
        self.trying.take();
        result
    }

    async fn swap_now(
        self: &Rc<Self>,
        source: ModuleSource,
        options: &SwapOptions,
    ) -> Result<VersionInfo, LoaderError> {
        let running = self.current_instance()?;
        // The version asked for already runs: nothing to do, and the way back stays.
        if source.sha256.matches(&running.compiled.digest) {
            source.origin.discard();
            return Ok(running.compiled.info());
        }
        // The rollback standby is instantiated while the new module downloads (a pre-copy
        // swap needs none: the replaced instance is its own snapshot, and the pre-copy worker
        // starts meanwhile instead).
        let mut standby = if running.has_precopy() {
            self.start_converter(&running.compiled, &running.compiled);
            None
        } else {
            self.start_standby(&running)?
        };
        let incoming = self.fetch_version(source, options.abort_signal()).await?;
        // Each stage in its own task: the page's events run in between.
        next_task().await;
        options.check()?;
        // An automatic rollback can replace the running version while we await; then the
        // swap is prepared again against the version that is running now.
        loop {
            let running = self.current_instance()?;
            let schema = check_replacement(&running.compiled, &incoming, &self.table.borrow().held())?;
            let converter = self.converter_for(&running, &incoming, options.abort_signal()).await?;
            let prepared = match &converter {
                Some(converter) => self.prepare_precopy(&running, &incoming, schema, converter, options).await?,
                None => {
                    let ready = match standby.take() {
                        Some((of, pending)) if Rc::ptr_eq(&of, &running) => Some(pending),
                        _ => self.start_standby(&running)?.map(|(_, pending)| pending),
                    };
                    self.prepare_copy(&running, &incoming, schema, ready).await?
                }
            };
            match self.pause_until_caught_up(prepared, converter, options, Change::Swap).await? {
                Some(info) => return Ok(info),
                None => continue,
            }
        }
    }

    /// Try the pause until it commits: between tries, events queued meanwhile run, and a
    /// pre-copy converts what changed. `None` when the running version changed under it (an
    /// automatic rollback): the caller prepares again.
    pub(super) async fn pause_until_caught_up(
        self: &Rc<Self>,
        mut prepared: PreparedSwap,
        converter: Option<Rc<Converter>>,
        options: &SwapOptions,
        change: Change,
    ) -> Result<Option<VersionInfo>, LoaderError> {
        let mut progress = PrecopyProgress { clock: Clock::start(), rounds: 0, image_bytes: 0 };
        loop {
            // Let events queued during the preparation run now rather than during the pause.
            next_task().await;
            options.check()?;
            if !Rc::ptr_eq(&prepared.running, &self.current_instance()?) {
                return Ok(None);
            }
            let attempt = {
                let mut table = self.table.try_borrow_mut().map_err(|_| LoaderError::Reentrant {})?;
                commit::commit(prepared, &mut table)?
            };
            match (attempt, &converter) {
                (Attempt::Committed(committed), _) => {
                    if converter.is_some() {
                        self.emit_precopy(&committed, &progress);
                    }
                    let (info, replaced) = self.after_commit(committed, change);
                    // Events waiting since the pause run first; then the snapshot is copied
                    // out of the old instance, which is dropped (unless it is the snapshot).
                    next_task().await;
                    self.settle_snapshot(&replaced);
                    if let Some(converter) = converter {
                        converter.reset();
                    }
                    return Ok(Some(info));
                }
                (Attempt::NotQuiet { prepared: again, delta }, Some(converter)) => {
                    progress.rounds += 1;
                    prepared = self.precopy_round(again, delta, converter, &mut progress, options).await?;
                }
                (Attempt::NotQuiet { .. }, None) => {
                    return Err(LoaderError::Internal { what: "a copy transfer declined its pause".into() });
                }
            }
        }
    }

    /// The worker for a pre-copy between these two versions, if both declare it, neither
    /// imports `app` functions (the worker cannot call the page), and the page runs it.
    pub(super) async fn converter_for(
        &self,
        from: &GuestInstance,
        to: &CompiledVersion,
        signal: Option<&web_sys::AbortSignal>,
    ) -> Result<Option<Rc<Converter>>, LoaderError> {
        // Copies of a larger memory cannot cross to the worker.
        if from.memory_bytes() > LARGEST_MEMORY {
            return Ok(None);
        }
        let Some(converter) = self.start_converter(&from.compiled, to) else { return Ok(None) };
        if converter.usable(signal).await? {
            return Ok(Some(converter));
        }
        // Refused by the page (a CSP) or silent: not tried again; swaps take the 1.0 path.
        *self.converter.borrow_mut() = Some(Err(()));
        Ok(None)
    }

    /// [`Slot::converter_for`] without waiting to know whether the worker runs: it starts
    /// while the new module downloads.
    pub(super) fn start_converter(&self, from: &CompiledVersion, to: &CompiledVersion) -> Option<Rc<Converter>> {
        let eligible = |v: &CompiledVersion| v.interface.precopy.is_some() && v.interface.app_imports.is_empty();
        if !(self.options.precopy && eligible(from) && eligible(to)) {
            return None;
        }
        let mut converter = self.converter.borrow_mut();
        // Refused by the page (a CSP): not started again, not even once more to find out.
        if matches!(&*converter, Some(Ok(c)) if c.refused()) {
            *converter = Some(Err(()));
        }
        // A worker stopped after a request was given up, or that died, is replaced.
        if matches!(&*converter, Some(Ok(c)) if c.is_stopped()) {
            converter.take();
        }
        let max_state = self.options.limits.max_state_bytes;
        let started = converter.get_or_insert_with(|| Converter::start(max_state).map(Rc::new).map_err(drop));
        started.as_ref().ok().cloned()
    }

    /// A pre-copy that did not commit: the worker drops the guest it converted (a whole
    /// instance and its memory) now rather than at the next swap.
    pub(super) fn release_converted(&self) {
        if let Some(Ok(converter)) = &*self.converter.borrow() {
            if !converter.is_stopped() {
                converter.reset();
            }
        }
    }

    /// ABI 1.0: the new instance, the standby, shims for new exports, room for the state.
    async fn prepare_copy(
        &self,
        running: &Rc<GuestInstance>,
        incoming: &CompiledVersion,
        schema: u32,
        standby: Option<PendingInstance>,
    ) -> Result<PreparedSwap, LoaderError> {
        // The shims compile while the guest instantiates.
        let shims = self.table.borrow().prepare(&incoming.interface.user_exports)?;
        let instance = self.instantiate(incoming).await?;
        let standby = match standby {
            Some(pending) => Some(Standby::Fresh(pending.finish().await?)),
            None => None,
        };
        let shims = shims.finish().await?;
        let max_state = self.options.limits.max_state_bytes;
        let reservation = commit::reserve(running, &instance, schema, max_state)?;
        let transfer = Transfer::Copy(reservation);
        Ok(PreparedSwap { running: running.clone(), incoming: instance, schema, transfer, shims, standby, max_state })
    }

    /// ABI 1.1: the new instance holding the running guest's state, converted off the main
    /// thread; then only what changes until the pause remains.
    pub(super) async fn prepare_precopy(
        &self,
        running: &Rc<GuestInstance>,
        incoming: &CompiledVersion,
        schema: u32,
        converter: &Converter,
        options: &SwapOptions,
    ) -> Result<PreparedSwap, LoaderError> {
        let shims = self.table.borrow().prepare(&incoming.interface.user_exports)?;
        let instance = self.instantiate(incoming).await?;
        let shims = shims.finish().await?;
        next_task().await;
        options.check()?;
        let (image, length) = self.capture(running).await?;
        let converted =
            converter.convert(&running.compiled, image, length, incoming, schema, &self.give_up(options)).await?;
        let converted = unless_cancelled(options, converter, converted)?;
        converter.install(&instance, converted).await?;
        let standby = (self.options.auto_rollback_calls > 0).then_some(Standby::Snapshot);
        let transfer = Transfer::Precopy { rounds_left: ROUNDS };
        let max_state = self.options.limits.max_state_bytes;
        Ok(PreparedSwap { running: running.clone(), incoming: instance, schema, transfer, shims, standby, max_state })
    }

    /// Mark the running guest and copy its memory, a slice per event-loop turn; meanwhile
    /// every call to it goes through the guard, which completes the copy before the call runs.
    async fn capture(&self, running: &Rc<GuestInstance>) -> Result<(ArrayBuffer, u32), LoaderError> {
        let capture = Rc::new(Capture::start(running).await?);
        let _barrier = CaptureBarrier::raise(self, capture.clone());
        while !capture.step() {
            next_task().await;
        }
        Ok(capture.image())
    }

    /// A call is about to reach the running guest: first complete the copy under way, if any.
    pub(super) fn complete_capture(&self) {
        let capture = self.capturing.borrow().clone();
        if let Some(capture) = capture {
            capture.complete();
        }
    }

    /// When to stop waiting for the pre-copy worker.
    fn give_up<'a>(&self, options: &'a SwapOptions) -> GiveUp<'a> {
        GiveUp { signal: options.abort_signal(), after_ms: self.options.limits.precopy_timeout_ms }
    }

    /// The state changed since the conversion: convert the change too, and install the result.
    async fn precopy_round(
        &self,
        prepared: PreparedSwap,
        delta: Uint8Array,
        converter: &Converter,
        progress: &mut PrecopyProgress,
        options: &SwapOptions,
    ) -> Result<PreparedSwap, LoaderError> {
        let converted = converter.apply(delta, prepared.schema, &self.give_up(options)).await?;
        let converted = unless_cancelled(options, converter, converted)?;
        progress.image_bytes = buffer_bytes(&converted);
        converter.install(&prepared.incoming, converted).await?;
        Ok(prepared)
    }

    fn emit_precopy(&self, committed: &Committed, progress: &PrecopyProgress) {
        self.emit(&Event::Precopy {
            version: committed.current.version(),
            duration_ms: progress.clock.elapsed() - committed.pause_ms,
            rounds: progress.rounds,
            image_bytes: progress.image_bytes.max(committed.current.memory_bytes()),
        });
    }

    /// The bookkeeping after a pause that committed; synchronous, like the pause. Returns what
    /// callers see of the new version, and the instance replaced.
    fn after_commit(&self, committed: Committed, change: Change) -> (VersionInfo, Rc<GuestInstance>) {
        let Committed { replaced, current, snapshot, schema, report, pause_ms, standby } = committed;
        let info = current.compiled.info();
        let transfer = if matches!(snapshot, Snapshot::Frozen(_)) { TransferKind::Precopy } else { TransferKind::Copy };
        let frozen = {
            let mut state = self.state.borrow_mut();
            state.current = Some(current);
            match change {
                Change::Swap => self.remember(&mut state, &replaced, snapshot, standby),
                Change::Back => {
                    drop(state.probation.end());
                    state.set_previous(None)
                }
            }
        };
        if let Some(frozen) = frozen.filter(|f| !Rc::ptr_eq(f, &replaced)) {
            self.retire(frozen);
        }
        let from_version = replaced.version();
        self.emit(&match change {
            Change::Swap => Event::Commit {
                version: info.version.clone(),
                duration_ms: pause_ms,
                from_version,
                transfer,
                bytes: report.bytes,
                schema,
                guest_save_ms: report.save_ms,
                state_copy_ms: report.copy_ms,
                guest_load_ms: report.load_ms,
            },
            Change::Back => Event::Rollback {
                version: info.version.clone(),
                duration_ms: pause_ms,
                from_version,
                bytes: report.bytes,
                reason: RollbackReason::Manual,
                state_source: StateSource::Carried,
            },
        });
        if matches!(change, Change::Back) {
            self.retire(replaced.clone());
        }
        (info, replaced)
    }

    /// After a swap: the replaced version becomes the one a rollback returns to, and the new
    /// one goes on probation. Returns a snapshot instance no longer needed.
    fn remember(
        &self,
        state: &mut State,
        replaced: &Rc<GuestInstance>,
        snapshot: Snapshot,
        standby: Option<Standby>,
    ) -> Option<Rc<GuestInstance>> {
        let previous = Previous { compiled: replaced.compiled.clone(), snapshot: Some(snapshot) };
        let dropped = state.set_previous(Some(previous));
        match standby {
            Some(standby) => state.probation.begin(self.options.auto_rollback_calls, standby),
            None => drop(state.probation.end()),
        }
        dropped
    }

    /// Copy the snapshot out of `replaced` (if a rollback has not used it meanwhile), then let
    /// the instance go — unless it is itself the snapshot (pre-copy).
    fn settle_snapshot(&self, replaced: &Rc<GuestInstance>) {
        let mut state = self.state.borrow_mut();
        let Some(previous) = state.previous.as_mut() else { return };
        match &previous.snapshot {
            Some(Snapshot::InPlace { instance, .. }) if Rc::ptr_eq(instance, replaced) => {}
            Some(Snapshot::Frozen(instance)) if Rc::ptr_eq(instance, replaced) => return,
            _ => {
                drop(state);
                return self.retire_unless_current(replaced);
            }
        }
        let settled = previous.snapshot.take().map(Snapshot::settle).transpose();
        let error = match settled {
            Ok(snapshot) => {
                previous.snapshot = snapshot;
                None
            }
            Err(e) => Some(e),
        };
        drop(state);
        if let Some(e) = error {
            self.emit_error(&e);
        }
        self.retire_unless_current(replaced);
    }

    /// Retire `instance` unless a rollback made it current again meanwhile.
    fn retire_unless_current(&self, instance: &Rc<GuestInstance>) {
        if !self.current_instance().is_ok_and(|c| Rc::ptr_eq(&c, instance)) {
            self.retire(instance.clone());
        }
    }

    /// A fresh instance of the running version, for a synchronous rollback during the
    /// probation of its successor (none when probation is off).
    fn start_standby(
        &self,
        running: &Rc<GuestInstance>,
    ) -> Result<Option<(Rc<GuestInstance>, PendingInstance)>, LoaderError> {
        if self.options.auto_rollback_calls == 0 {
            return Ok(None);
        }
        let pending = GuestInstance::start(&running.compiled, &self.options.app_imports, self.emitter.clone())?;
        Ok(Some((running.clone(), pending)))
    }
}

/// `converted` unless the swap was cancelled while the worker made it; then the copy goes
/// back to the worker to be freed there, as after an install (not on the page).
fn unless_cancelled(
    options: &SwapOptions,
    converter: &Converter,
    converted: ArrayBuffer,
) -> Result<ArrayBuffer, LoaderError> {
    match options.check() {
        Ok(()) => Ok(converted),
        Err(cancelled) => {
            converter.discard(converted);
            Err(cancelled)
        }
    }
}
