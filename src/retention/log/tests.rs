use super::*;
use crate::delivery::deliver_batch;
use crate::test_support::{Fixture, corpus, now};

fn state(f: &Fixture) -> PathBuf {
    f.root.join("state")
}

/// A ledger with a few records flushed to the log.
fn with_log(f: &Fixture) -> Ledger {
    let mut ledger = f.ledger();
    deliver_batch(
        &mut ledger,
        &f.set(),
        vec![corpus("negative_plain"), corpus("corsica_site")],
        now(),
    )
    .unwrap();
    let flushed = flush(&mut ledger, &state(f)).unwrap();
    assert!(flushed.appended > 0 && flushed.broken.is_none());
    ledger
}

fn more(f: &Fixture, ledger: &mut Ledger) {
    deliver_batch(ledger, &f.set(), vec![corpus("unknown_site")], now()).unwrap();
}

fn verified(f: &Fixture, ledger: &Ledger) -> Result<Chain, AuditError> {
    verify(&state(f), Some(&ledger_head(ledger).unwrap()))
}

/// Regression: a truncated log was silently re-based and then "verified".
#[test]
fn a_cut_log_is_broken_until_resealed_and_the_gap_stays_visible() {
    let f = Fixture::new();
    let mut ledger = with_log(&f);
    let lines = read_lines(&path(&state(&f))).unwrap();
    let keep = lines.len() - 2;
    std::fs::write(path(&state(&f)), lines[..keep].join("\n") + "\n").unwrap();
    more(&f, &mut ledger);
    let flushed = flush(&mut ledger, &state(&f)).unwrap();
    let why = flushed.broken.expect("broken");
    assert!(why.contains("ends at record"), "{why}");
    assert_eq!(flushed.appended, 0);
    assert_eq!(
        read_lines(&path(&state(&f))).unwrap().len(),
        keep,
        "nothing appended"
    );
    assert!(
        !ledger.outbox().unwrap().is_empty(),
        "records wait in the ledger"
    );
    assert_eq!(broken(&ledger).unwrap(), Some(why));
    assert!(verified(&f, &ledger).is_err());

    let body = reseal(&mut ledger, &state(&f), "restored", "alice", &f.tz).unwrap();
    assert_eq!(
        (body.gap_from, body.gap_to),
        (Some(keep as u64 + 1), Some(lines.len() as u64))
    );
    let flushed = flush(&mut ledger, &state(&f)).unwrap();
    assert!(flushed.appended > 0 && flushed.broken.is_none());
    assert!(ledger.outbox().unwrap().is_empty());
    let chain = verified(&f, &ledger).unwrap();
    assert_eq!(chain.reseals.len(), 1);
    assert_eq!(
        chain.reseals[0].gap,
        Some((keep as u64 + 1, lines.len() as u64))
    );
    assert_eq!(broken(&ledger).unwrap(), None);
}

/// Regression: a deleted log restarted at record 1 and was "intact".
#[test]
fn a_deleted_log_is_broken_not_restarted() {
    let f = Fixture::new();
    let mut ledger = with_log(&f);
    let n = read_lines(&path(&state(&f))).unwrap().len() as u64;
    std::fs::remove_file(path(&state(&f))).unwrap();
    more(&f, &mut ledger);
    let why = flush(&mut ledger, &state(&f)).unwrap().broken.unwrap();
    assert!(why.contains("missing or empty"), "{why}");
    assert!(!path(&state(&f)).exists());
    let body = reseal(&mut ledger, &state(&f), "deleted by mistake", "bob", &f.tz).unwrap();
    assert_eq!((body.gap_from, body.gap_to), (Some(1), Some(n)));
    flush(&mut ledger, &state(&f)).unwrap();
    let chain = verified(&f, &ledger).unwrap();
    assert_eq!(chain.reseals[0].gap, Some((1, n)));
    assert!(chain.head.seq > n);
}

/// Regression: a line cut by a crash got a new chain glued onto it.
#[test]
fn a_torn_last_line_is_cut_written_again_and_recorded() {
    let f = Fixture::new();
    let mut ledger = with_log(&f);
    more(&f, &mut ledger);
    // The crash: the queued records half written, the ledger not told.
    let head = ledger_head(&ledger).unwrap();
    let expected = render(&head, &ledger.outbox().unwrap());
    let mut file = OpenOptions::new()
        .append(true)
        .open(path(&state(&f)))
        .unwrap();
    let first = format!("{}\n", expected[0].0);
    file.write_all(first.as_bytes()).unwrap();
    file.write_all(&expected[1].0.as_bytes()[..20]).unwrap();
    drop(file);

    let flushed = flush(&mut ledger, &state(&f)).unwrap();
    assert!(flushed.repaired, "{flushed:?}");
    assert!(flushed.broken.is_none(), "{flushed:?}");
    let lines = read_lines(&path(&state(&f))).unwrap();
    let chain = verified(&f, &ledger).unwrap();
    assert_eq!(chain.head.seq as usize, lines.len());
    assert!(lines.last().unwrap().contains("\"event\":\"log_repaired\""));
    // Each record once.
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| serde_json::from_str::<Record>(l).unwrap().id)
        .collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique);
}

/// A crash after the records were written and synced, before the ledger knew: they are
/// recognised as the ones written, not written twice, not taken for a break.
#[test]
fn records_written_just_before_a_crash_are_recognised() {
    let f = Fixture::new();
    let mut ledger = with_log(&f);
    more(&f, &mut ledger);
    let head = ledger_head(&ledger).unwrap();
    let expected = render(&head, &ledger.outbox().unwrap());
    let text: String = expected.iter().map(|(l, _)| format!("{l}\n")).collect();
    let mut file = OpenOptions::new()
        .append(true)
        .open(path(&state(&f)))
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
    drop(file);
    let flushed = flush(&mut ledger, &state(&f)).unwrap();
    assert_eq!(flushed, Flushed::default());
    assert!(ledger.outbox().unwrap().is_empty());
    let chain = verified(&f, &ledger).unwrap();
    assert_eq!(chain.head.seq, expected.last().unwrap().1.seq);
}

#[test]
fn an_edited_last_record_is_broken() {
    let f = Fixture::new();
    let mut ledger = with_log(&f);
    let text = std::fs::read_to_string(path(&state(&f))).unwrap();
    let last = text.trim_end().rsplit('\n').next().unwrap().to_string();
    let edited = last
        .replace("690000880", "750712184")
        .replace("2A0000154", "750712184");
    assert_ne!(edited, last);
    std::fs::write(path(&state(&f)), text.replace(&last, &edited)).unwrap();
    more(&f, &mut ledger);
    let why = flush(&mut ledger, &state(&f)).unwrap().broken.unwrap();
    assert!(why.contains("not the record that was written"), "{why}");
}
