//! Stage 4 (commit): move the state from the running guest to the incoming one and rebind.
//!
//! [`reserve`] runs before the pause: it measures the state, reserves that much (plus
//! headroom) in the incoming guest and touches those pages, so the pause copies only into
//! memory that is already mapped (a copy into fresh pages is ~15x slower). [`commit`] is the
//! pause itself, a synchronous function over a [`PreparedSwap`]: it cannot `await`, so no JS
//! event can run between the old guest's save and the rebind. Any failure in it leaves the
//! old guest untouched — `state_save` does not modify state — and still bound.
//!
//! The old guest's saved bytes double as the rollback snapshot. They are copied out only
//! after the pause ([`Snapshot::settle`]): once the table is rebound nothing calls the old
//! instance, so its memory is frozen, and until then a rollback reads them in place.
//!
//! With pre-copy (ABI 1.1, `precopy.rs`) the new guest already holds the state when the
//! pause begins; the pause asks the old guest only for what changed since (`delta_save`).
//! Nothing: it rebinds. Something: it declines ([`Attempt::NotQuiet`]) so the change can be
//! converted off the main thread and the pause tried again — or, out of rounds, applies it.
//! The replaced instance itself is then the snapshot ([`Snapshot::Frozen`]).

use std::rc::Rc;

use js_sys::Uint8Array;

use crate::error::LoaderError;
use crate::events::Clock;
use crate::instance::GuestInstance;
use crate::probation::Standby;
use crate::shim::{CallTable, PendingShims};

/// A buffer reserved in the incoming guest before the pause.
#[derive(Debug)]
pub(crate) struct Reservation {
    ptr: u32,
    len: u32,
}

/// The buffer the old guest saved its state into, still in its memory (owned by the host).
#[derive(Debug)]
pub(crate) struct SavedState {
    ptr: u32,
    len: u32,
    schema: u32,
}

impl SavedState {
    /// Give the buffer back to the guest that saved it.
    pub(crate) fn release(self, from: &GuestInstance) {
        let _ = from.free(self.ptr, self.len);
    }
}

/// How the state reaches the new guest.
#[derive(Debug)]
pub(crate) enum Transfer {
    /// ABI 1.0: saved, copied and loaded inside the pause, into room reserved before it.
    Copy(Reservation),
    /// ABI 1.1: converted before the pause; the pause takes only what changed since. When
    /// `rounds_left` is 0 a change is applied inside the pause rather than declined.
    Precopy {
        /// Pauses that may still decline.
        rounds_left: u32,
    },
}

/// Everything a swap needs at the pause, prepared (asynchronously) before it.
#[derive(Debug)]
pub(crate) struct PreparedSwap {
    /// The version running now.
    pub running: Rc<GuestInstance>,
    /// The new version: its default state (copy), or the state converted before (pre-copy).
    pub incoming: GuestInstance,
    /// The schema the state travels in.
    pub schema: u32,
    /// How the state travels.
    pub transfer: Transfer,
    /// Shims for exports `incoming` adds.
    pub shims: PendingShims,
    /// What a trap during probation rolls back to (none when probation is off).
    pub standby: Option<Standby>,
    /// `limits.maxStateBytes`.
    pub max_state: u64,
}

/// What a pause did.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// The new version is bound.
    Committed(Committed),
    /// Pre-copy: the state changed since the conversion; nothing was rebound. `delta` is the
    /// change (the old guest's mark has moved past it).
    NotQuiet {
        /// The swap, to prepare again with the change.
        prepared: PreparedSwap,
        /// What changed.
        delta: Uint8Array,
    },
}

/// A swap that took effect.
#[derive(Debug)]
pub(crate) struct Committed {
    /// The version replaced, no longer called.
    pub replaced: Rc<GuestInstance>,
    /// The version now bound.
    pub current: Rc<GuestInstance>,
    /// The replaced version's state at the commit: the rollback snapshot.
    pub snapshot: Snapshot,
    /// The schema it travelled in.
    pub schema: u32,
    /// Timings.
    pub report: TransferReport,
    /// The whole pause, in milliseconds.
    pub pause_ms: f64,
    /// The rollback standby, if probation is on.
    pub standby: Option<Standby>,
}

/// The pause: bring the incoming guest's state up to date — save, copy, load (ABI 1.0), or
/// only what changed since the pre-copy (ABI 1.1) — and rebind every export. Synchronous by
/// its signature, so no JS event can run in between; on error nothing was rebound and the
/// running guest's state is unchanged.
pub(crate) fn commit(prepared: PreparedSwap, table: &mut CallTable) -> Result<Attempt, LoaderError> {
    let clock = Clock::start();
    let PreparedSwap { running, incoming, schema, transfer: how, shims, standby, max_state } = prepared;
    let (report, snapshot) = match how {
        Transfer::Copy(reservation) => {
            let (report, saved) = transfer(&running, &incoming, schema, Some(reservation), max_state)?;
            (report, Snapshot::InPlace { instance: running.clone(), saved })
        }
        Transfer::Precopy { rounds_left } => match catch_up(&running, &incoming, schema, max_state, rounds_left > 0)? {
            CaughtUp::Yes(report) => (report, Snapshot::Frozen(running.clone())),
            CaughtUp::No(delta) => {
                let transfer = Transfer::Precopy { rounds_left: rounds_left - 1 };
                let prepared = PreparedSwap { running, incoming, schema, transfer, shims, standby, max_state };
                return Ok(Attempt::NotQuiet { prepared, delta });
            }
        },
    };
    table.adopt(shims);
    table.bind(&incoming);
    Ok(Attempt::Committed(Committed {
        replaced: running,
        current: Rc::new(incoming),
        snapshot,
        schema,
        report,
        pause_ms: clock.elapsed(),
        standby,
    }))
}

enum CaughtUp {
    Yes(TransferReport),
    No(Uint8Array),
}

/// Pre-copy, inside the pause: what changed since the conversion. Nothing, or (when it may
/// not decline) the change applied to the incoming guest: caught up. Otherwise the change.
fn catch_up(
    running: &GuestInstance,
    incoming: &GuestInstance,
    schema: u32,
    max_state: u64,
    may_decline: bool,
) -> Result<CaughtUp, LoaderError> {
    let clock = Clock::start();
    let (ptr, len) = running.delta_save(schema)?;
    let save_ms = clock.elapsed();
    let delta = check_state_size(len, max_state).and_then(|()| running.read(ptr, len));
    let _ = running.free(ptr, len);
    let delta = delta?;
    if delta.length() == 0 {
        return Ok(CaughtUp::Yes(TransferReport { save_ms, ..TransferReport::default() }));
    }
    if may_decline {
        return Ok(CaughtUp::No(delta));
    }
    let before_load = clock.elapsed();
    let at = incoming.write_new(&delta)?;
    let loaded = incoming.delta_load(at, len, schema);
    let _ = incoming.free(at, len);
    loaded?;
    let load_ms = clock.elapsed() - before_load;
    Ok(CaughtUp::Yes(TransferReport { bytes: u64::from(len), save_ms, load_ms, copy_ms: 0.0 }))
}

/// The state of a replaced version as it was at the commit: what a rollback restores when
/// the newer version cannot hand its state back.
#[derive(Debug)]
pub(crate) enum Snapshot {
    /// Still in the replaced instance's memory, which nothing calls any more.
    InPlace {
        /// The replaced instance.
        instance: Rc<GuestInstance>,
        /// Its saved state.
        saved: SavedState,
    },
    /// Copied out; the instance is gone.
    Copied {
        /// The bytes.
        bytes: Uint8Array,
        /// Their schema, one the replaced version loads.
        schema: u32,
    },
    /// Pre-copy: the replaced instance itself, which nothing calls any more. Rolling back to
    /// it is a rebind.
    Frozen(Rc<GuestInstance>),
}

impl Snapshot {
    /// Copy the state out of the replaced instance and let the instance go. If the bytes
    /// are in a schema that version cannot load (a downgrade), it saves again in its own.
    pub(crate) fn settle(self) -> Result<Snapshot, LoaderError> {
        let Snapshot::InPlace { instance, saved } = self else { return Ok(self) };
        let metadata = &instance.compiled.interface.metadata;
        let own = metadata.state_schema;
        if metadata.can_load(saved.schema) {
            let bytes = instance.read(saved.ptr, saved.len)?;
            let schema = saved.schema;
            saved.release(&instance);
            return Ok(Snapshot::Copied { bytes, schema });
        }
        saved.release(&instance);
        let (ptr, len) = instance.save(own)?;
        let bytes = instance.read(ptr, len);
        let _ = instance.free(ptr, len);
        Ok(Snapshot::Copied { bytes: bytes?, schema: own })
    }
}

/// Timings of one transfer.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TransferReport {
    /// State bytes moved.
    pub bytes: u64,
    /// The guest's own `state_save` time.
    pub save_ms: f64,
    /// The guest's own `state_load` time.
    pub load_ms: f64,
    /// Copying the state between memories.
    pub copy_ms: f64,
}

/// Before the pause: reserve room for the state in `to`, and map its pages.
pub(crate) fn reserve(
    from: &GuestInstance,
    to: &GuestInstance,
    schema: u32,
    max_state: u64,
) -> Result<Reservation, LoaderError> {
    let (ptr, len) = from.save(schema)?;
    from.free(ptr, len)?;
    check_state_size(len, max_state)?;
    // Headroom for state that grows between now and the commit.
    let room = len.saturating_add(len / 4).saturating_add(4096).min(max_state.min(u64::from(u32::MAX)) as u32);
    let at = to.alloc(room)?;
    to.view().fill(0, at, at + room);
    Ok(Reservation { ptr: at, len: room })
}

/// The pause: `from.save(schema)` → copy into `to` → `to.load(schema)`. On success the
/// saved buffer stays in `from` for the caller to snapshot or release.
pub(crate) fn transfer(
    from: &GuestInstance,
    to: &GuestInstance,
    schema: u32,
    reservation: Option<Reservation>,
    max_state: u64,
) -> Result<(TransferReport, SavedState), LoaderError> {
    let clock = Clock::start();
    let (src, len) = from.save(schema)?;
    let save_ms = clock.elapsed();
    let saved = SavedState { ptr: src, len, schema };
    match copy_and_load(from, to, &saved, reservation, max_state, &clock) {
        Ok((copy_ms, load_ms)) => {
            let report = TransferReport { bytes: u64::from(len), save_ms, load_ms, copy_ms };
            Ok((report, saved))
        }
        Err(e) => {
            saved.release(from);
            Err(e)
        }
    }
}

fn copy_and_load(
    from: &GuestInstance,
    to: &GuestInstance,
    saved: &SavedState,
    reservation: Option<Reservation>,
    max_state: u64,
    clock: &Clock,
) -> Result<(f64, f64), LoaderError> {
    let (src, len, schema) = (saved.ptr, saved.len, saved.schema);
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
    to.view().set(&from.view().subarray(src, src + len), dst);
    let before_load = clock.elapsed();
    to.load(dst, len, schema)?;
    let load_ms = clock.elapsed() - before_load;
    to.free(dst, room)?;
    Ok((before_load - copy_start, load_ms))
}

/// Load a snapshot into `to`, a fresh instance of the version the snapshot was taken from.
pub(crate) fn load_snapshot(to: &GuestInstance, snapshot: &Snapshot) -> Result<TransferReport, LoaderError> {
    match snapshot {
        Snapshot::Copied { bytes, schema } => {
            let clock = Clock::start();
            let len = bytes.length();
            let ptr = to.alloc(len)?;
            to.view().set(bytes, ptr);
            let loaded = to.load(ptr, len, *schema);
            let _ = to.free(ptr, len);
            loaded?;
            Ok(TransferReport { bytes: u64::from(len), load_ms: clock.elapsed(), ..TransferReport::default() })
        }
        Snapshot::InPlace { instance, saved } => {
            // Not settled yet: the frozen instance hands its state over like any transfer.
            let schema = if to.compiled.interface.metadata.can_load(saved.schema) {
                saved.schema
            } else {
                instance.compiled.interface.metadata.state_schema
            };
            hand_over(instance, to, schema)
        }
        Snapshot::Frozen(instance) => hand_over(instance, to, instance.compiled.interface.metadata.state_schema),
    }
}

/// A replaced instance hands its whole state to `to`, a fresh instance of the same version.
fn hand_over(instance: &GuestInstance, to: &GuestInstance, schema: u32) -> Result<TransferReport, LoaderError> {
    let (report, again) = transfer(instance, to, schema, None, u64::MAX)?;
    again.release(instance);
    Ok(report)
}

fn check_state_size(len: u32, max_state: u64) -> Result<(), LoaderError> {
    if u64::from(len) > max_state {
        return Err(LoaderError::StateTooLarge { limit: max_state, actual: u64::from(len) });
    }
    Ok(())
}
