//! The IMAP source (async-imap over tokio-rustls). Every command runs under a timeout and
//! every response stream is drained; after any error the session is dropped and the caller
//! reconnects, so a half-dead connection never lingers. Messages are read with
//! `BODY.PEEK[…]` (flags untouched), sizes first; acknowledgement uses `UID MOVE` when offered,
//! else `UID COPY` + `\Deleted` + `UID EXPUNGE` (UIDPLUS), and records the new UID from
//! `COPYUID` so the server copy can be found again for its purge. Without UIDPLUS nothing is
//! expunged: a plain EXPUNGE would also remove other people's deleted mail.

pub mod connect;
mod server_copies;
pub mod tls;
mod utf7;
mod wait;
mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::{Ack, AckTarget, Listed, MailboxKey, ServerCopy, Source, SourceError, Woken};
use crate::core::config::{Imap, Mailbox};
pub use connect::Caps;
use connect::Session;
use server_copies::dest_is_some;
use tls::Credentials;
pub use wire::uid_set;
use wire::{quote, tagged, uids};

/// UIDs per header FETCH: keeps each response small.
const HEADER_CHUNK: usize = 200;

struct Folders {
    inbox: String,
    processed: Option<String>,
    quarantine: String,
    delimiter: String,
}

impl Folders {
    /// A configured folder name as the server spells it.
    fn wire(&self, name: &str) -> String {
        utf7::encode(&name.replace('/', &self.delimiter))
    }
}

pub struct ImapSource {
    imap: Imap,
    mailbox: Mailbox,
    creds: Arc<Credentials>,
    session: Option<Session>,
    caps: Caps,
    folders: Option<Folders>,
    key: MailboxKey,
    endpoint: String,
    /// Per command (`mailbox.timeout`); a body download gets three times as long.
    limit: Duration,
    /// Looks without touching (`inspect --mailbox`): the folder is opened with EXAMINE and
    /// the product's folders are not created.
    read_only: bool,
    /// The server announced new mail (`* n EXISTS`) alongside a command since the folder was
    /// last listed: the next wait returns at once instead of idling past it.
    announced: bool,
}

impl ImapSource {
    pub fn new(imap: &Imap, mailbox: &Mailbox, creds: Arc<Credentials>) -> ImapSource {
        let who = imap
            .username
            .clone()
            .unwrap_or_else(|| "certificate".into());
        let endpoint = format!("{}:{}", imap.host, imap.port);
        ImapSource {
            key: MailboxKey {
                mailbox: format!("imap://{who}@{endpoint}/{}", mailbox.folder),
                validity: String::new(),
            },
            imap: imap.clone(),
            mailbox: mailbox.clone(),
            creds,
            session: None,
            caps: Caps::default(),
            folders: None,
            endpoint,
            limit: mailbox.timeout,
            read_only: false,
            announced: false,
        }
    }

    /// A source that only looks: the folder is opened read-only (`EXAMINE`, RFC 3501 §6.3.2,
    /// so no flag changes and `\Recent` stays), messages are read with `BODY.PEEK`, no folder
    /// is created. Acknowledging through it is refused by the server.
    pub fn examine(imap: &Imap, mailbox: &Mailbox, creds: Arc<Credentials>) -> ImapSource {
        ImapSource {
            read_only: true,
            ..ImapSource::new(imap, mailbox, creds)
        }
    }

    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// When the client certificate expires, if there is one.
    pub fn client_cert_expiry(&self) -> Option<jiff::Timestamp> {
        self.creds
            .client_cert_validity
            .map(|(_, not_after)| not_after)
    }

    fn take(&mut self) -> Result<Session, SourceError> {
        self.session
            .take()
            .ok_or_else(|| SourceError::Transient(format!("{}: not connected", self.endpoint)))
    }

    /// Puts the session back after a successful command; drops it after a failed one.
    fn settle<T>(
        &mut self,
        session: Session,
        what: &str,
        result: Result<Result<T, async_imap::error::Error>, tokio::time::error::Elapsed>,
    ) -> Result<T, SourceError> {
        match result {
            Ok(Ok(v)) => {
                // Unsolicited responses pile up in a bounded channel: empty it, keeping only
                // whether new mail was announced (the server will not say it again in IDLE).
                while let Ok(r) = session.unsolicited_responses.try_recv() {
                    if matches!(
                        r,
                        async_imap::types::UnsolicitedResponse::Exists(_)
                            | async_imap::types::UnsolicitedResponse::Recent(_)
                    ) {
                        self.announced = true;
                    }
                }
                self.session = Some(session);
                Ok(v)
            }
            // The server refuses our folders: a configuration matter, not a network one.
            Ok(Err(async_imap::error::Error::No(text)))
                if matches!(what, "CREATE" | "SELECT" | "EXAMINE") =>
            {
                Err(SourceError::Fatal(format!(
                    "{}: {what} refused: {}; check the mailbox folder names",
                    self.endpoint,
                    text.trim()
                )))
            }
            Ok(Err(e)) => Err(connect::classify(&self.endpoint, what, e, &self.imap)),
            Err(_) => Err(SourceError::Transient(format!(
                "{}: {what} timed out",
                self.endpoint
            ))),
        }
    }

    fn folders(&self) -> Result<&Folders, SourceError> {
        self.folders
            .as_ref()
            .ok_or_else(|| SourceError::Transient(format!("{}: not connected", self.endpoint)))
    }

    async fn setup(&mut self) -> Result<(), SourceError> {
        let (session, caps) = connect::connect(&self.imap, &self.creds, self.limit).await?;
        self.session = Some(session);
        self.caps = caps;
        let mut s = self.take()?;
        let r = timeout(self.limit, async {
            // `LIST "" ""` answers with the hierarchy delimiter (RFC 3501 §6.3.8).
            let names: Vec<_> = s.list(Some(""), None).await?.try_collect().await?;
            Ok(names
                .first()
                .and_then(|n| n.delimiter().map(str::to_string)))
        })
        .await;
        let delimiter = self.settle(s, "LIST", r)?.unwrap_or_else(|| "/".into());
        let wire = |name: &str| utf7::encode(&name.replace('/', &delimiter));
        let folders = Folders {
            inbox: wire(&self.mailbox.folder),
            processed: (!self.mailbox.processed_folder.is_empty())
                .then(|| wire(&self.mailbox.processed_folder)),
            quarantine: wire(&self.mailbox.quarantine_folder),
            delimiter: delimiter.clone(),
        };
        let mut wanted = vec![folders.quarantine.clone()];
        wanted.extend(folders.processed.clone());
        if !self.read_only {
            for name in wanted {
                self.ensure_folder(&name).await?;
            }
        }
        let mut s = self.take()?;
        let inbox = folders.inbox.clone();
        let selected = if self.read_only {
            let r = timeout(self.limit, s.examine(&inbox)).await;
            self.settle(s, "EXAMINE", r)?
        } else {
            let r = timeout(self.limit, s.select(&inbox)).await;
            self.settle(s, "SELECT", r)?
        };
        self.key.validity = selected.uid_validity.unwrap_or(0).to_string();
        self.folders = Some(folders);
        Ok(())
    }

    async fn ensure_folder(&mut self, name: &str) -> Result<(), SourceError> {
        let mut s = self.take()?;
        let r = timeout(self.limit, async {
            let pattern = quote(name);
            let found: Vec<_> = s
                .list(Some(""), Some(&pattern))
                .await?
                .try_collect()
                .await?;
            if found.is_empty() {
                s.create(name).await?;
                tracing::info!(folder = name, "created the folder");
            }
            Ok(())
        })
        .await;
        self.settle(s, "CREATE", r)
    }

    /// Runs a UID MOVE / COPY and returns the source → destination UIDs from COPYUID.
    async fn copy_or_move(
        &mut self,
        verb: &str,
        set: &str,
        folder: &str,
    ) -> Result<(Option<u32>, HashMap<u32, u32>), SourceError> {
        let mut s = self.take()?;
        let command = format!("UID {verb} {set} {}", quote(folder));
        let r = timeout(self.limit, tagged(&mut s, &command)).await;
        self.settle(s, verb, r)
    }

    async fn simple(&mut self, what: &str, command: String) -> Result<(), SourceError> {
        let mut s = self.take()?;
        let r = timeout(self.limit, async {
            tagged(&mut s, &command).await.map(drop)
        })
        .await;
        self.settle(s, what, r)
    }
}

impl Source for ImapSource {
    async fn open(&mut self) -> Result<MailboxKey, SourceError> {
        if self.session.is_none() {
            self.folders = None;
            if let Err(e) = self.setup().await {
                self.session = None;
                return Err(e);
            }
            tracing::info!(
                mailbox = %self.key.mailbox,
                uidvalidity = %self.key.validity,
                idle = self.caps.idle,
                r#move = self.caps.moves,
                uidplus = self.caps.uidplus,
                "mailbox selected"
            );
        }
        Ok(self.key.clone())
    }

    async fn close(&mut self) {
        if let Some(mut s) = self.session.take() {
            let _ = timeout(Duration::from_secs(5), s.logout()).await;
        }
    }

    async fn list(&mut self) -> Result<Vec<String>, SourceError> {
        let mut s = self.take()?;
        // What was announced until now is in this listing.
        self.announced = false;
        let r = timeout(self.limit, s.uid_search("UNDELETED")).await;
        let uids = self.settle(s, "UID SEARCH", r)?;
        let mut uids: Vec<u32> = uids.into_iter().collect();
        uids.sort_unstable();
        Ok(uids.into_iter().map(|u| u.to_string()).collect())
    }

    async fn headers(&mut self, items: &[String]) -> Result<Vec<Listed>, SourceError> {
        let mut out = Vec::new();
        for chunk in items.chunks(HEADER_CHUNK) {
            let wanted = uids(chunk);
            let set = uid_set(&wanted);
            let mut s = self.take()?;
            let r = timeout(self.limit, async {
                let stream = s
                    .uid_fetch(&set, "(UID RFC822.SIZE BODY.PEEK[HEADER])")
                    .await?;
                stream.try_collect::<Vec<_>>().await
            })
            .await;
            for f in self.settle(s, "UID FETCH (headers)", r)? {
                // A UID range can return messages outside it: keep the ones asked for.
                let Some(uid) = f.uid.filter(|u| wanted.contains(u)) else {
                    continue;
                };
                out.push(Listed {
                    item: uid.to_string(),
                    size: u64::from(f.size.unwrap_or(0)),
                    headers: f.header().unwrap_or_default().to_vec(),
                });
            }
        }
        Ok(out)
    }

    async fn bodies(&mut self, items: &[String]) -> Result<Vec<(String, Vec<u8>)>, SourceError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let wanted = uids(items);
        let set = uid_set(&wanted);
        let mut s = self.take()?;
        let r = timeout(3 * self.limit, async {
            // Each body copied out as its response arrives and the response dropped: a
            // batch is in memory once, not twice.
            let mut bodies = Vec::with_capacity(wanted.len());
            let mut stream = s.uid_fetch(&set, "(UID BODY.PEEK[])").await?;
            while let Some(f) = stream.try_next().await? {
                if let (Some(uid), Some(body)) = (f.uid.filter(|u| wanted.contains(u)), f.body()) {
                    bodies.push((uid.to_string(), body.to_vec()));
                }
            }
            Ok(bodies)
        })
        .await;
        self.settle(s, "UID FETCH (bodies)", r)
    }

    async fn ack(&mut self, acks: &[Ack]) -> Result<Vec<(Ack, Option<ServerCopy>)>, SourceError> {
        let mut out = Vec::new();
        for target in [AckTarget::Processed, AckTarget::Quarantine] {
            let group: Vec<&Ack> = acks.iter().filter(|a| a.target == target).collect();
            if group.is_empty() {
                continue;
            }
            let list: Vec<u32> = group.iter().filter_map(|a| a.item.parse().ok()).collect();
            let set = uid_set(&list);
            let folders = self.folders()?;
            let (dest, name) = match target {
                AckTarget::Processed => (
                    folders.processed.clone(),
                    self.mailbox.processed_folder.clone(),
                ),
                AckTarget::Quarantine => (
                    Some(folders.quarantine.clone()),
                    self.mailbox.quarantine_folder.clone(),
                ),
            };
            let inbox = self.mailbox.folder.clone();
            let (validity, map, kept_in_inbox) = match dest {
                Some(folder) if self.caps.moves => {
                    let (v, m) = self.copy_or_move("MOVE", &set, &folder).await?;
                    (v, m, false)
                }
                Some(folder) => {
                    let (v, m) = self.copy_or_move("COPY", &set, &folder).await?;
                    let kept = self.delete(&set).await?;
                    (v, m, kept)
                }
                None => {
                    let kept = self.delete(&set).await?;
                    (None, HashMap::new(), kept)
                }
            };
            for ack in group {
                let uid: Option<u32> = ack.item.parse().ok();
                let copy = if dest_is_some(&name) {
                    Some(ServerCopy {
                        mailbox: self.key.mailbox.clone(),
                        folder: name.clone(),
                        validity: validity.map(|v| v.to_string()),
                        item: uid.and_then(|u| map.get(&u)).map(|u| u.to_string()),
                        message_id: ack.message_id.clone(),
                    })
                } else if kept_in_inbox {
                    // Flagged \Deleted but not expunged (no UIDPLUS): still on the server.
                    Some(ServerCopy {
                        mailbox: self.key.mailbox.clone(),
                        folder: inbox.clone(),
                        validity: Some(self.key.validity.clone()),
                        item: Some(ack.item.clone()),
                        message_id: ack.message_id.clone(),
                    })
                } else {
                    None
                };
                out.push((ack.clone(), copy));
            }
        }
        Ok(out)
    }

    fn lost_copy(
        &self,
        item: &str,
        target: AckTarget,
        message_id: Option<&str>,
    ) -> Option<ServerCopy> {
        let folder = match target {
            AckTarget::Processed => &self.mailbox.processed_folder,
            AckTarget::Quarantine => &self.mailbox.quarantine_folder,
        };
        if !dest_is_some(folder) {
            return None;
        }
        // Its UID in the folder is unknown: only its Message-ID finds it.
        let Some(message_id) = message_id else {
            tracing::error!(
                uid = item,
                folder = folder.as_str(),
                "ALERT: a message acknowledged but never recorded has no Message-ID: its copy \
                 in this folder cannot be found again and must be deleted by hand when due"
            );
            return None;
        };
        Some(ServerCopy {
            mailbox: self.key.mailbox.clone(),
            folder: folder.clone(),
            validity: None,
            item: None,
            message_id: Some(message_id.to_string()),
        })
    }

    async fn purge_copies(&mut self, copies: &[ServerCopy]) -> Vec<Result<(), SourceError>> {
        self.purge_all(copies).await
    }

    async fn move_copies(
        &mut self,
        copies: &[ServerCopy],
        to: &str,
    ) -> Vec<Result<ServerCopy, SourceError>> {
        self.move_all(copies, to).await
    }

    async fn wait(
        &mut self,
        max: Duration,
        cancel: &CancellationToken,
    ) -> Result<Woken, SourceError> {
        self.wait_for_mail(max, cancel).await
    }

    fn describe(&self) -> String {
        self.key.mailbox.clone()
    }
}
