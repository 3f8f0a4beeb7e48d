//! The keys of the ledger's `meta` table, in one place: each is written by one part of the
//! service and may be read by others (`status`).

/// The sequence number and hash of the last record the retention log holds.
pub const AUDIT_HEAD_SEQ: &str = "audit_head_seq";
pub const AUDIT_HEAD_HASH: &str = "audit_head_hash";
/// Why the retention log cannot be appended to, while it cannot.
pub const AUDIT_BROKEN: &str = "audit_broken";
/// Where the slice-by-slice reconciliation of handed-over files stopped.
pub const RECONCILE_CURSOR: &str = "reconcile_cursor";
/// When the last purge pass ran (wall clock and monotonic clock).
pub const PURGE_LAST_PASS: &str = "purge_last_pass";
/// Why purging is held (a clock jump), while it is.
pub const CLOCK_HOLD: &str = "clock_hold";
