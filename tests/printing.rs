//! Printing at the sites' desks, against real IPP printers (`ippeveprinter`, keeping every
//! job's document): each certificate of a printing site printed exactly once, byte for byte
//! its spool copy, through crashes, a printer down, a printer that refuses PDF, and a
//! reprint. The mail comes from a Maildir (the IMAP side has its own tests).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::support::*;

const SITE_A: &str = "690000880";
const SITE_B: &str = "750712184";
const SITE_C: &str = "130000011";

/// An installation on a Maildir, with site A and B printing on `printers` (when given) and
/// site C printing nowhere.
fn install(root: &Path, printers: [Option<&Printer>; 2]) -> Install {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(root.join("Maildir").join(sub)).unwrap();
    }
    let r = root.display();
    let printer = |p: Option<&Printer>| {
        p.map(|p| format!("printer = \"{}\"\n", p.uri()))
            .unwrap_or_default()
    };
    let text = format!(
        "[mailbox]\nmaildir = \"{r}/Maildir\"\npoll_interval = \"1s\"\n\
         [state]\ndir = \"{r}/state\"\n[quarantine]\ndir = \"{r}/quarantine\"\n\
         [metrics]\nfile = \"{r}/metrics.prom\"\ninterval = \"1s\"\n\
         [[site]]\nfiness = \"{SITE_A}\"\nname = \"Bellecour\"\nspool = \"{r}/sites/{SITE_A}\"\n{}\
         [[site]]\nfiness = \"{SITE_B}\"\nname = \"Paris\"\nspool = \"{r}/sites/{SITE_B}\"\n{}\
         [[site]]\nfiness = \"{SITE_C}\"\nname = \"Marseille\"\nspool = \"{r}/sites/{SITE_C}\"\n",
        printer(printers[0]),
        printer(printers[1]),
    );
    let config = root.join("config.toml");
    std::fs::write(&config, text).unwrap();
    Install {
        root: root.to_path_buf(),
        config,
    }
}

/// Drops certificates `from..from + n` of `site` into the Maildir.
fn mail(install: &Install, site: &str, from: u32, n: u32) {
    for i in from..from + n {
        let path = install.root.join(format!("Maildir/new/{i}.eml"));
        std::fs::write(path, certificate(i, site, "Négatif", 4_000)).unwrap();
    }
}

/// The PDFs in a site's spool.
fn spool_pdfs(install: &Install, site: &str) -> BTreeSet<Vec<u8>> {
    let mut files = Vec::new();
    let dir = install.root.join("sites").join(site);
    walk(&dir, &dir, &mut files);
    files
        .iter()
        .filter(|f| f.ends_with(".pdf"))
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect()
}

fn prints(install: &Install) -> Vec<serde_json::Value> {
    let out = install.command(&["print", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn printed(install: &Install, n: usize) -> bool {
    let p = prints(install);
    p.len() >= n && p.iter().all(|p| p["state"] == "printed")
}

/// What a printer printed: every document, and the set of them.
fn documents(p: &Printer) -> (usize, BTreeSet<Vec<u8>>) {
    let jobs = p.jobs();
    (jobs.len(), jobs.into_iter().map(|(_, d)| d).collect())
}

fn skip() -> bool {
    if !printers_available() {
        eprintln!("skipped: needs root, ippeveprinter, avahi-daemon and dbus-daemon");
        return true;
    }
    false
}

#[test]
fn thirty_certificates_print_once_each_on_their_sites_printers() {
    if skip() {
        return;
    }
    let tmp = workdir();
    let a = Printer::start(&tmp.path().join("printer-a"), Formats::Pdf);
    let b = Printer::start(&tmp.path().join("printer-b"), Formats::Pdf);
    let install = install(&tmp.path().join("install"), [Some(&a), Some(&b)]);
    mail(&install, SITE_A, 1, 12);
    mail(&install, SITE_B, 101, 12);
    mail(&install, SITE_C, 201, 6);
    let log = tmp.path().join("daemon.log");
    let _daemon = install.spawn_logged(&log);
    assert!(
        eventually(120, || printed(&install, 24)),
        "not all printed: {:#?}\n{}",
        prints(&install),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_secs(2));
    for (printer, site) in [(&a, SITE_A), (&b, SITE_B)] {
        let (count, docs) = documents(printer);
        let spool = spool_pdfs(&install, site);
        assert_eq!(spool.len(), 12);
        assert_eq!(count, 12, "{site}: each certificate once");
        assert_eq!(docs, spool, "{site}: byte for byte the spool copies");
    }
    assert_eq!(spool_pdfs(&install, SITE_C).len(), 6);
    assert!(prints(&install).iter().all(|p| p["site"] != SITE_C));
    // Job names: the certificate id and a hash, never the patient.
    for (name, _) in a.jobs().into_iter().chain(b.jobs()) {
        assert!(name.contains("mssd-"), "{name}");
        assert!(!name.to_uppercase().contains("PATIENT"), "{name}");
        assert!(!name.contains("D0000"), "{name}");
    }
    let log_text = std::fs::read_to_string(install.root.join("state/retention.log")).unwrap();
    assert_eq!(log_text.matches("\"event\":\"printed\"").count(), 24);
    let metrics = || std::fs::read_to_string(install.root.join("metrics.prom")).unwrap_or_default();
    let wanted = [
        format!("mss_dispatch_printed_total{{site=\"{SITE_A}\"}} 12"),
        format!("mss_dispatch_printed_total{{site=\"{SITE_B}\"}} 12"),
        format!("mss_dispatch_printer_up{{printer=\"{}\"}} 1", a.uri()),
    ];
    assert!(
        eventually(10, || wanted.iter().all(|w| metrics().contains(w.as_str()))),
        "{}",
        metrics()
    );
    let status: serde_json::Value =
        serde_json::from_slice(&install.command(&["status", "--json"]).stdout).unwrap();
    let listed = status["printers"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{status}");
    assert!(
        listed
            .iter()
            .all(|p| p["waiting"] == 0 && p["state"] == "ok"),
        "{status}"
    );
}

#[test]
fn killed_five_times_while_printing_each_certificate_prints_once() {
    if skip() {
        return;
    }
    let tmp = workdir();
    let a = Printer::start(&tmp.path().join("printer"), Formats::Pdf);
    let install = install(&tmp.path().join("install"), [Some(&a), None]);
    mail(&install, SITE_A, 1, 20);
    let log = tmp.path().join("daemon.log");
    for round in 0..5u64 {
        let mut daemon = install.spawn_logged(&log);
        // Kill it at a different point of its work each time.
        std::thread::sleep(Duration::from_millis(700 + 450 * round));
        sigkill(&mut daemon);
    }
    let _daemon = install.spawn_logged(&log);
    assert!(
        eventually(120, || printed(&install, 20)),
        "not all printed: {:#?}",
        prints(&install)
    );
    std::thread::sleep(Duration::from_secs(2));
    let (count, docs) = documents(&a);
    let spool = spool_pdfs(&install, SITE_A);
    assert_eq!(spool.len(), 20);
    assert_eq!(
        count,
        20,
        "printed twice after a crash: {:?}",
        a.jobs().iter().map(|j| &j.0).collect::<Vec<_>>()
    );
    assert_eq!(docs, spool);
}

#[test]
fn a_printer_down_when_certificates_arrive_prints_them_all_once_when_back() {
    if skip() {
        return;
    }
    let tmp = workdir();
    let mut a = Printer::start(&tmp.path().join("printer"), Formats::Pdf);
    a.stop();
    let install = install(&tmp.path().join("install"), [Some(&a), None]);
    mail(&install, SITE_A, 1, 5);
    let log = tmp.path().join("daemon.log");
    let _daemon = install.spawn_logged(&log);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        eventually(30, || read().contains("ALERT: printer of site 690000880")),
        "{}",
        read()
    );
    assert_eq!(
        spool_pdfs(&install, SITE_A).len(),
        5,
        "delivered all the same"
    );
    let status = || -> serde_json::Value {
        serde_json::from_slice(&install.command(&["status", "--json"]).stdout).unwrap()
    };
    assert!(
        eventually(15, || status()["printers"][0]["state"] == "unreachable"),
        "{}",
        status()
    );
    assert_eq!(status()["printers"][0]["waiting"], 5);
    a.start_again();
    assert!(
        eventually(90, || printed(&install, 5)),
        "{:#?}\n{}",
        prints(&install),
        read()
    );
    std::thread::sleep(Duration::from_secs(2));
    let (count, docs) = documents(&a);
    assert_eq!(count, 5);
    assert_eq!(docs, spool_pdfs(&install, SITE_A));
}

#[test]
fn a_printer_that_refuses_pdf_is_an_alert_and_the_certificate_is_delivered() {
    if skip() {
        return;
    }
    let tmp = workdir();
    let raster = Printer::start(&tmp.path().join("printer"), Formats::RasterOnly);
    let install = install(&tmp.path().join("install"), [Some(&raster), None]);
    mail(&install, SITE_A, 1, 2);
    let log = tmp.path().join("daemon.log");
    let _daemon = install.spawn_logged(&log);
    assert!(
        eventually(60, || {
            let p = prints(&install);
            p.len() == 2 && p.iter().all(|p| p["state"] == "failed")
        }),
        "{:#?}",
        prints(&install)
    );
    assert_eq!(spool_pdfs(&install, SITE_A).len(), 2);
    let text = std::fs::read_to_string(&log).unwrap();
    let alert = text
        .lines()
        .find(|l| l.contains("ALERT") && l.contains(&raster.uri()))
        .unwrap_or_else(|| panic!("no ALERT naming the printer:\n{text}"));
    assert!(
        alert.contains("refuses_pdf") || alert.contains("PDF"),
        "{alert}"
    );
    assert!(!text.contains("PATIENT"), "patient data in the log");
    let records = log_events(&install.root);
    assert_eq!(
        records
            .iter()
            .filter(|r| r["event"] == "print_failed")
            .count(),
        2
    );
    assert!(raster.jobs().is_empty());
}

#[test]
fn print_again_prints_one_more_copy_and_records_who_asked() {
    if skip() {
        return;
    }
    let tmp = workdir();
    let a = Printer::start(&tmp.path().join("printer"), Formats::Pdf);
    let install = install(&tmp.path().join("install"), [Some(&a), None]);
    mail(&install, SITE_A, 1, 3);
    {
        let _daemon = install.spawn_logged(&tmp.path().join("daemon.log"));
        assert!(
            eventually(60, || printed(&install, 3)),
            "{:#?}",
            prints(&install)
        );
    }
    let id = prints(&install)[0]["certificate"].as_i64().unwrap();
    // With no service running, the command sends it itself.
    let out = install.command(&["print", "again", &id.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("printed"), "{}", stdout(&out));
    std::thread::sleep(Duration::from_secs(1));
    let (count, docs) = documents(&a);
    assert_eq!(count, 4);
    assert_eq!(docs, spool_pdfs(&install, SITE_A));
    let of_it: Vec<_> = prints(&install)
        .into_iter()
        .filter(|p| p["certificate"] == id)
        .collect();
    assert_eq!(of_it.len(), 2);
    assert!(
        of_it
            .iter()
            .any(|p| p["by"].as_str().is_some_and(|u| !u.is_empty()))
    );
    let reprinted: Vec<_> = log_events(&install.root)
        .into_iter()
        .filter(|r| r["event"] == "reprinted")
        .collect();
    assert_eq!(reprinted.len(), 1);
    assert_eq!(reprinted[0]["certificate"], id);
    assert!(reprinted[0]["user"].as_str().is_some_and(|u| !u.is_empty()));
    // With the service running, the command leaves the sending to it and follows it.
    let _daemon = install.spawn_logged(&tmp.path().join("daemon.log"));
    let other = prints(&install)
        .iter()
        .map(|p| p["certificate"].as_i64().unwrap())
        .find(|c| *c != id)
        .unwrap();
    let out = install.command(&["print", "again", &other.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("printed"), "{}", stdout(&out));
    assert!(eventually(10, || documents(&a).0 == 5), "{:?}", a.jobs());
    assert_eq!(documents(&a).1, spool_pdfs(&install, SITE_A));
}

#[test]
fn a_job_the_printer_aborts_is_sent_again_then_failed_and_the_file_stays() {
    if skip() {
        return;
    }
    let tmp = workdir();
    let jammed = Printer::start(&tmp.path().join("printer"), Formats::PdfAborting);
    let install = install(&tmp.path().join("install"), [Some(&jammed), None]);
    mail(&install, SITE_A, 1, 1);
    let log = tmp.path().join("daemon.log");
    let _daemon = install.spawn_logged(&log);
    assert!(
        eventually(90, || prints(&install)
            .first()
            .is_some_and(|p| p["state"] == "failed")),
        "{:#?}",
        prints(&install)
    );
    let p = &prints(&install)[0];
    assert_eq!(p["attempts"], 3, "{p:#?}");
    // Each send under its own name: a retry is never taken for the aborted job.
    let names: Vec<String> = jammed.jobs().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names[1].ends_with("-a1.pdf") && names[2].ends_with("-a2.pdf"),
        "{names:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("ALERT: certificate 1 not printed") && l.contains("aborted")),
        "{text}"
    );
    assert_eq!(spool_pdfs(&install, SITE_A).len(), 1, "the file stays");
    let failed = log_events(&install.root)
        .into_iter()
        .filter(|r| r["event"] == "print_failed")
        .count();
    assert_eq!(failed, 1);
}

#[test]
fn check_config_asks_each_printer_and_a_site_prints_only_what_it_chose() {
    if skip() {
        return;
    }
    let tmp = workdir();
    let good = Printer::start(&tmp.path().join("printer-a"), Formats::Pdf);
    let raster = Printer::start(&tmp.path().join("printer-b"), Formats::RasterOnly);
    let install = install(&tmp.path().join("install"), [Some(&good), Some(&raster)]);
    let down = format!("ipp://127.0.0.1:{}/ipp/print", free_port());
    let text = std::fs::read_to_string(&install.config).unwrap().replacen(
        &format!("printer = \"{}\"\n", good.uri()),
        &format!("printer = \"{}\"\nprint = \"positives\"\n", good.uri()),
        1,
    ) + &format!("printer = \"{down}\"\n");
    std::fs::write(&install.config, text).unwrap();

    let out = install.command(&["check-config", "--printers"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let said = stdout(&out);
    let line = |site: &str| {
        said.lines()
            .find(|l| l.contains(&format!("printer of site {site}")))
            .unwrap_or_else(|| panic!("no line for {site}:\n{said}"))
            .to_string()
    };
    assert!(line(SITE_A).contains("accepting jobs, takes PDF"), "{said}");
    assert!(
        line(SITE_B).contains("does NOT take application/pdf"),
        "{said}"
    );
    assert!(line(SITE_C).contains("NOT READY"), "{said}");
    assert!(
        stderr(&out).contains("2 printers cannot print"),
        "{}",
        stderr(&out)
    );

    // Site A prints its positives only.
    for (i, result) in [
        (1, "Positif"),
        (2, "Négatif"),
        (3, "Positif"),
        (4, "Négatif"),
    ] {
        let path = install.root.join(format!("Maildir/new/{i}.eml"));
        std::fs::write(path, certificate(i, SITE_A, result, 4_000)).unwrap();
    }
    let _daemon = install.spawn_logged(&tmp.path().join("daemon.log"));
    assert!(
        eventually(60, || printed(&install, 2)),
        "{:#?}",
        prints(&install)
    );
    assert_eq!(spool_pdfs(&install, SITE_A).len(), 4, "all delivered");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(prints(&install).len(), 2, "{:#?}", prints(&install));
    assert_eq!(documents(&good).0, 2);
}
