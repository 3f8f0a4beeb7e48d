use super::*;

#[test]
fn subject_fields_split_on_bars_only() {
    let s = subject(
        "[Projet SI-DEP] Certificat de test : 690000880 | 21A0042 | N'DIAYE | Marie Claire",
    );
    assert_eq!(
        s,
        SubjectKind::Certificate(SubjectFields {
            finess: "690000880".into(),
            dossier: "21A0042".into(),
            nom: "N'DIAYE".into(),
            prenom: "Marie Claire".into(),
        })
    );
}

#[test]
fn subject_variants() {
    let ok = |s: &str| matches!(subject(s), SubjectKind::Certificate(_));
    assert!(ok(
        "[Projet SI-DEP] Certificat de test : 690000880 | 1 | LE GALL | Jean-Pierre"
    ));
    assert!(ok(
        "[projet si-dep]  certificat de test\u{a0}: 69 000 088 0|1|X|Y"
    ));
    assert!(ok(
        "RE: [Projet SI-DEP] Certificat de test : 690000880 | 1 | X | "
    ));
    assert_eq!(subject("Réunion de service"), SubjectKind::NotCertificate);
    assert_eq!(
        subject("[Projet SI-DEP] Information aux laboratoires"),
        SubjectKind::NotCertificate
    );
    assert!(matches!(
        subject("[Projet SI-DEP] Certificat de test 690000880 1 X Y"),
        SubjectKind::Malformed(_)
    ));
    assert!(matches!(
        subject("[Projet SI-DEP] Certificat de test : 690000880 | 1 | X"),
        SubjectKind::Malformed(_)
    ));
    assert!(matches!(
        subject("[Projet SI-DEP] Certificat de test : 690000880 |  | X | Y"),
        SubjectKind::Malformed(_)
    ));
}

#[test]
fn attachment_prefix() {
    assert!(attachment_matches(
        "690000880_21A0042_N_DIAYE_Marie.pdf",
        "690000880",
        "21A0042"
    ));
    assert!(attachment_matches(
        "690000880_21a0042_x.pdf",
        "690000880",
        "21A0042"
    ));
    assert!(!attachment_matches(
        "690000880_21A0043_X_Y.pdf",
        "690000880",
        "21A0042"
    ));
    assert!(!attachment_matches(
        "690000881_21A0042_X_Y.pdf",
        "690000880",
        "21A0042"
    ));
    assert!(!attachment_matches(
        "certificat.pdf",
        "690000880",
        "21A0042"
    ));
}

const BODY: &str = "Bonjour,\n\nNom : DUPONT\nPrénom : Renée\nSexe : F\n\
Date de naissance : 01/02/1980\n\
Matricule Identifiant National de Santé (INS) : 295109912611193\n\
Test réalisé : Type d'analyse (voir le site de Bioloinc pour la terminologie): 94309-2 SARS-CoV-2 (COVID-19) ARN [Présence]\n\
Identifiant de la structure ayant réalisé le test : 690000880\n\
Date de prélèvement : 16/07/2021 17:55\n\
Date d'intégration du résultat dans l'application SI-DEP : 17/07/2021 08:02\n\
Résultat du test : Négatif\n\nCe message est généré automatiquement.\n";

#[test]
fn body_fields_in_order() {
    let b = body(BODY);
    assert_eq!(b.nom.as_deref(), Some("DUPONT"));
    assert_eq!(b.prenom.as_deref(), Some("Renée"));
    assert_eq!(b.sexe.as_deref(), Some("F"));
    assert_eq!(b.birth_date.as_deref(), Some("01/02/1980"));
    assert_eq!(b.ins.as_deref(), Some("295109912611193"));
    assert_eq!(b.loinc_code.as_deref(), Some("94309-2"));
    assert_eq!(
        b.loinc_label.as_deref(),
        Some("SARS-CoV-2 (COVID-19) ARN [Présence]")
    );
    assert_eq!(b.finess.as_deref(), Some("690000880"));
    assert_eq!(b.sampled.as_deref(), Some("16/07/2021 17:55"));
    assert_eq!(b.integrated.as_deref(), Some("17/07/2021 08:02"));
    assert_eq!(b.result.as_deref(), Some("Négatif"));
}

#[test]
fn body_typography_variants() {
    let text = BODY
        .replace(" :", "\u{a0}:")
        .replace("d'intégration", "d’intégration")
        .replace("Prénom", "PRENOM")
        .replace("Résultat du test", "RÉSULTAT DU TEST")
        .replace('\n', "\n\n");
    let b = body(&text);
    assert_eq!(b.prenom.as_deref(), Some("Renée"));
    assert_eq!(b.integrated.as_deref(), Some("17/07/2021 08:02"));
    assert_eq!(b.result.as_deref(), Some("Négatif"));
    assert_eq!(b.nom.as_deref(), Some("DUPONT"));
}

#[test]
fn body_lines_run_together() {
    let text = BODY.replace('\n', " ");
    let b = body(&text);
    assert_eq!(b.nom.as_deref(), Some("DUPONT"));
    assert_eq!(b.prenom.as_deref(), Some("Renée"));
    assert_eq!(b.sampled.as_deref(), Some("16/07/2021 17:55"));
    assert_eq!(b.finess.as_deref(), Some("690000880"));
}

#[test]
fn value_on_the_next_line() {
    let b = body("Nom :\n\nMARTIN\nRésultat du test :\nPositif\n");
    assert_eq!(b.nom.as_deref(), Some("MARTIN"));
    assert_eq!(b.result.as_deref(), Some("Positif"));
}

#[test]
fn missing_fields_are_none() {
    let b = body("Bonjour,\nRésultat du test :\n");
    assert_eq!(b, BodyFields::default());
}
