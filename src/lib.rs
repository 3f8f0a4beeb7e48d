//! mss-dispatch: dispatches the SI-DEP COVID-19 test certificates of a shared MSSanté mailbox
//! to the spool folder of the lab site that did each test, and purges every copy on the legal
//! schedule.
#![forbid(unsafe_code)]

pub mod commands;
pub mod core;
pub mod daemon;
pub mod delivery;
pub mod ledger;
pub mod retention;
pub mod source;
pub mod system;
#[cfg(test)]
mod test_support;
