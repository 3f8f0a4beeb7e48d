use super::*;
use crate::core::config;

const CONFIG: &str = r#"
[mailbox]
maildir = "/srv/Maildir"
max_message_bytes = 100000
[[site]]
finess = "690000880"
name = "Lyon Bellecour"
spool = "/srv/sites/690000880"
"#;

struct Msg {
    from: &'static str,
    subject: String,
    body: String,
    attachment: Option<(String, Vec<u8>)>,
}

impl Msg {
    fn new() -> Self {
        Msg {
            from: "noreply.sidep@enovacom.mssante.fr",
            subject: "[Projet SI-DEP] Certificat de test : 690000880 | D42 | DUPONT | Jean".into(),
            body: "Nom : DUPONT\nPrénom : Jean\nIdentifiant de la structure ayant réalisé le test : 690000880\n\
                   Date de prélèvement : 29/10/2021 10:00\nRésultat du test : Négatif\n"
                .into(),
            attachment: Some(("690000880_D42_DUPONT_Jean.pdf".into(), b"%PDF-1.4\n%%EOF\n".to_vec())),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut s = format!(
            "From: SI-DEP <{}>\nTo: lbm@labo.mssante.fr\nSubject: {}\nMessage-ID: <x@y>\nMIME-Version: 1.0\n",
            self.from, self.subject
        );
        match &self.attachment {
            None => s += &format!("Content-Type: text/plain; charset=utf-8\n\n{}", self.body),
            Some((name, data)) => {
                s += "Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\n\
                      Content-Type: text/plain; charset=utf-8\n\n";
                s += &self.body;
                s += &format!(
                    "\n--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=\"{name}\"\n\
                     Content-Transfer-Encoding: base64\n\n{}\n--b--\n",
                    b64(data)
                );
            }
        }
        s.into_bytes()
    }
}

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn outcome(msg: &Msg) -> Outcome {
    with_context(|ctx| decide(&msg.bytes(), ctx))
}

fn with_context(f: impl FnOnce(&Context) -> Outcome) -> Outcome {
    let config = config::parse(CONFIG, "t").unwrap();
    let tz = crate::test_support::paris();
    let ctx = Context {
        config: &config,
        tz: &tz,
        received_at: "2021-10-30T12:00:00Z".parse().unwrap(),
    };
    f(&ctx)
}

fn reason(msg: &Msg) -> Option<Reason> {
    outcome(msg).decision.reason()
}

#[test]
fn a_good_negative_is_delivered_with_its_due_time() {
    let o = outcome(&Msg::new());
    let Decision::Deliver {
        site,
        file_name,
        rule,
        purge_at,
    } = &o.decision
    else {
        panic!("{:?}", o.decision)
    };
    assert_eq!(site.as_str(), "690000880");
    assert_eq!(file_name, "DUPONT_Jean_D42.pdf");
    assert_eq!(*rule, Rule::Negative);
    assert_eq!(purge_at.to_string(), "2021-11-01T08:00:00Z");
    assert_eq!(o.cert.pdf.as_deref(), Some(&b"%PDF-1.4\n%%EOF\n"[..]));
}

#[test]
fn every_reason_is_reachable() {
    let mut m = Msg::new();
    m.from = "someone@labo.mssante.fr";
    assert_eq!(reason(&m), Some(Reason::SenderNotAllowed));

    let mut m = Msg::new();
    m.subject = "Planning de la semaine".into();
    assert_eq!(reason(&m), Some(Reason::NotACertificate));

    let mut m = Msg::new();
    m.subject = "[Projet SI-DEP] Certificat de test : 690000880 | D42".into();
    assert_eq!(reason(&m), Some(Reason::Malformed));

    let mut m = Msg::new();
    m.attachment = None;
    assert_eq!(reason(&m), Some(Reason::NoPdf));

    let mut m = Msg::new();
    m.attachment = Some(("690000880_D42_DUPONT_Jean.pdf".into(), b"<html>".to_vec()));
    assert_eq!(reason(&m), Some(Reason::NotPdf));

    let mut m = Msg::new();
    m.subject = m.subject.replace("690000880", "2B0000039");
    assert_eq!(reason(&m), Some(Reason::FinessInvalid));

    let mut m = Msg::new();
    m.attachment = Some(("690000880_D43_DUPONT_Jean.pdf".into(), b"%PDF-1.7".to_vec()));
    assert_eq!(reason(&m), Some(Reason::SubjectAttachmentMismatch));

    let mut m = Msg::new();
    m.body = m.body.replace("Nom : DUPONT", "Nom : DURAND");
    assert_eq!(reason(&m), Some(Reason::SubjectBodyMismatch));

    let mut m = Msg::new();
    m.body = m.body.replace("test : 690000880", "test : 750712184");
    assert_eq!(reason(&m), Some(Reason::SubjectBodyMismatch));

    let mut m = Msg::new();
    m.subject = m.subject.replace("690000880", "750712184");
    m.body = m.body.replace("690000880", "750712184");
    m.attachment = Some(("750712184_D42_DUPONT_Jean.pdf".into(), b"%PDF-1.7".to_vec()));
    assert_eq!(reason(&m), Some(Reason::UnknownSite));

    let mut m = Msg::new();
    m.body = m.body.replace("Négatif", "Ininterprétable");
    assert_eq!(reason(&m), Some(Reason::UnknownResult));

    let mut m = Msg::new();
    m.body = m.body.replace("29/10/2021 10:00", "inconnue");
    assert_eq!(reason(&m), Some(Reason::NoSamplingDate));

    let mut m = Msg::new();
    m.body = m.body.replace("29/10/2021", "29/10/2031");
    assert_eq!(reason(&m), Some(Reason::ImplausibleSamplingDate));

    let mut m = Msg::new();
    m.attachment = Some(("x.pdf".into(), vec![b'%'; 200_000]));
    assert_eq!(reason(&m), Some(Reason::TooLarge));
}

#[test]
fn too_large_mail_that_is_not_ours_is_ignored() {
    let mut m = Msg::new();
    m.from = "colleague@labo.mssante.fr";
    m.attachment = Some(("holiday.pdf".into(), vec![b'%'; 200_000]));
    assert_eq!(reason(&m), Some(Reason::SenderNotAllowed));
}

#[test]
fn quarantine_without_sampling_date_is_kept_six_months_from_reception() {
    let mut m = Msg::new();
    m.body = m.body.replace("29/10/2021 10:00", "?");
    let o = outcome(&m);
    assert_eq!(
        o.decision.purge_at().unwrap().to_string(),
        "2022-04-29T22:00:00Z"
    );
}

#[test]
fn reasons_round_trip() {
    for r in Reason::ALL {
        assert_eq!(Reason::parse(r.as_str()), Some(r));
        assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
    }
}

#[test]
fn header_block_stops_at_the_first_blank_line() {
    assert_eq!(
        header_block(b"A: 1\r\nB: 2\r\n\r\nbody\n\n"),
        b"A: 1\r\nB: 2\r\n\r\n"
    );
    assert_eq!(header_block(b"A: 1\n\nbody\r\n\r\n"), b"A: 1\n\n");
    assert_eq!(header_block(b"A: 1"), b"A: 1");
}

fn outcome_with(msg: &Msg, overrides: &Overrides) -> Outcome {
    with_context(|ctx| decide_with(&msg.bytes(), ctx, overrides))
}

fn lyon() -> Finess {
    Finess::parse("690000880").unwrap()
}

#[test]
fn a_result_override_classifies_and_sets_the_rule() {
    let mut m = Msg::new();
    m.body = m.body.replace("Négatif", "Ininterprétable");
    let o = outcome_with(
        &m,
        &Overrides {
            result: Some(ResultClass::Negative),
            ..Overrides::default()
        },
    );
    let Decision::Deliver { rule, purge_at, .. } = o.decision else {
        panic!("{:?}", o.decision)
    };
    assert_eq!(rule, Rule::Negative);
    assert_eq!(purge_at.to_string(), "2021-11-01T08:00:00Z");
    let o = outcome_with(
        &m,
        &Overrides {
            result: Some(ResultClass::Positive),
            ..Overrides::default()
        },
    );
    assert!(matches!(
        o.decision,
        Decision::Deliver {
            rule: Rule::Positive,
            ..
        }
    ));
}

#[test]
fn a_sampling_override_moves_the_due_time_and_stays_plausible() {
    let mut m = Msg::new();
    m.body = m.body.replace("29/10/2021 10:00", "inconnue");
    let at: Timestamp = "2021-10-28T06:00:00Z".parse().unwrap();
    let o = outcome_with(
        &m,
        &Overrides {
            sampled_at: Some(at),
            ..Overrides::default()
        },
    );
    assert_eq!(
        o.decision.purge_at(),
        Some(at + SignedDuration::from_hours(72))
    );
    let o = outcome_with(
        &m,
        &Overrides {
            sampled_at: Some("2031-10-28T06:00:00Z".parse().unwrap()),
            ..Overrides::default()
        },
    );
    assert_eq!(o.decision.reason(), Some(Reason::ImplausibleSamplingDate));
}

#[test]
fn a_site_override_routes_but_never_reconciles_two_patients() {
    // An unknown site (a FINESS the table lacks) delivered to a site of the table.
    let mut m = Msg::new();
    m.subject = m.subject.replace("690000880", "750712184");
    m.body = m.body.replace("690000880", "750712184");
    m.attachment = Some(("750712184_D42_DUPONT_Jean.pdf".into(), b"%PDF-1.7".to_vec()));
    let site = Overrides {
        site: Some(lyon()),
        ..Overrides::default()
    };
    let o = outcome_with(&m, &site);
    assert!(matches!(&o.decision, Decision::Deliver { site, .. } if *site == lyon()));
    assert_eq!(o.cert.site, Some(lyon()));
    // An invalid subject FINESS, with the attachment named after it as written.
    let mut m = Msg::new();
    m.subject = m.subject.replace("690000880", "2B0000039");
    m.body = m.body.replace("test : 690000880\n", "test : \n");
    m.attachment = Some(("2B0000039_D42_DUPONT_Jean.pdf".into(), b"%PDF-1.7".to_vec()));
    assert_eq!(outcome_with(&m, &site).decision.kind(), "deliver");
    // Another patient's name in the body stays a quarantine.
    let mut m = Msg::new();
    m.body = m.body.replace("Nom : DUPONT", "Nom : DURAND");
    assert_eq!(
        outcome_with(&m, &site).decision.reason(),
        Some(Reason::SubjectBodyMismatch)
    );
    // A site that is not in the table is still unknown.
    let elsewhere = Overrides {
        site: Some(Finess::parse("750712184").unwrap()),
        ..Overrides::default()
    };
    assert_eq!(
        outcome_with(&Msg::new(), &elsewhere).decision.reason(),
        Some(Reason::UnknownSite)
    );
}
