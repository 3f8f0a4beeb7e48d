//! `quarantine show`: the one place patient fields are printed, on standard output, for the
//! person deciding, with what the kept message says and what a release would do now.

use std::process::ExitCode;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::{kept_message, open, time};
use crate::commands::Outcome;
use crate::core::config::Config;
use crate::core::decide::Overrides;
use crate::core::{Context, Reason, decide_with};
use crate::ledger::{LedgerRead, QuarantineRead};

pub(super) fn show(config: &Config, tz: &TimeZone, id: i64) -> Outcome {
    let Some(ledger) = open(config)? else {
        anyhow::bail!("no certificate {id}");
    };
    let (Some(row), Some(rec)) = (ledger.certificate(id)?, ledger.recorded(id)?) else {
        anyhow::bail!("no certificate {id}");
    };
    let mut out = Vec::new();
    let mut line = |k: &str, v: String| out.push(format!("{k:<24}{v}"));
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    line("certificate", id.to_string());
    line(
        "state",
        if row.purged_at.is_some() {
            format!("{} (purged)", rec.state)
        } else {
            rec.state.clone()
        },
    );
    if let Some(reason) = &rec.reason {
        let words = Reason::parse(reason).map_or("", Reason::explain);
        line("reason", format!("{reason}: {words}"));
    }
    if let Some(detail) = &rec.detail {
        line("detail", detail.clone());
    }
    line("received", time(row.received_at, tz));
    line("purge at", time(row.purge_at, tz));
    line("site (FINESS)", opt(&row.site));
    let p = &rec.personal;
    line("dossier", opt(&p.dossier));
    line("nom", opt(&p.nom));
    line("prénom", opt(&p.prenom));
    line("sexe", opt(&p.sexe));
    line("date de naissance", opt(&p.birth_date));
    line("INS", opt(&p.ins));
    line("result", opt(&row.result));
    line(
        "sampled",
        row.sampled_at.map_or_else(|| "-".into(), |t| time(t, tz)),
    );
    line(
        "integrated",
        rec.integrated_at
            .map_or_else(|| "-".into(), |t| time(t, tz)),
    );
    line("message-id", opt(&rec.message_id));

    // What the kept message says, read again, and what a release would do now.
    let kept = kept_message(&ledger, id)?;
    if let Some((_, raw)) = &kept {
        let ctx = Context {
            config,
            tz,
            received_at: Timestamp::from_second(row.received_at).unwrap_or_default(),
        };
        let o = decide_with(raw, &ctx, &Overrides::default());
        let c = &o.cert;
        let b = &c.body;
        line("sender", opt(&c.sender));
        line("subject FINESS", opt(&c.finess_text));
        line("attachment", opt(&c.attachment_name));
        line("body: nom", opt(&b.nom));
        line("body: prénom", opt(&b.prenom));
        line("body: FINESS", opt(&b.finess));
        line(
            "body: LOINC",
            format!("{} {}", opt(&b.loinc_code), opt(&b.loinc_label)),
        );
        line("body: prélèvement", opt(&b.sampled));
        line("body: intégration", opt(&b.integrated));
        line("body: résultat", opt(&b.result));
        line(
            "release now would",
            match &o.decision {
                crate::core::Decision::Deliver { site, rule, .. } => {
                    format!("deliver to {site} ({} rule)", rule.as_str())
                }
                crate::core::Decision::Quarantine { reason, .. } => {
                    format!("still quarantine it ({})", reason.as_str())
                }
                crate::core::Decision::Ignore { reason } => {
                    format!("ignore it ({})", reason.as_str())
                }
            },
        );
    } else {
        line(
            "message",
            "not kept: it was never downloaded (too large, or the server would not hand it \
             over); it is in the server's quarantine folder"
                .into(),
        );
    }
    for copy in ledger.copies(id)? {
        line(
            &format!("file ({})", copy.kind.as_str()),
            format!("{} [{}]", copy.path.display(), copy.state.as_str()),
        );
    }
    for s in ledger.server_copies(id)? {
        line(
            "server copy",
            format!(
                "{} uid {} [{}]{}{}",
                s.folder,
                s.item.as_deref().unwrap_or("?"),
                s.state,
                s.move_to
                    .map(|m| format!(", to move to {m}"))
                    .unwrap_or_default(),
                s.last_error
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            ),
        );
    }
    for l in out {
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}
