//! Durable, atomic, never-clobbering file writes into spool, SIL and quarantine folders.
//!
//! A file is first written to a temporary name in its target directory (`stage`: created
//! `0640`, group set, written, `fsync`ed), then renamed into place with `RENAME_NOREPLACE`
//! (`publish`), and the directory is `fsync`ed (`sync_dir`). After `publish` the temporary
//! name no longer exists: a crash recovery can tell "published" from "not yet". Errors never
//! carry the file name, which holds the patient's name: only the directory.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
use sha2::{Digest, Sha256};

pub const FILE_MODE: u32 = 0o640;
pub const DIR_MODE: u32 = 0o750;

/// Ownership applied to what is created for a site.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    pub gid: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
#[error("{what} in {dir}: {source}")]
pub struct SpoolError {
    pub what: &'static str,
    pub dir: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + use<> {
    let dir = path.parent().unwrap_or(path).to_path_buf();
    move |source| SpoolError { what, dir, source }
}

/// What `publish` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Renamed into place.
    Done,
    /// The same content was already there (an earlier run got this far); temp removed.
    AlreadyThere,
    /// Another file holds the name: the caller must choose another.
    NameTaken,
}

/// Writes `bytes` to `temp` (replacing a stale one), durable, with the final mode and group.
pub fn stage(temp: &Path, bytes: &[u8], access: Access) -> Result<(), SpoolError> {
    let create = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(temp)
    };
    let mut file = match create() {
        Ok(f) => f,
        // Left by an interrupted run: its content is not trusted.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            std::fs::remove_file(temp)
                .map_err(err("cannot remove a stale temporary file", temp))?;
            create().map_err(err("cannot create a file", temp))?
        }
        Err(e) => return Err(err("cannot create a file", temp)(e)),
    };
    // The umask may have narrowed the mode; a group must be set before the name is visible.
    file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
        .map_err(err("cannot set a file's mode", temp))?;
    if let Some(gid) = access.gid {
        std::os::unix::fs::fchown(&file, None, Some(gid))
            .map_err(err("cannot set a file's group", temp))?;
    }
    file.write_all(bytes)
        .map_err(err("cannot write a file", temp))?;
    file.sync_all().map_err(err("cannot sync a file", temp))?;
    Ok(())
}

/// Renames `temp` to `target` unless `target` exists.
pub fn publish(temp: &Path, target: &Path, sha256: &[u8; 32]) -> Result<Published, SpoolError> {
    match renameat2(
        AT_FDCWD,
        temp,
        AT_FDCWD,
        target,
        RenameFlags::RENAME_NOREPLACE,
    ) {
        Ok(()) => Ok(Published::Done),
        Err(Errno::EEXIST) => {
            if file_sha256(target).ok().as_ref() == Some(sha256) {
                let _ = std::fs::remove_file(temp);
                Ok(Published::AlreadyThere)
            } else {
                Ok(Published::NameTaken)
            }
        }
        // File systems without RENAME_NOREPLACE (some network mounts): link, then unlink.
        Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
            match std::fs::hard_link(temp, target) {
                Ok(()) => {
                    std::fs::remove_file(temp)
                        .map_err(err("cannot remove a temporary file", temp))?;
                    Ok(Published::Done)
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if file_sha256(target).ok().as_ref() == Some(sha256) {
                        let _ = std::fs::remove_file(temp);
                        Ok(Published::AlreadyThere)
                    } else {
                        Ok(Published::NameTaken)
                    }
                }
                Err(e) => Err(err("cannot move a file into place", target)(e)),
            }
        }
        Err(e) => Err(err("cannot move a file into place", target)(e.into())),
    }
}

/// Makes the directory entries of `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SpoolError {
            what: "cannot sync a folder",
            dir: dir.to_path_buf(),
            source,
        })
}

/// Creates `dir` (and missing parents) `0750` with the group, syncing each new entry.
pub fn ensure_dir(dir: &Path, access: Access) -> Result<(), SpoolError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && parent != dir
    {
        ensure_dir(parent, access)?;
    }
    let e = |source| SpoolError {
        what: "cannot create a folder",
        dir: dir.to_path_buf(),
        source,
    };
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {}
        Err(x) if x.kind() == ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(x) => return Err(e(x)),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE)).map_err(e)?;
    if let Some(gid) = access.gid {
        std::os::unix::fs::chown(dir, None, Some(gid)).map_err(e)?;
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The hash of several slices one after another.
pub fn sha256_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

pub fn file_sha256(path: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut hasher = Sha256::new();
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
    }
}

/// Removes a file that may already be gone.
pub fn remove_if_present(path: &Path) -> Result<bool, SpoolError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(err("cannot remove a file", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn stage_then_publish_never_clobbers() {
        let dir = tempfile::tempdir().unwrap();
        let temp = dir.path().join(".x.part");
        let target = dir.path().join("x.pdf");
        stage(&temp, b"one", Access::default()).unwrap();
        let meta = std::fs::metadata(&temp).unwrap();
        assert_eq!(meta.mode() & 0o777, FILE_MODE);
        assert_eq!(
            publish(&temp, &target, &sha256(b"one")).unwrap(),
            Published::Done
        );
        assert!(!temp.exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"one");

        // Same content again: recognised, temp cleaned.
        stage(&temp, b"one", Access::default()).unwrap();
        assert_eq!(
            publish(&temp, &target, &sha256(b"one")).unwrap(),
            Published::AlreadyThere
        );
        assert!(!temp.exists());

        // Other content: the existing file is kept.
        stage(&temp, b"two", Access::default()).unwrap();
        assert_eq!(
            publish(&temp, &target, &sha256(b"two")).unwrap(),
            Published::NameTaken
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"one");
        assert!(temp.exists());
    }

    #[test]
    fn folders_are_created_0750() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        ensure_dir(&deep, Access::default()).unwrap();
        for p in [dir.path().join("a"), dir.path().join("a/b"), deep] {
            assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, DIR_MODE);
        }
    }

    #[test]
    fn errors_name_the_folder_not_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = stage(
            &dir.path().join("missing/DUPONT_Jean_1.pdf"),
            b"x",
            Access::default(),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("missing"), "{text}");
        assert!(!text.contains("DUPONT"), "{text}");
    }
}
