//! Calls into the running guest that go through the slot rather than straight through the
//! call table: the guard's path (a version on probation, or an export the running version
//! lacks), traps that roll back, and the bytes helpers.

use std::rc::Rc;

use hotswap_abi::BYTES_FN;
use hotswap_inspect::InspectError;
use js_sys::{Array, Reflect, Uint8Array};
use wasm_bindgen::JsValue;

use super::{CallFailure, Slot};
use crate::error::{is_trap, LoaderError};
use crate::events::{Event, RollbackReason};
use crate::instance::{unpacked, GuestInstance};
use crate::probation::{Counted, Standby};

impl Slot {
    /// Call table entry `slot_index`: the guard's path (probation, or an export the running
    /// version lacks) and the bytes helpers'.
    pub(super) fn invoke(&self, slot_index: u32, args: &Array) -> Result<JsValue, CallFailure> {
        self.complete_capture();
        let export = {
            let table = self.table.try_borrow().map_err(|_| LoaderError::Reentrant {})?;
            table.entry(slot_index).ok_or(LoaderError::Disposed {})?.export.clone()
        };
        let running = self.current_instance()?;
        let target = running
            .export(&export.name)
            .ok_or_else(|| LoaderError::NotInVersion { name: export.name.clone(), version: running.version() })?;
        let args = args.slice(0, export.sig.params.len() as u32);
        match Reflect::apply(&target, &JsValue::UNDEFINED, &args) {
            Ok(value) => {
                self.count_probation_call();
                Ok(value)
            }
            Err(thrown) if is_trap(&thrown) => Err(self.on_trap(&running, &export.name, &thrown).into()),
            Err(thrown) => Err(CallFailure::Js(thrown)),
        }
    }

    fn count_probation_call(&self) {
        let Ok(mut state) = self.state.try_borrow_mut() else { return };
        if state.probation.count_call() == Counted::Passed {
            let version = state.current.as_ref().map(|c| c.version()).unwrap_or_default();
            drop(state);
            self.emit(&Event::ProbationPassed { version });
        }
    }

    /// A trap: on probation, roll back at once; either way, a typed error for the caller.
    fn on_trap(&self, running: &GuestInstance, name: &str, thrown: &JsValue) -> LoaderError {
        let phase = format!("call {name}");
        let LoaderError::GuestTrap { message, .. } = running.trap_error(&phase, thrown) else {
            return LoaderError::Reentrant {};
        };
        let standby = self.state.try_borrow_mut().ok().and_then(|mut s| s.probation.end());
        let restored = match standby {
            Some(Standby::Fresh(standby)) => Some(self.restore_previous(Rc::new(standby), RollbackReason::Trap, true)),
            Some(Standby::Snapshot) => Some(self.restore_snapshot_instance(RollbackReason::Trap)),
            None => None,
        };
        let rolled_back = match restored {
            Some(Ok(_)) => true,
            Some(Err(e)) => {
                self.emit_error(&e);
                false
            }
            None => false,
        };
        let error = LoaderError::GuestTrap { phase, message, rolled_back };
        self.emit_error(&error);
        error
    }

    /// Call bytes export `name` with `input`; returns its output.
    pub fn call_bytes(&self, name: &str, input: &[u8]) -> Result<Vec<u8>, CallFailure> {
        Ok(self.call_array(name, &Uint8Array::from(input))?.to_vec())
    }

    /// [`Slot::call_bytes`] over JS arrays: the bytes go from JS to the guest and back
    /// without passing through the loader's memory.
    pub(crate) fn call_array(&self, name: &str, input: &Uint8Array) -> Result<Uint8Array, CallFailure> {
        let slot_index = {
            let table = self.table.try_borrow().map_err(|_| LoaderError::Reentrant {})?;
            let entry = table
                .entry_named(name)
                .ok_or_else(|| LoaderError::from(InspectError::MissingExport { name: name.into() }))?;
            // Exported by an earlier version only: what a call through `exports` says too.
            let running = self.current_instance()?;
            if running.export(name).is_none() {
                return Err(LoaderError::NotInVersion { name: name.into(), version: running.version() }.into());
            }
            if entry.export.sig != BYTES_FN {
                let found = entry.export.sig.to_string();
                return Err(LoaderError::from(InspectError::ExportSignature {
                    name: name.into(),
                    expected: BYTES_FN,
                    found,
                })
                .into());
            }
            entry.slot
        };
        self.complete_capture();
        let running = self.current_instance()?;
        let len = input.length();
        let ptr = running.write_new(input)?;
        let args: Array = [JsValue::from(ptr), JsValue::from(len)].into_iter().collect();
        let result = self.invoke(slot_index, &args);
        // A trap may have rolled back: the buffers belong to an instance being dropped.
        let still_running = self.current_instance().map(|c| Rc::ptr_eq(&c, &running)).unwrap_or(false);
        if still_running {
            let _ = running.free(ptr, len);
        }
        let (out_ptr, out_len) = unpacked(result?)
            .ok_or_else(|| LoaderError::Internal { what: format!("export `{name}` did not return an i64") })?;
        let output = running.read(out_ptr, out_len)?;
        running.free(out_ptr, out_len)?;
        Ok(output)
    }

    /// The running guest's state, saved in its own schema.
    pub fn save_state(&self) -> Result<(u32, Vec<u8>), LoaderError> {
        self.save_state_array().map(|(schema, bytes)| (schema, bytes.to_vec()))
    }

    /// [`Slot::save_state`] into a JS array.
    pub(crate) fn save_state_array(&self) -> Result<(u32, Uint8Array), LoaderError> {
        self.complete_capture();
        let running = self.current_instance()?;
        let schema = running.compiled.interface.metadata.state_schema;
        let (ptr, len) = running.save(schema)?;
        let bytes = running.read(ptr, len);
        running.free(ptr, len)?;
        Ok((schema, bytes?))
    }
}
