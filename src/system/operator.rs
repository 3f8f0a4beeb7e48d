//! Who runs a command, recorded with operator actions in the retention log; and, for a command
//! run as root, acting as the service account that owns the installation.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::OnceLock;

static USER: OnceLock<String> = OnceLock::new();

/// `name (uid N)` of the process's real user (or the uid alone when it has no name), with
/// the invoking user when root runs it through sudo. Read once: it stays the same after
/// `act_as_owner`.
pub fn current_user() -> String {
    USER.get_or_init(|| {
        let uid = nix::unistd::Uid::current();
        let mut who = match nix::unistd::User::from_uid(uid) {
            Ok(Some(user)) => format!("{} (uid {uid})", user.name),
            _ => format!("uid {uid}"),
        };
        if uid.is_root()
            && let Ok(by) = std::env::var("SUDO_USER")
            && !by.is_empty()
        {
            who.push_str(&format!(", via sudo from {by}"));
        }
        who
    })
    .clone()
}

/// The command could not take the identity of the installation's owner.
#[derive(Debug, thiserror::Error)]
#[error("cannot act as the owner of {} (uid {uid}): {call}: {errno}", state_dir.display())]
pub struct OwnerError {
    pub state_dir: std::path::PathBuf,
    pub uid: u32,
    pub call: &'static str,
    pub errno: nix::Error,
}

/// Run as root on an installation that belongs to the service account (the owner of
/// `state.dir`), a command acts as that account — its user and group, with `groups` (the site
/// groups) as supplementary groups, as the service unit gives them — so that every file it
/// writes (ledger, retention log, delivered files, folders) stays the service's to purge.
/// Does nothing when not root, or when root owns the state directory.
pub fn act_as_owner(state_dir: &Path, groups: &[u32]) -> Result<(), OwnerError> {
    current_user();
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(());
    }
    let Ok(meta) = std::fs::metadata(state_dir) else {
        return Ok(());
    };
    if meta.uid() == 0 {
        return Ok(());
    }
    let fail = |call: &'static str, errno: nix::Error| OwnerError {
        state_dir: state_dir.to_path_buf(),
        uid: meta.uid(),
        call,
        errno,
    };
    let gids: Vec<nix::unistd::Gid> = groups
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&gids).map_err(|e| fail("setgroups", e))?;
    nix::unistd::setgid(nix::unistd::Gid::from_raw(meta.gid())).map_err(|e| fail("setgid", e))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(meta.uid())).map_err(|e| fail("setuid", e))?;
    Ok(())
}
