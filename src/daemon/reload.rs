//! Live reload on SIGHUP: the configuration file is read and validated again; a valid one
//! takes effect between two passes (sites, routes, senders, retention, intervals, metrics)
//! without dropping the IMAP session or a message in hand; an invalid one is rejected with
//! every error logged, and the running configuration stays. What only a restart can change
//! (the mailbox's server, credentials and folders, the state directory, the command timeout)
//! keeps its running value, with a warning.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use super::health::notify;
use crate::core::config::Config;
use crate::core::finess::Finess;
use crate::system::config_file;

/// A reload asked for by SIGHUP, and the wait to cut short for it.
#[derive(Default)]
pub struct Reloader {
    requested: AtomicBool,
    waker: Mutex<Option<CancellationToken>>,
}

impl Reloader {
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().ok().and_then(|mut w| w.take()) {
            w.cancel();
        }
    }

    pub fn take_request(&self) -> bool {
        self.requested.swap(false, Ordering::SeqCst)
    }

    /// A token for the next wait: cancelled by `cancel`, or by a reload request.
    pub fn wait_token(&self, cancel: &CancellationToken) -> CancellationToken {
        let token = cancel.child_token();
        if let Ok(mut w) = self.waker.lock() {
            *w = Some(token.clone());
        }
        if self.requested.load(Ordering::SeqCst) {
            token.cancel();
        }
        token
    }
}

/// The new configuration and site groups, or every error.
pub fn reload(
    path: &Path,
    running: &Config,
) -> Result<(Config, HashMap<Finess, u32>), Vec<String>> {
    // systemd (from 253) wants the monotonic time of the reload with RELOADING=1.
    let mut states = vec![
        NotifyState::Reloading,
        NotifyState::Status("reloading the configuration"),
    ];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    notify(&states);
    let result = load(path, running);
    notify(&[NotifyState::Ready]);
    result
}

fn load(path: &Path, running: &Config) -> Result<(Config, HashMap<Finess, u32>), Vec<String>> {
    let mut new = config_file::load(path).map_err(|e| {
        e.to_string()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    })?;
    let groups = crate::system::groups::resolve(&new, path)?;
    let mut kept = Vec::new();
    if new.source != running.source {
        kept.push("mailbox server, credentials or Maildir");
        new.source = running.source.clone();
    }
    let (n, r) = (&mut new.mailbox, &running.mailbox);
    if (
        &n.folder,
        &n.processed_folder,
        &n.quarantine_folder,
        n.timeout,
    ) != (
        &r.folder,
        &r.processed_folder,
        &r.quarantine_folder,
        r.timeout,
    ) {
        kept.push("mailbox folders or timeout");
        n.folder = r.folder.clone();
        n.processed_folder = r.processed_folder.clone();
        n.quarantine_folder = r.quarantine_folder.clone();
        n.timeout = r.timeout;
    }
    if new.state_dir != running.state_dir {
        kept.push("state.dir");
        new.state_dir = running.state_dir.clone();
    }
    for what in kept {
        tracing::warn!(
            "{}: {what} changed: this takes effect at the next restart",
            path.display()
        );
    }
    Ok((new, groups))
}

/// Shared between the signal handler and the loop.
pub type Shared = Arc<Reloader>;

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[mailbox]\nmaildir = \"/srv/a/Maildir\"\npoll_interval = \"60s\"\n\
        [state]\ndir = \"/srv/a/state\"\n[quarantine]\ndir = \"/srv/a/q\"\n\
        [[site]]\nfiness = \"690000880\"\nname = \"Lyon\"\nspool = \"/srv/a/sites/690000880\"\n";

    fn reload_with(text: &str) -> Result<(Config, HashMap<Finess, u32>), Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, BASE).unwrap();
        let running = config_file::load(&path).unwrap();
        std::fs::write(&path, text).unwrap();
        load(&path, &running)
    }

    #[test]
    fn sites_intervals_and_retention_change_the_source_and_state_stay() {
        let text = BASE
            .replace("/srv/a/Maildir", "/srv/b/Maildir")
            .replace("/srv/a/state", "/srv/b/state")
            .replace("\"60s\"", "\"5s\"")
            + "[retention]\nnegative = \"48h\"\n[[site]]\nfiness = \"750712184\"\n\
               name = \"Paris\"\nspool = \"/srv/a/sites/750712184\"\n";
        let (config, groups) = reload_with(&text).unwrap();
        assert_eq!(config.sites.len(), 2);
        assert_eq!(
            config.mailbox.poll_interval,
            std::time::Duration::from_secs(5)
        );
        assert_eq!(
            config.retention.negative,
            crate::core::duration::Period::Fixed(jiff::SignedDuration::from_hours(48))
        );
        assert_eq!(config.state_dir, Path::new("/srv/a/state"));
        assert!(
            matches!(&config.source, crate::core::config::Source::Maildir(p)
            if p == Path::new("/srv/a/Maildir"))
        );
        assert!(groups.is_empty());
    }

    #[test]
    fn an_invalid_file_gives_every_error() {
        let text = BASE.replace("690000880", "690000881") + "[retention]\nnegative = \"96h\"\n";
        let errors = reload_with(&text).unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains("site[0].finess")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("retention.negative")),
            "{errors:?}"
        );
    }
}
