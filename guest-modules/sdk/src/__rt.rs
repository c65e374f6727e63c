//! Runtime support for the code the macros generate. Not a public API: names and
//! signatures here change whenever the macros change.

use std::alloc::{alloc as raw_alloc, dealloc, Layout};
use std::cell::{Cell, UnsafeCell};
use std::sync::Once;

pub use hotswap_abi::status;

use crate::{log, GuestState, LogLevel, Precopy};

/// Implemented by `#[guest]` for the state type: where its single instance lives.
pub trait Guest: GuestState {
    /// The guest's state storage.
    fn cell() -> &'static StateCell<Self>;
}

/// The guest's state, created on first use.
///
/// A call marks the state busy while it runs. A trap leaves the mark behind, and from then
/// on every call (including `state_save`) traps too: a state a call abandoned half-way is
/// not trusted, so the loader falls back to its pre-swap snapshot.
pub struct StateCell<S> {
    state: UnsafeCell<Option<S>>,
    busy: Cell<bool>,
}

impl<S> std::fmt::Debug for StateCell<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCell").field("busy", &self.busy.get()).finish_non_exhaustive()
    }
}

// SAFETY: wasm32 guests are single-threaded; the busy flag refuses re-entrant access.
unsafe impl<S> Sync for StateCell<S> {}

impl<S: GuestState> StateCell<S> {
    /// Empty storage; the state is `S::default()` until loaded.
    pub const fn new() -> Self {
        Self { state: UnsafeCell::new(None), busy: Cell::new(false) }
    }

    /// Run `f` on the state.
    pub fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        if self.busy.replace(true) {
            fatal("state is unusable: an earlier call trapped half-way, or a call re-entered the guest");
        }
        // SAFETY: the busy flag guarantees this is the only live reference.
        let state = unsafe { &mut *self.state.get() }.get_or_insert_with(S::default);
        let result = f(state);
        self.busy.set(false);
        result
    }

    /// Replace the state with one just loaded.
    pub fn replace(&self, new: S) {
        self.with(|state| *state = new);
    }
}

impl<S: GuestState> Default for StateCell<S> {
    fn default() -> Self {
        Self::new()
    }
}

/// Log `message` as an error and trap. The loader reports the message with the trap.
pub fn fatal(message: &str) -> ! {
    log(LogLevel::Error, message);
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    panic!("{message}");
}

/// Route panic messages to the host log once, before the first guest code runs.
pub fn init() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| log(LogLevel::Error, &info.to_string()))));
}

/// `hotswap_alloc`.
pub fn alloc(len: u32) -> u32 {
    init();
    match Layout::from_size_align(len as usize, 1) {
        // A zero-length buffer needs no memory; any non-zero pointer will do.
        Ok(_) if len == 0 => 1,
        // SAFETY: the layout has a non-zero size.
        Ok(layout) => unsafe { raw_alloc(layout) as u32 },
        Err(_) => 0,
    }
}

/// `hotswap_free`: accepts buffers from [`alloc`] and from [`leak`].
pub fn free(ptr: u32, len: u32) {
    if ptr == 0 || len == 0 {
        return;
    }
    if let Ok(layout) = Layout::from_size_align(len as usize, 1) {
        // SAFETY: the ABI requires (ptr, len) to come from alloc or a returned buffer, both
        // allocated with this layout.
        unsafe { dealloc(ptr as *mut u8, layout) }
    }
}

/// Hand a buffer to the host as a packed `(ptr, len)`; the host frees it with [`free`].
pub fn leak(bytes: Vec<u8>) -> u64 {
    let boxed = bytes.into_boxed_slice();
    let len = boxed.len() as u32;
    let ptr = Box::into_raw(boxed) as *mut u8 as u32;
    hotswap_abi::pack(ptr, len)
}

/// The bytes the host wrote at `(ptr, len)`.
///
/// # Safety
/// `(ptr, len)` must be a live buffer from [`alloc`] that the host filled.
pub unsafe fn input<'a>(ptr: u32, len: u32) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(ptr as *const u8, len as usize) }
}

/// `hotswap_state_save`.
pub fn state_save<S: Guest>(schema: u32) -> u64 {
    init();
    match S::cell().with(|state| state.save(schema)) {
        Ok(bytes) => leak(bytes),
        Err(e) => fatal(&format!("state_save({schema}) failed: {e}")),
    }
}

/// `hotswap_state_load`.
///
/// # Safety
/// As for [`input`].
pub unsafe fn state_load<S: Guest>(ptr: u32, len: u32, schema: u32) -> i32 {
    init();
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { input(ptr, len) };
    match S::load(bytes, schema) {
        Ok(state) => {
            S::cell().replace(state);
            status::OK
        }
        Err(e) => {
            log(LogLevel::Error, &format!("state_load(schema {schema}) failed: {e}"));
            e.status()
        }
    }
}

/// `hotswap_delta_mark`.
pub fn delta_mark<S: Guest + Precopy>() {
    init();
    S::cell().with(Precopy::mark);
}

/// `hotswap_delta_save`.
pub fn delta_save<S: Guest + Precopy>(schema: u32) -> u64 {
    init();
    match S::cell().with(|state| state.delta(schema)) {
        Ok(bytes) => leak(bytes),
        Err(e) => fatal(&format!("delta_save({schema}) failed: {e}")),
    }
}

/// `hotswap_delta_load`.
///
/// # Safety
/// As for [`input`].
pub unsafe fn delta_load<S: Guest + Precopy>(ptr: u32, len: u32, schema: u32) -> i32 {
    init();
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { input(ptr, len) };
    match S::cell().with(|state| state.apply(bytes, schema)) {
        Ok(()) => status::OK,
        Err(e) => {
            log(LogLevel::Error, &format!("delta_load(schema {schema}) failed: {e}"));
            e.status()
        }
    }
}

/// `hotswap_warm`.
pub fn warm<S: Precopy>() {
    init();
    S::warm();
}

/// Decoding of a bytes export's input.
pub trait FromInput<'a>: Sized {
    /// Convert the host's bytes.
    fn from_input(bytes: &'a [u8]) -> Self;
}

impl<'a> FromInput<'a> for &'a [u8] {
    fn from_input(bytes: &'a [u8]) -> Self {
        bytes
    }
}

impl<'a> FromInput<'a> for &'a str {
    fn from_input(bytes: &'a [u8]) -> Self {
        std::str::from_utf8(bytes).unwrap_or_else(|_| fatal("input is not valid UTF-8"))
    }
}

impl FromInput<'_> for Vec<u8> {
    fn from_input(bytes: &[u8]) -> Self {
        bytes.to_vec()
    }
}

impl FromInput<'_> for String {
    fn from_input(bytes: &[u8]) -> Self {
        <&str>::from_input(bytes).to_string()
    }
}

/// Encoding of a bytes export's result.
pub trait IntoOutput {
    /// The bytes handed to the host.
    fn into_output(self) -> Vec<u8>;
}

impl IntoOutput for () {
    fn into_output(self) -> Vec<u8> {
        Vec::new()
    }
}

impl IntoOutput for Vec<u8> {
    fn into_output(self) -> Vec<u8> {
        self
    }
}

impl IntoOutput for String {
    fn into_output(self) -> Vec<u8> {
        self.into_bytes()
    }
}

impl IntoOutput for &str {
    fn into_output(self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl IntoOutput for &[u8] {
    fn into_output(self) -> Vec<u8> {
        self.to_vec()
    }
}

/// An `Err` becomes a trap whose message the loader reports.
impl<T: IntoOutput, E: std::fmt::Display> IntoOutput for Result<T, E> {
    fn into_output(self) -> Vec<u8> {
        match self {
            Ok(value) => value.into_output(),
            Err(e) => fatal(&e.to_string()),
        }
    }
}

/// Run a bytes export: decode the input, call, hand the output to the host.
///
/// # Safety
/// As for [`input`].
pub unsafe fn call_bytes(ptr: u32, len: u32, f: impl FnOnce(&[u8]) -> Vec<u8>) -> u64 {
    init();
    // SAFETY: forwarded from the caller.
    leak(f(unsafe { input(ptr, len) }))
}

/// Types a numeric export may take and return.
pub trait WasmNumber {}
impl WasmNumber for i32 {}
impl WasmNumber for u32 {}
impl WasmNumber for i64 {}
impl WasmNumber for u64 {}
impl WasmNumber for f32 {}
impl WasmNumber for f64 {}
impl WasmNumber for () {}

/// Compile-time check that a numeric export uses only [`WasmNumber`]s.
pub const fn assert_number<T: WasmNumber>() {}
