//! The pure core: everything that decides, and nothing that acts. Message parsing, SI-DEP
//! fields, FINESS, result classification, routing, retention arithmetic and configuration
//! validation are functions over values. No file system, sockets, SQLite, tokio, clock or
//! environment in here: time, configuration and the time zone come in as arguments
//! (`tests/core_purity.rs` keeps it so).

pub mod audit;
pub mod clock;
pub mod config;
pub mod dates;
pub mod decide;
pub mod documents;
pub mod duration;
pub mod encoded_words;
pub mod fields;
pub mod filename;
pub mod finess;
pub mod html;
pub mod ins;
pub mod layout;
pub mod mime;
pub mod register;
pub mod retention;
pub mod test_result;
pub mod text;

pub use decide::{
    Certificate, Context, Decision, Outcome, Overrides, Prescreen, Reason, decide,
    decide_oversized, decide_unfetchable, decide_with, prescreen,
};
