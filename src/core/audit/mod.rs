//! The retention log's records (DESIGN invariant 5): what happened to a certificate, when,
//! under which rule, with an opaque certificate id, the site's FINESS, the result class, the
//! sampling day and a keyed pseudonym of the dossier — never a name, birth date, INS or plain
//! dossier number. Records are JSON lines chained by hash: each carries the SHA-256 of the
//! line before it, so an edited, removed or reordered record breaks the chain at that point.
//! Rendering and verification are pure; `crate::retention::log` owns the file.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The certificate's message was read and taken in charge.
    Received,
    /// Written to a site's spool or SIL drop folder (`destination`).
    Delivered,
    /// Kept aside for a person (`reason`).
    Quarantined,
    /// Replaced by a re-send with a newer integration date (`by`); its files are gone.
    Superseded,
    /// A re-send older than the certificate already delivered (`by`): not delivered.
    Stale,
    /// Arrived after its due time (`rule`, `due`): not delivered, nothing kept.
    Expired,
    /// The lab information system took its files from the drop folder.
    HandedToSil,
    /// Site staff removed the file from the spool (after printing it).
    RemovedBySite,
    /// Every local copy is gone and the personal fields are erased (`rule`, `due`,
    /// `purged_at`, `lateness_seconds`).
    Purged,
    /// The copy kept on the mail server was deleted (`folder`, `due`, `purged_at`,
    /// `lateness_seconds`).
    ServerCopyPurged,
    /// A person released a quarantined certificate (`user`, `overrides`).
    Released,
    /// A person discarded a quarantined certificate (`user`).
    Discarded,
    /// The wall clock moved in a way that stops purging until an operator confirms it.
    ClockHold,
    /// An operator confirmed the clock (`user`).
    ClockConfirmed,
    /// The log's last line was cut by a crash in the middle of a write; the cut line was
    /// removed and its records written again (`detail`).
    LogRepaired,
    /// The log did not end where the ledger said, or the ledger was lost: an operator started
    /// a new segment (`user`, `detail` the reason, `gap_from`/`gap_to` the records missing,
    /// `ledger_head` and `file_head` what each said last). The break stays visible.
    Resealed,
    /// A file in a site, SIL or quarantine folder that the ledger did not know (after a
    /// ledger loss) was removed at the end of the longest retention (`folder`, `rule`, `due`).
    OrphanPurged,
    /// The site's printer printed the certificate (`destination` the printer, `detail` its
    /// job id and name).
    Printed,
    /// The certificate could not be printed after its attempts, or the printer refused it
    /// (`destination`, `detail` why); its spool copy is there all the same.
    PrintFailed,
    /// A person asked for another print (`user`, `destination`).
    Reprinted,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Received => "received",
            Event::Delivered => "delivered",
            Event::Quarantined => "quarantined",
            Event::Superseded => "superseded",
            Event::Stale => "stale",
            Event::Expired => "expired",
            Event::HandedToSil => "handed_to_sil",
            Event::RemovedBySite => "removed_by_site",
            Event::Purged => "purged",
            Event::ServerCopyPurged => "server_copy_purged",
            Event::Released => "released",
            Event::Discarded => "discarded",
            Event::ClockHold => "clock_hold",
            Event::ClockConfirmed => "clock_confirmed",
            Event::LogRepaired => "log_repaired",
            Event::Resealed => "resealed",
            Event::OrphanPurged => "orphan_purged",
            Event::Printed => "printed",
            Event::PrintFailed => "print_failed",
            Event::Reprinted => "reprinted",
        }
    }
}

/// A record's content, before it is placed in the chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    /// RFC 3339 with the Europe/Paris offset.
    pub time: String,
    pub event: Option<Event>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The sampling day (Europe/Paris), `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dossier_hmac: Option<String>,
    /// `spool` or `sil`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `negative`, `positive` or `quarantine`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purged_at: Option<String>,
    /// How long after its due time a copy was purged (0 when on time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lateness_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// The other certificate of a re-send (the newer one for `superseded`, the one kept for
    /// `stale`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<i64>,
    /// The Unix user who acted (operator commands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// What the operator overrode (`release`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overrides: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `resealed`: the first and last record numbers missing (none when nothing is missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_to: Option<u64>,
    /// `resealed`: the last record the ledger had written, and the last one the file held, as
    /// `SEQ HASH`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_head: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_head: Option<String>,
}

/// What every record says about its certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub certificate: i64,
    pub site: Option<String>,
    pub result: Option<String>,
    pub sampled_at: Option<jiff::Timestamp>,
    pub dossier_hmac: Option<String>,
}

impl Facts {
    /// A record of `event` at `time` about this certificate.
    pub fn body(&self, event: Event, time: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> Body {
        Body {
            time: super::retention::rfc3339(time, tz),
            event: Some(event),
            certificate: Some(self.certificate),
            site: self.site.clone(),
            result: self.result.clone(),
            sampled_on: self.sampled_at.map(|t| super::layout::day(t, tz)),
            dossier_hmac: self.dossier_hmac.clone(),
            ..Body::default()
        }
    }
}

/// A record in the chain: `seq` counts from 1, `prev` is the hash of the line before,
/// `id` is the ledger's event id (so that a record is appended once even after a crash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub prev: String,
    pub id: i64,
    #[serde(flatten)]
    pub body: Body,
}

/// The end of the chain: the last record's number and its line's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
    pub id: i64,
}

impl Head {
    pub fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.to_string(),
            id: 0,
        }
    }
}

/// The SHA-256 of a line (without its line break), in lower-case hex.
pub fn line_hash(line: &str) -> String {
    hex(&Sha256::digest(line.as_bytes()))
}

/// The keyed pseudonym of a dossier: HMAC-SHA256 over the site's FINESS and the dossier
/// number, with the installation's secret. Stable for one installation, meaningless without
/// its secret.
pub fn pseudonym(secret: &[u8], site: &str, dossier: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(site.as_bytes());
    mac.update(&[0]);
    mac.update(dossier.as_bytes());
    hex(&mac.finalize().into_bytes())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Renders the record that follows `head`, and the new head.
pub fn append(head: &Head, id: i64, body: Body) -> (String, Head) {
    let record = Record {
        seq: head.seq + 1,
        prev: head.hash.clone(),
        id,
        body,
    };
    let line = serde_json::to_string(&record).expect("serialisable");
    let next = Head {
        seq: record.seq,
        hash: line_hash(&line),
        id,
    };
    (line, next)
}

/// A new segment an operator started (`resealed`), as verification found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reseal {
    pub line: usize,
    pub seq: u64,
    /// The records missing before it, if any.
    pub gap: Option<(u64, u64)>,
    pub detail: Option<String>,
    pub user: Option<String>,
}

/// A verified chain: where it ends, and the segments operators started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub head: Head,
    pub reseals: Vec<Reseal>,
    /// The records (lines) it holds: fewer than the head's number when a new segment says
    /// records are missing.
    pub records: u64,
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// 1-based line number in the file.
    pub line: usize,
    pub seq: Option<u64>,
    pub why: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "record {seq} (line {}): {}", self.line, self.why),
            None => write!(f, "line {}: {}", self.line, self.why),
        }
    }
}

/// Checks the chain; returns its head and the segments operators started, or the first record
/// that breaks it. A `resealed` record carries the hash of the line before it like any other,
/// but may skip numbers: the records it says are missing.
pub fn verify<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<Chain, Broken> {
    let mut head = Head::genesis();
    let mut reseals = Vec::new();
    let mut records = 0;
    for (n, line) in lines.into_iter().enumerate() {
        let line_no = n + 1;
        let record: Record = serde_json::from_str(line).map_err(|e| Broken {
            line: line_no,
            seq: None,
            why: format!("not a retention-log record ({e})"),
        })?;
        if record.body.event == Some(Event::Resealed) && record.seq > head.seq {
            let gap = (record.seq > head.seq + 1).then(|| (head.seq + 1, record.seq - 1));
            if record.body.gap_from.zip(record.body.gap_to) != gap {
                return Err(Broken {
                    line: line_no,
                    seq: Some(record.seq),
                    why: "a new segment whose stated gap is not the records missing before it"
                        .into(),
                });
            }
            reseals.push(Reseal {
                line: line_no,
                seq: record.seq,
                gap,
                detail: record.body.detail.clone(),
                user: record.body.user.clone(),
            });
        } else if record.seq != head.seq + 1 {
            return Err(Broken {
                line: line_no,
                seq: Some(record.seq),
                why: format!(
                    "number {} where {} was expected: a record was removed or moved",
                    record.seq,
                    head.seq + 1
                ),
            });
        }
        if record.prev != head.hash {
            return Err(Broken {
                line: line_no,
                seq: Some(record.seq),
                why: "it does not carry the hash of the record before it: that record, or \
                      this one, was changed, removed or moved"
                    .into(),
            });
        }
        head = Head {
            seq: record.seq,
            hash: line_hash(line),
            id: record.id,
        };
        records += 1;
    }
    Ok(Chain {
        head,
        reseals,
        records,
    })
}

#[cfg(test)]
mod tests;
