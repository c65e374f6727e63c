//! The counter test guest.
//!
//! State: a count plus a payload of arbitrary size (so tests and benchmarks can carry
//! kilobytes to megabytes of state through a swap). v2 adds a `step`.
//!
//! Schema 1: `count: i64 LE` then the payload.
//! Schema 2: `b"C2"`, `count: i64 LE`, `step: i64 LE`, then the payload.
use hotswap_guest::{export, guest, GuestState, StateError};

#[cfg(not(feature = "v2"))]
#[cfg_attr(all(not(faulty), not(feature = "precopy")), guest(name = "counter", version = "1.0.0", schema = 1))]
#[cfg_attr(all(faulty, not(feature = "precopy")), guest(name = "counter", version = "1.0.1", schema = 1))]
#[cfg_attr(all(not(faulty), feature = "precopy"), guest(name = "counter", version = "1.0.0", schema = 1, precopy))]
#[cfg_attr(all(faulty, feature = "precopy"), guest(name = "counter", version = "1.0.1", schema = 1, precopy))]
#[derive(Default)]
pub struct Counter {
    count: i64,
    payload: Vec<u8>,
}

#[cfg(feature = "v2")]
#[cfg_attr(
    not(feature = "precopy"),
    guest(name = "counter", version = "2.0.0", schema = 2, migrates_from = [1], migrates_to = [1])
)]
#[cfg_attr(
    feature = "precopy",
    guest(name = "counter", version = "2.0.0", schema = 2, migrates_from = [1], migrates_to = [1], precopy)
)]
pub struct Counter {
    count: i64,
    step: i64,
    payload: Vec<u8>,
}

#[cfg(feature = "v2")]
impl Default for Counter {
    fn default() -> Self {
        Self { count: 0, step: V2_STEP, payload: Vec::new() }
    }
}

/// How much v2 adds per increment.
#[cfg(feature = "v2")]
const V2_STEP: i64 = 2;

const VERSION: &str = if cfg!(feature = "v2") {
    "2.0.0"
} else if cfg!(faulty) {
    "1.0.1"
} else {
    "1.0.0"
};

impl GuestState for Counter {
    fn save(&self, schema: u32) -> Result<Vec<u8>, StateError> {
        let mut out = Vec::with_capacity(self.payload.len() + 18);
        match schema {
            1 => out.extend_from_slice(&self.count.to_le_bytes()),
            #[cfg(feature = "v2")]
            2 => {
                out.extend_from_slice(b"C2");
                out.extend_from_slice(&self.count.to_le_bytes());
                out.extend_from_slice(&self.step.to_le_bytes());
            }
            other => return Err(StateError::UnsupportedSchema(other)),
        }
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    fn load(bytes: &[u8], schema: u32) -> Result<Self, StateError> {
        #[cfg(any(feature = "fault-load-traps", feature = "fault-load-rejects", feature = "fault-load-hangs"))]
        let _ = (bytes, schema);
        #[cfg(feature = "fault-load-traps")]
        panic!("fault-load-traps: state_load always panics");
        #[cfg(feature = "fault-load-rejects")]
        return Err(StateError::malformed("fault-load-rejects: refuses every state"));
        #[cfg(feature = "fault-load-hangs")]
        loop {
            core::hint::black_box((bytes, schema));
        }
        #[cfg(feature = "fault-traps-after-swap")]
        LOADED_BY_SWAP.store(true, core::sync::atomic::Ordering::Relaxed);
        #[allow(unreachable_code)]
        match schema {
            1 => {
                let count = read_i64(bytes, 0)?;
                Ok(Self::from_v1(count, bytes[8..].to_vec()))
            }
            #[cfg(feature = "v2")]
            2 => {
                if bytes.get(..2) != Some(b"C2") {
                    return Err(StateError::malformed("missing C2 tag"));
                }
                Ok(Self { count: read_i64(bytes, 2)?, step: read_i64(bytes, 10)?, payload: bytes[18..].to_vec() })
            }
            other => Err(StateError::UnsupportedSchema(other)),
        }
    }
}

/// The schema this version saves.
#[cfg(feature = "precopy")]
const SCHEMA: u32 = if cfg!(feature = "v2") { 2 } else { 1 };

/// Pre-copy (ABI 1.1): the state is small, so "what changed since the mark" is the whole
/// state when anything changed, and nothing otherwise.
#[cfg(feature = "precopy")]
impl hotswap_guest::Precopy for Counter {
    fn mark(&mut self) {
        MARKED.with(|m| *m.borrow_mut() = self.save(SCHEMA).ok());
    }

    fn delta(&mut self, schema: u32) -> Result<Vec<u8>, StateError> {
        let now = self.save(SCHEMA)?;
        if MARKED.with(|m| m.borrow().as_ref() == Some(&now)) {
            return Ok(Vec::new());
        }
        MARKED.with(|m| *m.borrow_mut() = Some(now));
        self.save(schema)
    }

    fn apply(&mut self, delta: &[u8], schema: u32) -> Result<(), StateError> {
        #[cfg(feature = "fault-delta-rejects")]
        return Err(StateError::malformed(format!(
            "fault-delta-rejects: refuses a {}-byte delta in schema {schema}",
            delta.len()
        )));
        #[allow(unreachable_code)]
        if !delta.is_empty() {
            *self = Self::load(delta, schema)?;
        }
        Ok(())
    }
}

#[cfg(feature = "precopy")]
thread_local! {
    /// The state as it was at the last mark (pre-copy).
    static MARKED: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
}

impl Counter {
    #[cfg(not(feature = "v2"))]
    fn from_v1(count: i64, payload: Vec<u8>) -> Self {
        Self { count, payload }
    }

    /// Migration from schema 1: v1 counted in steps of one; keep the count, adopt v2's step.
    #[cfg(feature = "v2")]
    fn from_v1(count: i64, payload: Vec<u8>) -> Self {
        Self { count, step: V2_STEP, payload }
    }

    fn step(&self) -> i64 {
        #[cfg(feature = "v2")]
        return self.step;
        #[cfg(not(feature = "v2"))]
        1
    }
}

/// Set once a swap handed this version its state: from then on every export panics.
#[cfg(feature = "fault-traps-after-swap")]
static LOADED_BY_SWAP: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The fault of `fault-traps-after-swap`; nothing in the other builds.
fn check_fault() {
    #[cfg(feature = "fault-traps-after-swap")]
    if LOADED_BY_SWAP.load(core::sync::atomic::Ordering::Relaxed) {
        panic!("fault-traps-after-swap: this release breaks after a swap");
    }
}

fn read_i64(bytes: &[u8], at: usize) -> Result<i64, StateError> {
    let raw = bytes.get(at..at + 8).ok_or_else(|| StateError::malformed("state too short"))?;
    Ok(i64::from_le_bytes(raw.try_into().map_err(|_| StateError::malformed("state too short"))?))
}

/// Add one step; returns the new count.
#[export]
pub fn increment(counter: &mut Counter) -> i64 {
    check_fault();
    counter.count += counter.step();
    counter.count
}

/// The current count.
#[export]
pub fn count(counter: &Counter) -> i64 {
    check_fault();
    counter.count
}

/// Add a decimal amount given as text; returns `count=<n>`.
#[export]
pub fn add(counter: &mut Counter, amount: &str) -> Result<String, String> {
    check_fault();
    let n: i64 = amount.trim().parse().map_err(|_| format!("not a number: {amount:?}"))?;
    counter.count += n;
    Ok(format!("count={}", counter.count))
}

/// `counter <version>: <count> (step <n>, <payload bytes> payload bytes)`.
#[export]
pub fn describe(counter: &Counter) -> String {
    check_fault();
    format!("counter {VERSION}: {} (step {}, {} payload bytes)", counter.count, counter.step(), counter.payload.len())
}

/// Replace the payload with `len` deterministic bytes (for state-size tests and benchmarks).
#[export]
pub fn fill(counter: &mut Counter, len: u32) {
    counter.payload = (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
}

/// Echo the input back (the identity, for call-overhead measurements).
#[export]
pub fn echo(_counter: &Counter, input: &[u8]) -> Vec<u8> {
    input.to_vec()
}

/// A pure function of its arguments (the baseline for call-overhead measurements).
#[export]
pub fn mix(a: i32, b: i32) -> i32 {
    a.wrapping_mul(31).wrapping_add(b)
}

#[cfg(any(feature = "ballast-200k", feature = "ballast-2m"))]
#[used]
static BALLAST: [u8; include_bytes!(concat!(env!("OUT_DIR"), "/ballast.bin")).len()] =
    *include_bytes!(concat!(env!("OUT_DIR"), "/ballast.bin"));
