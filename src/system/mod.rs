//! What every layer may use and that belongs to no stage of the pipeline: the time zone, the
//! logs, the state directory's locks and secret, the operator's identity, the site groups, reading the
//! configuration file, and the local-failure type. It imports only `core`.

pub mod config_file;
pub mod dir;
pub mod failure;
pub mod groups;
pub mod logging;
pub mod operator;
pub mod state;
pub mod tz;
