//! Structured logs: to the journal when systemd connected standard error to it
//! (`JOURNAL_STREAM`), else to standard error. Levels from `RUST_LOG` (default `info` for the service, `warn` for a command). What is
//! logged carries certificate ids, FINESS numbers, reason codes and message UIDs, never a
//! patient's name, birth date, INS or dossier number (DESIGN invariant 5).

use std::io::IsTerminal;

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterFn, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Other crates' logs are capped, whatever `RUST_LOG` asks for: at `trace` the IMAP library
/// writes the `LOGIN` line (the password) and whole messages, and the file watcher the names
/// of the files it sees (patients' names) from `debug` on. Ours are not capped: they carry
/// no patient data at any level.
fn protocol_bytes(meta: &Metadata) -> bool {
    let target = meta.target();
    let crate_name = target.split("::").next().unwrap_or(target);
    match crate_name {
        "mss_dispatch" => false,
        "notify" => *meta.level() > Level::INFO,
        _ => *meta.level() > Level::DEBUG,
    }
}

/// The cap, as a filter every event goes through.
pub fn cap() -> FilterFn<impl Fn(&Metadata) -> bool> {
    filter_fn(|meta| !protocol_bytes(meta))
}

/// Sets up the logs; `default_level` when `RUST_LOG` says nothing.
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(cap())
            .with(journald.with_syslog_identifier("mss-dispatch".into()))
            .try_init();
        return;
    }
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(cap())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false),
        )
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_libraries_are_capped_at_debug_and_ours_are_not() {
        use tracing::callsite::Identifier;
        use tracing::field::FieldSet;
        use tracing::metadata::Kind;
        struct Site;
        impl tracing::callsite::Callsite for Site {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unimplemented!()
            }
        }
        static SITE: Site = Site;
        let meta = |target: &'static str, level| {
            Metadata::new(
                "e",
                target,
                level,
                None,
                None,
                None,
                FieldSet::new(&[], Identifier(&SITE)),
                Kind::EVENT,
            )
        };
        assert!(protocol_bytes(&meta(
            "async_imap::imap_stream",
            Level::TRACE
        )));
        assert!(protocol_bytes(&meta("imap_proto", Level::TRACE)));
        assert!(!protocol_bytes(&meta("async_imap::client", Level::DEBUG)));
        assert!(protocol_bytes(&meta("notify::inotify", Level::DEBUG)));
        assert!(!protocol_bytes(&meta("notify::inotify", Level::INFO)));
        assert!(!protocol_bytes(&meta("mss_dispatch::daemon", Level::TRACE)));
    }
}
