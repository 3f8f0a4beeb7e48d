//! The monthly retention report against a ledger built for it: certificates purged on time,
//! purged late, still held and overdue across two sampling months; its numbers in JSON, text
//! and HTML, and the HTML page rendered by a real headless browser (Debian's `chromium`).

use std::io::Read;
use std::path::Path;
use std::process::Command;

use jiff::{Timestamp, ToSpan};
use mss_dispatch::ledger::{CertState, Ledger, NewCertificate};

use crate::support::*;

const DAY: i64 = 86_400;

struct Built {
    config: std::path::PathBuf,
    /// The older month (`YYYY-MM`) and the next.
    months: [String; 2],
    overdue: i64,
    late: i64,
}

/// Month one: on time, late, held, overdue, and a quarantined one held; month two: on time
/// and held.
fn build(root: &Path) -> Built {
    let tz = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let now = Timestamp::now();
    let first = now
        .to_zoned_datetime(tz.clone())
        .date()
        .first_of_month()
        .checked_sub(2.months())
        .unwrap();
    let second = first.checked_add(1.months()).unwrap();
    let at = |d: jiff::civil::Date, day: i8| {
        d.with()
            .day(day)
            .build()
            .unwrap()
            .to_zoned_datetime(tz.clone())
            .unwrap()
            .timestamp()
            .as_second()
            + 10 * 3600
    };
    let state = root.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut ledger = Ledger::open(&state).unwrap();
    let tx = ledger.tx().unwrap();
    let add = |sampled: i64, rule: &str, purge_at: i64, state: CertState| {
        tx.insert_certificate(&NewCertificate {
            state,
            site: Some(
                if rule == "positive" {
                    "750712184"
                } else {
                    "690000880"
                }
                .into(),
            ),
            result: Some(
                if rule == "quarantine" {
                    "unknown"
                } else {
                    rule
                }
                .into(),
            ),
            rule: rule.into(),
            received_at: sampled + 3600,
            sampled_at: Some(sampled),
            purge_at,
            content_sha256: [sampled as u8; 32],
            ..NewCertificate::default()
        })
        .unwrap()
    };
    let n = now.as_second();
    let on_time = add(at(first, 3), "negative", at(first, 6), CertState::Delivered);
    let late = add(at(first, 4), "negative", at(first, 7), CertState::Delivered);
    add(
        at(first, 5),
        "positive",
        n + 100 * DAY,
        CertState::Delivered,
    );
    let overdue = add(at(first, 6), "negative", n - 10 * DAY, CertState::Delivered);
    add(
        at(first, 7),
        "quarantine",
        n + 90 * DAY,
        CertState::Quarantined,
    );
    let on_time_2 = add(
        at(second, 2),
        "negative",
        at(second, 5),
        CertState::Delivered,
    );
    add(
        at(second, 3),
        "positive",
        n + 150 * DAY,
        CertState::Delivered,
    );
    tx.scrub(on_time, at(first, 6) + 40).unwrap();
    tx.scrub(late, at(first, 7) + 2 * DAY).unwrap();
    tx.scrub(on_time_2, at(second, 5) + 20).unwrap();
    tx.commit().unwrap();
    let config = root.join("config.toml");
    let r = root.display();
    std::fs::write(
        &config,
        format!(
            "[mailbox]\nmaildir = \"{r}/Maildir\"\n[state]\ndir = \"{r}/state\"\n\
             [quarantine]\ndir = \"{r}/quarantine\"\n\
             [[site]]\nfiness = \"690000880\"\nname = \"Lyon\"\nspool = \"{r}/sites/690000880\"\n\
             [[site]]\nfiness = \"750712184\"\nname = \"Paris\"\nspool = \"{r}/sites/750712184\"\n"
        ),
    )
    .unwrap();
    let ym = |d: jiff::civil::Date| format!("{:04}-{:02}", d.year(), d.month());
    Built {
        config,
        months: [ym(first), ym(second)],
        overdue,
        late,
    }
}

fn report(b: &Built, month: &str, format: &str) -> std::process::Output {
    Command::new(bin())
        .args(["audit", "report", "--config"])
        .arg(&b.config)
        .args(["--month", month, "--format", format])
        .output()
        .unwrap()
}

#[test]
fn the_monthly_report_counts_what_the_ledger_holds_and_names_the_overdue() {
    let tmp = workdir();
    let b = build(tmp.path());
    let out = report(&b, &b.months[0], "json");
    assert_eq!(
        out.status.code(),
        Some(1),
        "overdue: exit 1\n{}",
        stderr(&out)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["received"], 5);
    assert_eq!(r["by_site"]["690000880"]["negative"], 3);
    assert_eq!(r["by_site"]["750712184"]["positive"], 1);
    let f = &r["final"];
    assert_eq!(
        (
            &f["purged_on_time"],
            &f["purged_late"],
            &f["held"],
            &f["overdue"]
        ),
        (&1.into(), &1.into(), &2.into(), &1.into()),
        "{r:#}"
    );
    assert_eq!(r["overdue"][0]["certificate"], b.overdue);
    assert_eq!(r["late"][0]["certificate"], b.late);
    assert_eq!(r["late"][0]["lateness_seconds"], 2 * DAY);
    assert_eq!(r["quarantine"]["still_in_quarantine"], 1);
    assert_eq!(r["retention_log"]["intact"], true);

    let out = report(&b, &b.months[1], "json");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["received"], 2);
    assert_eq!(r["final"]["purged_on_time"], 1);
    assert_eq!(r["final"]["held"], 1);
    assert_eq!(r["final"]["overdue"], 0);

    let out = report(&b, &b.months[0], "text");
    let text = stdout(&out);
    assert!(
        text.contains(&format!("OVERDUE, NOT PURGED: certificate {}", b.overdue)),
        "{text}"
    );
    let out = report(&b, "2026-13", "text");
    assert_eq!(out.status.code(), Some(2));
}

/// Decodes a PNG's pixels (filter bytes included) and counts the distinct byte values: a
/// blank page has two or three.
fn distinct_pixel_bytes(png: &[u8]) -> usize {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let mut at = 8;
    let mut idat = Vec::new();
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        if &png[at + 4..at + 8] == b"IDAT" {
            idat.extend_from_slice(&png[at + 8..at + 8 + len]);
        }
        at += 12 + len;
    }
    let mut pixels = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut pixels)
        .unwrap();
    let mut seen = [false; 256];
    for b in pixels {
        seen[b as usize] = true;
    }
    seen.iter().filter(|s| **s).count()
}

#[test]
fn the_html_report_is_one_page_a_real_browser_renders() {
    let tmp = workdir();
    let b = build(tmp.path());
    let out = report(&b, &b.months[0], "html");
    let html = stdout(&out);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "no network"
    );
    assert!(!html.contains("<script"), "no script");
    for (id, n) in [("on-time", 1), ("late", 1), ("held", 2)] {
        assert!(html.contains(&format!("id={id}>{n}<")), "{id} {n}");
    }
    assert!(
        html.contains("class=\"n overdue\" id=overdue>1<"),
        "overdue in red"
    );
    assert!(html.contains("<svg") && html.contains("<polyline"));
    assert!(html.contains("data-protection officer"));
    let page = tmp.path().join("report.html");
    std::fs::write(&page, &html).unwrap();
    let shot = tmp.path().join("report.png");
    let browser = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("chromium is needed (scripts/install-test-deps installs it)");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1240,1754",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .env("HOME", tmp.path())
        .output()
        .unwrap();
    assert!(shot.exists(), "no screenshot: {}", stderr(&out));
    let png = std::fs::read(&shot).unwrap();
    let distinct = distinct_pixel_bytes(&png);
    assert!(
        distinct > 16,
        "the page looks blank ({distinct} distinct bytes)"
    );
}
