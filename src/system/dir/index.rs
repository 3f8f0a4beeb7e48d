//! Finding files by identity in a tree people move things around in: walked through
//! handles, never following links, and trusted only when two walks agree.

use super::*;

/// Folders visited at most when a tree is searched.
const MAX_DEPTH: usize = 12;
/// Entries looked at at most when a tree is searched.
const MAX_ENTRIES: usize = 500_000;

/// Every regular file of a tree, by identity, with the folders leading to it: built once per
/// pass for a tree in which some file was not where it was left.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Index {
    files: std::collections::HashMap<FileId, Vec<(Vec<String>, String)>>,
    /// This service's temporary files (`.mss-dispatch.*`), by name.
    temps: std::collections::HashMap<String, Vec<Vec<String>>>,
    /// The search stopped at a limit: a file not found may still be there.
    pub partial: bool,
}

/// Walks of a tree made to see it hold still, at most.
const WALKS: usize = 4;

impl Index {
    /// Walks the tree below `root` (its sub-folders too when `deep`), never through a link.
    ///
    /// People may be moving files while it is walked: a file moved from a folder not yet
    /// visited into one already visited would be missed, and taken for gone. So the tree is
    /// walked until two walks in a row see the same tree; if it never holds still, the index
    /// is partial, and nothing is concluded from what it does not hold.
    pub fn build(root: &Dir, deep: bool) -> Result<Index, DirError> {
        let mut last = Index::walked(root, deep)?;
        for _ in 1..WALKS {
            let next = Index::walked(root, deep)?;
            if next == last {
                return Ok(next);
            }
            last = next;
        }
        last.partial = true;
        Ok(last)
    }

    fn walked(root: &Dir, deep: bool) -> Result<Index, DirError> {
        let mut index = Index::default();
        let mut seen = 0usize;
        index.walk(root, &mut Vec::new(), deep, &mut seen)?;
        Ok(index)
    }

    fn walk(
        &mut self,
        dir: &Dir,
        trail: &mut Vec<String>,
        deep: bool,
        seen: &mut usize,
    ) -> Result<(), DirError> {
        for (name, kind) in dir.entries()? {
            *seen += 1;
            if *seen > MAX_ENTRIES {
                self.partial = true;
                return Ok(());
            }
            if matches!(kind, Some(nix::dir::Type::Symlink)) {
                continue;
            }
            let Some(st) = dir.stat(&name)? else {
                // Gone between the listing and now: the tree is moving.
                self.partial = true;
                continue;
            };
            if is_file(&st) {
                if name.starts_with(TEMP_PREFIX) && st.st_uid == euid() {
                    self.temps
                        .entry(name.clone())
                        .or_default()
                        .push(trail.clone());
                }
                self.files
                    .entry(id_of(&st))
                    .or_default()
                    .push((trail.clone(), name));
            } else if is_dir(&st) && deep {
                if trail.len() >= MAX_DEPTH {
                    self.partial = true;
                    continue;
                }
                // A folder that cannot be opened (staff made it unreadable) hides what is in
                // it: the search is partial, not failed.
                match dir.subdir(&name, None) {
                    Ok(sub) => {
                        trail.push(name);
                        self.walk(&sub, trail, deep, seen)?;
                        trail.pop();
                    }
                    Err(_) => self.partial = true,
                }
            }
        }
        Ok(())
    }

    /// Where the file `id` is in the tree: the folders from the root, and its name.
    pub fn find(&self, id: FileId) -> &[(Vec<String>, String)] {
        self.files.get(&id).map_or(&[], Vec::as_slice)
    }

    /// The folders holding a temporary file of this service named `name`.
    pub fn temps(&self, name: &str) -> &[Vec<String>] {
        self.temps.get(name).map_or(&[], Vec::as_slice)
    }
}
