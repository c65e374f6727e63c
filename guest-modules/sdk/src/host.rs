//! The host services of the `hotswap` import namespace.

/// Severity of a [`log`] message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum LogLevel {
    /// Something failed.
    Error = hotswap_abi::log_level::ERROR,
    /// Something looks wrong.
    Warn = hotswap_abi::log_level::WARN,
    /// Informational.
    Info = hotswap_abi::log_level::INFO,
    /// Developer detail.
    Debug = hotswap_abi::log_level::DEBUG,
}

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "hotswap")]
    unsafe extern "C" {
        pub fn log(level: i32, ptr: *const u8, len: usize);
        pub fn random_fill(ptr: *mut u8, len: usize);
        pub fn now_ms() -> f64;
    }
}

/// Send a message to the host (the loader forwards it to its event listeners and remembers
/// the last error, so a trap reports the panic message that preceded it).
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host reads `len` bytes at `ptr` during the call and keeps no reference.
    unsafe {
        imports::log(level as i32, message.as_ptr(), message.len())
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Fill `buf` with cryptographically secure random bytes from the host.
pub fn random_fill(buf: &mut [u8]) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host writes exactly `buf.len()` bytes at `buf`'s address.
    unsafe {
        imports::random_fill(buf.as_mut_ptr(), buf.len())
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = buf;
}

/// Milliseconds since the Unix epoch, from the host's clock.
pub fn now_ms() -> f64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain call with no pointers.
    unsafe {
        imports::now_ms()
    }
    #[cfg(not(target_arch = "wasm32"))]
    0.0
}

/// getrandom's custom backend, served by [`random_fill`] (feature `getrandom`).
#[cfg(all(feature = "getrandom", target_arch = "wasm32"))]
#[unsafe(no_mangle)]
unsafe extern "Rust" fn __getrandom_v03_custom(dest: *mut u8, len: usize) -> Result<(), getrandom::Error> {
    // SAFETY: getrandom passes a writable buffer of `len` bytes.
    random_fill(unsafe { core::slice::from_raw_parts_mut(dest, len) });
    Ok(())
}
