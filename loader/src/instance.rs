//! Stage 3 (instantiate): one running guest — its instance, its memory, its ABI exports —
//! with every call and every `(ptr, len)` it returns checked. Nothing here panics: traps
//! become [`LoaderError::GuestTrap`], bad buffers [`LoaderError::OutOfBounds`].

use std::cell::RefCell;
use std::rc::Rc;

use hotswap_abi::{exports, host, log_level, status, unpack, HOST_MODULE};
use js_sys::{Function, Object, Reflect, Uint8Array, WebAssembly};
use wasm_bindgen::{closure::Closure, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::error::{is_trap, js_message, LoaderError};
use crate::events::{Emitter, Event};
use crate::options::AppImports;
use crate::version::CompiledVersion;

/// What the host imports of one instance share: its memory (known only after
/// instantiation) and the last error the guest logged (reported with its traps).
#[derive(Debug, Default)]
struct HostState {
    memory: Option<WebAssembly::Memory>,
    last_error: Option<String>,
    version: String,
    emitter: Option<Rc<Emitter>>,
}

/// The closures behind an instance's `hotswap` imports; freed with the instance.
#[derive(Debug)]
struct HostImports {
    _log: Closure<dyn FnMut(u32, u32, u32)>,
    _random_fill: Closure<dyn FnMut(u32, u32) -> Result<(), JsValue>>,
    _now_ms: Closure<dyn FnMut() -> f64>,
}

/// A running guest.
#[derive(Debug)]
pub(crate) struct GuestInstance {
    /// The version it runs (kept for rollback after the instance is gone).
    pub compiled: CompiledVersion,
    instance: WebAssembly::Instance,
    memory: WebAssembly::Memory,
    alloc: Function,
    free: Function,
    save: Function,
    load: Function,
    dispose: Option<Function>,
    precopy: Option<PrecopyExports>,
    host: Rc<RefCell<HostState>>,
    _imports: HostImports,
    /// `hotswap_dispose` ran (or would have): the loader calls nothing in it any more.
    retired: std::cell::Cell<bool>,
}

/// The ABI 1.1 pre-copy exports of a guest that declares them (`hotswap_warm` runs in the
/// pre-copy worker only).
#[derive(Debug)]
struct PrecopyExports {
    mark: Function,
    save: Function,
    load: Function,
}

impl PrecopyExports {
    fn of(exports: &Object) -> Result<Self, LoaderError> {
        use hotswap_abi::precopy::{DELTA_LOAD, DELTA_MARK, DELTA_SAVE};
        Ok(Self {
            mark: get(exports, DELTA_MARK.0)?.unchecked_into(),
            save: get(exports, DELTA_SAVE.0)?.unchecked_into(),
            load: get(exports, DELTA_LOAD.0)?.unchecked_into(),
        })
    }
}

/// An instantiation under way: started eagerly so it can overlap a download.
#[derive(Debug)]
pub(crate) struct PendingInstance {
    instantiating: js_sys::Promise,
    compiled: CompiledVersion,
    host: Rc<RefCell<HostState>>,
    imports: HostImports,
}

impl GuestInstance {
    /// Instantiate `compiled`: this runs its start function, if any.
    pub(crate) async fn new(
        compiled: &CompiledVersion,
        app: &AppImports,
        emitter: Rc<Emitter>,
    ) -> Result<Self, LoaderError> {
        Self::start(compiled, app, emitter)?.finish().await
    }

    /// Start instantiating `compiled`; [`PendingInstance::finish`] waits for it.
    pub(crate) fn start(
        compiled: &CompiledVersion,
        app: &AppImports,
        emitter: Rc<Emitter>,
    ) -> Result<PendingInstance, LoaderError> {
        let host = Rc::new(RefCell::new(HostState {
            version: compiled.version(),
            emitter: Some(emitter),
            ..HostState::default()
        }));
        let (import_object, imports) = import_object(&host, &app.0)?;
        let instantiating = WebAssembly::instantiate_module(&compiled.module, &import_object);
        // A pending instance can be abandoned (the swap failed first); its outcome then
        // goes unobserved and must not surface as an unhandled rejection.
        crate::net::ignore_rejection(&instantiating);
        Ok(PendingInstance { instantiating, compiled: compiled.clone(), host, imports })
    }
}

impl PendingInstance {
    /// The instance, once instantiation has finished.
    pub(crate) async fn finish(self) -> Result<GuestInstance, LoaderError> {
        let Self { instantiating, compiled, host, imports } = self;
        let instantiated = JsFuture::from(instantiating).await.map_err(|e| {
            if is_trap(&e) {
                trap("start", &e, None)
            } else {
                LoaderError::InstantiateFailed { message: js_message(&e) }
            }
        })?;
        let instance: WebAssembly::Instance = instantiated.unchecked_into();
        let exports = instance.exports();
        let memory: WebAssembly::Memory = get(&exports, exports::MEMORY)?.unchecked_into();
        host.borrow_mut().memory = Some(memory.clone());
        Ok(GuestInstance {
            alloc: get(&exports, exports::ALLOC.0)?.unchecked_into(),
            free: get(&exports, exports::FREE.0)?.unchecked_into(),
            save: get(&exports, exports::STATE_SAVE.0)?.unchecked_into(),
            load: get(&exports, exports::STATE_LOAD.0)?.unchecked_into(),
            dispose: compiled
                .interface
                .has_dispose
                .then(|| get(&exports, exports::DISPOSE.0))
                .transpose()?
                .map(JsCast::unchecked_into),
            precopy: compiled.interface.precopy.map(|_| PrecopyExports::of(&exports)).transpose()?,
            compiled,
            instance,
            memory,
            host,
            _imports: imports,
            retired: std::cell::Cell::new(false),
        })
    }
}

impl GuestInstance {
    /// The guest's version.
    pub(crate) fn version(&self) -> String {
        self.compiled.version()
    }

    /// The exported function `name`, if the module has it.
    pub(crate) fn export(&self, name: &str) -> Option<Function> {
        Reflect::get(&self.instance.exports(), &name.into()).ok()?.dyn_into().ok()
    }

    /// `hotswap_alloc(len)`.
    pub(crate) fn alloc(&self, len: u32) -> Result<u32, LoaderError> {
        let ptr = self.call(&self.alloc, "alloc", &[len.into()])?;
        let ptr = as_u32(&ptr);
        if ptr == 0 && len > 0 {
            return Err(LoaderError::AllocFailed { len });
        }
        self.check_bounds("alloc", ptr, len)?;
        Ok(ptr)
    }

    /// `hotswap_free(ptr, len)`; a trap here is reported but changes nothing we rely on.
    pub(crate) fn free(&self, ptr: u32, len: u32) -> Result<(), LoaderError> {
        self.call(&self.free, "free", &[ptr.into(), len.into()]).map(drop)
    }

    /// `hotswap_state_save(schema)`: the state's location, bounds-checked.
    pub(crate) fn save(&self, schema: u32) -> Result<(u32, u32), LoaderError> {
        self.buffer_call(&self.save, "save", schema)
    }

    /// `hotswap_state_load(ptr, len, schema)`.
    pub(crate) fn load(&self, ptr: u32, len: u32, schema: u32) -> Result<(), LoaderError> {
        self.status_call(&self.load, "load", ptr, len, schema)
    }

    /// Does it support pre-copy (ABI 1.1)?
    pub(crate) fn has_precopy(&self) -> bool {
        self.precopy.is_some()
    }

    fn precopy_exports(&self) -> Result<&PrecopyExports, LoaderError> {
        self.precopy.as_ref().ok_or_else(|| LoaderError::Internal { what: "pre-copy on a guest without it".into() })
    }

    /// `hotswap_delta_mark()`.
    pub(crate) fn delta_mark(&self) -> Result<(), LoaderError> {
        self.call(&self.precopy_exports()?.mark, "delta mark", &[]).map(drop)
    }

    /// `hotswap_delta_save(schema)`: the changes since the mark, bounds-checked.
    pub(crate) fn delta_save(&self, schema: u32) -> Result<(u32, u32), LoaderError> {
        self.buffer_call(&self.precopy_exports()?.save, "delta save", schema)
    }

    /// `hotswap_delta_load(ptr, len, schema)`.
    pub(crate) fn delta_load(&self, ptr: u32, len: u32, schema: u32) -> Result<(), LoaderError> {
        self.status_call(&self.precopy_exports()?.load, "delta load", ptr, len, schema)
    }

    /// A `(schema) -> packed(ptr, len)` ABI function: the buffer's location, bounds-checked.
    fn buffer_call(&self, f: &Function, phase: &str, schema: u32) -> Result<(u32, u32), LoaderError> {
        let packed = self.call(f, phase, &[schema.into()])?;
        let not_i64 = || LoaderError::GuestTrap {
            phase: phase.into(),
            message: "did not return an i64".into(),
            rolled_back: false,
        };
        let (ptr, len) = unpacked(packed).ok_or_else(not_i64)?;
        self.check_bounds(phase, ptr, len)?;
        Ok((ptr, len))
    }

    /// A `(ptr, len, schema) -> status` ABI function.
    fn status_call(&self, f: &Function, phase: &str, ptr: u32, len: u32, schema: u32) -> Result<(), LoaderError> {
        let code = self.call(f, phase, &[ptr.into(), len.into(), schema.into()])?;
        match code.as_f64().map(|c| c as i32) {
            Some(status::OK) => Ok(()),
            other => Err(LoaderError::StateLoadRejected {
                status: other.unwrap_or(status::FAILED),
                detail: self.host.borrow_mut().last_error.take(),
            }),
        }
    }

    /// The guest's memory, to copy whole (pre-copy).
    pub(crate) fn memory(&self) -> &WebAssembly::Memory {
        &self.memory
    }

    /// `hotswap_dispose()`, if exported, once this version is no longer bound: the last call
    /// the loader makes into it (ABI), whoever retires it, however many times.
    pub(crate) fn dispose(&self) -> Result<(), LoaderError> {
        let dispose = self.dispose.as_ref().filter(|_| !self.retired.get());
        let result = dispose.map_or(Ok(()), |f| self.call(f, "dispose", &[]).map(drop));
        self.retired.set(true);
        result
    }

    /// A fresh view of the whole memory. Views detach when memory grows, so never keep
    /// one across a guest call.
    pub(crate) fn view(&self) -> Uint8Array {
        Uint8Array::new(&self.memory.buffer())
    }

    /// Current memory size in bytes.
    pub(crate) fn memory_bytes(&self) -> u64 {
        buffer_bytes(&self.memory.buffer())
    }

    /// Copy `(ptr, len)` out of guest memory into a new JS array. Bytes never pass through
    /// the loader's own memory, which would keep its high-water mark forever.
    pub(crate) fn read(&self, ptr: u32, len: u32) -> Result<Uint8Array, LoaderError> {
        self.check_bounds("read", ptr, len)?;
        Ok(self.view().slice(ptr, ptr + len))
    }

    /// Allocate a guest buffer holding `bytes`.
    pub(crate) fn write_new(&self, bytes: &Uint8Array) -> Result<u32, LoaderError> {
        let ptr = self.alloc(bytes.length())?;
        self.view().set(bytes, ptr);
        Ok(ptr)
    }

    /// Fail unless `(ptr, len)` lies inside memory.
    pub(crate) fn check_bounds(&self, phase: &str, ptr: u32, len: u32) -> Result<(), LoaderError> {
        let memory_bytes = self.memory_bytes();
        if !inside(ptr, len, memory_bytes) {
            return Err(LoaderError::OutOfBounds { phase: phase.into(), ptr, len, memory_bytes });
        }
        Ok(())
    }

    /// Call a guest function; a trap becomes [`LoaderError::GuestTrap`] with the guest's
    /// last logged error (a Rust guest logs its panic message just before trapping).
    pub(crate) fn call(&self, f: &Function, phase: &str, args: &[JsValue]) -> Result<JsValue, LoaderError> {
        // A swap or rollback under way when its slot was disposed must not call it again.
        if self.retired.get() {
            return Err(LoaderError::Disposed {});
        }
        let args: js_sys::Array = args.iter().collect();
        Reflect::apply(f, &JsValue::UNDEFINED, &args).map_err(|e| self.trap_error(phase, &e))
    }

    /// Convert what a guest call threw.
    pub(crate) fn trap_error(&self, phase: &str, thrown: &JsValue) -> LoaderError {
        let last = self.host.borrow_mut().last_error.take();
        trap(phase, thrown, last)
    }
}

fn trap(phase: &str, thrown: &JsValue, guest_message: Option<String>) -> LoaderError {
    let mut message = js_message(thrown);
    if let Some(m) = guest_message {
        message = format!("{message} (guest: {m})");
    }
    LoaderError::GuestTrap { phase: phase.into(), message, rolled_back: false }
}

fn as_u32(value: &JsValue) -> u32 {
    // i32 results arrive as JS numbers, possibly negative for pointers above 2 GiB.
    value.as_f64().map(|n| n as i64 as u32).unwrap_or(0)
}

fn get(exports: &Object, name: &str) -> Result<JsValue, LoaderError> {
    match Reflect::get(exports, &name.into()) {
        Ok(v) if !v.is_undefined() => Ok(v),
        _ => Err(hotswap_inspect::InspectError::MissingExport { name: name.into() }.into()),
    }
}

/// `{ hotswap: { log, random_fill, now_ms }, app: { … } }`.
fn import_object(host_state: &Rc<RefCell<HostState>>, app: &Object) -> Result<(Object, HostImports), LoaderError> {
    let state = host_state.clone();
    let log = Closure::<dyn FnMut(u32, u32, u32)>::new(move |level: u32, ptr: u32, len: u32| {
        host_log(&state, level as i32, ptr, len);
    });
    let state = host_state.clone();
    let random_fill = Closure::<dyn FnMut(u32, u32) -> Result<(), JsValue>>::new(move |ptr: u32, len: u32| {
        host_random_fill(&state, ptr, len).map_err(|why| js_sys::Error::new(why).into())
    });
    let now_ms = Closure::<dyn FnMut() -> f64>::new(js_sys::Date::now);
    let ns = Object::new();
    let set = |name: &str, f: &JsValue| Reflect::set(&ns, &name.into(), f).map(drop);
    set(host::LOG.0, log.as_ref())
        .and_then(|_| set(host::RANDOM_FILL.0, random_fill.as_ref()))
        .and_then(|_| set(host::NOW_MS.0, now_ms.as_ref()))
        .map_err(|e| LoaderError::internal("building the import object", &e))?;
    let imports = Object::new();
    let _ = Reflect::set(&imports, &HOST_MODULE.into(), &ns);
    let _ = Reflect::set(&imports, &hotswap_abi::APP_MODULE.into(), app);
    Ok((imports, HostImports { _log: log, _random_fill: random_fill, _now_ms: now_ms }))
}

/// The guest's memory as a view, if `(ptr, len)` lies inside it.
fn guest_slice(state: &HostState, ptr: u32, len: u32) -> Option<Uint8Array> {
    let buffer = state.memory.as_ref()?.buffer();
    inside(ptr, len, buffer_bytes(&buffer)).then(|| Uint8Array::new(&buffer).subarray(ptr, ptr + len))
}

/// Bytes in an `ArrayBuffer`. Not `ArrayBuffer::byte_length`, a `u32`: a memory of 4 GiB
/// would read as 0 bytes.
pub(crate) fn buffer_bytes(buffer: &JsValue) -> u64 {
    Reflect::get(buffer, &"byteLength".into()).ok().and_then(|n| n.as_f64()).map_or(0, |n| n as u64)
}

/// Whether `(ptr, len)` lies inside `size` bytes and ends where a view's `u32` offsets
/// reach (a buffer ending at exactly 4 GiB does not).
fn inside(ptr: u32, len: u32, size: u64) -> bool {
    let end = u64::from(ptr) + u64::from(len);
    end <= size && end <= u64::from(u32::MAX)
}

fn host_log(state: &Rc<RefCell<HostState>>, level: i32, ptr: u32, len: u32) {
    let Ok(mut s) = state.try_borrow_mut() else { return };
    let Some(bytes) = guest_slice(&s, ptr, len) else { return };
    let message = String::from_utf8_lossy(&bytes.to_vec()).into_owned();
    if level == log_level::ERROR {
        s.last_error = Some(message.clone());
    }
    let (version, emitter) = (s.version.clone(), s.emitter.clone());
    drop(s);
    // Delivered from a microtask: a listener must not run inside a guest call (it could
    // re-enter the slot, and it would lengthen a commit's pause).
    if let Some(emitter) = emitter {
        wasm_bindgen_futures::spawn_local(async move {
            emitter.emit(&Event::Log { version, level, message });
        });
    }
}

/// Fill `(ptr, len)` with random bytes, or throw (the guest call fails): a guest that asked for
/// randomness must never go on with bytes that are not random.
fn host_random_fill(state: &Rc<RefCell<HostState>>, ptr: u32, len: u32) -> Result<(), &'static str> {
    let s = state.try_borrow().map_err(|_| "random_fill: re-entrant call")?;
    let target = match (&s.memory, guest_slice(&s, ptr, len)) {
        // The memory is known once instantiation returns, after the start function.
        (None, _) => {
            return Err("random_fill: the guest's memory is not reachable from a start function (docs/ABI.md)")
        }
        (Some(_), None) => return Err("random_fill: (ptr, len) lies outside the guest's memory"),
        (Some(_), Some(target)) => target,
    };
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into())
        .and_then(|c| c.dyn_into::<web_sys::Crypto>())
        .map_err(|_| "random_fill: no crypto.getRandomValues here")?;
    // getRandomValues fills at most 64 KiB per call.
    let mut offset = 0;
    while offset < len {
        let end = len.min(offset + 65_536);
        crypto
            .get_random_values_with_array_buffer_view(&target.subarray(offset, end))
            .map_err(|_| "random_fill: getRandomValues failed")?;
        offset = end;
    }
    Ok(())
}

/// The `(ptr, len)` in a packed `i64` a guest returned. JS sees an `i64` as a *signed*
/// BigInt, so a pointer at 2 GiB or above arrives negative: it is reinterpreted, not refused.
pub(crate) fn unpacked(value: JsValue) -> Option<(u32, u32)> {
    i64::try_from(value).ok().map(|signed| unpack(signed as u64))
}
