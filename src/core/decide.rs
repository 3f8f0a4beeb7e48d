//! From one message's bytes to a `Decision`: deliver to a site, quarantine with a reason, or
//! ignore. The subject is authoritative for FINESS and dossier; any disagreement with the
//! attachment name or the body is a quarantine, never a guess. Pure: the configuration, the
//! time zone and the reception instant come in as arguments.
//!
//! Longer than 400 lines on purpose: the checks run in one order that matters (headers, then
//! subject, then attachment, then body, then dates and retention), and reading them top to
//! bottom in one file is how a reviewer sees that no disagreement can slip through.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::config::Config;
use super::dates::parse_instant;
use super::fields::{self, BodyFields, SubjectKind};
use super::filename::delivered_name;
use super::finess::Finess;
use super::mime::{self, Mail};
use super::retention::{self, Rule};
use super::test_result::{ResultClass, classify};
use super::text::fold;

/// Why a message is not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    SenderNotAllowed,
    NotACertificate,
    Malformed,
    TooLarge,
    NoPdf,
    NotPdf,
    MultiplePdfs,
    FinessInvalid,
    UnknownSite,
    SubjectAttachmentMismatch,
    SubjectBodyMismatch,
    UnknownResult,
    NoSamplingDate,
    ImplausibleSamplingDate,
    /// The server would not hand the message over, several times in a row.
    FetchFailed,
    /// A re-send of a delivered certificate whose integration dates do not say which is newer.
    AmbiguousResend,
}

impl Reason {
    pub const ALL: [Reason; 16] = [
        Reason::SenderNotAllowed,
        Reason::NotACertificate,
        Reason::Malformed,
        Reason::TooLarge,
        Reason::NoPdf,
        Reason::NotPdf,
        Reason::MultiplePdfs,
        Reason::FinessInvalid,
        Reason::UnknownSite,
        Reason::SubjectAttachmentMismatch,
        Reason::SubjectBodyMismatch,
        Reason::UnknownResult,
        Reason::NoSamplingDate,
        Reason::ImplausibleSamplingDate,
        Reason::FetchFailed,
        Reason::AmbiguousResend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SenderNotAllowed => "sender_not_allowed",
            Reason::NotACertificate => "not_a_certificate",
            Reason::Malformed => "malformed",
            Reason::TooLarge => "too_large",
            Reason::NoPdf => "no_pdf",
            Reason::NotPdf => "not_pdf",
            Reason::MultiplePdfs => "multiple_pdfs",
            Reason::FinessInvalid => "finess_invalid",
            Reason::UnknownSite => "unknown_site",
            Reason::SubjectAttachmentMismatch => "subject_attachment_mismatch",
            Reason::SubjectBodyMismatch => "subject_body_mismatch",
            Reason::UnknownResult => "unknown_result",
            Reason::NoSamplingDate => "no_sampling_date",
            Reason::ImplausibleSamplingDate => "implausible_sampling_date",
            Reason::FetchFailed => "fetch_failed",
            Reason::AmbiguousResend => "ambiguous_resend",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The reason in plain words, for the person who resolves a quarantine.
    pub fn explain(self) -> &'static str {
        match self {
            Reason::SenderNotAllowed => {
                "the sender is not in senders.allow; the mail is left alone"
            }
            Reason::NotACertificate => {
                "the subject is not an SI-DEP certificate subject; the mail is left alone"
            }
            Reason::Malformed => "the message or its subject could not be read as a certificate",
            Reason::TooLarge => "the message is larger than mailbox.max_message_bytes",
            Reason::NoPdf => "the message carries no attachment",
            Reason::NotPdf => "the attachment is not a PDF (no %PDF- signature)",
            Reason::MultiplePdfs => "the message carries more than one PDF",
            Reason::FinessInvalid => "the FINESS number in the subject is not valid",
            Reason::UnknownSite => "the subject's FINESS is not a site of the [[site]] table",
            Reason::SubjectAttachmentMismatch => {
                "the attachment name does not carry the subject's FINESS and dossier number"
            }
            Reason::SubjectBodyMismatch => {
                "the body names another site or another patient than the subject"
            }
            Reason::UnknownResult => "the result is neither clearly positive nor negative",
            Reason::NoSamplingDate => "the body gives no readable sampling date",
            Reason::ImplausibleSamplingDate => {
                "the sampling date is in the future or before the first COVID-19 tests"
            }
            Reason::FetchFailed => {
                "the message could not be downloaded from the server after several attempts"
            }
            Reason::AmbiguousResend => {
                "a certificate for this site and dossier was already delivered, and the \
                 integration dates do not say which one is newer"
            }
        }
    }

    /// Whether the message's own content can lead to this reason (the corpus covers these).
    pub fn from_content(self) -> bool {
        !matches!(self, Reason::FetchFailed | Reason::AmbiguousResend)
    }

    /// Whether this reason leaves the mail alone (not ours) rather than quarantining it.
    pub fn is_ignore(self) -> bool {
        matches!(self, Reason::SenderNotAllowed | Reason::NotACertificate)
    }
}

/// What the daemon should do with a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Deliver {
        site: Finess,
        file_name: String,
        rule: Rule,
        purge_at: Timestamp,
    },
    Quarantine {
        reason: Reason,
        /// Plain words without patient data (it reaches logs and reason files).
        detail: String,
        purge_at: Timestamp,
    },
    Ignore {
        reason: Reason,
    },
}

impl Decision {
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::Deliver { .. } => "deliver",
            Decision::Quarantine { .. } => "quarantine",
            Decision::Ignore { .. } => "ignore",
        }
    }

    pub fn reason(&self) -> Option<Reason> {
        match self {
            Decision::Deliver { .. } => None,
            Decision::Quarantine { reason, .. } | Decision::Ignore { reason } => Some(*reason),
        }
    }

    pub fn purge_at(&self) -> Option<Timestamp> {
        match self {
            Decision::Deliver { purge_at, .. } | Decision::Quarantine { purge_at, .. } => {
                Some(*purge_at)
            }
            Decision::Ignore { .. } => None,
        }
    }
}

/// Everything read from the message, as far as reading got.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Certificate {
    pub sender: Option<String>,
    pub message_id: Option<String>,
    /// The subject's FINESS as written, and checked.
    pub finess_text: Option<String>,
    pub site: Option<Finess>,
    pub dossier: Option<String>,
    pub nom: Option<String>,
    pub prenom: Option<String>,
    pub body: BodyFields,
    pub result: Option<ResultClass>,
    pub sampled_at: Option<Timestamp>,
    pub integrated_at: Option<Timestamp>,
    pub attachment_name: Option<String>,
    pub pdf: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub decision: Decision,
    pub cert: Certificate,
}

/// What a decision depends on besides the message.
pub struct Context<'a> {
    pub config: &'a Config,
    pub tz: &'a TimeZone,
    /// When the message was first seen; anchors quarantine retention without a sampling date
    /// and bounds plausible sampling dates.
    pub received_at: Timestamp,
}

/// What a person resolving a quarantine decided instead of the message (`quarantine release`).
/// The checks between subject, attachment and body still apply: an override routes or
/// classifies a certificate, it never reconciles two patients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Deliver to this site of the table, whatever the subject's FINESS (which may even be
    /// invalid).
    pub site: Option<Finess>,
    /// The result class, when the body's wording is not understood.
    pub result: Option<ResultClass>,
    /// The sampling instant, when the body gives none or a wrong one.
    pub sampled_at: Option<Timestamp>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self == &Overrides::default()
    }
}

/// No COVID-19 test was reported to SI-DEP before 2020.
const EARLIEST_SAMPLING: Timestamp = Timestamp::constant(1_577_833_200, 0); // 2020-01-01 Paris
/// Clocks of labs and servers disagree a little; a day ahead is not yet implausible.
const FUTURE_TOLERANCE: SignedDuration = SignedDuration::from_hours(24);

/// What the headers alone say about a message, before its body is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prescreen {
    /// Not ours: never download it.
    Ignore(Reason),
    /// Ours, but over `max_message_bytes`: decide with `decide_oversized`.
    Oversized,
    /// Download the whole message and `decide`.
    Fetch,
}

/// Screens a message from its header block and size (IMAP `RFC822.SIZE`).
pub fn prescreen(headers: &[u8], size: u64, ctx: &Context) -> Prescreen {
    let Some(mail) = mime::parse_headers(headers) else {
        return Prescreen::Fetch;
    };
    if let Some(reason) = not_ours(&mail, ctx) {
        Prescreen::Ignore(reason)
    } else if size > ctx.config.mailbox.max_message_bytes {
        Prescreen::Oversized
    } else {
        Prescreen::Fetch
    }
}

/// Decides for a message the server would not hand over (`fetch_failed`), from its headers
/// when they were read.
pub fn decide_unfetchable(headers: &[u8], ctx: &Context) -> Outcome {
    let mut outcome = decide_oversized(headers, ctx);
    if let Decision::Quarantine { reason, detail, .. } = &mut outcome.decision {
        *reason = Reason::FetchFailed;
        *detail = "the server did not deliver the message after repeated attempts".into();
    }
    outcome
}

/// Decides for a message too large to download, from its header block only: mail that is not
/// ours is still left alone.
pub fn decide_oversized(headers: &[u8], ctx: &Context) -> Outcome {
    let mail = mime::parse_headers(headers).unwrap_or_default();
    let mut cert = Certificate {
        sender: mail.from.clone(),
        message_id: mail.message_id.clone(),
        ..Certificate::default()
    };
    if let Some(reason) = not_ours(&mail, ctx) {
        return Outcome {
            decision: Decision::Ignore { reason },
            cert,
        };
    }
    if let Some(SubjectKind::Certificate(s)) = mail.subject.as_deref().map(fields::subject) {
        cert.site = Finess::parse(&s.finess).ok();
        cert.finess_text = Some(s.finess);
        cert.dossier = Some(s.dossier);
    }
    let decision = quarantine(
        &cert,
        ctx,
        Reason::TooLarge,
        format!(
            "larger than mailbox.max_message_bytes ({} bytes)",
            ctx.config.mailbox.max_message_bytes
        ),
    );
    Outcome { decision, cert }
}

/// Decides for one whole message.
pub fn decide(raw: &[u8], ctx: &Context) -> Outcome {
    if raw.len() as u64 > ctx.config.mailbox.max_message_bytes {
        return decide_oversized(header_block(raw), ctx);
    }
    decide_with(raw, ctx, &Overrides::default())
}

/// Decides for one whole message with a person's overrides (a quarantine release). The size
/// limit does not apply: the message is already here.
pub fn decide_with(raw: &[u8], ctx: &Context, overrides: &Overrides) -> Outcome {
    let Some(mut mail) = mime::parse(raw) else {
        let cert = Certificate::default();
        let decision = quarantine(
            &cert,
            ctx,
            Reason::Malformed,
            "not a readable RFC 5322 message".into(),
        );
        return Outcome { decision, cert };
    };
    let mut cert = Certificate {
        sender: mail.from.clone(),
        message_id: mail.message_id.clone(),
        ..Certificate::default()
    };
    let decision = match read(&mut mail, ctx, overrides, &mut cert) {
        Ok(decision) => decision,
        Err(Stop::Ignore(reason)) => Decision::Ignore { reason },
        Err(Stop::Quarantine(reason, detail)) => quarantine(&cert, ctx, reason, detail),
    };
    Outcome { decision, cert }
}

enum Stop {
    Ignore(Reason),
    Quarantine(Reason, String),
}

fn stop(reason: Reason, detail: &str) -> Stop {
    Stop::Quarantine(reason, detail.to_string())
}

fn not_ours(mail: &Mail, ctx: &Context) -> Option<Reason> {
    if !mail
        .from
        .as_deref()
        .is_some_and(|a| ctx.config.sender_allowed(a))
    {
        return Some(Reason::SenderNotAllowed);
    }
    match mail.subject.as_deref().map(fields::subject) {
        None | Some(SubjectKind::NotCertificate) => Some(Reason::NotACertificate),
        _ => None,
    }
}

/// Reads the certificate into `cert`, field by field, stopping at the first problem.
fn read(
    mail: &mut Mail,
    ctx: &Context,
    overrides: &Overrides,
    cert: &mut Certificate,
) -> Result<Decision, Stop> {
    if let Some(reason) = not_ours(mail, ctx) {
        return Err(Stop::Ignore(reason));
    }
    let subject = match mail.subject.as_deref().map(fields::subject) {
        Some(SubjectKind::Certificate(s)) => s,
        Some(SubjectKind::Malformed(why)) => return Err(stop(Reason::Malformed, why)),
        _ => return Err(Stop::Ignore(Reason::NotACertificate)),
    };
    cert.finess_text = Some(subject.finess.clone());
    cert.dossier = Some(subject.dossier.clone());
    cert.nom = Some(subject.nom.clone());
    cert.prenom = Some(subject.prenom.clone());

    // The body is read before any check, so that a quarantined certificate shows all it has.
    for text in mail.texts.iter().chain(&mail.htmls) {
        cert.body.fill_from(fields::body(text));
    }
    cert.result = cert.body.result.as_deref().map(classify);
    cert.sampled_at = cert
        .body
        .sampled
        .as_deref()
        .and_then(|s| parse_instant(s, ctx.tz));
    cert.integrated_at = cert
        .body
        .integrated
        .as_deref()
        .and_then(|s| parse_instant(s, ctx.tz));
    if let Some(result) = overrides.result {
        cert.result = Some(result);
    }
    if let Some(sampled_at) = overrides.sampled_at {
        cert.sampled_at = Some(sampled_at);
    }

    // The subject's FINESS, checked; with a site override an invalid one is no obstacle, and
    // the attachment and the body are compared with the subject as written.
    let subject_site = match (Finess::parse(&subject.finess), &overrides.site) {
        (Ok(site), _) => site,
        (Err(_), Some(routed)) => routed.clone(),
        (Err(e), None) => {
            return Err(Stop::Quarantine(
                Reason::FinessInvalid,
                format!("subject FINESS: {e}"),
            ));
        }
    };
    let subject_finess = match Finess::parse(&subject.finess) {
        Ok(site) => site.as_str().to_string(),
        Err(_) => subject.finess.split_whitespace().collect::<String>(),
    };
    cert.site = Some(subject_site.clone());
    let site = subject_site;

    let pdfs: Vec<_> = mail.attachments.iter().filter(|a| a.is_pdf()).collect();
    let pdf = match pdfs.as_slice() {
        [] if mail.attachments.is_empty() => return Err(stop(Reason::NoPdf, "no attachment")),
        [] => {
            return Err(stop(
                Reason::NotPdf,
                "no attachment starts with the %PDF- signature",
            ));
        }
        [one] => *one,
        _ => {
            return Err(stop(
                Reason::MultiplePdfs,
                "one certificate per message expected",
            ));
        }
    };
    cert.attachment_name = pdf.name.clone();
    // Copied, not moved out: the buffer the parser filled sits among its small allocations,
    // and keeping it while they are freed raised the peak memory of a long drain by 0.7 MB
    // (`scripts/bench`), for an 88 KB copy saved.
    cert.pdf = Some(pdf.bytes.clone());
    let name_ok = pdf
        .name
        .as_deref()
        .is_some_and(|n| fields::attachment_matches(n, &subject_finess, &subject.dossier));
    if !name_ok {
        return Err(stop(
            Reason::SubjectAttachmentMismatch,
            "the attachment name does not start with the subject's FINESS and dossier",
        ));
    }
    check_body_agrees(&cert.body, &site, &subject)?;

    let site = match &overrides.site {
        Some(routed) => {
            cert.site = Some(routed.clone());
            routed.clone()
        }
        None => site,
    };
    if ctx.config.site(&site).is_none() {
        return Err(Stop::Quarantine(
            Reason::UnknownSite,
            format!("FINESS {site} is not in the [[site]] table"),
        ));
    }
    let Some(sampled_at) = cert.sampled_at else {
        return Err(stop(
            Reason::NoSamplingDate,
            "no readable \"Date de prélèvement\"",
        ));
    };
    if sampled_at > ctx.received_at + FUTURE_TOLERANCE || sampled_at < EARLIEST_SAMPLING {
        return Err(stop(
            Reason::ImplausibleSamplingDate,
            "the sampling date is in the future or before 2020",
        ));
    }
    let Some(rule) = cert.result.and_then(Rule::for_result) else {
        return Err(stop(
            Reason::UnknownResult,
            "the result is neither clearly positive nor negative",
        ));
    };
    Ok(Decision::Deliver {
        file_name: delivered_name(&subject.nom, &subject.prenom, &subject.dossier),
        purge_at: retention::due(rule, sampled_at, &ctx.config.retention, ctx.tz),
        site,
        rule,
    })
}

fn check_body_agrees(
    body: &BodyFields,
    site: &Finess,
    subject: &fields::SubjectFields,
) -> Result<(), Stop> {
    if let Some(text) = &body.finess
        && Finess::parse(text).ok().as_ref() != Some(site)
    {
        return Err(stop(
            Reason::SubjectBodyMismatch,
            "the body's structure FINESS differs from the subject's",
        ));
    }
    let differs = |body: &Option<String>, subject: &str| {
        body.as_deref().is_some_and(|b| fold(b) != fold(subject))
    };
    if differs(&body.nom, &subject.nom) || differs(&body.prenom, &subject.prenom) {
        return Err(stop(
            Reason::SubjectBodyMismatch,
            "the body's patient name differs from the subject's",
        ));
    }
    Ok(())
}

/// Turns a decision into a quarantine for a reason only the ledger knows (an ambiguous
/// re-send), with the quarantine's retention.
pub fn requarantine(outcome: &mut Outcome, ctx: &Context, reason: Reason, detail: &str) {
    outcome.decision = quarantine(&outcome.cert, ctx, reason, detail.to_string());
}

fn quarantine(cert: &Certificate, ctx: &Context, reason: Reason, detail: String) -> Decision {
    let anchor = cert
        .sampled_at
        .filter(|t| *t <= ctx.received_at + FUTURE_TOLERANCE && *t >= EARLIEST_SAMPLING)
        .unwrap_or(ctx.received_at);
    Decision::Quarantine {
        reason,
        detail,
        purge_at: retention::due(Rule::Quarantine, anchor, &ctx.config.retention, ctx.tz),
    }
}

/// The header block of a raw message: everything up to the first empty line.
pub fn header_block(raw: &[u8]) -> &[u8] {
    let crlf = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    let end = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(raw.len()),
    };
    &raw[..end]
}

#[cfg(test)]
mod tests;
