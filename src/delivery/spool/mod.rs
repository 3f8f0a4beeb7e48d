//! Durable, atomic, never-clobbering file writes into spool, SIL and quarantine folders, and
//! finding those files again, all through directory handles (`tree`): those folders are
//! written by people too (DESIGN invariant 8).
//!
//! A file is first written to a temporary name in its target folder (`Dir::stage`: created
//! `0640`, group set, written, its device and inode returned; then `fsync`ed with the rest of
//! its batch by `sync_together`), then renamed into
//! place with `RENAME_NOREPLACE` (`Dir::publish`), and the folder is `fsync`ed. After
//! `publish` the temporary name no longer exists: a crash recovery can tell "published" from
//! "not yet". A file is found again by its identity wherever the site's staff moved it in
//! their tree (`Finder`). Errors never carry the file name, which holds the patient's name:
//! only the folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::core::layout::CopyKind;
pub use crate::system::dir::{
    Access, Dir, DirError, FILE_MODE, FileId, Index, PARENT_MODE, Published, TEMP_PREFIX, descend,
    sync_together,
};

/// Site and SIL folders, and the day folders in them: the site's group may delete or move
/// what it was handed. No setgid bit (the unit's `RestrictSUIDSGID=yes` forbids it): the
/// service sets the group on every folder and file it makes.
pub const SITE_DIR_MODE: u32 = 0o770;
/// The quarantine folder: the service and its operators only.
pub const PRIVATE_DIR_MODE: u32 = 0o750;

/// Where a copy lives: the folder the configuration names (its root), the folders below it,
/// and its name. A spool copy sits in a day folder of its site's folder; SIL and quarantine
/// copies sit in their folder itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub root: PathBuf,
    pub trail: Vec<String>,
    pub name: String,
}

impl Place {
    pub fn of(kind: CopyKind, path: &Path) -> Place {
        let name = file_name(path);
        let parent = path.parent().unwrap_or(Path::new("/"));
        match kind {
            CopyKind::Spool => Place {
                root: parent.parent().unwrap_or(Path::new("/")).to_path_buf(),
                trail: vec![file_name(parent)],
                name,
            },
            _ => Place {
                root: parent.to_path_buf(),
                trail: Vec::new(),
                name,
            },
        }
    }

    /// Whether staff may have moved copies anywhere below the root (a site's own tree).
    fn deep(kind: CopyKind) -> bool {
        kind == CopyKind::Spool
    }
}

pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The mode of the folders made for a kind of copy.
pub fn dir_mode(kind: CopyKind) -> u32 {
    if kind.is_quarantine() {
        PRIVATE_DIR_MODE
    } else {
        SITE_DIR_MODE
    }
}

/// Opens the folder a copy goes into, creating it (and its root) with the group and mode of
/// its kind where it is missing.
pub fn folder(kind: CopyKind, path: &Path, access: Access) -> Result<Dir, DirError> {
    let place = Place::of(kind, path);
    let mode = dir_mode(kind);
    let root = Dir::ensure_root(&place.root, access, mode)?;
    descend(&root, &place.trail, Some((access, mode)))
}

/// Where a copy was found again.
#[derive(Debug, Default)]
pub struct Located {
    /// Each name the file has in its tree, in its folder, with the identity seen there.
    pub at: Vec<(Dir, String, FileId)>,
    /// Every folder of the tree was searched: not found means gone.
    pub complete: bool,
}

/// Finds copies again, wherever the staff of a site moved them in its tree: at their
/// recorded place first, else by their identity in an index of the tree built once per pass.
#[derive(Default)]
pub struct Finder {
    indexes: HashMap<PathBuf, Index>,
}

impl Finder {
    /// The file a copy wrote (`id`, recorded when it was staged) under its final or its
    /// temporary name. Without an identity (a copy recorded by an older version, or never
    /// staged), only a regular file this service owns at its recorded path or temporary
    /// name counts, and a temporary file found by name anywhere in the tree.
    pub fn locate(
        &mut self,
        kind: CopyKind,
        path: &Path,
        temp: &Path,
        id: Option<FileId>,
    ) -> Result<Located, DirError> {
        let place = Place::of(kind, path);
        let temp_name = file_name(temp);
        let root = match Dir::root(&place.root) {
            Ok(r) => r,
            // The whole folder is gone: so is the copy.
            Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Located {
                    at: Vec::new(),
                    complete: true,
                });
            }
            Err(e) => return Err(e),
        };
        let mut found = Located::default();
        if let Ok(dir) = descend(&root, &place.trail, None) {
            for (i, name) in [&place.name, &temp_name].into_iter().enumerate() {
                if name.is_empty() || (i == 1 && *name == place.name) {
                    continue;
                }
                let Some(st) = dir.stat(name)? else { continue };
                let Some(seen) = dir.file_id(name)? else {
                    continue;
                };
                let ours = match id {
                    Some(id) => seen == id,
                    None => st.st_uid == nix::unistd::geteuid().as_raw(),
                };
                if ours {
                    found.at.push((dir.dup()?, name.clone(), seen));
                }
            }
        }
        if !found.at.is_empty() {
            found.complete = true;
            return Ok(found);
        }
        let index = match self.indexes.get(&place.root) {
            Some(i) => i,
            None => {
                let built = Index::build(&root, Place::deep(kind))?;
                self.indexes.entry(place.root.clone()).or_insert(built)
            }
        };
        found.complete = !index.partial;
        let hits: Vec<(Vec<String>, String)> = match id {
            Some(id) => index.find(id).to_vec(),
            None => Vec::new(),
        };
        let temps: Vec<(Vec<String>, String)> = if temp_name.is_empty() {
            Vec::new()
        } else {
            index
                .temps(&temp_name)
                .iter()
                .map(|t| (t.clone(), temp_name.clone()))
                .collect()
        };
        for (trail, name) in hits.into_iter().chain(temps) {
            let Ok(dir) = descend(&root, &trail, None) else {
                found.complete = false;
                continue;
            };
            let Some(seen) = dir.file_id(&name)? else {
                continue;
            };
            if id.is_none_or(|id| id == seen || name == temp_name) {
                found.at.push((dir, name, seen));
            }
        }
        Ok(found)
    }

    /// Removes every name of a copy's file in its tree (and its temporary file). `complete`
    /// is false when part of the tree could not be searched: a copy not removed may be there.
    pub fn remove(
        &mut self,
        kind: CopyKind,
        path: &Path,
        temp: &Path,
        id: Option<FileId>,
    ) -> Result<Removal, DirError> {
        let found = self.locate(kind, path, temp, id)?;
        let mut removal = Removal {
            removed: 0,
            complete: found.complete,
        };
        let mut syncs = Syncs::default();
        for (dir, name, seen) in found.at {
            if dir.remove(&name, Some(seen))? {
                removal.removed += 1;
                syncs.add(dir)?;
            }
        }
        syncs.run()?;
        Ok(removal)
    }

    /// Forgets the indexes (files moved since they were built).
    pub fn clear(&mut self) {
        self.indexes.clear();
    }
}

/// What `Finder::remove` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    /// Names removed.
    pub removed: usize,
    /// The whole tree was searched.
    pub complete: bool,
}

/// The folders a batch writes into, each opened (and made, where missing) once for the
/// batch rather than once per file: a batch writes many files into a few folders.
#[derive(Default)]
pub struct Folders {
    dirs: HashMap<(PathBuf, Vec<String>), Arc<Dir>>,
}

impl Folders {
    /// `folder`, once per batch.
    pub fn get(
        &mut self,
        kind: CopyKind,
        path: &Path,
        access: Access,
    ) -> Result<Arc<Dir>, DirError> {
        self.open(kind, path, |_| folder(kind, path, access))
    }

    /// Whether nothing stands at a copy's path (looked at without following links; a
    /// folder that cannot be reached holds nothing this service would write over). A folder
    /// missing is looked for again at the next call.
    pub fn name_free(&mut self, kind: CopyKind, path: &Path) -> bool {
        let found = self.open(kind, path, |place| {
            descend(&Dir::root(&place.root)?, &place.trail, None)
        });
        let Ok(dir) = found else { return true };
        !matches!(dir.stat(&file_name(path)), Ok(Some(_)) | Err(_))
    }

    /// The folder of a copy's path, opened by `open` the first time it is asked for.
    fn open(
        &mut self,
        kind: CopyKind,
        path: &Path,
        open: impl FnOnce(&Place) -> Result<Dir, DirError>,
    ) -> Result<Arc<Dir>, DirError> {
        let place = Place::of(kind, path);
        let key = (place.root.clone(), place.trail.clone());
        if let Some(dir) = self.dirs.get(&key) {
            return Ok(Arc::clone(dir));
        }
        let dir = Arc::new(open(&place)?);
        self.dirs.insert(key, Arc::clone(&dir));
        Ok(dir)
    }
}

/// Folders to sync once each, after a batch of renames in them.
#[derive(Default)]
pub struct Syncs {
    dirs: HashMap<FileId, Arc<Dir>>,
}

impl Syncs {
    pub fn add(&mut self, dir: impl Into<Arc<Dir>>) -> Result<(), DirError> {
        let dir = dir.into();
        let id = dir.id()?;
        self.dirs.entry(id).or_insert(dir);
        Ok(())
    }

    /// Syncs them together (`sync_together`); the first failure names its folder.
    pub fn run(self) -> Result<(), DirError> {
        let dirs: Vec<Arc<Dir>> = self.dirs.into_values().collect();
        let handles: Vec<_> = dirs.iter().map(|d| d.handle()).collect();
        for (dir, result) in dirs.iter().zip(sync_together(&handles)) {
            result.map_err(|e| DirError {
                what: "cannot sync a folder",
                dir: dir.path().to_path_buf(),
                source: e.into(),
            })?;
        }
        Ok(())
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests;
