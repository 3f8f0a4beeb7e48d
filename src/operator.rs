//! Who runs a command: the Unix user of the process, recorded with operator actions in the
//! retention log.

/// `name (uid N)`, or the uid alone when it has no name.
pub fn current_user() -> String {
    let uid = nix::unistd::Uid::current();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => format!("{} (uid {uid})", user.name),
        _ => format!("uid {uid}"),
    }
}
