//! Messages as SI-DEP sends them, built from the guide's facsimile, and mail that is not ours.

use super::USER;

pub const SIDEP: &str = "noreply.sidep@enovacom.mssante.fr";

/// A certificate message for dossier `D{n}` at site `finess`, with a PDF of about `pdf_bytes`
/// (unique per `n`), sampled yesterday.
pub fn certificate(n: u32, finess: &str, result: &str, pdf_bytes: usize) -> Vec<u8> {
    let yesterday = jiff::ZonedDateTime::now()
        .in_tz("Europe/Paris")
        .unwrap()
        .checked_sub(jiff::SignedDuration::from_hours(24))
        .unwrap();
    certificate_sampled(n, finess, result, pdf_bytes, &yesterday)
}

/// `certificate`, sampled at `sampled` (to the minute).
pub fn certificate_sampled(
    n: u32,
    finess: &str,
    result: &str,
    pdf_bytes: usize,
    sampled: &jiff::ZonedDateTime,
) -> Vec<u8> {
    let nom = format!("PATIENT{n}");
    let prenom = "Test";
    let dossier = format!("D{n:06}");
    let sampled = sampled.strftime("%d/%m/%Y %H:%M").to_string();
    let mut pdf = format!("%PDF-1.4\n% certificate {n}\n").into_bytes();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(n);
    while pdf.len() < pdf_bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pdf.extend_from_slice(&x.to_le_bytes());
    }
    pdf.extend_from_slice(b"\n%%EOF\n");
    let name = format!("{finess}_{dossier}_{nom}_{prenom}.pdf");
    let body = facsimile(&[
        ("{Nom}", &nom),
        ("{Prénom}", prenom),
        ("{Sexe}", "F"),
        ("{DDN}", "01/01/1980"),
        ("{Matricule INS}", "280017512345603"),
        ("{Code analyse}", "94309-2"),
        (
            "{Libellé analyse}",
            "SARS-CoV-2 (Covid 19) ARN [Présence] Echantillon respiratoire ; Résultat nominal ; \
             Amplification génique",
        ),
        ("{FINESS site/ET}", finess),
        ("{Date et heure de prélèvement}", &sampled),
        (
            "{Date et heure d’intégration du résultat dans SI-DEP}",
            &sampled,
        ),
        ("{Résultat}", result),
    ])
    .replace('\n', "\r\n");
    format!(
        "From: SI-DEP <{SIDEP}>\r\nTo: {USER}@labo.mssante.fr\r\n\
         Subject: [Projet SI-DEP] Certificat de test :  {finess} | {dossier} | {nom} | {prenom}\r\n\
         Message-ID: <cert-{n}@sidep.test>\r\nDate: Mon, 1 Nov 2021 10:00:00 +0100\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         {body}\r\n--b\r\nContent-Type: application/pdf\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        base64_lines(&pdf)
    )
    .into_bytes()
}

/// The body SI-DEP sends, from the guide's facsimile (`fixtures/facsimile/body.txt`), with its
/// placeholders filled in.
pub fn facsimile(values: &[(&str, &str)]) -> String {
    let mut text = include_str!("../../fixtures/facsimile/body.txt").to_string();
    for (placeholder, value) in values {
        text = text.replace(placeholder, value);
    }
    text
}

/// The file name the daemon gives certificate `n`.
pub fn delivered_name(n: u32) -> String {
    format!("PATIENT{n}_Test_D{n:06}.pdf")
}

pub fn plain_mail(n: u32) -> Vec<u8> {
    format!(
        "From: secretariat@labo.mssante.fr\r\nTo: {USER}@labo.mssante.fr\r\n\
         Subject: Planning {n}\r\nMessage-ID: <plain-{n}@labo.test>\r\n\r\nBonjour.\r\n"
    )
    .into_bytes()
}

/// Base64 in lines of 76 characters, as mail carries it.
fn base64_lines(data: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    text.as_bytes()
        .chunks(76)
        .map(|l| std::str::from_utf8(l).expect("base64 is ASCII"))
        .collect::<Vec<_>>()
        .join("\r\n")
}
