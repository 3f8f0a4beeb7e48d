//! The JSON documents written beside certificates: the SIL sidecar (every field of the
//! certificate, for the lab information system to integrate) and the quarantine reason file
//! (for the person who resolves it; no patient name). Rendering is deterministic, so that a
//! delivery resumed after a crash writes the same bytes.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::decide::{Decision, Outcome};
use super::ins;
use super::retention::rfc3339;

#[derive(Serialize)]
struct Sidecar<'a> {
    certificate_id: i64,
    finess: Option<&'a str>,
    site_name: &'a str,
    dossier: Option<&'a str>,
    nom: Option<&'a str>,
    prenom: Option<&'a str>,
    sexe: Option<&'a str>,
    date_naissance: Option<&'a str>,
    ins: Option<&'a str>,
    ins_valid: Option<bool>,
    loinc_code: Option<&'a str>,
    loinc_label: Option<&'a str>,
    sampled_at: Option<String>,
    integrated_at: Option<String>,
    result: Option<&'a str>,
    result_text: Option<&'a str>,
    pdf: &'a str,
    purge_at: Option<String>,
}

/// The SIL sidecar of a delivered certificate, for the PDF named `pdf_name`.
pub fn sidecar(
    outcome: &Outcome,
    certificate: i64,
    site_name: &str,
    pdf_name: &str,
    tz: &TimeZone,
) -> Vec<u8> {
    let c = &outcome.cert;
    let time = |t: Option<Timestamp>| t.map(|t| rfc3339(t, tz));
    let doc = Sidecar {
        certificate_id: certificate,
        finess: c.site.as_ref().map(|f| f.as_str()),
        site_name,
        dossier: c.dossier.as_deref(),
        nom: c.nom.as_deref(),
        prenom: c.prenom.as_deref(),
        sexe: c.body.sexe.as_deref(),
        date_naissance: c.body.birth_date.as_deref(),
        ins: c.body.ins.as_deref(),
        ins_valid: c.body.ins.as_deref().map(ins::is_valid),
        loinc_code: c.body.loinc_code.as_deref(),
        loinc_label: c.body.loinc_label.as_deref(),
        sampled_at: time(c.sampled_at),
        integrated_at: time(c.integrated_at),
        result: c.result.map(|r| r.as_str()),
        result_text: c.body.result.as_deref(),
        pdf: pdf_name,
        purge_at: time(outcome.decision.purge_at()),
    };
    let mut out = serde_json::to_vec_pretty(&doc).expect("serialisable");
    out.push(b'\n');
    out
}

#[derive(Serialize)]
struct ReasonFile<'a> {
    certificate_id: i64,
    reason: Option<&'a str>,
    explanation: Option<&'a str>,
    detail: Option<&'a str>,
    site: Option<&'a str>,
    received_at: String,
    purge_at: Option<String>,
    message_id: Option<&'a str>,
    source: &'a str,
}

/// The reason file of a quarantined message. `source` names where the message came from
/// (mailbox and item, no password).
pub fn reason_file(
    outcome: &Outcome,
    certificate: i64,
    received_at: Timestamp,
    source: &str,
    tz: &TimeZone,
) -> Vec<u8> {
    let (reason, detail) = match &outcome.decision {
        Decision::Quarantine { reason, detail, .. } => (Some(*reason), Some(detail.as_str())),
        _ => (None, None),
    };
    let doc = ReasonFile {
        certificate_id: certificate,
        reason: reason.map(|r| r.as_str()),
        explanation: reason.map(|r| r.explain()),
        detail,
        site: outcome.cert.site.as_ref().map(|f| f.as_str()),
        received_at: rfc3339(received_at, tz),
        purge_at: outcome.decision.purge_at().map(|t| rfc3339(t, tz)),
        message_id: outcome.cert.message_id.as_deref(),
        source,
    };
    let mut out = serde_json::to_vec_pretty(&doc).expect("serialisable");
    out.push(b'\n');
    out
}
