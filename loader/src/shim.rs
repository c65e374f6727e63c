//! The stable exports object. Callers keep its functions forever; a swap only rewrites the
//! entries of one `WebAssembly.Table` they call through.
//!
//! Each function of the object is a tiny wasm shim, generated when a name first appears:
//!
//! ```text
//! (func $increment (result i64)
//!   global.get $probation
//!   if (result i64)
//!     i32.const 0 call $guard           ;; a new version on probation: via JS, traps caught
//!   else
//!     i32.const 0 call_indirect $table  ;; otherwise: straight to the current version
//!   end)
//! (func $increment_missing (result i64)   ;; in the table while a version lacks the export
//!   i32.const 0 call $guard)
//! ```
//!
//! A wasm-to-wasm `call_indirect` costs a few ns, where reassigning JS properties would make
//! every call site polymorphic and a Proxy costs ~7x (see the benchmark). While a new
//! version is on probation the shim routes calls through the guard, a JS function that sees
//! traps and can roll back; an export the running version lacks is bound to its `missing`
//! function, which takes the guard's path too, so the call fails with `NOT_IN_VERSION`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use hotswap_abi::{FuncSig, ValType, MAX_USER_PARAMS};
use hotswap_inspect::Export;
use js_sys::{Array, Function, Object, Reflect, WeakRef, WebAssembly};
use wasm_bindgen::{closure::Closure, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::error::LoaderError;
use crate::instance::GuestInstance;

/// The guard of one table: `(table index, arguments) -> result`, throwing on a trap.
pub(crate) type GuardFn = dyn Fn(u32, Array) -> Result<JsValue, JsValue>;

type GuardClosure =
    Closure<dyn FnMut(u32, u32, JsValue, JsValue, JsValue, JsValue, JsValue, JsValue) -> Result<JsValue, JsValue>>;
const _: () = assert!(MAX_USER_PARAMS == 6, "the guard closure forwards exactly MAX_USER_PARAMS arguments");

thread_local! {
    /// The guard of every live table, by table id.
    static GUARDS: RefCell<Vec<(u32, Rc<GuardFn>)>> = RefCell::default();
    static NEXT_TABLE_ID: Cell<u32> = const { Cell::new(1) };
    /// The one JS function every shim module imports as its guard. It outlives every table,
    /// so a function a caller kept after its slot was dropped still throws a typed error.
    static GUARD: GuardClosure = GuardClosure::new(|table: u32, index: u32, a, b, c, d, e, f| {
        let guard = GUARDS.with(|g| g.borrow().iter().find(|(id, _)| *id == table).map(|(_, f)| f.clone()));
        let Some(guard) = guard else { return Err(LoaderError::Disposed {}.to_js()) };
        guard(index, [a, b, c, d, e, f].into_iter().collect())
    });
}

/// One function of the exports object.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// The export it stands for, whose type is fixed for the slot's lifetime.
    pub export: Export,
    /// Its table index. A failed swap can leave unused indices, so this is not the position.
    pub slot: u32,
    /// The stable function callers hold.
    shim: Function,
    /// Bound in the table while the running version lacks the export.
    missing: Function,
}

/// Shims for exports a new version adds, compiled but not yet visible to callers.
#[derive(Debug)]
pub(crate) struct PendingShims {
    entries: Vec<Entry>,
}

/// Shims being compiled (see [`CallTable::prepare`]).
#[derive(Debug)]
pub(crate) struct ShimsUnderway {
    fresh: Vec<Export>,
    first: u32,
    instantiating: Option<js_sys::Promise>,
}

impl ShimsUnderway {
    /// The compiled shims.
    pub(crate) async fn finish(self) -> Result<PendingShims, LoaderError> {
        let Some(instantiating) = self.instantiating else { return Ok(PendingShims { entries: Vec::new() }) };
        let instantiated = JsFuture::from(instantiating).await.map_err(shim_error)?;
        let exports = Reflect::get(&instantiated, &"instance".into())
            .map_err(shim_error)?
            .unchecked_into::<WebAssembly::Instance>()
            .exports();
        let function = |name: String| -> Result<Function, LoaderError> {
            Reflect::get(&exports, &name.into()).and_then(|f| f.dyn_into::<Function>()).map_err(shim_error)
        };
        let mut entries = Vec::with_capacity(self.fresh.len());
        for (i, (export, slot)) in self.fresh.into_iter().zip(self.first..).enumerate() {
            let (shim, missing) = (function(encode::shim_name(i))?, function(encode::missing_name(i))?);
            entries.push(Entry { export, slot, shim, missing });
        }
        Ok(PendingShims { entries })
    }
}

fn shim_error(e: JsValue) -> LoaderError {
    LoaderError::internal("compiling the call shims", &e)
}

/// Why calls go through the guard.
#[derive(Clone, Copy, Debug)]
pub(crate) enum GuardReason {
    /// A new version is on probation: a trap rolls it back.
    Probation = 1,
    /// The running guest's memory is being copied (pre-copy): a call completes the copy first.
    Capture = 2,
}

/// Whether calls go through the guard: a mutable wasm global every shim reads, on while any
/// reason holds.
#[derive(Clone, Debug)]
pub(crate) struct GuardFlag {
    global: WebAssembly::Global,
    reasons: Rc<Cell<u8>>,
}

impl GuardFlag {
    /// Route calls through the guard for `reason` (`true`), or stop doing so for it.
    pub(crate) fn set(&self, reason: GuardReason, on: bool) {
        let reasons = if on { self.reasons.get() | reason as u8 } else { self.reasons.get() & !(reason as u8) };
        self.reasons.set(reasons);
        self.global.set_value(&JsValue::from(i32::from(reasons != 0)));
    }
}

/// The table, the guard flag, and the exports object built on them.
///
/// The loader holds the exports object weakly, and the object holds the app's `HotSwap`
/// strongly (a hidden symbol property): while the app keeps either, both live; once it keeps
/// neither, the `HotSwap` can be freed, which disposes the slot. A new object with the same
/// functions is made if one is asked for after the old one was collected.
pub(crate) struct CallTable {
    id: u32,
    table: WebAssembly::Table,
    flag: GuardFlag,
    entries: Vec<Entry>,
    exports: RefCell<Option<WeakRef<Object>>>,
    owner: Option<WeakRef<Object>>,
}

impl Drop for CallTable {
    fn drop(&mut self) {
        GUARDS.with(|g| g.borrow_mut().retain(|(id, _)| *id != self.id));
    }
}

impl std::fmt::Debug for CallTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallTable").field("entries", &self.entries).finish_non_exhaustive()
    }
}

impl CallTable {
    /// An empty table whose guard calls `guard`.
    pub(crate) fn new(guard: Rc<GuardFn>) -> Result<Self, LoaderError> {
        let table = WebAssembly::Table::new(&descriptor(&[("element", "anyfunc".into()), ("initial", 0.into())]))
            .map_err(|e| LoaderError::internal("WebAssembly.Table", &e))?;
        let flag =
            WebAssembly::Global::new(&descriptor(&[("value", "i32".into()), ("mutable", true.into())]), &0.into())
                .map_err(|e| LoaderError::internal("WebAssembly.Global", &e))?;
        let id = NEXT_TABLE_ID.with(|next| next.replace(next.get() + 1));
        GUARDS.with(|g| g.borrow_mut().push((id, guard)));
        let flag = GuardFlag { global: flag, reasons: Rc::default() };
        Ok(Self { id, table, flag, entries: Vec::new(), exports: RefCell::default(), owner: None })
    }

    /// The object handed to callers; its functions never change.
    pub(crate) fn exports(&self) -> Object {
        if let Some(alive) = self.exports.borrow().as_ref().and_then(WeakRef::deref) {
            return alive;
        }
        let exports = Object::new();
        for entry in &self.entries {
            let _ = Reflect::set(&exports, &entry.export.name.as_str().into(), &entry.shim);
        }
        if let Some(owner) = self.owner.as_ref().and_then(WeakRef::deref) {
            link_owner(&exports, &owner);
        }
        *self.exports.borrow_mut() = Some(WeakRef::new(&exports));
        exports
    }

    /// The JS object that owns this table (the app's `HotSwap`): every exports object keeps
    /// it alive.
    pub(crate) fn set_owner(&mut self, owner: &Object) {
        self.owner = Some(WeakRef::new(owner));
        if let Some(exports) = self.exports.borrow().as_ref().and_then(WeakRef::deref) {
            link_owner(&exports, owner);
        }
    }

    /// The flag every shim reads.
    pub(crate) fn flag(&self) -> &GuardFlag {
        &self.flag
    }

    /// Every export callers may hold, with its type.
    pub(crate) fn held(&self) -> Vec<Export> {
        self.entries.iter().map(|e| e.export.clone()).collect()
    }

    /// The entry at table index `slot`.
    pub(crate) fn entry(&self, slot: u32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.slot == slot)
    }

    /// The entry named `name`.
    pub(crate) fn entry_named(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.export.name == name)
    }

    /// Start compiling shims for the exports of `wanted` the table does not have yet. The
    /// result is invisible to callers until [`CallTable::adopt`].
    pub(crate) fn prepare(&self, wanted: &[Export]) -> Result<ShimsUnderway, LoaderError> {
        let fresh: Vec<Export> = wanted.iter().filter(|e| self.entry_named(&e.name).is_none()).cloned().collect();
        if fresh.is_empty() {
            return Ok(ShimsUnderway { fresh, first: 0, instantiating: None });
        }
        let first = self.table.length();
        self.table.grow(fresh.len() as u32).map_err(shim_error)?;
        let sigs: Vec<&FuncSig> = fresh.iter().map(|e| &e.sig).collect();
        let bytes = encode::shim_module(&sigs, self.id, first, self.table.length());
        let instantiating = WebAssembly::instantiate_buffer(&bytes, &self.shim_imports(fresh.len()));
        Ok(ShimsUnderway { fresh, first, instantiating: Some(instantiating) })
    }

    /// Make prepared shims visible on the exports object.
    pub(crate) fn adopt(&mut self, pending: PendingShims) {
        let exports = self.exports.borrow().as_ref().and_then(WeakRef::deref);
        for entry in pending.entries {
            if let Some(exports) = &exports {
                let _ = Reflect::set(exports, &entry.export.name.as_str().into(), &entry.shim);
            }
            self.entries.push(entry);
        }
    }

    /// Point every entry at `instance`'s export of that name, or at its `missing` function.
    pub(crate) fn bind(&self, instance: &GuestInstance) {
        for entry in &self.entries {
            let target = instance.export(&entry.export.name).unwrap_or_else(|| entry.missing.clone());
            let _ = self.table.set_raw(entry.slot, &target);
        }
    }

    /// Point every entry at its `missing` function: calls take the guard's path (which fails
    /// with `DISPOSED` once the slot runs nothing), and no instance stays reachable.
    pub(crate) fn unbind(&self) {
        for entry in &self.entries {
            let _ = self.table.set_raw(entry.slot, &entry.missing);
        }
    }

    fn shim_imports(&self, count: usize) -> Object {
        let env = Object::new();
        let _ = Reflect::set(&env, &"table".into(), &self.table);
        let _ = Reflect::set(&env, &"flag".into(), &self.flag.global);
        GUARD.with(|guard| {
            for i in 0..count {
                let _ = Reflect::set(&env, &encode::guard_name(i).into(), guard.as_ref());
            }
        });
        let imports = Object::new();
        let _ = Reflect::set(&imports, &"env".into(), &env);
        imports
    }
}

/// `exports[Symbol.for("wasm-hotswap.owner")] = owner`, not enumerable.
fn link_owner(exports: &Object, owner: &Object) {
    let key = js_sys::Symbol::for_("wasm-hotswap.owner");
    let descriptor = descriptor(&[("value", owner.into()), ("enumerable", false.into())]);
    let _ = Reflect::define_property(exports, &key.into(), &descriptor);
}

fn descriptor(fields: &[(&str, JsValue)]) -> Object {
    let o = Object::new();
    for (k, v) in fields {
        let _ = Reflect::set(&o, &(*k).into(), v);
    }
    o
}

/// The shim module's binary encoding, by hand: it is a few dozen bytes of five sections, and
/// a general-purpose encoder would cost the loader more than the rest of this file.
mod encode {
    use super::{FuncSig, ValType};

    const FUNCTION_TYPE: u8 = 0x60;
    const FUNCREF: u8 = 0x70;
    const EMPTY_BLOCK: u8 = 0x40;
    const GLOBAL_GET: u8 = 0x23;
    const LOCAL_GET: u8 = 0x20;
    const I32_CONST: u8 = 0x41;
    const IF: u8 = 0x04;
    const ELSE: u8 = 0x05;
    const END: u8 = 0x0b;
    const CALL: u8 = 0x10;
    const CALL_INDIRECT: u8 = 0x11;

    /// Export name of shim `i` (the stable function callers hold).
    pub(super) fn shim_name(i: usize) -> String {
        format!("s{i}")
    }

    /// Export name of the `missing` function of shim `i`.
    pub(super) fn missing_name(i: usize) -> String {
        format!("m{i}")
    }

    /// Import name of the guard of shim `i`.
    pub(super) fn guard_name(i: usize) -> String {
        format!("g{i}")
    }

    /// The module for shims of types `sigs`, which occupy indices `first..` of table `table`:
    /// imports `env.table`, `env.flag` and one guard per shim; exports `s<i>` and `m<i>`.
    pub(super) fn shim_module(sigs: &[&FuncSig], table: u32, first: u32, table_len: u32) -> Vec<u8> {
        let n = sigs.len() as u32;
        let mut types = Vec::new();
        let mut imports = (0u32, Vec::new());
        let mut functions = Vec::new();
        let mut exports = Vec::new();
        let mut code = Vec::new();
        // Type 2i: the export's own type; type 2i+1: its guard's, with the table id and the
        // table index first.
        for sig in sigs {
            types.push(FUNCTION_TYPE);
            vec_of(&mut types, sig.params.iter().map(val_type));
            vec_of(&mut types, sig.results.iter().map(val_type));
            types.push(FUNCTION_TYPE);
            let guard_params: Vec<u8> = [0x7f, 0x7f].into_iter().chain(sig.params.iter().map(val_type)).collect();
            vec_of(&mut types, guard_params.into_iter());
            vec_of(&mut types, sig.results.iter().map(val_type));
        }
        import(&mut imports, "table", &[0x01, FUNCREF, 0x00]);
        uleb(&mut imports.1, u64::from(table_len));
        import(&mut imports, "flag", &[0x03, 0x7f, 0x01]);
        for i in 0..n {
            import(&mut imports, &guard_name(i as usize), &[0x00]);
            uleb(&mut imports.1, u64::from(2 * i + 1));
        }
        // Functions: the guards (imported) are 0..n, the shims n..2n, the missing 2n..3n.
        for i in 0..2 * n {
            uleb(&mut functions, u64::from(2 * (i % n)));
        }
        for i in 0..n {
            export(&mut exports, &shim_name(i as usize), n + i);
            export(&mut exports, &missing_name(i as usize), 2 * n + i);
        }
        let bodies: Vec<Vec<u8>> = (0..n)
            .map(|i| shim_body(sigs[i as usize], table, first + i, i))
            .chain((0..n).map(|i| missing_body(sigs[i as usize], table, first + i, i)))
            .collect();
        uleb(&mut code, u64::from(2 * n));
        for body in bodies {
            uleb(&mut code, body.len() as u64);
            code.extend(body);
        }
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        section(&mut module, 1, n * 2, &types);
        section(&mut module, 2, imports.0, &imports.1);
        section(&mut module, 3, 2 * n, &functions);
        section(&mut module, 7, 2 * n, &exports);
        module.push(10);
        uleb(&mut module, code.len() as u64);
        module.extend(code);
        module
    }

    /// `flag ? guard(table, slot, args) : call_indirect[slot](args)`
    fn shim_body(sig: &FuncSig, table: u32, slot: u32, guard: u32) -> Vec<u8> {
        let mut body = vec![0x00, GLOBAL_GET, 0x00, IF];
        body.push(sig.results.first().map_or(EMPTY_BLOCK, val_type));
        guard_call(&mut body, sig, table, slot, guard);
        body.push(ELSE);
        locals(&mut body, sig);
        body.push(I32_CONST);
        sleb(&mut body, i64::from(slot));
        body.push(CALL_INDIRECT);
        uleb(&mut body, u64::from(2 * guard));
        body.extend([0x00, END, END]);
        body
    }

    /// `guard(table, slot, args)`
    fn missing_body(sig: &FuncSig, table: u32, slot: u32, guard: u32) -> Vec<u8> {
        let mut body = vec![0x00];
        guard_call(&mut body, sig, table, slot, guard);
        body.push(END);
        body
    }

    fn guard_call(body: &mut Vec<u8>, sig: &FuncSig, table: u32, slot: u32, guard: u32) {
        body.push(I32_CONST);
        sleb(body, i64::from(table));
        body.push(I32_CONST);
        sleb(body, i64::from(slot));
        locals(body, sig);
        body.push(CALL);
        uleb(body, u64::from(guard));
    }

    fn locals(body: &mut Vec<u8>, sig: &FuncSig) {
        for p in 0..sig.params.len() {
            body.push(LOCAL_GET);
            uleb(body, p as u64);
        }
    }

    fn val_type(t: &ValType) -> u8 {
        match t {
            ValType::I32 => 0x7f,
            ValType::I64 => 0x7e,
            ValType::F32 => 0x7d,
            ValType::F64 => 0x7c,
        }
    }

    fn vec_of(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = u8>) {
        uleb(out, items.len() as u64);
        out.extend(items);
    }

    /// An import from `env`; the descriptor's index follows (pushed by the caller).
    fn import(imports: &mut (u32, Vec<u8>), name: &str, kind: &[u8]) {
        imports.0 += 1;
        string(&mut imports.1, "env");
        string(&mut imports.1, name);
        imports.1.extend_from_slice(kind);
    }

    fn export(out: &mut Vec<u8>, name: &str, function: u32) {
        string(out, name);
        out.push(0x00);
        uleb(out, u64::from(function));
    }

    fn section(module: &mut Vec<u8>, id: u8, count: u32, items: &[u8]) {
        let mut body = Vec::new();
        uleb(&mut body, u64::from(count));
        body.extend_from_slice(items);
        module.push(id);
        uleb(module, body.len() as u64);
        module.extend(body);
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        uleb(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }

    fn uleb(out: &mut Vec<u8>, mut value: u64) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn sleb(out: &mut Vec<u8>, mut value: i64) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
            out.push(if done { byte } else { byte | 0x80 });
            if done {
                return;
            }
        }
    }

    #[cfg(all(test, not(target_arch = "wasm32")))]
    mod tests {
        use hotswap_abi::ValType::*;

        use super::*;

        fn validate(bytes: &[u8]) -> wasmparser::types::Types {
            wasmparser::Validator::new().validate_all(bytes).unwrap_or_else(|e| panic!("invalid shim module: {e}"))
        }

        #[test]
        fn the_shim_module_is_valid_wasm_for_every_kind_of_signature() {
            let sigs = [
                FuncSig::new(&[], &[]),
                FuncSig::new(&[I32, I32], &[I64]),
                FuncSig::new(&[I64, F32, F64, I32, I32, I32], &[F64]),
            ];
            let refs: Vec<&FuncSig> = sigs.iter().collect();
            for first in [0, 63, 64, 100_000] {
                validate(&shim_module(&refs, first + 1, first, first + 3));
            }
        }

        #[test]
        fn it_imports_the_table_flag_and_guards_and_exports_shims_and_missing() {
            let sig = FuncSig::new(&[I32], &[I32]);
            let bytes = shim_module(&[&sig], 1, 7, 8);
            let mut imports = Vec::new();
            let mut exports = Vec::new();
            for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
                match payload.unwrap() {
                    wasmparser::Payload::ImportSection(r) => {
                        for i in r.into_imports() {
                            imports.push(i.unwrap().name.to_string());
                        }
                    }
                    wasmparser::Payload::ExportSection(r) => {
                        for e in r {
                            exports.push(e.unwrap().name.to_string());
                        }
                    }
                    _ => {}
                }
            }
            assert_eq!(imports, ["table", "flag", "g0"]);
            assert_eq!(exports, ["s0", "m0"]);
        }

        #[test]
        fn leb128_matches_the_spec_examples() {
            let mut out = Vec::new();
            uleb(&mut out, 624_485);
            assert_eq!(out, [0xe5, 0x8e, 0x26]);
            out.clear();
            sleb(&mut out, -123_456);
            assert_eq!(out, [0xc0, 0xbb, 0x78]);
            out.clear();
            sleb(&mut out, 64);
            assert_eq!(out, [0xc0, 0x00]);
        }
    }
}
