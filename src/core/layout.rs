//! Where each copy of a certificate goes (DESIGN invariant 4): a delivered PDF into its
//! site's spool, in a sub-folder per sampling day (`2021-10-29/`, so staff find today's at
//! once), and/or into the SIL drop folder with a JSON sidecar of the same stem; a quarantined
//! message into `quarantine.dir` as `<id>.eml` with `<id>.json` beside it. Names come from
//! checked fields only. Pure: whether a name is free is the shell's question.

use std::path::PathBuf;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::config::Config;
use super::decide::{Decision, Outcome};

/// A file's device and inode, recorded when it is written, so that it can be recognised
/// wherever the site's staff rename or move it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// What a file written for a certificate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CopyKind {
    Spool,
    SilJson,
    SilPdf,
    QuarantineEml,
    QuarantineJson,
}

impl CopyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyKind::Spool => "spool",
            CopyKind::SilJson => "sil_json",
            CopyKind::SilPdf => "sil_pdf",
            CopyKind::QuarantineEml => "quarantine_eml",
            CopyKind::QuarantineJson => "quarantine_json",
        }
    }

    /// Unknown text reads as `Spool`: rows are only written by this program.
    pub fn parse(s: &str) -> CopyKind {
        match s {
            "sil_json" => CopyKind::SilJson,
            "sil_pdf" => CopyKind::SilPdf,
            "quarantine_eml" => CopyKind::QuarantineEml,
            "quarantine_json" => CopyKind::QuarantineJson,
            _ => CopyKind::Spool,
        }
    }

    pub fn is_quarantine(self) -> bool {
        matches!(self, CopyKind::QuarantineEml | CopyKind::QuarantineJson)
    }

    /// The order files become visible: a SIL sidecar before its PDF.
    pub fn publish_rank(self) -> u8 {
        match self {
            CopyKind::SilJson | CopyKind::QuarantineJson => 0,
            _ => 1,
        }
    }
}

/// One file to write: its folder and the name it would like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: CopyKind,
    pub dir: PathBuf,
    pub name: String,
}

/// The files a decision asks for. Files that must share a stem (a SIL PDF and its sidecar)
/// are listed together, sidecar first. Without the raw message (too large, unreadable), a
/// quarantine keeps its reason file only; the message stays on the server.
pub fn targets(
    outcome: &Outcome,
    certificate: i64,
    config: &Config,
    tz: &TimeZone,
    have_raw: bool,
) -> Vec<Target> {
    match &outcome.decision {
        Decision::Deliver {
            site, file_name, ..
        } => {
            let Some(site) = config.site(site) else {
                return Vec::new();
            };
            let mut out = Vec::new();
            if let Some(spool) = &site.spool {
                let day = outcome
                    .cert
                    .sampled_at
                    .map_or_else(|| "sans-date".into(), |t| day(t, tz));
                out.push(Target {
                    kind: CopyKind::Spool,
                    dir: spool.join(day),
                    name: file_name.clone(),
                });
            }
            if let Some(sil) = &site.sil {
                out.push(Target {
                    kind: CopyKind::SilJson,
                    dir: sil.clone(),
                    name: sidecar_name(file_name),
                });
                out.push(Target {
                    kind: CopyKind::SilPdf,
                    dir: sil.clone(),
                    name: file_name.clone(),
                });
            }
            out
        }
        Decision::Quarantine { .. } => {
            let mut out = vec![Target {
                kind: CopyKind::QuarantineJson,
                dir: config.quarantine_dir.clone(),
                name: format!("{certificate}.json"),
            }];
            if have_raw {
                out.push(Target {
                    kind: CopyKind::QuarantineEml,
                    dir: config.quarantine_dir.clone(),
                    name: format!("{certificate}.eml"),
                });
            }
            out
        }
        Decision::Ignore { .. } => Vec::new(),
    }
}

/// `NAME.pdf` → `NAME.json`.
pub fn sidecar_name(pdf_name: &str) -> String {
    match pdf_name.strip_suffix(".pdf") {
        Some(stem) => format!("{stem}.json"),
        None => format!("{pdf_name}.json"),
    }
}

/// The sampling day in Europe/Paris, as the spool sub-folder name.
pub fn day(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d")
        .to_string()
}
