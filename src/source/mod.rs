//! Where messages come from, behind one trait: an IMAP mailbox (the product's job) or a local
//! Maildir (demos and tests). A source lists what its folder holds, hands over header blocks
//! and whole messages, and acknowledges: moves a message to the processed or quarantine
//! folder, or deletes it. It never decides anything; it never touches a message it was not
//! asked to acknowledge.

pub mod imap;
pub mod maildir;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A message's header block and size, read without its body.
#[derive(Debug, Clone)]
pub struct Listed {
    pub item: String,
    pub size: u64,
    pub headers: Vec<u8>,
}

#[derive(Debug, Clone, thiserror::Error)]
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

/// A source mailbox and the validity its item ids belong to (IMAP UIDVALIDITY).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailboxKey {
    /// `imaps://user@host/folder` or `maildir:/path`; never a password.
    pub mailbox: String,
    pub validity: String,
}

/// Where an acknowledged message goes at the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckTarget {
    Processed,
    Quarantine,
}

/// A message ready to be acknowledged: its certificate is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub item: String,
    pub target: AckTarget,
    pub certificate: i64,
    pub message_id: Option<String>,
}

/// A message the product keeps on the server (in one of its folders, or flagged in the
/// incoming one), to be deleted when its certificate is due: its folder, and its UID there
/// (with the folder's UIDVALIDITY) when the server said (UIDPLUS), else its Message-ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCopy {
    pub mailbox: String,
    pub folder: String,
    pub validity: Option<String>,
    pub item: Option<String>,
    pub message_id: Option<String>,
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
    /// Where an acknowledgement left the message when what `ack` answered never reached the
    /// ledger (a crash or a failed write in between, a connection lost before the answer):
    /// the copy kept in the target folder, to be found again at its purge (by Message-ID
    /// where its new UID is unknown). `None` when the acknowledgement keeps no copy, or
    /// nothing would find it.
    fn lost_copy(
        &self,
        item: &str,
        target: AckTarget,
        message_id: Option<&str>,
    ) -> Option<ServerCopy>;
    /// Deletes copies the product moved to its folders, when their certificate is due; one
    /// result per copy, in order. A copy no longer there counts as deleted.
    async fn purge_copies(&mut self, copies: &[ServerCopy]) -> Vec<Result<(), SourceError>>;
    /// Moves copies the product put in one of its folders to the folder `to` (a released
    /// quarantine goes to the processed folder); one result per copy, in order: where each
    /// is now. A copy no longer found is reported where it should be, without a UID.
    async fn move_copies(
        &mut self,
        copies: &[ServerCopy],
        to: &str,
    ) -> Vec<Result<ServerCopy, SourceError>>;
    /// Waits for a change, at most `max`, or until cancelled.
    async fn wait(
        &mut self,
        max: Duration,
        cancel: &CancellationToken,
    ) -> Result<Woken, SourceError>;
    /// A short description for logs (no credentials).
    fn describe(&self) -> String;
}

/// What a source made from the configuration may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The service, or a command acting on the server: folders created, messages moved.
    Act,
    /// A dry run: the folder opened read-only, nothing created, nothing changed.
    Examine,
}

/// The source the configuration names: an IMAP mailbox or a local Maildir.
pub enum Configured {
    Imap(Box<imap::ImapSource>),
    Maildir(Box<maildir::MaildirSource>),
}

/// The source of the configuration. An IMAP source's TLS files are read now: an error names
/// the key and the file, and is the operator's to fix (`SourceError::Fatal`).
pub fn from_config(
    config: &crate::core::config::Config,
    mode: Mode,
) -> Result<Configured, SourceError> {
    use crate::core::config::Source as Kind;
    match &config.source {
        Kind::Maildir(root) => Ok(Configured::Maildir(Box::new(maildir::MaildirSource::new(
            root,
            &config.mailbox,
        )))),
        Kind::Imap(settings) => {
            let creds = imap::tls::load(settings, jiff::Timestamp::now())
                .map_err(|e| SourceError::Fatal(e.to_string()))?;
            let creds = std::sync::Arc::new(creds);
            Ok(Configured::Imap(Box::new(match mode {
                Mode::Act => imap::ImapSource::new(settings, &config.mailbox, creds),
                Mode::Examine => imap::ImapSource::examine(settings, &config.mailbox, creds),
            })))
        }
    }
}

impl Configured {
    /// When the client certificate expires, if there is one.
    pub fn client_cert_expiry(&self) -> Option<jiff::Timestamp> {
        match self {
            Configured::Imap(s) => s.client_cert_expiry(),
            Configured::Maildir(_) => None,
        }
    }
}

/// Every method of `Source`, to the one configured.
macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Configured::Imap($s) => $e,
            Configured::Maildir($s) => $e,
        }
    };
}

impl Source for Configured {
    async fn open(&mut self) -> Result<MailboxKey, SourceError> {
        delegate!(self, s => s.open().await)
    }
    async fn close(&mut self) {
        delegate!(self, s => s.close().await)
    }
    async fn list(&mut self) -> Result<Vec<String>, SourceError> {
        delegate!(self, s => s.list().await)
    }
    async fn headers(&mut self, items: &[String]) -> Result<Vec<Listed>, SourceError> {
        delegate!(self, s => s.headers(items).await)
    }
    async fn bodies(&mut self, items: &[String]) -> Result<Vec<(String, Vec<u8>)>, SourceError> {
        delegate!(self, s => s.bodies(items).await)
    }
    async fn ack(&mut self, acks: &[Ack]) -> Result<Vec<(Ack, Option<ServerCopy>)>, SourceError> {
        delegate!(self, s => s.ack(acks).await)
    }
    fn lost_copy(
        &self,
        item: &str,
        target: AckTarget,
        message_id: Option<&str>,
    ) -> Option<ServerCopy> {
        delegate!(self, s => s.lost_copy(item, target, message_id))
    }
    async fn purge_copies(&mut self, copies: &[ServerCopy]) -> Vec<Result<(), SourceError>> {
        delegate!(self, s => s.purge_copies(copies).await)
    }
    async fn move_copies(
        &mut self,
        copies: &[ServerCopy],
        to: &str,
    ) -> Vec<Result<ServerCopy, SourceError>> {
        delegate!(self, s => s.move_copies(copies, to).await)
    }
    async fn wait(
        &mut self,
        max: Duration,
        cancel: &CancellationToken,
    ) -> Result<Woken, SourceError> {
        delegate!(self, s => s.wait(max, cancel).await)
    }
    fn describe(&self) -> String {
        delegate!(self, s => s.describe())
    }
}
