//! Local failures: what goes wrong on this machine rather than at the mail server — a full
//! disk, a permission, a link planted where a folder should be, the ledger, the retention
//! log. A pass tells them apart from source failures (connection, server, authentication):
//! they do not reconnect; they back off, are shown in `status` with their class and folder,
//! raise an ALERT and are counted in the metrics (DESIGN invariant 9). Their words name
//! folders, never files (file names carry patients' names).

use std::path::{Path, PathBuf};

use crate::delivery::spool::SpoolError;
use crate::ledger::LedgerError;
use crate::retention::log::AuditError;

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

    fn of_io(e: &std::io::Error) -> Class {
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

impl LocalFailure {
    pub fn new(class: Class, folder: &Path, message: impl std::fmt::Display) -> LocalFailure {
        LocalFailure {
            class,
            folder: folder.to_path_buf(),
            message: message.to_string(),
        }
    }
}

impl From<&SpoolError> for LocalFailure {
    fn from(e: &SpoolError) -> Self {
        LocalFailure::new(Class::of_io(&e.source), &e.dir, e)
    }
}

impl From<&LedgerError> for LocalFailure {
    fn from(e: &LedgerError) -> Self {
        use rusqlite::ErrorCode;
        let class = match e {
            LedgerError::Sqlite {
                source: rusqlite::Error::SqliteFailure(f, _),
                ..
            } => match f.code {
                ErrorCode::DiskFull => Class::DiskFull,
                ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen => {
                    Class::Permission
                }
                _ => Class::Ledger,
            },
            LedgerError::Keys { source, .. } => match Class::of_io(source) {
                Class::Io | Class::Refused => Class::Ledger,
                other => other,
            },
            _ => Class::Ledger,
        };
        let folder = e.path().parent().unwrap_or(Path::new("/"));
        LocalFailure::new(class, folder, e)
    }
}

impl From<&AuditError> for LocalFailure {
    fn from(e: &AuditError) -> Self {
        match e {
            AuditError::Ledger(l) => l.into(),
            AuditError::Io { path, source } => {
                let class = match Class::of_io(source) {
                    Class::Io | Class::Refused => Class::RetentionLog,
                    other => other,
                };
                LocalFailure::new(class, path.parent().unwrap_or(Path::new("/")), e)
            }
            AuditError::Broken { path, .. } | AuditError::Mismatch { path, .. } => {
                LocalFailure::new(
                    Class::RetentionLog,
                    path.parent().unwrap_or(Path::new("/")),
                    e,
                )
            }
        }
    }
}

impl From<&crate::delivery::DeliveryError> for LocalFailure {
    fn from(e: &crate::delivery::DeliveryError) -> Self {
        match e {
            crate::delivery::DeliveryError::Ledger(l) => l.into(),
            crate::delivery::DeliveryError::Spool(s) => s.into(),
        }
    }
}

impl From<&crate::retention::purge::PurgeError> for LocalFailure {
    fn from(e: &crate::retention::purge::PurgeError) -> Self {
        match e {
            crate::retention::purge::PurgeError::Ledger(l) => l.into(),
            crate::retention::purge::PurgeError::Spool(s) => s.into(),
        }
    }
}

/// Owned errors convert as their references do.
macro_rules! by_value {
    ($($t:ty),*) => {$(
        impl From<$t> for LocalFailure {
            fn from(e: $t) -> Self {
                (&e).into()
            }
        }
    )*};
}
by_value!(
    SpoolError,
    LedgerError,
    AuditError,
    crate::delivery::DeliveryError,
    crate::retention::purge::PurgeError,
    crate::retention::orphans::OrphanError
);

impl From<&crate::retention::orphans::OrphanError> for LocalFailure {
    fn from(e: &crate::retention::orphans::OrphanError) -> Self {
        match e {
            crate::retention::orphans::OrphanError::Ledger(l) => l.into(),
            crate::retention::orphans::OrphanError::Spool(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_come_from_the_error_not_its_words() {
        let e = |errno: i32| SpoolError {
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
