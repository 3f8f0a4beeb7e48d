//! The ledger's rows: their types, the small enums stored as text, and how a SQLite row is
//! read into them.

use std::path::PathBuf;

use crate::core::layout::FileId;

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
    /// A print of a certificate: pending (recorded, not sent) → sending (being sent; after a
    /// crash, looked for on the printer before it is sent again) → sent (the printer took
    /// it: its job id is known) → printed, or failed after its attempts.
    PrintState {
        Pending = "pending",
        Sending = "sending",
        Sent = "sent",
        Printed = "printed",
        Failed = "failed",
    }
);

impl PrintState {
    pub fn is_finished(self) -> bool {
        matches!(self, PrintState::Printed | PrintState::Failed)
    }
}

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
    pub personal: Personal,
}

/// A certificate's personal fields: sealed in the ledger with the certificate's own key, and
/// gone with it at the purge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Personal {
    pub dossier: Option<String>,
    pub nom: Option<String>,
    pub prenom: Option<String>,
    pub sexe: Option<String>,
    pub birth_date: Option<String>,
    pub ins: Option<String>,
}

impl Personal {
    /// The columns that hold them, in the order of `fields` and `from_fields`.
    pub const COLUMNS: [&'static str; 6] =
        ["dossier", "nom", "prenom", "sexe", "birth_date", "ins"];

    pub fn fields(&self) -> [&Option<String>; 6] {
        [
            &self.dossier,
            &self.nom,
            &self.prenom,
            &self.sexe,
            &self.birth_date,
            &self.ins,
        ]
    }

    pub fn from_fields([dossier, nom, prenom, sexe, birth_date, ins]: [Option<String>; 6]) -> Self {
        Personal {
            dossier,
            nom,
            prenom,
            sexe,
            birth_date,
            ins,
        }
    }
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

/// The columns `copy_row_at` reads, in order.
pub(crate) const COPY_COLUMNS: &str = "id, kind, path, temp, sha256, state, dev, ino, certificate";
/// The same, of the table aliased `c`.
pub(crate) const C_COPY_COLUMNS: &str =
    "c.id, c.kind, c.path, c.temp, c.sha256, c.state, c.dev, c.ino, c.certificate";

/// The columns `certificate_row` reads, in order.
pub(crate) const CERTIFICATE_COLUMNS: &str = "id, state, received_at, site, result, rule, \
     sampled_at, integrated_at, purge_at, purged_at, dossier_hmac";

/// A `server_copy` row from `SELECT id, certificate, mailbox, folder, validity, item,
/// message_id, due, attempts`.
pub(crate) fn server_copy_row(r: &rusqlite::Row) -> rusqlite::Result<ServerCopyRow> {
    Ok(ServerCopyRow {
        id: r.get(0)?,
        certificate: r.get(1)?,
        copy: ServerCopy {
            mailbox: r.get(2)?,
            folder: r.get(3)?,
            validity: r.get(4)?,
            item: r.get(5)?,
            message_id: r.get(6)?,
        },
        due: r.get(7)?,
        attempts: r.get(8)?,
    })
}

pub(crate) fn certificate_row(r: &rusqlite::Row) -> rusqlite::Result<CertificateRow> {
    Ok(CertificateRow {
        id: r.get(0)?,
        state: CertState::parse(&r.get::<_, String>(1)?),
        received_at: r.get(2)?,
        site: r.get(3)?,
        result: r.get(4)?,
        rule: r.get(5)?,
        sampled_at: r.get(6)?,
        integrated_at: r.get(7)?,
        purge_at: r.get(8)?,
        purged_at: r.get(9)?,
        dossier_hmac: r.get(10)?,
    })
}

pub(crate) fn cert_ref(r: &rusqlite::Row) -> rusqlite::Result<CertificateRef> {
    Ok(CertificateRef {
        id: r.get(0)?,
        state: CertState::parse(&r.get::<_, String>(1)?),
    })
}

/// A copy as read, its path still sealed (`LedgerRead::reveal` opens it).
pub struct SealedCopy {
    pub(super) row: CopyRow,
    pub(super) path: Vec<u8>,
    pub(super) certificate: i64,
}

pub(crate) fn copy_row(r: &rusqlite::Row) -> rusqlite::Result<SealedCopy> {
    copy_row_at(r, 0)
}

/// A copy read from columns `at..at + 9` (`COPY_COLUMNS`); `LedgerRead::reveal` opens its path.
pub(crate) fn copy_row_at(r: &rusqlite::Row, at: usize) -> rusqlite::Result<SealedCopy> {
    let dev: Option<i64> = r.get(at + 6)?;
    let ino: Option<i64> = r.get(at + 7)?;
    let path = match r.get_ref(at + 2)? {
        rusqlite::types::ValueRef::Blob(b) => b.to_vec(),
        _ => Vec::new(),
    };
    Ok(SealedCopy {
        row: CopyRow {
            id: r.get(at)?,
            kind: CopyKind::parse(&r.get::<_, String>(at + 1)?),
            path: PathBuf::new(),
            temp: PathBuf::from(r.get::<_, String>(at + 3)?),
            sha256: blob32(r.get::<_, Vec<u8>>(at + 4)?),
            state: CopyState::parse(&r.get::<_, String>(at + 5)?),
            // Stored as SQLite integers (signed): the bits round-trip.
            file: dev.zip(ino).map(|(dev, ino)| FileId {
                dev: dev as u64,
                ino: ino as u64,
            }),
        },
        path,
        certificate: r.get(at + 8)?,
    })
}

pub(crate) fn blob32(v: Vec<u8>) -> [u8; 32] {
    let mut out = [0u8; 32];
    let n = v.len().min(32);
    out[..n].copy_from_slice(&v[..n]);
    out
}
