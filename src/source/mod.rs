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
    /// Waits for a change, at most `max`, or until cancelled.
    async fn wait(
        &mut self,
        max: Duration,
        cancel: &CancellationToken,
    ) -> Result<Woken, SourceError>;
    /// A short description for logs (no credentials).
    fn describe(&self) -> String;
}
