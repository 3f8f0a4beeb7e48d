//! Retention (SPEC §4, DESIGN invariants 3 and 9): the purge pass and its clock gate, the
//! hand-over of files to the SIL or the site's staff, the orphan sweep after a ledger loss,
//! and the hash-chained retention log auditors read. It works from the ledger, never from
//! file timestamps, and never follows a link in a site's folder.

pub mod clock;
pub mod handover;
pub mod log;
pub mod orphans;
pub mod purge;
pub mod server_copies;
