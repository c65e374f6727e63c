//! Probation: a new version's first calls. A trap among them rolls back, synchronously, to
//! a fresh instance of the previous version prepared before the commit (the standby), or —
//! after a pre-copy swap — to the replaced instance itself, kept as the snapshot.
//!
//! The rule "calls go through the guard exactly while a probation is under way" lives
//! here: [`Probation`] owns the shims' guard flag and sets it on every change.

use crate::instance::GuestInstance;
use crate::shim::{GuardFlag, GuardReason};

/// The probation of the running version, if any.
#[derive(Debug)]
pub(crate) struct Probation {
    flag: GuardFlag,
    under_way: Option<UnderWay>,
}

#[derive(Debug)]
struct UnderWay {
    calls_left: u32,
    standby: Standby,
}

/// What a trap during probation rolls back to.
#[derive(Debug)]
pub(crate) enum Standby {
    /// A fresh instance of the previous version: the state is carried back to it, or the
    /// snapshot loaded into it.
    Fresh(GuestInstance),
    /// The previous version's snapshot instance (pre-copy): rebound as it is.
    Snapshot,
}

/// What counting a call decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Counted {
    /// No probation, or still under way.
    Nothing,
    /// That was the last call of the probation: it passed.
    Passed,
}

impl Probation {
    /// No probation; calls go straight to the table.
    pub(crate) fn new(flag: GuardFlag) -> Self {
        flag.set(GuardReason::Probation, false);
        Self { flag, under_way: None }
    }

    /// Put the version just committed on probation for `calls` calls, with `standby` (a
    /// fresh instance of the previous version) to roll back to.
    pub(crate) fn begin(&mut self, calls: u32, standby: Standby) {
        self.under_way = (calls > 0).then_some(UnderWay { calls_left: calls, standby });
        self.flag.set(GuardReason::Probation, self.under_way.is_some());
    }

    /// End the probation (rolled back, or replaced); the standby, if there was one.
    pub(crate) fn end(&mut self) -> Option<Standby> {
        self.flag.set(GuardReason::Probation, false);
        self.under_way.take().map(|u| u.standby)
    }

    /// Is a probation under way?
    pub(crate) fn is_on(&self) -> bool {
        self.under_way.is_some()
    }

    /// A call through the guard answered without trapping.
    pub(crate) fn count_call(&mut self) -> Counted {
        let Some(under_way) = self.under_way.as_mut() else { return Counted::Nothing };
        under_way.calls_left = under_way.calls_left.saturating_sub(1);
        if under_way.calls_left > 0 {
            return Counted::Nothing;
        }
        // Passed: the standby is released and calls go straight to the table.
        self.end();
        Counted::Passed
    }
}
