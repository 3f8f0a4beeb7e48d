//! Folders written by people, walked through directory handles (DESIGN invariant 8); and
//! the one way this service writes a file whole: under a temporary name, synced, renamed into
//! place, the folder synced (`Dir::stage` then `Dir::publish` for the spool, whose two steps
//! straddle a ledger commit; `Dir::replace` and `Dir::install` for its own state files).
//!
//! A *root* is a folder the configuration names: a site's spool folder, a SIL drop folder or
//! the quarantine folder. Its path is the administrator's and is opened as written (symbolic
//! links in it are the administrator's choice). Everything below a root is treated as
//! written by someone else: each level is opened relative to its parent's handle with
//! `O_NOFOLLOW | O_DIRECTORY`, files are created with `O_EXCL | O_NOFOLLOW`, renamed with
//! `renameat2(RENAME_NOREPLACE)` and removed with `unlinkat` in the handle of their folder,
//! and modes and groups are set with `fchmod`/`fchown` on the open handle, never by path. A
//! symbolic link or a file where a folder should be is refused; nothing is ever followed
//! out of the tree.
//!
//! The `*at` calls come from `nix`, already a dependency of the project (the same calls
//! `cap-std` or `rustix` would make); no `openat2` is needed, since no path of more than one
//! component below a root is ever resolved by the kernel in one call.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, RenameFlags, openat, renameat, renameat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, UnlinkatFlags, fchown, linkat, unlinkat};
use sha2::{Digest, Sha256};

/// Temporary files of this service start with this.
pub const TEMP_PREFIX: &str = ".mss-dispatch.";
/// Files this service writes: its own and the sites' (the group comes from `Access`).
pub const FILE_MODE: u32 = 0o640;
/// A missing parent shared between sites (a common spool root): the service's own group,
/// passable by everyone, listable by no site.
pub const PARENT_MODE: u32 = 0o751;

/// The group applied to what is created for a site.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    pub gid: Option<u32>,
}

/// A folder or a file of a folder could not be handled: what, in which folder, and why.
#[derive(Debug, thiserror::Error)]
#[error("{what} in {dir}: {source}")]
pub struct DirError {
    pub what: &'static str,
    pub dir: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl DirError {
    /// A link or a file planted where a folder should be.
    pub fn is_refused(&self) -> bool {
        self.source.kind() == std::io::ErrorKind::InvalidInput
    }
}

mod index;

pub use crate::core::layout::FileId;
pub use index::Index;

fn id_of(st: &FileStat) -> FileId {
    FileId {
        dev: st.st_dev,
        ino: st.st_ino,
    }
}

fn io(what: &'static str, dir: &Path) -> impl FnOnce(Errno) -> DirError + use<> {
    let dir = dir.to_path_buf();
    move |e| DirError {
        what,
        dir,
        source: std::io::Error::from(e),
    }
}

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

fn is_file(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// A file name, refused if it could name anything but an entry of one folder.
fn entry(name: &str, dir: &Path) -> Result<(), DirError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(DirError {
            what: "not a file name",
            dir: dir.to_path_buf(),
            source: std::io::Error::from(ErrorKind::InvalidInput),
        });
    }
    Ok(())
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// An open folder: a root, or a folder below one reached without following links.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// For messages only: never used to reach the folder again.
    path: PathBuf,
}

impl Dir {
    /// Opens a root by its configured path.
    pub fn root(path: &Path) -> Result<Dir, DirError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io("cannot open the folder", path))?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens a root, creating it (and missing parents) when it does not exist: missing
    /// parents are shared between sites and get the service's own group and mode `0751`
    /// (staff may pass through, not list); the root gets `dir_mode` and the group of
    /// `access`, set on its handle.
    pub fn ensure_root(path: &Path, access: Access, dir_mode: u32) -> Result<Dir, DirError> {
        match Dir::root(path) {
            Ok(d) => return Ok(d),
            Err(e) if e.source.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io("cannot create the folder", path)(Errno::EINVAL));
        };
        let name = name.to_string_lossy().into_owned();
        let parent = Dir::ensure_root(parent, Access::default(), PARENT_MODE)?;
        parent.subdir(&name, Some((access, dir_mode)))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A second handle on the same folder.
    pub fn dup(&self) -> Result<Dir, DirError> {
        let fd = openat(&self.fd, ".", DIR_FLAGS, Mode::empty())
            .map_err(io("cannot open the folder", &self.path))?;
        Ok(Dir {
            fd,
            path: self.path.clone(),
        })
    }

    /// The folder's own identity.
    pub fn id(&self) -> Result<FileId, DirError> {
        fstat(&self.fd)
            .map(|st| id_of(&st))
            .map_err(io("cannot read the folder", &self.path))
    }

    /// Opens the folder `name` of this one, never through a link. With `create`, a missing
    /// folder is made with that group and mode (set on its handle); a folder this service
    /// owns is brought to them.
    pub fn subdir(&self, name: &str, create: Option<(Access, u32)>) -> Result<Dir, DirError> {
        entry(name, &self.path)?;
        let path = self.path.join(name);
        if let Some((_, mode)) = create {
            match mkdirat(&self.fd, name, Mode::from_bits_truncate(mode)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(io("cannot create a folder", &self.path)(e)),
            }
        }
        let fd = match openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            // A link, or a file, where a folder should be: never followed, never written.
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                return Err(DirError {
                    what: "a link or a file stands where a folder should be; refused",
                    dir: self.path.clone(),
                    source: std::io::Error::from(ErrorKind::InvalidInput),
                });
            }
            Err(e) => return Err(io("cannot open a folder", &self.path)(e)),
        };
        let dir = Dir { fd, path };
        if let Some((access, mode)) = create {
            dir.tidy(access, mode)?;
        }
        Ok(dir)
    }

    /// Brings a folder this service owns to `mode` and the group of `access`, on its handle.
    /// A folder someone else made is left as it is.
    pub fn tidy(&self, access: Access, mode: u32) -> Result<(), DirError> {
        let st = fstat(&self.fd).map_err(io("cannot read a folder", &self.path))?;
        if st.st_uid != euid() {
            return Ok(());
        }
        if st.st_mode & 0o7777 != mode {
            fchmod(&self.fd, Mode::from_bits_truncate(mode))
                .map_err(io("cannot set a folder's mode", &self.path))?;
        }
        if let Some(gid) = access.gid
            && st.st_gid != gid
        {
            fchown(&self.fd, None, Some(Gid::from_raw(gid)))
                .map_err(io("cannot set a folder's group", &self.path))?;
        }
        Ok(())
    }

    /// What stands at `name`, without following a link.
    pub fn stat(&self, name: &str) -> Result<Option<FileStat>, DirError> {
        entry(name, &self.path)?;
        match fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(io("cannot read a folder", &self.path)(e)),
        }
    }

    /// The identity of the regular file at `name`, if one is there.
    pub fn file_id(&self, name: &str) -> Result<Option<FileId>, DirError> {
        Ok(self.stat(name)?.filter(is_file).map(|st| id_of(&st)))
    }

    /// Writes `bytes` under `name` (replacing a stale file of that name left by an
    /// interrupted run), with mode `0640` and the group, both set before the bytes are
    /// written. Returns the file's identity and the open file, not synced yet: the caller
    /// makes a batch's files durable together (`sync_together`) before it relies on them.
    ///
    /// The file's writing to disk starts at once (on Linux, `POSIX_FADV_DONTNEED` starts the
    /// write-back of dirty pages without waiting for it): when the batch's syncs come, every
    /// file's blocks are already allocated in the journal's running transaction, and one
    /// commit covers them, where each sync would otherwise allocate and commit on its own.
    /// Only advice: a file system that ignores it is synced all the same.
    pub fn stage(
        &self,
        name: &str,
        bytes: &[u8],
        access: Access,
    ) -> Result<(FileId, File), DirError> {
        let (id, file) = self.create_written(name, bytes, access, FILE_MODE)?;
        let _ = nix::fcntl::posix_fadvise(
            &file,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
        Ok((id, file))
    }

    /// Replaces the file `name` with `bytes`, atomically and durably: readers see the old
    /// file or the new one, whole, and after a crash one of them is there. For the files the
    /// service keeps for itself (reports, metrics); mode `mode`, the service's group.
    pub fn replace(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), DirError> {
        self.replace_as(name, bytes, mode, Access::default())
    }

    /// `replace`, the new file given the group of `access`.
    pub fn replace_as(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
        access: Access,
    ) -> Result<(), DirError> {
        let temp = format!("{TEMP_PREFIX}{name}.tmp");
        self.write_new(&temp, bytes, access, mode)?;
        entry(name, &self.path)?;
        renameat(&self.fd, temp.as_str(), &self.fd, name)
            .map_err(io("cannot move a file into place", &self.path))?;
        self.sync()
    }

    /// Writes `bytes` as the file `name` unless it exists, atomically and durably: of two
    /// processes doing it at once, the first wins. False when `name` was already there.
    pub fn install(&self, name: &str, bytes: &[u8], mode: u32) -> Result<bool, DirError> {
        let temp = format!("{TEMP_PREFIX}{name}.{}.tmp", std::process::id());
        self.write_new(&temp, bytes, Access::default(), mode)?;
        let published = self.publish(&temp, name, &[0; 32]);
        if !matches!(published, Ok(Published::Done)) {
            let _ = unlinkat(&self.fd, temp.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        let installed = published? == Published::Done;
        self.sync()?;
        Ok(installed)
    }

    /// Creates `name` with `bytes`, synced (a stale file of that name is replaced).
    fn write_new(
        &self,
        name: &str,
        bytes: &[u8],
        access: Access,
        mode: u32,
    ) -> Result<FileId, DirError> {
        let (id, file) = self.create_written(name, bytes, access, mode)?;
        file.sync_all().map_err(|source| DirError {
            what: "cannot sync a file",
            dir: self.path.clone(),
            source,
        })?;
        Ok(id)
    }

    /// Creates `name` with `bytes`, not synced (a stale file of that name is replaced).
    fn create_written(
        &self,
        name: &str,
        bytes: &[u8],
        access: Access,
        mode: u32,
    ) -> Result<(FileId, File), DirError> {
        entry(name, &self.path)?;
        let create = || {
            openat(
                &self.fd,
                name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(mode),
            )
        };
        let fd = match create() {
            Ok(fd) => fd,
            // Left by an interrupted run (or put there by someone): its content is not
            // trusted. Only a name is removed, never what it points to.
            Err(Errno::EEXIST) => {
                unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir)
                    .map_err(io("cannot remove a stale temporary file", &self.path))?;
                create().map_err(io("cannot create a file", &self.path))?
            }
            Err(e) => return Err(io("cannot create a file", &self.path)(e)),
        };
        fchmod(&fd, Mode::from_bits_truncate(mode))
            .map_err(io("cannot set a file's mode", &self.path))?;
        if let Some(gid) = access.gid {
            fchown(&fd, None, Some(Gid::from_raw(gid)))
                .map_err(io("cannot set a file's group", &self.path))?;
        }
        let st = fstat(&fd).map_err(io("cannot read a file", &self.path))?;
        let mut file = File::from(fd);
        let e = |what| {
            let dir = self.path.clone();
            move |source| DirError { what, dir, source }
        };
        file.write_all(bytes).map_err(e("cannot write a file"))?;
        Ok((id_of(&st), file))
    }

    /// Renames `from` to `to` in this folder unless `to` exists.
    pub fn publish(&self, from: &str, to: &str, sha256: &[u8; 32]) -> Result<Published, DirError> {
        entry(from, &self.path)?;
        entry(to, &self.path)?;
        match renameat2(&self.fd, from, &self.fd, to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => Ok(Published::Done),
            Err(Errno::EEXIST) => self.taken(from, to, sha256),
            // File systems without RENAME_NOREPLACE (some network mounts): link, then unlink.
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
                match linkat(&self.fd, from, &self.fd, to, nix::fcntl::AtFlags::empty()) {
                    Ok(()) => {
                        unlinkat(&self.fd, from, UnlinkatFlags::NoRemoveDir)
                            .map_err(io("cannot remove a temporary file", &self.path))?;
                        Ok(Published::Done)
                    }
                    Err(Errno::EEXIST) => self.taken(from, to, sha256),
                    Err(e) => Err(io("cannot move a file into place", &self.path)(e)),
                }
            }
            Err(e) => Err(io("cannot move a file into place", &self.path)(e)),
        }
    }

    /// `to` exists: the same content (an earlier run got this far; `from` is removed), or
    /// another file that keeps its name.
    fn taken(&self, from: &str, to: &str, sha256: &[u8; 32]) -> Result<Published, DirError> {
        if self.sha256(to)?.as_ref() == Some(sha256) {
            let _ = unlinkat(&self.fd, from, UnlinkatFlags::NoRemoveDir);
            Ok(Published::AlreadyThere)
        } else {
            Ok(Published::NameTaken)
        }
    }

    /// The hash of the regular file at `name`, never read through a link.
    pub fn sha256(&self, name: &str) -> Result<Option<[u8; 32]>, DirError> {
        let Some(mut file) = self.open_file(name)? else {
            return Ok(None);
        };
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(|source| DirError {
                what: "cannot read a file",
                dir: self.path.clone(),
                source,
            })?;
            if n == 0 {
                return Ok(Some(hasher.finalize().into()));
            }
            hasher.update(&buf[..n]);
        }
    }

    /// The content of the regular file at `name`, never read through a link.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, DirError> {
        let Some(mut file) = self.open_file(name)? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        file.read_to_end(&mut out).map_err(|source| DirError {
            what: "cannot read a file",
            dir: self.path.clone(),
            source,
        })?;
        Ok(Some(out))
    }

    fn open_file(&self, name: &str) -> Result<Option<File>, DirError> {
        entry(name, &self.path)?;
        let fd = match openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ELOOP) => return Ok(None),
            Err(e) => return Err(io("cannot read a file", &self.path)(e)),
        };
        let st = fstat(&fd).map_err(io("cannot read a file", &self.path))?;
        Ok(is_file(&st).then(|| File::from(fd)))
    }

    /// Removes the name `name` if it is the file `id` (or, without an identity, a regular
    /// file this service owns). Returns whether it removed it.
    pub fn remove(&self, name: &str, id: Option<FileId>) -> Result<bool, DirError> {
        let Some(st) = self.stat(name)? else {
            return Ok(false);
        };
        let ours = match id {
            Some(id) => is_file(&st) && id_of(&st) == id,
            None => is_file(&st) && st.st_uid == euid(),
        };
        if !ours {
            return Ok(false);
        }
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(io("cannot remove a file", &self.path)(e)),
        }
    }

    /// Removes the folder `name` of this one if it is empty (and is a folder).
    pub fn remove_empty(&self, name: &str) -> bool {
        entry(name, &self.path).is_ok()
            && unlinkat(&self.fd, name, UnlinkatFlags::RemoveDir).is_ok()
    }

    /// Makes the folder's entries durable.
    pub fn sync(&self) -> Result<(), DirError> {
        nix::unistd::fsync(&self.fd).map_err(io("cannot sync a folder", &self.path))
    }

    /// The open folder, to sync it with others (`sync_together`).
    pub fn handle(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Every entry of the folder but `.` and `..`, with its type when the file system says.
    pub fn entries(&self) -> Result<Vec<(String, Option<nix::dir::Type>)>, DirError> {
        let fd = nix::fcntl::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())
            .map_err(io("cannot list a folder", &self.path))?;
        let mut list =
            nix::dir::Dir::from_fd(fd).map_err(io("cannot list a folder", &self.path))?;
        let mut out = Vec::new();
        for e in list.iter() {
            let e = e.map_err(io("cannot list a folder", &self.path))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name != "." && name != ".." {
                out.push((name, e.file_type()));
            }
        }
        Ok(out)
    }
}

/// Replaces the file at `path` with `bytes` (`Dir::replace` in its folder).
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DirError> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io("cannot write the file", path)(Errno::EINVAL));
    };
    Dir::root(dir)?.replace(&name.to_string_lossy(), bytes, mode)
}

/// Replaces the file at `path` with `bytes`, keeping its mode and group (a configuration
/// file edited in place: `root:mss-dispatch 0640` stays so).
pub fn replace_file_like(path: &Path, bytes: &[u8]) -> Result<(), DirError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|source| DirError {
        what: "cannot read the file's mode",
        dir: path.parent().unwrap_or(Path::new("/")).to_path_buf(),
        source,
    })?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io("cannot write the file", path)(Errno::EINVAL));
    };
    Dir::root(dir)?.replace_as(
        &name.to_string_lossy(),
        bytes,
        meta.mode() & 0o7777,
        Access {
            gid: Some(meta.gid()),
        },
    )
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

/// Opens the folders `trail` below `root`, never through a link; with `create`, missing ones
/// are made with that group and mode.
pub fn descend(
    root: &Dir,
    trail: &[String],
    create: Option<(Access, u32)>,
) -> Result<Dir, DirError> {
    let mut dir = root.dup()?;
    for name in trail {
        dir = dir.subdir(name, create)?;
    }
    Ok(dir)
}

/// Makes open files and folders durable, each result in the order given: all their `fsync`s
/// at once, from threads of their own (at most `SYNC_THREADS`), so that the file system's
/// journal commits them together, where one after the other each waits for a commit of its
/// own (half the time for a batch of eight files on ext4).
pub fn sync_together<F: AsFd + Sync>(handles: &[F]) -> Vec<nix::Result<()>> {
    if handles.len() < 2 {
        return handles
            .iter()
            .map(|h| nix::unistd::fsync(h.as_fd()))
            .collect();
    }
    let per_thread = handles.len().div_ceil(SYNC_THREADS);
    std::thread::scope(|scope| {
        let parts: Vec<_> = handles
            .chunks(per_thread)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|h| nix::unistd::fsync(h.as_fd()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .zip(handles.chunks(per_thread))
            .flat_map(|(h, part)| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(Errno::EIO); part.len()])
            })
            .collect()
    })
}

/// Syncs run at once by `sync_together`, at most.
const SYNC_THREADS: usize = 16;
