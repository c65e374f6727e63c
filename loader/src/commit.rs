//! Stage 5 (commit): move the state from the running guest to the incoming one.
//!
//! [`reserve`] runs before the pause: it measures the state, reserves that much (plus
//! headroom) in the incoming guest and touches those pages, and touches a snapshot buffer,
//! so that the pause copies only into memory that is already mapped (a copy into fresh
//! pages is ~15x slower). [`transfer`] is the pause itself: synchronous, no `await`, so no
//! JS event can run between the old guest's save and the new guest's load. Any failure in
//! it leaves the old guest untouched — `state_save` does not modify state — and still bound.

use js_sys::Uint8Array;

use crate::error::LoaderError;
use crate::events::Clock;
use crate::instance::GuestInstance;

/// A buffer reserved in the incoming guest before the pause.
pub struct Reservation {
    ptr: u32,
    len: u32,
}

/// The state of a version as it was when it was replaced, in a schema that version loads:
/// what a rollback restores when the newer version cannot hand its state back.
pub struct Snapshot {
    buf: Uint8Array,
    len: u32,
    /// Schema of the bytes.
    pub schema: u32,
}

impl Snapshot {
    /// A touched buffer of `capacity` bytes, ready to receive a state.
    pub fn with_capacity(capacity: u32, schema: u32) -> Self {
        let buf = Uint8Array::new_with_length(capacity);
        buf.fill(0, 0, capacity);
        Self { buf, len: 0, schema }
    }

    /// Size of the saved state.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Is the snapshot empty?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn store(&mut self, source: &Uint8Array) {
        let len = source.length();
        if len > self.buf.length() {
            self.buf = Uint8Array::new_with_length(len);
        }
        self.buf.set(source, 0);
        self.len = len;
    }
}

/// Timings of one transfer.
#[derive(Clone, Copy, Debug, Default)]
pub struct TransferReport {
    /// State bytes moved.
    pub bytes: u64,
    /// The guest's own `state_save` time.
    pub save_ms: f64,
    /// The guest's own `state_load` time.
    pub load_ms: f64,
    /// Copying the state (and the snapshot) between memories.
    pub copy_ms: f64,
    /// The whole transfer.
    pub total_ms: f64,
}

/// Before the pause: reserve room for the state in `to` and a touched snapshot buffer.
pub fn reserve(
    from: &GuestInstance,
    to: &GuestInstance,
    schema: u32,
    max_state: u64,
) -> Result<(Reservation, Snapshot), LoaderError> {
    let (ptr, len) = from.save(schema)?;
    from.free(ptr, len)?;
    check_state_size(len, max_state)?;
    // Headroom for state that grows between now and the commit.
    let room = len.saturating_add(len / 4).saturating_add(4096).min(max_state.min(u64::from(u32::MAX)) as u32);
    let at = to.alloc(room)?;
    to.view().fill(0, at, at + room);
    Ok((Reservation { ptr: at, len: room }, Snapshot::with_capacity(room, from.interface.metadata.state_schema)))
}

/// The pause: `from.save(schema)` → copy into `to` → `to.load(schema)`, keeping a snapshot
/// of `from`'s state in `snapshot` if one is given.
pub fn transfer(
    from: &GuestInstance,
    to: &GuestInstance,
    schema: u32,
    reservation: Option<Reservation>,
    snapshot: Option<&mut Snapshot>,
    max_state: u64,
) -> Result<TransferReport, LoaderError> {
    let clock = Clock::start();
    let (src, len) = from.save(schema)?;
    let save_ms = clock.elapsed();
    let moved = copy_and_load(from, to, (src, len), schema, reservation, snapshot, max_state, &clock);
    // The old guest's buffer is freed whatever happened: it stays running either way.
    let _ = from.free(src, len);
    let (copy_ms, load_ms) = moved?;
    Ok(TransferReport { bytes: u64::from(len), save_ms, load_ms, copy_ms, total_ms: clock.elapsed() })
}

#[allow(clippy::too_many_arguments)]
fn copy_and_load(
    from: &GuestInstance,
    to: &GuestInstance,
    (src, len): (u32, u32),
    schema: u32,
    reservation: Option<Reservation>,
    snapshot: Option<&mut Snapshot>,
    max_state: u64,
    clock: &Clock,
) -> Result<(f64, f64), LoaderError> {
    check_state_size(len, max_state)?;
    let (dst, room) = match reservation {
        Some(r) if r.len >= len => (r.ptr, r.len),
        other => {
            if let Some(r) = other {
                to.free(r.ptr, r.len)?;
            }
            (to.alloc(len)?, len)
        }
    };
    let copy_start = clock.elapsed();
    let state = from.view().subarray(src, src + len);
    to.view().set(&state, dst);
    if let Some(snapshot) = snapshot {
        if from.interface.metadata.can_load(schema) {
            // The bytes in flight are a state the running guest can load again.
            snapshot.schema = schema;
            snapshot.store(&state);
        } else {
            // It cannot (a downgrade to a schema it does not read): save again in its own.
            let (own, own_len) = from.save(snapshot.schema)?;
            snapshot.store(&from.view().subarray(own, own + own_len));
            from.free(own, own_len)?;
        }
    }
    let before_load = clock.elapsed();
    to.load(dst, len, schema)?;
    let load_ms = clock.elapsed() - before_load;
    to.free(dst, room)?;
    Ok((before_load - copy_start, load_ms))
}

/// Load a snapshot into `to` (a rollback whose newer version cannot hand its state back).
pub fn load_snapshot(to: &GuestInstance, snapshot: &Snapshot) -> Result<TransferReport, LoaderError> {
    let clock = Clock::start();
    let ptr = to.alloc(snapshot.len)?;
    to.view().set(&snapshot.buf.subarray(0, snapshot.len), ptr);
    let loaded = to.load(ptr, snapshot.len, snapshot.schema);
    let _ = to.free(ptr, snapshot.len);
    loaded?;
    let total_ms = clock.elapsed();
    Ok(TransferReport { bytes: u64::from(snapshot.len), save_ms: 0.0, load_ms: total_ms, copy_ms: 0.0, total_ms })
}

fn check_state_size(len: u32, max_state: u64) -> Result<(), LoaderError> {
    if u64::from(len) > max_state {
        return Err(LoaderError::StateTooLarge { limit: max_state, actual: u64::from(len) });
    }
    Ok(())
}
