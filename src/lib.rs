//! mss-dispatch: dispatches the SI-DEP COVID-19 test certificates of a shared MSSanté mailbox
//! to the spool folder of the lab site that did each test, and purges every copy on the legal
//! schedule.
#![forbid(unsafe_code)]

pub mod audit;
pub mod cli;
pub mod commands;
pub mod config_file;
pub mod core;
pub mod daemon;
pub mod delivery;
pub mod failure;
pub mod handover;
pub mod ledger;
pub mod logging;
pub mod operator;
pub mod orphans;
pub mod purge;
pub mod report;
pub mod source;
pub mod spool;
pub mod state;
#[cfg(test)]
mod test_support;
pub mod tz;
pub mod x509;
