//! The stable exports object. Callers keep its functions forever; a swap only rewrites
//! the entries of one `WebAssembly.Table` they call through.
//!
//! Each function of the object is a tiny generated wasm shim:
//!
//! ```text
//! (func $increment (result i64)
//!   global.get $probation
//!   if (result i64)
//!     i32.const 0 call $guard           ;; new version on probation: via JS, traps caught
//!   else
//!     i32.const 0 call_indirect $table  ;; otherwise: straight to the current version
//!   end)
//! ```
//!
//! A wasm-to-wasm `call_indirect` costs a few ns, where reassigning JS properties would
//! make every call site polymorphic and a Proxy costs ~7x (see the benchmark). While a new
//! version is on probation, the shim routes calls through the guard, a JS function that
//! sees traps and can roll back.

use hotswap_abi::{FuncSig, ValType};
use js_sys::{Array, Object, Reflect, WebAssembly};
use wasm_bindgen::{closure::Closure, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_encoder::{
    BlockType, CodeSection, EntityType, ExportKind, ExportSection, Function, FunctionSection, GlobalType,
    ImportSection, Module, RefType, TableType, TypeSection,
};

use crate::error::{js_message, LoaderError};
use crate::instance::GuestInstance;

/// The guard: `(entry index, arguments) -> result`, throwing on a trap.
pub type GuardFn = dyn FnMut(u32, Array) -> Result<JsValue, JsValue>;

type GuardClosure = Closure<dyn FnMut(u32, JsValue, JsValue, JsValue, JsValue, JsValue, JsValue) -> Result<JsValue, JsValue>>;

/// One function of the exports object.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Export name.
    pub name: String,
    /// Its type, fixed for the slot's lifetime.
    pub sig: FuncSig,
    /// Its table index. A failed swap can leave unused slots, so this is not the position.
    pub slot: u32,
}

/// Shims for exports a new version adds, compiled but not yet visible to callers.
pub struct PendingShims {
    fns: Vec<(Entry, JsValue)>,
}

/// The table, the probation flag, and the exports object built on them.
pub struct CallTable {
    table: WebAssembly::Table,
    probation: WebAssembly::Global,
    entries: Vec<Entry>,
    exports: Object,
    guard: GuardClosure,
}

impl CallTable {
    /// An empty table whose guard calls `guard`.
    pub fn new(mut guard: Box<GuardFn>) -> Result<Self, LoaderError> {
        let table = WebAssembly::Table::new(&descriptor(&[("element", "anyfunc".into()), ("initial", 0.into())]))
            .map_err(internal)?;
        let probation =
            WebAssembly::Global::new(&descriptor(&[("value", "i32".into()), ("mutable", true.into())]), &0.into())
                .map_err(internal)?;
        let guard = GuardClosure::new(move |index: u32, a: JsValue, b: JsValue, c: JsValue, d: JsValue, e: JsValue, f: JsValue| {
            let args: Array = [a, b, c, d, e, f].into_iter().collect();
            guard(index, args)
        });
        Ok(Self { table, probation, entries: Vec::new(), exports: Object::new(), guard })
    }

    /// The object handed to callers; its functions never change.
    pub fn exports(&self) -> &Object {
        &self.exports
    }

    /// Name and type of every entry.
    pub fn signatures(&self) -> Vec<(String, FuncSig)> {
        self.entries.iter().map(|e| (e.name.clone(), e.sig.clone())).collect()
    }

    /// The entry at table index `slot`.
    pub fn entry(&self, slot: u32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.slot == slot)
    }

    /// The entry named `name`.
    pub fn entry_named(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The function behind table index `slot` right now (`null` if this version lacks it).
    pub fn target(&self, slot: u32) -> JsValue {
        self.table.get_raw(slot).unwrap_or(JsValue::NULL)
    }

    /// The stable shim function for `name`.
    pub fn shim(&self, name: &str) -> Option<js_sys::Function> {
        Reflect::get(&self.exports, &name.into()).ok()?.dyn_into().ok()
    }

    /// Compile shims for the exports of `wanted` the table does not have yet. Async and
    /// invisible to callers until [`CallTable::adopt`].
    pub async fn prepare(&self, wanted: &[(String, FuncSig)]) -> Result<PendingShims, LoaderError> {
        let fresh: Vec<(String, FuncSig)> =
            wanted.iter().filter(|(n, _)| self.entry_named(n).is_none()).cloned().collect();
        if fresh.is_empty() {
            return Ok(PendingShims { fns: Vec::new() });
        }
        let first = self.table.length();
        self.table.grow(fresh.len() as u32).map_err(internal)?;
        let bytes = encode_shims(&fresh, first, self.table.length());
        let imports = self.shim_imports(fresh.len());
        let result = JsFuture::from(WebAssembly::instantiate_buffer(&bytes, &imports)).await.map_err(internal)?;
        let exports = Reflect::get(&result, &"instance".into())
            .map_err(internal)?
            .unchecked_into::<WebAssembly::Instance>()
            .exports();
        let fns = fresh
            .into_iter()
            .zip(first..)
            .map(|((name, sig), slot)| {
                let f = Reflect::get(&exports, &name.as_str().into()).unwrap_or_default();
                (Entry { name, sig, slot }, f)
            })
            .collect();
        Ok(PendingShims { fns })
    }

    /// Make prepared shims visible on the exports object.
    pub fn adopt(&mut self, pending: PendingShims) {
        for (entry, f) in pending.fns {
            let _ = Reflect::set(&self.exports, &entry.name.as_str().into(), &f);
            self.entries.push(entry);
        }
    }

    /// Point every entry at `instance`'s export of that name (or `null` if it has none).
    pub fn bind(&self, instance: &GuestInstance) {
        for entry in &self.entries {
            let target = instance.export(&entry.name).map(JsValue::from).unwrap_or(JsValue::NULL);
            let _ = self.table.set_raw(entry.slot, &target);
        }
    }

    /// Route calls through the guard (`true`) or straight to the table (`false`).
    pub fn set_probation(&self, on: bool) {
        self.probation.set_value(&JsValue::from(i32::from(on)));
    }

    /// Is the guard on?
    pub fn on_probation(&self) -> bool {
        self.probation.value().as_f64() == Some(1.0)
    }

    fn shim_imports(&self, count: usize) -> Object {
        let env = Object::new();
        let _ = Reflect::set(&env, &"table".into(), &self.table);
        let _ = Reflect::set(&env, &"probation".into(), &self.probation);
        for i in 0..count {
            let _ = Reflect::set(&env, &format!("guard{i}").into(), self.guard.as_ref());
        }
        let imports = Object::new();
        let _ = Reflect::set(&imports, &"env".into(), &env);
        imports
    }
}

fn descriptor(fields: &[(&str, JsValue)]) -> Object {
    let o = Object::new();
    for (k, v) in fields {
        let _ = Reflect::set(&o, &(*k).into(), v);
    }
    o
}

fn internal(e: JsValue) -> LoaderError {
    LoaderError::InstantiateFailed(format!("call shim: {}", js_message(&e)))
}

fn wasm_type(t: &ValType) -> wasm_encoder::ValType {
    match t {
        ValType::I32 => wasm_encoder::ValType::I32,
        ValType::I64 => wasm_encoder::ValType::I64,
        ValType::F32 => wasm_encoder::ValType::F32,
        ValType::F64 => wasm_encoder::ValType::F64,
    }
}

/// The shim module for `entries`, which occupy table slots `first..`.
fn encode_shims(entries: &[(String, FuncSig)], first: u32, table_len: u32) -> Vec<u8> {
    let mut types = TypeSection::new();
    let mut imports = ImportSection::new();
    let mut functions = FunctionSection::new();
    let mut exports = ExportSection::new();
    let mut code = CodeSection::new();
    imports.import(
        "env",
        "table",
        EntityType::Table(TableType {
            element_type: RefType::FUNCREF,
            table64: false,
            minimum: u64::from(table_len),
            maximum: None,
            shared: false,
        }),
    );
    imports.import(
        "env",
        "probation",
        EntityType::Global(GlobalType { val_type: wasm_encoder::ValType::I32, mutable: true, shared: false }),
    );
    let count = entries.len() as u32;
    for (i, (name, sig)) in entries.iter().enumerate() {
        let i = i as u32;
        let params: Vec<_> = sig.params.iter().map(wasm_type).collect();
        let results: Vec<_> = sig.results.iter().map(wasm_type).collect();
        // Type 2i: the export's own type; type 2i+1: the guard's, with the entry index first.
        types.ty().function(params.iter().copied(), results.iter().copied());
        let guard_params: Vec<_> = std::iter::once(wasm_encoder::ValType::I32).chain(params.iter().copied()).collect();
        types.ty().function(guard_params, results.iter().copied());
        imports.import("env", &format!("guard{i}"), EntityType::Function(2 * i + 1));
        functions.function(2 * i);
        exports.export(name, ExportKind::Func, count + i);
        code.function(&shim_body(first + i, i, 2 * i, params.len() as u32, results.first().copied()));
    }
    let mut module = Module::new();
    module.section(&types).section(&imports).section(&functions).section(&exports).section(&code);
    module.finish()
}

fn shim_body(slot: u32, guard_func: u32, type_index: u32, arity: u32, result: Option<wasm_encoder::ValType>) -> Function {
    let mut f = Function::new([]);
    let block = result.map_or(BlockType::Empty, BlockType::Result);
    let mut ins = f.instructions();
    ins.global_get(0).if_(block).i32_const(slot as i32);
    for p in 0..arity {
        ins.local_get(p);
    }
    ins.call(guard_func).else_();
    for p in 0..arity {
        ins.local_get(p);
    }
    ins.i32_const(slot as i32).call_indirect(0, type_index).end().end();
    f
}
