//! A watched slot (feature `watch`): the guest follows a signed registry. In front of the
//! core pipeline: [`trust`] (stage 0: the signed manifest), [`policy`] (which listed release
//! to take) and [`watcher`] (push, polling with backoff, fallback), which ends in an ordinary
//! queued swap.

pub(crate) mod events;
pub(crate) mod options;
pub(crate) mod policy;
pub(crate) mod trust;
pub(crate) mod watcher;

pub(crate) use watcher::Watcher;
