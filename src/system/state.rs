//! The state directory (`state.dir`): created `0750`, it holds the ledger and two lock files.
//! `run.lock` is held by the daemon for its whole life, so that a second `run` refuses to
//! start; `work.lock` is taken around each unit of work (a delivery batch, a purge pass) by the
//! daemon and by the operator commands, so they never act on the same files at once. Both are
//! `flock`s: the kernel releases them when the holder dies.

use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another mss-dispatch process{} is already working on the state directory {dir}; \
         stop it first (systemctl stop mss-dispatch)",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Busy { dir: PathBuf, holder: Option<u32> },
}

/// The state directory, held exclusively by this process.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    _run_lock: File,
}

impl StateDir {
    /// Creates the directory if needed and takes the run lock, or says who holds it.
    pub fn acquire(path: &Path) -> Result<StateDir, StateError> {
        let io = |source| StateError::Io {
            dir: path.to_path_buf(),
            source,
        };
        ensure(path).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path.join("run.lock"))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(StateError::Busy {
                    dir: path.to_path_buf(),
                    holder: pid.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(StateDir {
            path: path.to_path_buf(),
            _run_lock: file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The installation's secret for dossier pseudonyms: 32 random bytes in `state.dir/secret`
/// (`0600`), created on first use. Losing it only makes new pseudonyms differ from old ones.
pub fn secret(state_dir: &Path) -> std::io::Result<[u8; 32]> {
    let path = state_dir.join("secret");
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => {
            let mut out = [0u8; 32];
            out.copy_from_slice(&bytes);
            return Ok(out);
        }
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{}: not a 32-byte secret",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    ensure(state_dir)?;
    let mut out = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut out)?;
    let installed = super::dir::Dir::root(state_dir)
        .and_then(|d| d.install("secret", &out, 0o600))
        .map_err(|e| std::io::Error::new(e.source.kind(), e.to_string()))?;
    if !installed {
        // Two processes starting at once: the first secret written wins.
        return secret(state_dir);
    }
    Ok(out)
}

/// The installation's secret if there is one (never creates it).
pub fn existing_secret(state_dir: &Path) -> Option<[u8; 32]> {
    std::fs::read(state_dir.join("secret"))
        .ok()
        .and_then(|b| b.try_into().ok())
}

/// Exclusive right to change spool files and the ledger, released on drop.
#[derive(Debug)]
pub struct WorkLock {
    _file: File,
}

impl WorkLock {
    /// Waits for the work lock of the state directory at `path`.
    pub fn take(path: &Path) -> std::io::Result<WorkLock> {
        ensure(path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path.join("work.lock"))?;
        file.lock()?;
        Ok(WorkLock { _file: file })
    }
}

/// Creates the directory `0750` if it is missing (and tightens a new one only).
fn ensure(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(0o750).create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o750))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_created_once_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = secret(dir.path()).unwrap();
        let b = secret(dir.path()).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, [0u8; 32]);
        let mode = std::fs::metadata(dir.path().join("secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn second_holder_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = StateDir::acquire(&state).unwrap();
        let err = StateDir::acquire(&state).unwrap_err();
        assert!(
            matches!(err, StateError::Busy { holder: Some(p), .. } if p == std::process::id()),
            "{err}"
        );
        assert!(err.to_string().contains("already working"));
        drop(first);
        StateDir::acquire(&state).unwrap();
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
    }
}
