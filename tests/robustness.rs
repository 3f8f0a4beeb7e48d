//! Bad input is a value, not a crash (DESIGN invariant 6): random bytes and mutated corpus
//! messages go through the core; every one must come back as a decision, and a delivery must
//! still name a safe file.

use std::path::{Component, Path};
use std::sync::LazyLock;

use mss_dispatch::core::config::{self, Config};
use mss_dispatch::core::{Context, Decision, decide};
use proptest::prelude::*;

static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/config.toml");
    config::parse(
        &std::fs::read_to_string(root).unwrap(),
        "fixtures/config.toml",
    )
    .unwrap()
});

static CORPUS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        // Keep the fuzzing fast: the oversized case is covered by the golden test.
        .map(|p| std::fs::read(p).unwrap())
        .filter(|raw| raw.len() < 50_000)
        .collect();
    out.sort();
    out
});

fn check(raw: &[u8]) {
    let tz = mss_dispatch::system::tz::paris();
    let ctx = Context {
        config: &CONFIG,
        tz: &tz,
        received_at: "2021-11-02T09:00:00Z".parse().unwrap(),
    };
    let outcome = decide(raw, &ctx);
    if let Decision::Deliver {
        file_name, site, ..
    } = &outcome.decision
    {
        assert!(file_name.len() <= 255);
        let mut comps = Path::new(file_name).components();
        assert!(matches!(comps.next(), Some(Component::Normal(_))));
        assert!(comps.next().is_none());
        assert!(CONFIG.site(site).is_some());
        assert!(
            outcome
                .cert
                .pdf
                .as_deref()
                .is_some_and(|p| p.starts_with(b"%PDF-"))
        );
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let tokens = prop::sample::select(vec![
        b"=?".to_vec(),
        b"?=".to_vec(),
        b"\r\n".to_vec(),
        b"\n\n".to_vec(),
        b"--".to_vec(),
        b"|".to_vec(),
        b":".to_vec(),
        b"\xc3".to_vec(),
        b"\xff\xfe".to_vec(),
        b"=\n".to_vec(),
        b"Content-Type: multipart/mixed; boundary=\"\"\n".to_vec(),
        b"filename*0*=UTF-8''%".to_vec(),
        b"<td>".to_vec(),
        b"&#".to_vec(),
        vec![0u8; 3],
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), tokens).prop_map(|(i, t)| Mutation::Insert(i, t)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
    ]
}

fn apply(mut raw: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = raw.len().max(1);
        match m {
            Mutation::Flip(i, b) => {
                if !raw.is_empty() {
                    raw[i % len] ^= b | 1;
                }
            }
            Mutation::Truncate(i) => raw.truncate(i % len),
            Mutation::Insert(i, t) => {
                let at = i % (raw.len() + 1);
                raw.splice(at..at, t.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let at = i % len;
                let end = (at + n).min(raw.len());
                if at < end {
                    raw.drain(at..end);
                }
            }
        }
    }
    raw
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn random_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..4096)) {
        check(&raw);
    }

    #[test]
    fn mutated_corpus_messages_never_panic(
        pick in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..12),
    ) {
        let base = pick.get(&CORPUS).clone();
        check(&apply(base, &mutations));
    }
}

#[test]
fn corpus_is_there_to_mutate() {
    assert!(CORPUS.len() >= 40, "only {} corpus messages", CORPUS.len());
}
