//! A local Maildir as source, for demonstrations and tests without a server. The folder
//! `INBOX` is the Maildir itself; other folders are Maildir++ sub-folders (`SI-DEP/Traites` is
//! `.SI-DEP.Traites`). An item is a message's unique name (the file name before `:2,`), which
//! stays stable when another client renames the file to change flags.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Ack, AckTarget, Listed, MailboxKey, ServerCopy, Source, SourceError, Woken};
use crate::core::config::Mailbox;
use crate::core::decide::header_block;

pub struct MaildirSource {
    root: PathBuf,
    inbox: PathBuf,
    processed: Option<(String, PathBuf)>,
    quarantine: (String, PathBuf),
    key: MailboxKey,
    files: HashMap<String, PathBuf>,
}

impl MaildirSource {
    pub fn new(root: &Path, mailbox: &Mailbox) -> MaildirSource {
        let folder = |name: &str| folder_dir(root, name);
        MaildirSource {
            root: root.to_path_buf(),
            inbox: folder(&mailbox.folder),
            processed: (!mailbox.processed_folder.is_empty()).then(|| {
                (
                    mailbox.processed_folder.clone(),
                    folder(&mailbox.processed_folder),
                )
            }),
            quarantine: (
                mailbox.quarantine_folder.clone(),
                folder(&mailbox.quarantine_folder),
            ),
            key: MailboxKey {
                mailbox: format!("maildir:{}/{}", root.display(), mailbox.folder),
                validity: "maildir".into(),
            },
            files: HashMap::new(),
        }
    }

    fn io(&self, what: &str, e: std::io::Error) -> SourceError {
        let text = format!("Maildir {}: {what}: {e}", self.root.display());
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            SourceError::Fatal(text)
        } else {
            SourceError::Transient(text)
        }
    }

    fn folder(&self, name: &str) -> PathBuf {
        folder_dir(&self.root, name)
    }

    fn path(&self, item: &str) -> Option<&PathBuf> {
        self.files.get(item)
    }

    /// The files of a copy kept in one of the product's folders.
    fn files_of(&self, copy: &ServerCopy) -> Result<Vec<PathBuf>, SourceError> {
        let Some(item) = &copy.item else {
            return Err(SourceError::Fatal("no item recorded".to_string()));
        };
        let dir = self.folder(&copy.folder);
        let mut out = Vec::new();
        for sub in ["cur", "new"] {
            let entries = match std::fs::read_dir(dir.join(sub)) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io(&dir.join(sub).display().to_string(), e)),
            };
            for entry in entries.flatten() {
                if unique(&entry.file_name().to_string_lossy()) == item {
                    out.push(entry.path());
                }
            }
        }
        Ok(out)
    }
}

/// The directory of a folder: the Maildir itself for INBOX, else a Maildir++ sub-folder.
fn folder_dir(root: &Path, name: &str) -> PathBuf {
    if name.eq_ignore_ascii_case("INBOX") {
        root.to_path_buf()
    } else {
        root.join(format!(".{}", name.replace('/', ".")))
    }
}

/// The unique part of a Maildir file name.
fn unique(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

fn ensure_maildir(dir: &Path) -> std::io::Result<()> {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    Ok(())
}

impl Source for MaildirSource {
    async fn open(&mut self) -> Result<MailboxKey, SourceError> {
        if !self.inbox.join("cur").is_dir() && !self.inbox.join("new").is_dir() {
            return Err(SourceError::Fatal(format!(
                "mailbox.maildir: {} is not a Maildir (no cur/ or new/)",
                self.inbox.display()
            )));
        }
        Ok(self.key.clone())
    }

    async fn close(&mut self) {}

    async fn list(&mut self) -> Result<Vec<String>, SourceError> {
        let mut files = HashMap::new();
        for sub in ["new", "cur"] {
            let dir = self.inbox.join(sub);
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io("cannot list", e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| self.io("cannot list", e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') && entry.path().is_file() {
                    files.insert(unique(&name).to_string(), entry.path());
                }
            }
        }
        let mut items: Vec<String> = files.keys().cloned().collect();
        items.sort();
        self.files = files;
        Ok(items)
    }

    async fn headers(&mut self, items: &[String]) -> Result<Vec<Listed>, SourceError> {
        let mut out = Vec::new();
        for item in items {
            let Some(path) = self.path(item).cloned() else {
                continue;
            };
            let mut file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io("cannot read a message", e)),
            };
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let mut head = vec![0u8; 64 * 1024];
            let mut n = 0;
            while n < head.len() {
                match file.read(&mut head[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) => return Err(self.io("cannot read a message", e)),
                }
            }
            head.truncate(n);
            let headers = header_block(&head).to_vec();
            out.push(Listed {
                item: item.clone(),
                size,
                headers,
            });
        }
        Ok(out)
    }

    async fn bodies(&mut self, items: &[String]) -> Result<Vec<(String, Vec<u8>)>, SourceError> {
        let mut out = Vec::new();
        for item in items {
            let Some(path) = self.path(item) else {
                continue;
            };
            match std::fs::read(path) {
                Ok(raw) => out.push((item.clone(), raw)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io("cannot read a message", e)),
            }
        }
        Ok(out)
    }

    async fn ack(&mut self, acks: &[Ack]) -> Result<Vec<(Ack, Option<ServerCopy>)>, SourceError> {
        let mut out = Vec::new();
        for ack in acks {
            let Some(path) = self.path(&ack.item).cloned() else {
                continue;
            };
            let target = match ack.target {
                AckTarget::Processed => self.processed.clone(),
                AckTarget::Quarantine => Some(self.quarantine.clone()),
            };
            let copy = match target {
                None => {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(self.io("cannot delete a message", e)),
                    }
                    None
                }
                Some((name, dir)) => {
                    ensure_maildir(&dir).map_err(|e| self.io("cannot create a folder", e))?;
                    let file_name = path
                        .file_name()
                        .map(|n| n.to_os_string())
                        .unwrap_or_default();
                    match std::fs::rename(&path, dir.join("cur").join(&file_name)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(self.io("cannot move a message", e)),
                    }
                    Some(ServerCopy {
                        mailbox: self.key.mailbox.clone(),
                        folder: name,
                        validity: Some(self.key.validity.clone()),
                        item: Some(ack.item.clone()),
                        message_id: ack.message_id.clone(),
                    })
                }
            };
            self.files.remove(&ack.item);
            out.push((ack.clone(), copy));
        }
        Ok(out)
    }

    fn lost_copy(
        &self,
        item: &str,
        target: AckTarget,
        message_id: Option<&str>,
    ) -> Option<ServerCopy> {
        let (folder, _) = match target {
            AckTarget::Processed => self.processed.as_ref()?,
            AckTarget::Quarantine => &self.quarantine,
        };
        // A message keeps its unique name when moved: found by it.
        Some(ServerCopy {
            mailbox: self.key.mailbox.clone(),
            folder: folder.clone(),
            validity: Some(self.key.validity.clone()),
            item: Some(item.to_string()),
            message_id: message_id.map(str::to_string),
        })
    }

    async fn purge_copies(&mut self, copies: &[ServerCopy]) -> Vec<Result<(), SourceError>> {
        copies
            .iter()
            .map(|c| {
                for path in self.files_of(c)? {
                    std::fs::remove_file(&path)
                        .map_err(|e| self.io(&path.display().to_string(), e))?;
                }
                Ok(())
            })
            .collect()
    }

    async fn move_copies(
        &mut self,
        copies: &[ServerCopy],
        to: &str,
    ) -> Vec<Result<ServerCopy, SourceError>> {
        let dest = self.folder(to);
        copies
            .iter()
            .map(|c| {
                let moved = ServerCopy {
                    folder: to.to_string(),
                    ..c.clone()
                };
                ensure_maildir(&dest).map_err(|e| self.io(&dest.display().to_string(), e))?;
                for path in self.files_of(c)? {
                    let name = path.file_name().unwrap_or_default();
                    std::fs::rename(&path, dest.join("cur").join(name))
                        .map_err(|e| self.io(&path.display().to_string(), e))?;
                }
                Ok(moved)
            })
            .collect()
    }

    async fn wait(
        &mut self,
        max: Duration,
        cancel: &CancellationToken,
    ) -> Result<Woken, SourceError> {
        tokio::select! {
            _ = tokio::time::sleep(max) => Ok(Woken::Timeout),
            _ = cancel.cancelled() => Ok(Woken::Cancelled),
        }
    }

    fn describe(&self) -> String {
        self.key.mailbox.clone()
    }
}
