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

/// The guide's facsimile (`fixtures/facsimile/body.txt`) with its placeholders filled in.
fn facsimile(values: &[(&str, &str)]) -> String {
    let mut text = include_str!("../../../fixtures/facsimile/body.txt").to_string();
    for (k, v) in values {
        text = text.replace(&format!("{{{k}}}"), v);
    }
    text
}

const FILLED: [(&str, &str); 11] = [
    ("Nom", "DUPONT"),
    ("Prénom", "Renée"),
    ("Sexe", "F"),
    ("DDN", "01/02/1980"),
    ("Matricule INS", "295109912611193"),
    ("Code analyse", "94309-2"),
    (
        "Libellé analyse",
        "SARS-CoV-2 (Covid 19) ARN [Présence] Echantillon respiratoire ; Résultat nominal ; \
         Amplification génique",
    ),
    ("FINESS site/ET", "690000880"),
    ("Date et heure de prélèvement", "16/07/2021 17:55"),
    (
        "Date et heure d’intégration du résultat dans SI-DEP",
        "17/07/2021 08:02",
    ),
    ("Résultat", "Négatif"),
];

#[test]
fn the_guides_facsimile_reads_field_by_field() {
    let b = body(&facsimile(&FILLED));
    assert_eq!(b.nom.as_deref(), Some("DUPONT"));
    assert_eq!(b.prenom.as_deref(), Some("Renée"));
    assert_eq!(b.sexe.as_deref(), Some("F"));
    assert_eq!(b.birth_date.as_deref(), Some("01/02/1980"));
    assert_eq!(b.ins.as_deref(), Some("295109912611193"));
    assert_eq!(b.loinc_code.as_deref(), Some("94309-2"));
    assert_eq!(
        b.loinc_label.as_deref(),
        Some(
            "SARS-CoV-2 (Covid 19) ARN [Présence] Echantillon respiratoire ; Résultat nominal ; \
             Amplification génique"
        )
    );
    assert_eq!(b.finess.as_deref(), Some("690000880"));
    assert_eq!(b.sampled.as_deref(), Some("16/07/2021 17:55"));
    assert_eq!(b.integrated.as_deref(), Some("17/07/2021 08:02"));
    assert_eq!(b.result.as_deref(), Some("Négatif"));
}

/// Regression: the greeting "… du test et le résultat :" was read as the result label, and
/// "Patient concerné :" as the result, so every real certificate was quarantined.
#[test]
fn the_greetings_resultat_is_not_the_result_label() {
    let text = facsimile(&FILLED);
    assert!(text.contains("du test et le résultat :\n"));
    assert_eq!(body(&text).result.as_deref(), Some("Négatif"));
    // Wrapped so that "résultat :" starts a line of its own, right above the heading.
    let wrapped = text.replace("et le résultat :", "et le\nrésultat :");
    assert_eq!(body(&wrapped).result.as_deref(), Some("Négatif"));
    let tight = wrapped.replace("\n\nPatient concerné", "\nPatient concerné");
    assert_eq!(body(&tight).result.as_deref(), Some("Négatif"));
}

#[test]
fn a_label_inside_a_sentence_or_a_value_is_not_a_label() {
    // Lines run together: only the first field starts a line.
    let b = body(&BODY.replace('\n', " "));
    assert_eq!(b.nom, None);
    assert_eq!(b.result, None);
    // Names made of label words.
    let b = body(&facsimile(
        &[("Nom", "RESULTAT"), ("Prénom", "DATE")]
            .into_iter()
            .chain(FILLED)
            .collect::<Vec<_>>(),
    ));
    assert_eq!(b.nom.as_deref(), Some("RESULTAT"));
    assert_eq!(b.prenom.as_deref(), Some("DATE"));
    assert_eq!(b.result.as_deref(), Some("Négatif"));
    assert_eq!(b.sampled.as_deref(), Some("16/07/2021 17:55"));
}

#[test]
fn bullets_table_cells_and_quotes_may_lead_a_label() {
    let b = body(
        "  • Nom : MARTIN\n| Prénom : Léa\n> Sexe : F\n- Résultat du test : Positif\n\
         2) Date de prélèvement : 01/02/2021\n",
    );
    assert_eq!(b.nom.as_deref(), Some("MARTIN"));
    assert_eq!(b.prenom.as_deref(), Some("Léa"));
    assert_eq!(b.sexe.as_deref(), Some("F"));
    assert_eq!(b.result.as_deref(), Some("Positif"));
    assert_eq!(b.sampled.as_deref(), Some("01/02/2021"));
}

#[test]
fn a_heading_or_a_label_on_the_next_line_is_not_a_value() {
    let b = body("Résultat du test :\nPatient concerné :\nNom :\nPrénom : Léa\n");
    assert_eq!(b.result, None);
    assert_eq!(b.nom, None);
    assert_eq!(b.prenom.as_deref(), Some("Léa"));
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

#[test]
fn a_dossier_is_a_letter_or_digit_then_at_most_63_more_characters() {
    let with = |dossier: &str| {
        subject(&format!(
            "[Projet SI-DEP] Certificat de test : 690000880 | {dossier} | X | Y"
        ))
    };
    let ok = |d: &str| matches!(with(d), SubjectKind::Certificate(_));
    assert!(ok(&format!("É{}", "é".repeat(63))));
    assert!(ok("21A/0042-b_c.d 7"));
    assert!(!ok(&format!("É{}", "é".repeat(64))));
    assert!(!ok("-21A0042"));
    assert!(!ok("21A0042#"));
}
