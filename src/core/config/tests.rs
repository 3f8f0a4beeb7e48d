use super::*;
use std::path::Path;

const MINIMAL: &str = r#"
[mailbox]
host = "imap.example.mssante.fr"
ca_file = "/etc/mss-dispatch/ca.pem"
client_cert = "/etc/mss-dispatch/client.pem"
client_key = "/etc/mss-dispatch/client.key"

[[site]]
finess = "690000880"
name = "Lyon Bellecour"
spool = "/srv/sites/690000880"
"#;

fn errors(text: &str) -> Vec<String> {
    match parse(text, "t.toml") {
        Ok(_) => Vec::new(),
        Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
    }
}

fn has(errs: &[String], needle: &str) -> bool {
    errs.iter().any(|e| e.contains(needle))
}

#[test]
fn minimal_file_gets_the_documented_defaults() {
    let c = parse(MINIMAL, "t.toml").unwrap();
    let Source::Imap(imap) = &c.source else {
        panic!("IMAP expected")
    };
    assert_eq!(imap.port, 143);
    assert_eq!(imap.tls, TlsMode::StartTls);
    assert_eq!(imap.auth, Auth::External);
    assert_eq!(c.mailbox.folder, "INBOX");
    assert_eq!(c.mailbox.processed_folder, "SI-DEP/Traites");
    assert_eq!(c.mailbox.quarantine_folder, "SI-DEP/Quarantaine");
    assert!(c.mailbox.idle);
    assert_eq!(c.mailbox.poll_interval, Duration::from_secs(60));
    assert_eq!(c.mailbox.max_message_bytes, 5 * 1024 * 1024);
    assert_eq!(c.mailbox.timeout, Duration::from_secs(60));
    assert_eq!(c.senders, vec![SIDEP_SENDER.to_string()]);
    assert_eq!(c.retention, Policy::default());
    assert_eq!(c.purge.check_interval, Duration::from_secs(60));
    assert_eq!(c.metrics.file, None);
    assert_eq!(c.metrics.interval, Duration::from_secs(15));
    assert_eq!(c.purge.max_clock_jump, Duration::from_secs(7 * 86_400));
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/mss-dispatch"));
    assert_eq!(c.sites[0].finess.as_str(), "690000880");
    assert!(c.sender_allowed("NoReply.SIDEP@enovacom.mssante.fr"));
}

#[test]
fn three_mistakes_are_all_reported_with_their_keys() {
    let text = MINIMAL
        .replace("690000880\"\nname", "690000881\"\nname")
        .replace("\"/srv/sites/690000880\"", "\"sites/690000880\"")
        + "\n[retention]\nnegative = \"96h\"\n";
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(has(
        &errs,
        "t.toml: site[0].finess (690000881 \"Lyon Bellecour\"): \"690000881\" is not a valid FINESS"
    ));
    assert!(has(
        &errs,
        "t.toml: site[0].spool (690000881 \"Lyon Bellecour\"): \"sites/690000880\" is relative"
    ));
    assert!(has(
        &errs,
        "t.toml: retention.negative: \"96h\" is longer than the legal maximum"
    ));
}

#[test]
fn source_must_be_exactly_one_of_host_or_maildir() {
    let both = MINIMAL.replace("[mailbox]\n", "[mailbox]\nmaildir = \"/srv/Maildir\"\n");
    assert!(has(
        &errors(&both),
        "mailbox.host: give either host (IMAP) or maildir, not both"
    ));
    let neither = "[mailbox]\n[[site]]\nfiness=\"690000880\"\nname=\"x\"\nspool=\"/s\"\n";
    assert!(has(
        &errors(neither),
        "mailbox.host: give either host (IMAP) or maildir"
    ));
    let maildir = "[mailbox]\nmaildir=\"/srv/Maildir\"\n[[site]]\nfiness=\"690000880\"\nname=\"x\"\nspool=\"/s\"\n";
    assert_eq!(
        parse(maildir, "t").unwrap().source,
        Source::Maildir(PathBuf::from("/srv/Maildir"))
    );
}

#[test]
fn inline_password_is_refused() {
    let text = MINIMAL.replace("[mailbox]\n", "[mailbox]\npassword = \"secret\"\n");
    let errs = errors(&text);
    assert!(has(
        &errs,
        "mailbox.password: inline passwords are not accepted"
    ));
    assert!(!errs.iter().any(|e| e.contains("secret")), "{errs:?}");
}

#[test]
fn site_errors() {
    let text = MINIMAL.to_string()
        + r#"
[[site]]
finess = "69 000 088 0"
name = "Doublon"
spool = "/srv/sites/other"

[[site]]
finess = "2B0000039"
name = "Bastia"

[[site]]
finess = "2A0000154"
name = ""
spool = "/srv/sites/690000880/sub"
"#;
    let errs = errors(&text);
    assert!(
        has(
            &errs,
            "site[1].finess (69 000 088 0 \"Doublon\"): duplicate site 690000880 (already site[0])"
        ),
        "{errs:#?}"
    );
    assert!(has(
        &errs,
        "site[2].finess (2B0000039 \"Bastia\"): \"2B0000039\" is not a valid FINESS"
    ));
    assert!(has(
        &errs,
        "site[2].spool (2B0000039 \"Bastia\"): a site needs a spool folder, a sil folder, or both"
    ));
    assert!(has(&errs, "site[3].name (2A0000154): must not be empty"));
    assert!(has(
        &errs,
        "site[3].spool (2A0000154): overlaps site[0].spool"
    ));
}

#[test]
fn printer_keys_are_checked_all_at_once() {
    let text = MINIMAL.replace(
        "[[site]]\n",
        "[[site]]\nprinter = \"lpd://printer/queue\"\ncopies = 0\nprint = \"some\"\n",
    ) + r#"
[[site]]
finess = "750712184"
name = "Paris"
spool = "/srv/sites/750712184"
printer = "ipps://printer.paris.lab:631/ipp/print"

[[site]]
finess = "130000011"
name = "Marseille"
spool = "/srv/sites/130000011"
copies = 2
"#;
    let errs = errors(&text);
    for needle in [
        "site[0].printer (690000880 \"Lyon Bellecour\"): \"lpd://printer/queue\"",
        "site[0].copies (690000880 \"Lyon Bellecour\"): 0: between 1 and 10",
        "site[0].print (690000880 \"Lyon Bellecour\"): \"some\": \"all\", \"positives\" or \"negatives\"",
        "site[1].printer_ca_file (750712184 \"Paris\"): an ipps:// printer needs the CA",
        "site[2].copies (130000011 \"Marseille\"): only with a printer",
    ] {
        assert!(has(&errs, needle), "{needle}: {errs:#?}");
    }
    assert_eq!(errs.len(), 5, "{errs:#?}");

    let good = MINIMAL.replace(
        "[[site]]\n",
        "[[site]]\nprinter = \"ipp://10.1.2.3/ipp/print\"\ncopies = 2\nprint = \"positives\"\n",
    );
    let config = parse(&good, "t.toml").unwrap();
    let printer = config.sites[0].printer.as_ref().unwrap();
    assert_eq!(
        (printer.host.as_str(), printer.port, printer.path.as_str()),
        ("10.1.2.3", 631, "/ipp/print")
    );
    assert_eq!((printer.copies, printer.print), (2, PrintWhich::Positives));
    assert!(printer.print.wants(Some("positive")) && !printer.print.wants(Some("negative")));
}

#[test]
fn no_site_and_unknown_keys() {
    let text = "[mailbox]\nmaildir=\"/m\"\nprocesed_folder=\"x\"\n[stat]\ndir=\"/x\"\n";
    let errs = errors(text);
    assert!(has(&errs, "site: at least one [[site]] is required"));
    assert!(has(&errs, "mailbox.procesed_folder: unknown key"));
    assert!(has(&errs, "stat: unknown key"));
}

#[test]
fn retention_limits() {
    let with = |neg: &str, pos: &str| {
        errors(&format!(
            "{MINIMAL}\n[retention]\nnegative = \"{neg}\"\npositive = \"{pos}\"\n"
        ))
    };
    assert!(with("72h", "6 months").is_empty());
    assert!(with("48h", "3 months").is_empty());
    assert!(with("3d", "179d").is_empty());
    assert!(has(&with("73h", "6 months"), "retention.negative"));
    assert!(has(&with("1 month", "6 months"), "retention.negative"));
    assert!(has(&with("72h", "7 months"), "retention.positive"));
    assert!(has(&with("72h", "180d"), "retention.positive"));
    assert!(has(
        &with("72h", "0 months"),
        "retention.positive: must be longer than zero"
    ));
    assert!(has(
        &with("0h", "6 months"),
        "retention.negative: must be longer than zero"
    ));
    assert!(has(&with("soon", "6 months"), "retention.negative"));
}

#[test]
fn imap_option_errors() {
    let text = r#"
[mailbox]
host = "h"
port = 70000
tls = "ssl"
auth = "xoauth"
client_key = "/k"
client_cert_password_file = "/p"
max_message_bytes = 0
poll_interval = "1 month"
folder = "INBOX"
processed_folder = "inbox"
[senders]
allow = ["not an address"]
[[site]]
finess = "690000880"
name = "x"
spool = "/s"
"#;
    let errs = errors(text);
    for needle in [
        "mailbox.port: 70000 is not a TCP port",
        "mailbox.tls: \"ssl\"",
        "mailbox.auth: \"xoauth\"",
        "mailbox.ca_file: is required",
        "mailbox.client_key: client_key needs client_cert",
        "mailbox.client_cert_password_file: only used with a PKCS#12",
        "mailbox.max_message_bytes: 0",
        "mailbox.poll_interval",
        "mailbox.processed_folder: must differ from folder",
        "senders.allow[0]: expected an e-mail address",
    ] {
        assert!(has(&errs, needle), "{needle} missing from {errs:#?}");
    }
}

#[test]
fn login_needs_a_username_and_external_a_certificate() {
    let login = "[mailbox]\nhost=\"h\"\nca_file=\"/ca\"\nauth=\"login\"\n[[site]]\nfiness=\"690000880\"\nname=\"x\"\nspool=\"/s\"\n";
    assert!(has(&errors(login), "mailbox.username: is required"));
    let ext = login.replace("login", "external");
    assert!(has(
        &errors(&ext),
        "mailbox.auth: \"external\" authenticates with the client certificate"
    ));
    let p12 = login.replace(
        "auth=\"login\"",
        "client_cert=\"/c.p12\"\nclient_cert_password_file=\"/p\"",
    );
    let c = parse(&p12, "t").unwrap();
    let Source::Imap(imap) = c.source else {
        panic!()
    };
    assert_eq!(imap.auth, Auth::External);
    assert!(is_pkcs12(imap.client_cert.as_deref().unwrap()));
}

#[test]
fn syntax_error_is_one_clear_error() {
    let errs = errors("[mailbox\nhost=");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("t.toml: not valid TOML"));
}

#[test]
fn spool_may_not_hide_inside_quarantine_or_state() {
    let text = MINIMAL.replace("/srv/sites/690000880", "/var/lib/mss-dispatch/sites");
    assert!(has(
        &errors(&text),
        "site[0].spool (690000880 \"Lyon Bellecour\"): overlaps state.dir"
    ));
}

#[test]
fn mistakes_people_make_get_a_hint() {
    let text = MINIMAL
        .replace("[[site]]", "[site]")
        .replace("ca_file", "cafile")
        + "[retention]\nnegative = \"3 jrs\"\n";
    let errs = errors(&text);
    assert!(
        has(&errs, "site: write [[site]], with double brackets"),
        "{errs:#?}"
    );
    assert!(
        has(
            &errs,
            "mailbox.cafile: unknown key; did you mean \"mailbox.ca_file\"?"
        ),
        "{errs:#?}"
    );
    assert!(
        has(
            &errs,
            "retention.negative: \"3 jrs\": unknown unit \"jrs\" (the units are s,"
        ),
        "{errs:#?}"
    );
    // Far from every key: no guess.
    let errs = errors(&(MINIMAL.to_string() + "[state]\nzzzzzz = 1\n"));
    assert!(has(&errs, "state.zzzzzz: unknown key"), "{errs:#?}");
    assert!(!has(&errs, "did you mean"), "{errs:#?}");
    // No reference to documents users do not have.
    let errs = errors(&(MINIMAL.to_string() + "[retention]\nnegative = \"80h\"\n"));
    assert!(!errs.iter().any(|e| e.contains("SPEC")), "{errs:#?}");
}

#[test]
fn an_instance_of_the_template_unit_gets_folders_of_its_own() {
    assert_eq!(instance_of("/etc/mss-dispatch/nord.toml"), Some("nord"));
    assert_eq!(instance_of("/etc/mss-dispatch/config.toml"), None);
    assert_eq!(instance_of("/srv/nord.toml"), None);
    assert_eq!(instance_of("/etc/mss-dispatch/a/b.toml"), None);
    let nord = parse(MINIMAL, "/etc/mss-dispatch/nord.toml").unwrap();
    assert_eq!(nord.state_dir, Path::new("/var/lib/mss-dispatch/nord"));
    assert_eq!(
        nord.quarantine_dir,
        Path::new("/var/spool/mss-dispatch/nord/quarantine")
    );
    let plain = parse(MINIMAL, "/etc/mss-dispatch/config.toml").unwrap();
    assert_eq!(plain.state_dir, Path::new("/var/lib/mss-dispatch"));
    assert_eq!(
        plain.quarantine_dir,
        Path::new("/var/spool/mss-dispatch/quarantine")
    );
    let set = format!("{MINIMAL}\n[state]\ndir = \"/srv/state\"\n");
    let given = parse(&set, "/etc/mss-dispatch/nord.toml").unwrap();
    assert_eq!(given.state_dir, Path::new("/srv/state"));
}

/// The manual page `mss-dispatch.toml(5)` is made from `keys::TABLES`: it documents exactly
/// the keys the reader accepts.
#[test]
fn the_key_table_of_the_manual_is_the_readers() {
    let full = r#"
[mailbox]
host = "imap.example.mssante.fr"
ca_file = "/etc/mss-dispatch/ca.pem"
username = "lbm"
[[site]]
finess = "690000880"
name = "Lyon Bellecour"
spool = "/srv/sites/690000880"
printer = "ipps://printer.lab/ipp/print"
printer_ca_file = "/etc/mss-dispatch/printer-ca.pem"
"#;
    let (parsed, read) = parse_reading(full, "t.toml");
    parsed.unwrap();
    let read: std::collections::BTreeSet<String> =
        read.into_iter().filter(|k| k.contains('.')).collect();
    let documented: std::collections::BTreeSet<String> = keys::TABLES
        .iter()
        .flat_map(|t| t.keys.iter().map(move |k| format!("{}.{}", t.name, k.name)))
        .collect();
    assert_eq!(
        read.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "read but not in the manual"
    );
    assert_eq!(
        documented.difference(&read).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "in the manual but not read"
    );
}
