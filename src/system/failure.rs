//! Local failures: what goes wrong on this machine rather than at the mail server — a full
//! disk, a permission, a link planted where a folder should be, the ledger, the retention
//! log. A pass tells them apart from source failures (connection, server, authentication):
//! they do not reconnect; they back off, are shown in `status` with their class and folder,
//! raise an ALERT and are counted in the metrics (DESIGN invariant 9). Their words name
//! folders, never files (file names carry patients' names).

use std::path::{Path, PathBuf};

use crate::system::dir::DirError;

/// What kind of local failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    DiskFull,
    Permission,
    /// A link or a file where a folder should be.
    Refused,
    Ledger,
    RetentionLog,
    Io,
}

impl Class {
    pub const ALL: [Class; 6] = [
        Class::DiskFull,
        Class::Permission,
        Class::Refused,
        Class::Ledger,
        Class::RetentionLog,
        Class::Io,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::DiskFull => "disk_full",
            Class::Permission => "permission",
            Class::Refused => "refused",
            Class::Ledger => "ledger",
            Class::RetentionLog => "retention_log",
            Class::Io => "io",
        }
    }

    pub fn of_io(e: &std::io::Error) -> Class {
        use nix::errno::Errno;
        match e.raw_os_error().map(Errno::from_raw) {
            Some(Errno::ENOSPC | Errno::EDQUOT) => Class::DiskFull,
            Some(Errno::EACCES | Errno::EPERM | Errno::EROFS) => Class::Permission,
            _ if e.kind() == std::io::ErrorKind::InvalidInput => Class::Refused,
            _ => Class::Io,
        }
    }
}

/// A local failure: its class, the folder it happened in, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFailure {
    pub class: Class,
    pub folder: PathBuf,
    pub message: String,
}

impl std::fmt::Display for LocalFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} in {}: {}",
            self.class.as_str(),
            self.folder.display(),
            self.message
        )
    }
}

impl std::error::Error for LocalFailure {}

impl LocalFailure {
    pub fn new(class: Class, folder: &Path, message: impl std::fmt::Display) -> LocalFailure {
        LocalFailure {
            class,
            folder: folder.to_path_buf(),
            message: message.to_string(),
        }
    }
}

impl From<&DirError> for LocalFailure {
    fn from(e: &DirError) -> Self {
        LocalFailure::new(Class::of_io(&e.source), &e.dir, e)
    }
}

/// Owned errors convert as their references do: `by_value!(SomeError)` next to an
/// `impl From<&SomeError> for LocalFailure`.
macro_rules! by_value {
    ($($t:ty),*) => {$(
        impl From<$t> for $crate::system::failure::LocalFailure {
            fn from(e: $t) -> Self {
                (&e).into()
            }
        }
    )*};
}
pub(crate) use by_value;
by_value!(DirError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_come_from_the_error_not_its_words() {
        let e = |errno: i32| DirError {
            what: "cannot write a file",
            dir: "/var/spool/mss-dispatch/sites/690000880/2026-11-26".into(),
            source: std::io::Error::from_raw_os_error(errno),
        };
        assert_eq!(LocalFailure::from(&e(28)).class, Class::DiskFull); // ENOSPC
        assert_eq!(LocalFailure::from(&e(13)).class, Class::Permission); // EACCES
        assert_eq!(LocalFailure::from(&e(30)).class, Class::Permission); // EROFS
        assert_eq!(LocalFailure::from(&e(5)).class, Class::Io); // EIO
        let f = LocalFailure::from(&e(28));
        assert_eq!(
            f.folder,
            Path::new("/var/spool/mss-dispatch/sites/690000880/2026-11-26")
        );
        assert!(f.to_string().starts_with("disk_full in /var/spool/"));
    }
}
