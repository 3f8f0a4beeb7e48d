//! mss-dispatch: dispatches the SI-DEP COVID-19 test certificates of a shared MSSanté mailbox
//! to the spool folder of the lab site that did each test, and purges every copy on the legal
//! schedule.
//!
//! # Layout
//!
//! Each module is one stage of the pipeline or one concern (`ARCHITECTURE.md` has the
//! invariants and where each is enforced and tested):
//!
//! - [`core`]: pure. Message in, `Decision` out; retention arithmetic; the retention log's
//!   records; configuration validation. No I/O, clock or runtime.
//! - [`source`]: where mail comes from (IMAP, Maildir) behind one trait; what a mailbox
//!   is (`MailboxKey`), what is done with a message (`Ack`) and where it stays (`ServerCopy`).
//! - [`ledger`]: the SQLite ledger, source of truth for exactly-once delivery and retention.
//! - [`delivery`]: plan, stage, publish, acknowledge: exactly once, through a crash.
//! - [`printing`]: each certificate printed once at its site's printer (IPP), after delivery.
//! - [`retention`]: the purge pass, the clock gate, handover, server copies, the orphan
//!   sweep and the retention log file.
//! - [`daemon`]: the service's loop only.
//! - [`commands`]: one module per command, `run` included.
//! - [`system`]: beside `core`: directory handles and the one atomic write, local failures,
//!   logging, the time zone, the state directory, the operator, site groups.
//!
//! Dependencies point down: `commands → daemon → delivery / printing / retention → source /
//! ledger → core`, with `system` beside `core` (`tests/layers.rs` fails otherwise).
#![forbid(unsafe_code)]

pub mod commands;
pub mod core;
pub mod daemon;
pub mod delivery;
pub mod ledger;
pub mod printing;
pub mod retention;
pub mod source;
pub mod system;
#[cfg(test)]
mod test_support;
