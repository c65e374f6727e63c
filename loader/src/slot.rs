//! A slot: one guest, its stable exports object, the previous version kept for rollback,
//! and the operations on them. Plain Rust; `api.rs` is the JS facade over it.

use std::cell::{OnceCell, RefCell};
use std::rc::{Rc, Weak};

use hotswap_abi::{transfer_schema, unpack, BYTES_FN};
use js_sys::{Array, Function, Object, Reflect, WebAssembly};
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};

use crate::commit::{self, Snapshot, TransferReport};
use crate::error::{is_trap, LoaderError};
use crate::events::{Clock, Detail, Emitter, Event};
use crate::fetch::{fetch_verified, Verified};
use crate::instance::{GuestInstance, PendingInstance};
use crate::options::{LoadOptions, ModuleSource};
use crate::queue::{next_task, OpQueue};
use crate::shim::CallTable;
use crate::validate::{check_replacement, inspect, AppImports, Interface, Policy};

/// What callers see of a version.
#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// Guest name.
    pub name: String,
    /// SemVer version.
    pub version: String,
    /// ABI version.
    pub abi: String,
    /// State schema.
    pub state_schema: u32,
    /// Schemas it migrates up from.
    pub migrates_from: Vec<u32>,
    /// Schemas it can save down to.
    pub migrates_to: Vec<u32>,
    /// SHA-256 of the module, hex.
    pub sha256: String,
    /// Its user exports.
    pub exports: Vec<String>,
}

impl VersionInfo {
    fn of(interface: &Interface, sha256: &str) -> Self {
        let m = &interface.metadata;
        Self {
            name: m.name.clone(),
            version: m.version.to_string(),
            abi: m.abi.to_string(),
            state_schema: m.state_schema,
            migrates_from: m.migrates_from.clone(),
            migrates_to: m.migrates_to.clone(),
            sha256: sha256.to_string(),
            exports: interface.user_exports.iter().map(|(n, _)| n.clone()).collect(),
        }
    }
}

/// The version before the current one: its compiled module (not an instance: that is
/// dropped once the snapshot is settled, right after the commit) and its state then.
struct Previous {
    module: WebAssembly::Module,
    interface: Rc<Interface>,
    sha256: String,
    snapshot: Option<Snapshot>,
}

/// A new version's first calls: a trap among them rolls back, synchronously, to a fresh
/// instance of the previous version prepared before the commit.
struct Probation {
    calls_left: u32,
    standby: GuestInstance,
}

#[derive(Default)]
struct State {
    current: Option<Rc<GuestInstance>>,
    previous: Option<Previous>,
    probation: Option<Probation>,
}

/// A hot-swap slot.
pub struct Slot {
    options: LoadOptions,
    emitter: Rc<Emitter>,
    queue: OpQueue,
    state: RefCell<State>,
    table: RefCell<CallTable>,
}

/// Why a guest call failed: a loader error, or an exception from JS code the guest called
/// (an app import), which is passed on unchanged.
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

    /// Load the first version into an empty slot (made by [`Slot::new`]). On failure the slot
    /// stays empty, so another source can be tried (the watcher's fallback).
    pub async fn load_first(&self, source: ModuleSource) -> Result<VersionInfo, LoaderError> {
        let _turn = self.queue.enter().await;
        if self.state.borrow().current.is_some() {
            return Err(LoaderError::InvalidArgument("the slot already runs a version: swap instead".into()));
        }
        let verified = self.fetch(source).await?;
        let interface = Rc::new(self.inspect(&verified)?);
        let instance = self.instantiate(&verified, &interface).await?;
        let pending = self.table.borrow().prepare(&interface.user_exports).await?;
        let mut table = self.table.try_borrow_mut().map_err(|_| LoaderError::Reentrant)?;
        table.adopt(pending);
        table.bind(&instance);
        drop(table);
        let info = VersionInfo::of(&interface, &instance.sha256);
        self.state.borrow_mut().current = Some(Rc::new(instance));
        Ok(info)
    }

    /// An empty slot: nothing runs until [`Slot::load_first`] succeeds.
    pub fn new(options: LoadOptions) -> Result<Rc<Slot>, LoaderError> {
        let emitter = Rc::new(Emitter::default());
        if let Some(listener) = &options.on_event {
            emitter.add(listener.clone());
        }
        let cell: Rc<OnceCell<Weak<Slot>>> = Rc::default();
        let for_guard = cell.clone();
        let table = CallTable::new(Box::new(move |slot_index, args| {
            let slot = for_guard.get().and_then(Weak::upgrade).ok_or_else(|| LoaderError::Disposed.to_js())?;
            slot.invoke(slot_index, &args).map_err(CallFailure::into_js)
        }))?;
        let slot = Rc::new(Slot {
            options,
            emitter,
            queue: OpQueue::default(),
            state: RefCell::default(),
            table: RefCell::new(table),
        });
        let _ = cell.set(Rc::downgrade(&slot));
        Ok(slot)
    }

    /// The stable exports object.
    pub fn exports(&self) -> Object {
        self.table.borrow().exports().clone()
    }

    /// Event listeners.
    pub fn emitter(&self) -> &Emitter {
        &self.emitter
    }

    /// The running version.
    pub fn current(&self) -> Result<VersionInfo, LoaderError> {
        let current = self.current_instance()?;
        Ok(VersionInfo::of(&current.interface, &current.sha256))
    }

    /// The version a rollback would return to.
    pub fn previous(&self) -> Option<VersionInfo> {
        let state = self.state.borrow();
        state.previous.as_ref().map(|p| VersionInfo::of(&p.interface, &p.sha256))
    }

    /// Is a new version still on probation?
    pub fn on_probation(&self) -> bool {
        self.state.borrow().probation.is_some()
    }

    fn current_instance(&self) -> Result<Rc<GuestInstance>, LoaderError> {
        let state = self.state.try_borrow().map_err(|_| LoaderError::Reentrant)?;
        state.current.clone().ok_or(LoaderError::Disposed)
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
        let mut standby = self.start_standby(self.current_instance()?)?;
        let verified = self.fetch(source).await?;
        let interface = Rc::new(self.inspect(&verified)?);
        // An automatic rollback can replace the running version while we await; then the
        // plan is made again against the version that is running now.
        loop {
            let running = self.current_instance()?;
            if !standby.as_ref().is_none_or(|(of, _)| Rc::ptr_eq(of, &running)) {
                standby = self.start_standby(running.clone())?;
            }
            let schema = check_replacement(&running.interface.metadata, &interface, &self.table.borrow().signatures())?;
            let incoming = self.instantiate(&verified, &interface).await?;
            let ready_standby = match standby.take() {
                Some((_, pending)) => Some(pending.finish().await?),
                None => None,
            };
            let pending = self.table.borrow().prepare(&interface.user_exports).await?;
            let reservation = commit::reserve(&running, &incoming, schema, self.options.limits.max_state_bytes)?;
            // Let events queued during the preparation run now rather than during the pause.
            next_task().await;
            if !Rc::ptr_eq(&running, &self.current_instance()?) {
                continue;
            }
            // The pause: from here to the rebind, nothing awaits.
            let clock = Clock::start();
            let (report, saved) = commit::transfer(&running, &incoming, schema, Some(reservation), self.options.limits.max_state_bytes)?;
            let mut table = self.table.try_borrow_mut().map_err(|_| LoaderError::Reentrant)?;
            table.adopt(pending);
            table.bind(&incoming);
            table.set_probation(ready_standby.is_some());
            drop(table);
            let pause_ms = clock.elapsed();
            let info = VersionInfo::of(&interface, &incoming.sha256);
            let from_version = running.version();
            {
                let mut state = self.state.borrow_mut();
                state.previous = Some(Previous {
                    module: running.module.clone(),
                    interface: running.interface.clone(),
                    sha256: running.sha256.clone(),
                    snapshot: Some(Snapshot::InPlace { instance: running.clone(), saved }),
                });
                state.current = Some(Rc::new(incoming));
                state.probation = ready_standby.map(|standby| Probation { calls_left: self.options.auto_rollback_calls, standby });
            }
            self.emit_commit(&info.version, &from_version, schema, pause_ms, &report);
            // Events waiting since the pause run first; then the snapshot is copied out of
            // the old instance, which is dropped.
            next_task().await;
            self.settle_snapshot(&running);
            self.retire(running);
            return Ok(info);
        }
    }

    /// Copy the snapshot out of `replaced` (if a rollback has not used it meanwhile).
    fn settle_snapshot(&self, replaced: &Rc<GuestInstance>) {
        let mut state = self.state.borrow_mut();
        let Some(previous) = state.previous.as_mut() else { return };
        let in_place = matches!(&previous.snapshot, Some(Snapshot::InPlace { instance, .. }) if Rc::ptr_eq(instance, replaced));
        if !in_place {
            return;
        }
        let settled = previous.snapshot.take().map(Snapshot::settle).transpose();
        match settled {
            Ok(snapshot) => previous.snapshot = snapshot,
            Err(e) => {
                drop(state);
                self.emit_error(&e);
            }
        }
    }

    /// A fresh instance of the running version, for a synchronous rollback during the
    /// probation of its successor (none when probation is off).
    fn start_standby(&self, running: Rc<GuestInstance>) -> Result<Option<(Rc<GuestInstance>, PendingInstance)>, LoaderError> {
        if self.options.auto_rollback_calls == 0 {
            return Ok(None);
        }
        let pending = GuestInstance::start(
            running.module.clone(),
            running.interface.clone(),
            running.sha256.clone(),
            &self.options.app_imports,
            self.emitter.clone(),
        )?;
        Ok(Some((running, pending)))
    }

    /// Go back to the previous version, carrying the state back (the newer version
    /// down-migrates it). With `allow_snapshot`, a version that cannot hand its state back
    /// is replaced by the state saved when it was swapped in; otherwise that is refused.
    pub async fn rollback(self: &Rc<Self>, allow_snapshot: bool) -> Result<VersionInfo, LoaderError> {
        let _turn = self.queue.enter().await;
        let result = self.rollback_now(allow_snapshot).await;
        if let Err(e) = &result {
            // A failed rollback may have used up the probation standby.
            self.sync_probation_flag();
            self.emit_error(e);
        }
        result
    }

    /// Route calls through the guard exactly while a probation is under way.
    fn sync_probation_flag(&self) {
        let on = self.state.try_borrow().map(|s| s.probation.is_some()).unwrap_or(false);
        if let Ok(table) = self.table.try_borrow() {
            table.set_probation(on);
        }
    }

    async fn rollback_now(self: &Rc<Self>, allow_snapshot: bool) -> Result<VersionInfo, LoaderError> {
        let standby = self.state.borrow_mut().probation.take().map(|p| p.standby);
        let target = match standby {
            Some(standby) => standby,
            None => {
                let (module, interface, sha256) = {
                    let state = self.state.borrow();
                    let previous = state.previous.as_ref().ok_or(LoaderError::RollbackUnavailable)?;
                    (previous.module.clone(), previous.interface.clone(), previous.sha256.clone())
                };
                let clock = Clock::start();
                let instance = GuestInstance::new(module, interface, sha256, &self.options.app_imports, self.emitter.clone()).await?;
                self.emit(Event::new("instantiate", Some(&instance.version()), Some(clock.elapsed())));
                instance
            }
        };
        self.restore_previous(target, "manual", allow_snapshot)
    }

    /// Synchronously bind `target` (an instance of the previous version) with the state
    /// carried back from the current one, or the snapshot.
    fn restore_previous(&self, target: GuestInstance, reason: &'static str, allow_snapshot: bool) -> Result<VersionInfo, LoaderError> {
        let running = self.current_instance()?;
        let clock = Clock::start();
        let (source, report) = {
            let state = self.state.try_borrow().map_err(|_| LoaderError::Reentrant)?;
            let previous = state.previous.as_ref().ok_or(LoaderError::RollbackUnavailable)?;
            carry_back(&running, &target, previous.snapshot.as_ref(), allow_snapshot, self.options.limits.max_state_bytes)?
        };
        let table = self.table.try_borrow().map_err(|_| LoaderError::Reentrant)?;
        table.bind(&target);
        table.set_probation(false);
        drop(table);
        let pause_ms = clock.elapsed();
        let info = VersionInfo::of(&target.interface, &target.sha256);
        {
            let mut state = self.state.borrow_mut();
            state.current = Some(Rc::new(target));
            state.previous = None;
            state.probation = None;
        }
        self.emit(Event::new("rollback", Some(&info.version), Some(pause_ms)).with(Detail {
            bytes: Some(report.bytes),
            from_version: Some(running.version()),
            reason: Some(reason),
            state_source: Some(source),
            ..Detail::default()
        }));
        self.retire(running);
        Ok(info)
    }

    /// Call entry `slot_index` of the table: the guard's path, and the bytes helpers'.
    fn invoke(&self, slot_index: u32, args: &Array) -> Result<JsValue, CallFailure> {
        let (target, name, arity) = {
            let table = self.table.try_borrow().map_err(|_| LoaderError::Reentrant)?;
            let entry = table.entry(slot_index).ok_or(LoaderError::Disposed)?;
            (table.target(slot_index), entry.name.clone(), entry.sig.params.len())
        };
        let running = self.current_instance()?;
        let target: Function = target
            .dyn_into()
            .map_err(|_| LoaderError::NotInVersion { name: name.clone(), version: running.version() })?;
        let args = args.slice(0, arity as u32);
        match Reflect::apply(&target, &JsValue::UNDEFINED, &args) {
            Ok(value) => {
                self.count_probation_call();
                Ok(value)
            }
            Err(thrown) if is_trap(&thrown) => Err(self.on_trap(&running, &name, &thrown).into()),
            Err(thrown) => Err(CallFailure::Js(thrown)),
        }
    }

    fn count_probation_call(&self) {
        let Ok(mut state) = self.state.try_borrow_mut() else { return };
        let Some(probation) = state.probation.as_mut() else { return };
        probation.calls_left = probation.calls_left.saturating_sub(1);
        if probation.calls_left > 0 {
            return;
        }
        // Passed: the standby instance is released and calls go straight to the table.
        state.probation = None;
        let version = state.current.as_ref().map(|c| c.version());
        drop(state);
        if let Ok(table) = self.table.try_borrow() {
            table.set_probation(false);
        }
        self.emit(Event::new("probation-passed", version.as_deref(), None));
    }

    /// A trap: on probation, roll back at once; either way, a typed error for the caller.
    fn on_trap(&self, running: &GuestInstance, name: &str, thrown: &JsValue) -> LoaderError {
        let phase = format!("call {name}");
        let LoaderError::GuestTrap { message, .. } = running.trap_error(&phase, thrown) else {
            return LoaderError::Reentrant;
        };
        let standby = self.state.try_borrow_mut().ok().and_then(|mut s| s.probation.take()).map(|p| p.standby);
        let rolled_back = match standby {
            Some(standby) => match self.restore_previous(standby, "trap", true) {
                Ok(_) => true,
                Err(e) => {
                    self.sync_probation_flag();
                    self.emit_error(&e);
                    false
                }
            },
            None => false,
        };
        let error = LoaderError::GuestTrap { phase, message, rolled_back };
        self.emit_error(&error);
        error
    }

    /// Call bytes export `name` with `input`; returns its output.
    pub fn call_bytes(&self, name: &str, input: &[u8]) -> Result<Vec<u8>, CallFailure> {
        let slot_index = {
            let table = self.table.try_borrow().map_err(|_| LoaderError::Reentrant)?;
            let entry = table.entry_named(name).ok_or_else(|| LoaderError::MissingExport { name: name.into() })?;
            if entry.sig != BYTES_FN {
                return Err(LoaderError::InvalidArgument(format!(
                    "export `{name}` has type {}, not the bytes convention {BYTES_FN}",
                    entry.sig
                ))
                .into());
            }
            entry.slot
        };
        let running = self.current_instance()?;
        let len = input.len() as u32;
        let ptr = running.write_new(input)?;
        let args: Array = [JsValue::from(ptr), JsValue::from(len)].into_iter().collect();
        let result = self.invoke(slot_index, &args);
        // A trap may have rolled back: the buffers belong to an instance being dropped.
        let still_running = self.current_instance().map(|c| Rc::ptr_eq(&c, &running)).unwrap_or(false);
        if still_running {
            let _ = running.free(ptr, len);
        }
        let packed = u64::try_from(result?).map_err(|_| LoaderError::InvalidArgument(format!("export `{name}` did not return an i64")))?;
        let (out_ptr, out_len) = unpack(packed);
        let output = running.read(out_ptr, out_len)?;
        running.free(out_ptr, out_len)?;
        Ok(output)
    }

    /// The running guest's state, saved in its own schema.
    pub fn save_state(&self) -> Result<(u32, Vec<u8>), LoaderError> {
        let running = self.current_instance()?;
        let schema = running.interface.metadata.state_schema;
        let (ptr, len) = running.save(schema)?;
        let bytes = running.read(ptr, len);
        running.free(ptr, len)?;
        Ok((schema, bytes?))
    }

    /// Drop every instance and listener; later calls fail with `DISPOSED`.
    pub fn dispose(&self) {
        let running = {
            let mut state = self.state.borrow_mut();
            state.previous = None;
            state.probation = None;
            state.current.take()
        };
        if let Some(running) = running {
            self.retire(running);
        }
        self.emitter.clear();
    }

    /// Stages 1–2. Their events carry no version: the module's is unknown until validated.
    async fn fetch(&self, source: ModuleSource) -> Result<Verified, LoaderError> {
        let cap = self.options.limits.max_module_bytes.min(source.listed_size.unwrap_or(u64::MAX));
        let v = fetch_verified(source, cap).await?;
        let detail = Detail { bytes: Some(v.bytes.len() as u64), ..Detail::default() };
        self.emit(Event::new("fetch", None, Some(v.fetch_ms)).with(detail));
        self.emit(Event::new("compile", None, Some(v.compile_ms)));
        self.emit(Event::new("verify", None, Some(v.verify_ms)));
        Ok(v)
    }

    /// Stage 3; the event names the incoming version.
    fn inspect(&self, verified: &Verified) -> Result<Interface, LoaderError> {
        let clock = Clock::start();
        let app: Vec<String> = Object::keys(&self.options.app_imports).iter().filter_map(|k| k.as_string()).collect();
        let policy = Policy {
            app_functions: AppImports::Only(&app),
            required_exports: &self.options.required_exports,
            max_memory_pages: self.options.limits.max_memory_pages,
        };
        let interface = inspect(&verified.bytes, &policy)?;
        let version = interface.metadata.version.to_string();
        self.emit(Event::new("validate", Some(&version), Some(clock.elapsed())));
        Ok(interface)
    }

    async fn instantiate(&self, verified: &Verified, interface: &Rc<Interface>) -> Result<GuestInstance, LoaderError> {
        let clock = Clock::start();
        let instance = GuestInstance::new(
            verified.module.clone(),
            interface.clone(),
            verified.sha256.to_hex(),
            &self.options.app_imports,
            self.emitter.clone(),
        )
        .await?;
        self.emit(Event::new("instantiate", Some(&instance.version()), Some(clock.elapsed())));
        Ok(instance)
    }

    /// Let a replaced version clean up, then drop it: no reference to it remains.
    fn retire(&self, instance: Rc<GuestInstance>) {
        if let Err(e) = instance.dispose() {
            self.emit_error(&e);
        }
    }

    /// Deliver `event` to the slot's listeners.
    pub fn emit(&self, event: Event) {
        self.emitter.emit(event);
    }

    fn emit_commit(&self, version: &str, from: &str, schema: u32, pause_ms: f64, r: &TransferReport) {
        self.emit(Event::new("commit", Some(version), Some(pause_ms)).with(Detail {
            bytes: Some(r.bytes),
            guest_save_ms: Some(r.save_ms),
            guest_load_ms: Some(r.load_ms),
            state_copy_ms: Some(r.copy_ms),
            schema: Some(schema),
            from_version: Some(from.to_string()),
            ..Detail::default()
        }));
    }

    fn emit_error(&self, e: &LoaderError) {
        let version = self.current_instance().ok().map(|c| c.version());
        self.emit(Event::new("error", version.as_deref(), None).with(Detail {
            code: Some(e.code()),
            message: Some(e.to_string()),
            ..Detail::default()
        }));
    }
}

/// Move the state from the version being left to the previous one: down-migrated by the
/// newer guest if the two share a schema path, else (if allowed) the snapshot.
fn carry_back(
    from: &GuestInstance,
    to: &GuestInstance,
    snapshot: Option<&Snapshot>,
    allow_snapshot: bool,
    max_state: u64,
) -> Result<(&'static str, TransferReport), LoaderError> {
    let carried = transfer_schema(&from.interface.metadata, &to.interface.metadata)
        .map_err(LoaderError::from)
        .and_then(|schema| commit::transfer(from, to, schema, None, max_state));
    match (carried, snapshot) {
        (Ok((report, saved)), _) => {
            saved.release(from);
            Ok(("carried", report))
        }
        (Err(_), Some(snapshot)) if allow_snapshot => Ok(("snapshot", commit::load_snapshot(to, snapshot)?)),
        (Err(e), _) => Err(e),
    }
}
