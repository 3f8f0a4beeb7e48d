use super::*;

fn body(event: Event, certificate: i64) -> Body {
    Body {
        time: "2021-11-01T09:00:00+01:00".into(),
        event: Some(event),
        certificate: Some(certificate),
        site: Some("690000880".into()),
        ..Body::default()
    }
}

fn chain(n: i64) -> Vec<String> {
    let mut head = Head::genesis();
    let mut lines = Vec::new();
    for i in 1..=n {
        let (line, next) = append(&head, i, body(Event::Received, i));
        lines.push(line);
        head = next;
    }
    lines
}

#[test]
fn a_chain_verifies_and_continues() {
    let lines = chain(5);
    let head = verify(lines.iter().map(String::as_str)).unwrap().head;
    assert_eq!(head.seq, 5);
    assert_eq!(head.hash, line_hash(&lines[4]));
    let (next, _) = append(&head, 6, body(Event::Purged, 1));
    let mut more = lines.clone();
    more.push(next);
    assert_eq!(verify(more.iter().map(String::as_str)).unwrap().head.seq, 6);
    assert!(
        lines[0].starts_with(r#"{"seq":1,"prev":"0000"#),
        "{}",
        lines[0]
    );
}

#[test]
fn edits_deletions_and_swaps_are_caught_where_they_are() {
    let lines = chain(5);
    let mut edited = lines.clone();
    edited[2] = edited[2].replace("690000880", "750712184");
    let e = verify(edited.iter().map(String::as_str)).unwrap_err();
    assert_eq!((e.line, e.seq), (4, Some(4)), "{e}");

    let mut deleted = lines.clone();
    deleted.remove(1);
    let e = verify(deleted.iter().map(String::as_str)).unwrap_err();
    assert_eq!(e.seq, Some(3), "{e}");

    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    let e = verify(swapped.iter().map(String::as_str)).unwrap_err();
    assert_eq!(e.line, 2, "{e}");

    let e = verify(["not json"]).unwrap_err();
    assert_eq!((e.line, e.seq), (1, None));
}

#[test]
fn a_resealed_segment_may_skip_the_records_it_names_and_nothing_else() {
    let lines = chain(5);
    let mut cut: Vec<String> = lines[..3].to_vec();
    let head = verify(cut.iter().map(String::as_str)).unwrap().head;
    let reseal = |from, to| Body {
        event: Some(Event::Resealed),
        gap_from: from,
        gap_to: to,
        detail: Some("disk replaced".into()),
        ..Body::default()
    };
    let (line, at) = append(
        &Head {
            seq: 5,
            ..head.clone()
        },
        9,
        reseal(Some(4), Some(5)),
    );
    cut.push(line);
    let (line, _) = append(&at, 10, body(Event::Purged, 1));
    cut.push(line);
    let chain = verify(cut.iter().map(String::as_str)).unwrap();
    assert_eq!(chain.head.seq, 7);
    assert_eq!(chain.records, 5, "the records there, not the head's number");
    assert_eq!(chain.reseals.len(), 1);
    assert_eq!(chain.reseals[0].gap, Some((4, 5)));

    // A gap it does not state, or a skip by any other record, still breaks the chain.
    let mut wrong = lines[..3].to_vec();
    let (line, _) = append(
        &Head {
            seq: 5,
            ..head.clone()
        },
        9,
        reseal(Some(5), Some(5)),
    );
    wrong.push(line);
    assert!(verify(wrong.iter().map(String::as_str)).is_err());
    let mut skip = lines[..3].to_vec();
    let (line, _) = append(&Head { seq: 5, ..head }, 9, body(Event::Purged, 1));
    skip.push(line);
    assert!(verify(skip.iter().map(String::as_str)).is_err());
}

#[test]
fn pseudonyms_depend_on_the_secret_site_and_dossier() {
    let a = pseudonym(b"secret-one", "690000880", "D1");
    assert_eq!(a.len(), 64);
    assert_eq!(a, pseudonym(b"secret-one", "690000880", "D1"));
    assert_ne!(a, pseudonym(b"secret-two", "690000880", "D1"));
    assert_ne!(a, pseudonym(b"secret-one", "750712184", "D1"));
    assert_ne!(a, pseudonym(b"secret-one", "690000880", "D2"));
    assert!(!a.contains("D1"));
}

#[test]
fn optional_fields_are_left_out() {
    let (line, _) = append(&Head::genesis(), 1, body(Event::HandedToSil, 9));
    assert!(!line.contains("lateness"), "{line}");
    assert!(line.contains(r#""event":"handed_to_sil""#), "{line}");
}
