//! Command-line definitions (clap). Only the shape of the interface lives here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Dispatches SI-DEP COVID-19 test certificates from a shared MSSanté mailbox to the spool
/// folders of the lab sites, and purges every copy on the legal schedule.
#[derive(Debug, Parser)]
#[command(name = "mss-dispatch", version, about, long_about = None)]
#[command(
    after_help = "Exit status: 0 success, 1 runtime failure, 2 configuration or usage error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: deliver every certificate of the mailbox, exactly once.
    #[command(
        after_help = "Examples:\n  mss-dispatch run --config /etc/mss-dispatch/config.toml\n  \
        mss-dispatch run --once --config config/demo.toml"
    )]
    Run {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Process every message present, then exit (0 when all were processed).
        #[arg(long)]
        once: bool,
    },
    /// Validate a configuration file and report every error at once.
    #[command(
        after_help = "Example:\n  mss-dispatch check-config --config /etc/mss-dispatch/config.toml"
    )]
    CheckConfig {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Show what the daemon would decide for messages (.eml files), touching nothing.
    #[command(
        after_help = "Example:\n  mss-dispatch inspect --config /etc/mss-dispatch/config.toml --json fixtures/corpus/*.eml"
    )]
    Inspect {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// RFC 5322 message files.
        #[arg(value_name = "MESSAGE.eml", required = true)]
        messages: Vec<PathBuf>,
    },
}
