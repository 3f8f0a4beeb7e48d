//! Where messages come from, behind one trait: an IMAP mailbox (the product's job) or a local
//! Maildir (demos and tests). A source lists what its folder holds, hands over header blocks
//! and whole messages, and acknowledges: moves a message to the processed or quarantine
//! folder, or deletes it. It never decides anything; it never touches a message it was not
//! asked to acknowledge.

pub mod imap;
pub mod maildir;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::delivery::Ack;
use crate::ledger::{MailboxKey, ServerCopy, ServerCopyRow};

/// A message's header block and size, read without its body.
#[derive(Debug, Clone)]
pub struct Listed {
    pub item: String,
    pub size: u64,
    pub headers: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Retrying cannot help until a person changes something (trust anchors, certificate,
    /// credentials, permissions).
    #[error("{0}")]
    Fatal(String),
    /// The connection or the server failed: reconnect and try again.
    #[error("{0}")]
    Transient(String),
}

impl SourceError {
    pub fn is_fatal(&self) -> bool {
        matches!(self, SourceError::Fatal(_))
    }
}

/// Where a moved copy is now: its folder, and its UID there when the server said (UIDPLUS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub folder: String,
    pub validity: Option<String>,
    pub item: Option<String>,
}

/// Why `wait` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The server announced a change (IDLE).
    Change,
    /// The wait ran out: time for the safety poll.
    Timeout,
    Cancelled,
}

/// A mailbox folder holding incoming certificates.
#[allow(async_fn_in_trait)] // used through generics on one task, never as `dyn`
pub trait Source {
    /// Connects (if needed) and selects the folder; returns its key, whose validity changes
    /// when the server renumbers the folder (IMAP UIDVALIDITY).
    async fn open(&mut self) -> Result<MailboxKey, SourceError>;
    /// Drops the connection, politely when possible.
    async fn close(&mut self);
    /// Every message now in the folder.
    async fn list(&mut self) -> Result<Vec<String>, SourceError>;
    /// Header blocks and sizes; messages gone meanwhile are left out.
    async fn headers(&mut self, items: &[String]) -> Result<Vec<Listed>, SourceError>;
    /// Whole messages; messages the server did not hand over are left out.
    async fn bodies(&mut self, items: &[String]) -> Result<Vec<(String, Vec<u8>)>, SourceError>;
    /// Moves (or deletes) acknowledged messages; returns where each one went.
    async fn ack(&mut self, acks: &[Ack]) -> Result<Vec<(Ack, Option<ServerCopy>)>, SourceError>;
    /// Deletes copies the product moved to its folders, when their certificate is due; one
    /// result per copy, in order. A copy no longer there counts as deleted.
    async fn purge_copies(&mut self, copies: &[ServerCopyRow]) -> Vec<Result<(), String>>;
    /// Moves copies the product put in one of its folders to the folder `to` (a released
    /// quarantine goes to the processed folder); one result per copy, in order. A copy no
    /// longer found is reported where it should be, without a UID.
    async fn move_copies(
        &mut self,
        copies: &[ServerCopyRow],
        to: &str,
    ) -> Vec<Result<Moved, String>>;
    /// Waits for a change, at most `max`, or until cancelled.
    async fn wait(
        &mut self,
        max: Duration,
        cancel: &CancellationToken,
    ) -> Result<Woken, SourceError>;
    /// A short description for logs (no credentials).
    fn describe(&self) -> String;
}

/// What to do on the server.
#[derive(Default)]
pub struct Work {
    /// Copies to move, with the folder they go to.
    pub moves: Vec<(ServerCopyRow, String)>,
    /// Copies to delete.
    pub deletions: Vec<ServerCopyRow>,
}

/// What was done, copy by copy.
#[derive(Default)]
pub struct Done {
    pub moved: Vec<(ServerCopyRow, Result<Moved, String>)>,
    pub deleted: Vec<(ServerCopyRow, Result<(), String>)>,
}

impl Work {
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty() && self.deletions.is_empty()
    }

    pub fn fail(self, e: &str) -> Done {
        Done {
            moved: self
                .moves
                .into_iter()
                .map(|(c, _)| (c, Err(e.to_string())))
                .collect(),
            deleted: self
                .deletions
                .into_iter()
                .map(|c| (c, Err(e.to_string())))
                .collect(),
        }
    }
}

/// Does `work` through `src`: moves first, then deletions.
pub async fn apply<S: Source>(src: &mut S, work: Work) -> Done {
    let mut done = Done::default();
    let mut targets: Vec<String> = work.moves.iter().map(|(_, to)| to.clone()).collect();
    targets.sort_unstable();
    targets.dedup();
    for to in targets {
        let rows: Vec<ServerCopyRow> = work
            .moves
            .iter()
            .filter(|(_, t)| *t == to)
            .map(|(c, _)| c.clone())
            .collect();
        let results = src.move_copies(&rows, &to).await;
        done.moved.extend(rows.into_iter().zip(results));
    }
    if !work.deletions.is_empty() {
        let results = src.purge_copies(&work.deletions).await;
        done.deleted = work.deletions.into_iter().zip(results).collect();
    }
    done
}
