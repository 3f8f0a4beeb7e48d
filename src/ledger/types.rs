//! The ledger's row types and the small enums stored as text.

use std::path::PathBuf;

pub use crate::source::{MailboxKey, ServerCopy};

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Unknown text reads as the first variant: rows are only written by this program.
            pub fn parse(s: &str) -> $name {
                match s {
                    $($text => $name::$variant,)+
                    _ => text_enum!(@first $($name::$variant),+),
                }
            }
        }
    };
    (@first $first:expr $(, $rest:expr)*) => { $first };
}

text_enum!(
    /// What became of a source message.
    Disposition {
        Pending = "pending",
        Ignored = "ignored",
        Delivered = "delivered",
        Quarantined = "quarantined",
        Duplicate = "duplicate",
        Stale = "stale",
        Expired = "expired",
    }
);

text_enum!(
    /// Where a certificate is in its life.
    CertState {
        Delivering = "delivering",
        Delivered = "delivered",
        Quarantining = "quarantining",
        Quarantined = "quarantined",
        Superseded = "superseded",
        Stale = "stale",
        Expired = "expired",
    }
);

impl CertState {
    /// Nothing is left to write for it.
    pub fn is_finished(self) -> bool {
        !matches!(self, CertState::Delivering | CertState::Quarantining)
    }

    pub fn is_quarantine(self) -> bool {
        matches!(self, CertState::Quarantining | CertState::Quarantined)
    }
}

pub use crate::core::layout::CopyKind;

text_enum!(
    /// planned → staged (temp written and synced) → published (renamed into place) →
    /// purging (its removal has begun) → gone (removed, or taken by the SIL or the site).
    CopyState {
        Planned = "planned",
        Staged = "staged",
        Published = "published",
        Purging = "purging",
        Gone = "gone",
    }
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub disposition: Disposition,
    pub certificate: Option<i64>,
    pub attempts: i64,
    pub acked: bool,
    /// The state of the certificate the message led to, if any.
    pub cert_state: Option<CertState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateRef {
    pub id: i64,
    pub state: CertState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRow {
    pub id: i64,
    pub state: CertState,
    pub received_at: i64,
    pub site: Option<String>,
    pub result: Option<String>,
    pub rule: String,
    pub sampled_at: Option<i64>,
    pub integrated_at: Option<i64>,
    pub purge_at: i64,
    pub purged_at: Option<i64>,
    pub dossier_hmac: Option<String>,
}

impl CertificateRow {
    /// What the retention log says about it.
    pub fn facts(&self) -> crate::core::audit::Facts {
        crate::core::audit::Facts {
            certificate: self.id,
            site: self.site.clone(),
            result: self.result.clone(),
            sampled_at: self
                .sampled_at
                .and_then(|s| jiff::Timestamp::from_second(s).ok()),
            dossier_hmac: self.dossier_hmac.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRow {
    pub id: i64,
    pub kind: CopyKind,
    pub path: PathBuf,
    pub temp: PathBuf,
    pub sha256: [u8; 32],
    pub state: CopyState,
    /// The file written, once staged (unknown for copies recorded by version 1).
    pub file: Option<crate::core::layout::FileId>,
}

#[derive(Debug, Clone, Default)]
pub struct NewCertificate {
    pub state: CertState,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub site: Option<String>,
    pub result: Option<String>,
    pub rule: String,
    pub received_at: i64,
    pub sampled_at: Option<i64>,
    pub integrated_at: Option<i64>,
    pub purge_at: i64,
    pub content_sha256: [u8; 32],
    pub pdf_sha256: Option<[u8; 32]>,
    pub message_id: Option<String>,
    pub dossier_hmac: Option<String>,
    pub dossier: Option<String>,
    pub nom: Option<String>,
    pub prenom: Option<String>,
    pub sexe: Option<String>,
    pub birth_date: Option<String>,
    pub ins: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCopy {
    pub kind: CopyKind,
    pub path: PathBuf,
    pub temp: PathBuf,
    pub sha256: [u8; 32],
}

// The enum comes from `text_enum!`, which cannot mark a default variant.
#[allow(clippy::derivable_impls)]
impl Default for CertState {
    fn default() -> Self {
        CertState::Delivering
    }
}

/// A message kept on the server, to be deleted when its certificate is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCopyRow {
    pub id: i64,
    pub certificate: i64,
    /// Where it is.
    pub copy: ServerCopy,
    pub due: i64,
    pub attempts: i64,
}
