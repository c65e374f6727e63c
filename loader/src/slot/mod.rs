//! A slot: one guest, its stable exports object, the previous version kept for rollback, and
//! the operations on them. This file orchestrates the pipeline — fetch → validate →
//! instantiate → commit, and rollback — whose stages live in their own files; [`calls`] is
//! the path of a call into the guest (the guard, traps during probation, bytes helpers).
//! Plain Rust; `api.rs` is the JS facade over it.

mod calls;

use std::cell::{OnceCell, RefCell};
use std::rc::{Rc, Weak};

use js_sys::{Function, Object};
use wasm_bindgen::JsValue;

use crate::commit::{self, Committed, PreparedSwap, Snapshot};
use crate::error::LoaderError;
use crate::events::{Clock, Emitter, Event, RollbackReason};
use crate::fetch::fetch_verified;
use crate::instance::{GuestInstance, PendingInstance};
use crate::js::ToJs;
use crate::options::{LoadOptions, ModuleSource};
use crate::probation::Probation;
use crate::queue::{next_task, OpQueue};
use crate::rollback::{self, Previous};
use crate::shim::CallTable;
use crate::validate::{check_replacement, validate};
use crate::version::{CompiledVersion, VersionInfo};

#[derive(Debug)]
struct State {
    current: Option<Rc<GuestInstance>>,
    previous: Option<Previous>,
    probation: Probation,
}

/// A hot-swap slot: the plain-Rust core of `HotSwap`.
#[derive(Debug)]
pub struct Slot {
    options: LoadOptions,
    emitter: Rc<Emitter>,
    queue: OpQueue,
    state: RefCell<State>,
    table: RefCell<CallTable>,
}

/// Why a guest call failed: a loader error, or an exception from JS code the guest called
/// (an app import), which is passed on unchanged.
#[derive(Debug)]
pub enum CallFailure {
    /// Typed.
    Loader(LoaderError),
    /// Thrown by JS.
    Js(JsValue),
}

impl From<LoaderError> for CallFailure {
    fn from(e: LoaderError) -> Self {
        Self::Loader(e)
    }
}

impl CallFailure {
    /// The value to throw to JS.
    pub fn into_js(self) -> JsValue {
        match self {
            Self::Loader(e) => e.to_js(),
            Self::Js(v) => v,
        }
    }
}

impl Slot {
    /// Load the first version of a guest.
    pub async fn load(source: ModuleSource, options: LoadOptions) -> Result<Rc<Slot>, LoaderError> {
        let slot = Self::new(options)?;
        slot.load_first(source).await?;
        Ok(slot)
    }

    /// An empty slot: nothing runs until [`Slot::load_first`] succeeds.
    pub(crate) fn new(options: LoadOptions) -> Result<Rc<Slot>, LoaderError> {
        let emitter = Rc::new(Emitter::default());
        if let Some(listener) = &options.on_event {
            emitter.add(listener.0.clone());
        }
        let cell: Rc<OnceCell<Weak<Slot>>> = Rc::default();
        let for_guard = cell.clone();
        let table = CallTable::new(Rc::new(move |slot_index, args| {
            let slot = for_guard.get().and_then(Weak::upgrade).ok_or_else(|| LoaderError::Disposed {}.to_js())?;
            slot.invoke(slot_index, &args).map_err(CallFailure::into_js)
        }))?;
        let probation = Probation::new(table.flag().clone());
        let state = RefCell::new(State { current: None, previous: None, probation });
        let slot = Rc::new(Slot { options, emitter, queue: OpQueue::default(), state, table: RefCell::new(table) });
        let _ = cell.set(Rc::downgrade(&slot));
        Ok(slot)
    }

    /// Load the first version into an empty slot. On failure the slot stays empty, so another
    /// source can be tried (the watcher's fallback).
    pub(crate) async fn load_first(&self, source: ModuleSource) -> Result<VersionInfo, LoaderError> {
        let _turn = self.queue.enter().await;
        let result = self.load_now(source).await;
        if let Err(e) = &result {
            self.emit_error(e);
        }
        result
    }

    async fn load_now(&self, source: ModuleSource) -> Result<VersionInfo, LoaderError> {
        if self.state.borrow().current.is_some() {
            return Err(LoaderError::Internal { what: "load into a slot that already runs a version".into() });
        }
        let compiled = self.fetch_version(source).await?;
        let instance = self.instantiate(&compiled).await?;
        let shims = self.table.borrow().prepare(&compiled.interface.user_exports)?;
        let shims = shims.finish().await?;
        let mut table = self.table.try_borrow_mut().map_err(|_| LoaderError::Reentrant {})?;
        table.adopt(shims);
        table.bind(&instance);
        drop(table);
        self.state.borrow_mut().current = Some(Rc::new(instance));
        Ok(compiled.info())
    }

    /// The stable exports object.
    pub fn exports(&self) -> Object {
        self.table.borrow().exports()
    }

    /// The JS object that owns this slot (the app's `HotSwap`): its exports object keeps it
    /// alive, so that garbage collection never frees a `HotSwap` whose exports are in use.
    pub(crate) fn set_owner(&self, owner: &Object) {
        if let Ok(mut table) = self.table.try_borrow_mut() {
            table.set_owner(owner);
        }
    }

    /// Add an event listener; returns its id for [`Slot::off`].
    pub fn on(&self, listener: Function) -> u32 {
        self.emitter.add(listener)
    }

    /// Remove an event listener.
    pub fn off(&self, id: u32) {
        self.emitter.remove(id)
    }

    /// The running version.
    pub fn current(&self) -> Result<VersionInfo, LoaderError> {
        Ok(self.current_instance()?.compiled.info())
    }

    /// The version a rollback would return to.
    pub fn previous(&self) -> Option<VersionInfo> {
        self.state.borrow().previous.as_ref().map(|p| p.compiled.info())
    }

    /// Is a new version still on probation?
    pub fn on_probation(&self) -> bool {
        self.state.borrow().probation.is_on()
    }

    fn current_instance(&self) -> Result<Rc<GuestInstance>, LoaderError> {
        let state = self.state.try_borrow().map_err(|_| LoaderError::Reentrant {})?;
        state.current.clone().ok_or(LoaderError::Disposed {})
    }

    /// Replace the running version; resolves once the new one is committed and bound.
    pub async fn swap(self: &Rc<Self>, source: ModuleSource) -> Result<VersionInfo, LoaderError> {
        let _turn = self.queue.enter().await;
        let result = self.swap_now(source).await;
        if let Err(e) = &result {
            self.emit_error(e);
        }
        result
    }

    async fn swap_now(self: &Rc<Self>, source: ModuleSource) -> Result<VersionInfo, LoaderError> {
        // The rollback standby is instantiated while the new module downloads.
        let mut standby = self.start_standby(&self.current_instance()?)?;
        let incoming = self.fetch_version(source).await?;
        // An automatic rollback can replace the running version while we await; then the
        // swap is prepared again against the version that is running now.
        loop {
            let running = self.current_instance()?;
            let ready = match standby.take() {
                Some((of, pending)) if Rc::ptr_eq(&of, &running) => Some(pending),
                _ => self.start_standby(&running)?.map(|(_, pending)| pending),
            };
            let prepared = self.prepare(&running, &incoming, ready).await?;
            // Let events queued during the preparation run now rather than during the pause.
            next_task().await;
            if !Rc::ptr_eq(&running, &self.current_instance()?) {
                continue;
            }
            let (info, replaced) = self.commit_prepared(prepared)?;
            // Events waiting since the pause run first; then the snapshot is copied out of
            // the old instance, which is dropped.
            next_task().await;
            self.settle_snapshot(&replaced);
            self.retire(replaced);
            return Ok(info);
        }
    }

    /// Everything the pause needs, made ready without blocking: the new instance, the
    /// standby, shims for new exports, room for the state.
    async fn prepare(
        &self,
        running: &Rc<GuestInstance>,
        incoming: &CompiledVersion,
        standby: Option<PendingInstance>,
    ) -> Result<PreparedSwap, LoaderError> {
        let schema = check_replacement(&running.compiled, incoming, &self.table.borrow().held())?;
        let instance = self.instantiate(incoming).await?;
        let standby = match standby {
            Some(pending) => Some(pending.finish().await?),
            None => None,
        };
        let shims = self.table.borrow().prepare(&incoming.interface.user_exports)?;
        let shims = shims.finish().await?;
        let max_state = self.options.limits.max_state_bytes;
        let reservation = commit::reserve(running, &instance, schema, max_state)?;
        Ok(PreparedSwap {
            running: running.clone(),
            incoming: instance,
            schema,
            reservation,
            shims,
            standby,
            max_state,
        })
    }

    /// The pause and the bookkeeping after it; synchronous, like the pause itself.
    fn commit_prepared(&self, prepared: PreparedSwap) -> Result<(VersionInfo, Rc<GuestInstance>), LoaderError> {
        let mut table = self.table.try_borrow_mut().map_err(|_| LoaderError::Reentrant {})?;
        let Committed { replaced, current, saved, schema, report, pause_ms, standby } =
            commit::commit(prepared, &mut table)?;
        drop(table);
        let info = current.compiled.info();
        {
            let mut state = self.state.borrow_mut();
            let snapshot = Snapshot::InPlace { instance: replaced.clone(), saved };
            state.previous = Some(Previous { compiled: replaced.compiled.clone(), snapshot: Some(snapshot) });
            state.current = Some(current);
            match standby {
                Some(standby) => state.probation.begin(self.options.auto_rollback_calls, standby),
                None => drop(state.probation.end()),
            }
        }
        self.emit(&Event::Commit {
            version: info.version.clone(),
            duration_ms: pause_ms,
            from_version: replaced.version(),
            bytes: report.bytes,
            schema,
            guest_save_ms: report.save_ms,
            state_copy_ms: report.copy_ms,
            guest_load_ms: report.load_ms,
        });
        Ok((info, replaced))
    }

    /// Copy the snapshot out of `replaced` (if a rollback has not used it meanwhile).
    fn settle_snapshot(&self, replaced: &Rc<GuestInstance>) {
        let mut state = self.state.borrow_mut();
        let Some(previous) = state.previous.as_mut() else { return };
        let in_place =
            matches!(&previous.snapshot, Some(Snapshot::InPlace { instance, .. }) if Rc::ptr_eq(instance, replaced));
        if !in_place {
            return;
        }
        match previous.snapshot.take().map(Snapshot::settle).transpose() {
            Ok(snapshot) => previous.snapshot = snapshot,
            Err(e) => {
                drop(state);
                self.emit_error(&e);
            }
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

    /// Go back to the previous version, carrying the state back (the newer version
    /// down-migrates it). With `allow_snapshot`, a version that cannot hand its state back
    /// is replaced by the state saved when it was swapped in; otherwise that is refused.
    pub async fn rollback(self: &Rc<Self>, allow_snapshot: bool) -> Result<VersionInfo, LoaderError> {
        let _turn = self.queue.enter().await;
        let result = self.rollback_now(allow_snapshot).await;
        if let Err(e) = &result {
            self.emit_error(e);
        }
        result
    }

    async fn rollback_now(self: &Rc<Self>, allow_snapshot: bool) -> Result<VersionInfo, LoaderError> {
        let standby = self.state.borrow_mut().probation.end();
        let target = match standby {
            Some(standby) => standby,
            None => {
                let previous = self.state.borrow().previous.as_ref().map(|p| p.compiled.clone());
                self.instantiate(&previous.ok_or(LoaderError::RollbackUnavailable {})?).await?
            }
        };
        self.restore_previous(target, RollbackReason::Manual, allow_snapshot)
    }

    /// Synchronously bind `target` (an instance of the previous version) with the state
    /// carried back from the current one, or the snapshot.
    fn restore_previous(
        &self,
        target: GuestInstance,
        reason: RollbackReason,
        allow_snapshot: bool,
    ) -> Result<VersionInfo, LoaderError> {
        let running = self.current_instance()?;
        let restored = {
            let state = self.state.try_borrow().map_err(|_| LoaderError::Reentrant {})?;
            let previous = state.previous.as_ref().ok_or(LoaderError::RollbackUnavailable {})?;
            let table = self.table.try_borrow().map_err(|_| LoaderError::Reentrant {})?;
            rollback::restore(
                &running,
                target,
                previous.snapshot.as_ref(),
                allow_snapshot,
                &table,
                self.options.limits.max_state_bytes,
            )?
        };
        let info = restored.current.compiled.info();
        {
            let mut state = self.state.borrow_mut();
            state.current = Some(restored.current);
            state.previous = None;
            drop(state.probation.end());
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

    /// Drop every instance and listener; later calls fail with `DISPOSED`.
    pub fn dispose(&self) {
        if let Ok(table) = self.table.try_borrow() {
            table.unbind();
        }
        let running = {
            let mut state = self.state.borrow_mut();
            state.previous = None;
            drop(state.probation.end());
            state.current.take()
        };
        if let Some(running) = running {
            self.retire(running);
        }
        self.emitter.clear();
    }

    /// Stages 1–2: the module, fetched, verified and validated.
    async fn fetch_version(&self, source: ModuleSource) -> Result<CompiledVersion, LoaderError> {
        let cap = self.options.limits.max_module_bytes.min(source.listed_size.unwrap_or(u64::MAX));
        let fetched = fetch_verified(source, cap).await?;
        self.emit(&Event::Fetch { duration_ms: fetched.fetch_ms, bytes: fetched.bytes });
        self.emit(&Event::Compile { duration_ms: fetched.compile_ms });
        self.emit(&Event::Verify { duration_ms: fetched.verify_ms });
        let clock = Clock::start();
        let compiled = validate(fetched, &self.options)?;
        self.emit(&Event::Validate { version: compiled.version(), duration_ms: clock.elapsed() });
        Ok(compiled)
    }

    /// Stage 3.
    async fn instantiate(&self, compiled: &CompiledVersion) -> Result<GuestInstance, LoaderError> {
        let clock = Clock::start();
        let instance = GuestInstance::new(compiled, &self.options.app_imports, self.emitter.clone()).await?;
        self.emit(&Event::Instantiate { version: instance.version(), duration_ms: clock.elapsed() });
        Ok(instance)
    }

    /// Let a replaced version clean up, then drop it: no reference to it remains.
    fn retire(&self, instance: Rc<GuestInstance>) {
        if let Err(e) = instance.dispose() {
            self.emit_error(&e);
        }
    }

    /// Deliver `event` to the slot's listeners.
    pub(crate) fn emit(&self, event: &impl ToJs) {
        self.emitter.emit(event);
    }

    fn emit_error(&self, e: &LoaderError) {
        let version = self.current_instance().ok().map(|c| c.version());
        self.emit(&Event::Error { version, code: e.code().into(), message: e.to_string(), retry_ms: None });
    }
}
