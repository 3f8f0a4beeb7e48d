//! Faults a real server will not produce on demand, from a scripted fake IMAP server: a
//! message whose download is cut in the middle every time, and a server that stops answering.

use std::time::{Duration, Instant};

use crate::support::fake_imap::{FakeImap, Faults};
use crate::support::*;

struct World {
    _tmp: tempfile::TempDir,
    install: Install,
    fake: FakeImap,
}

fn world(messages: Vec<Vec<u8>>, faults: Faults) -> World {
    let tmp = workdir();
    let root = tmp.path().to_path_buf();
    let pki = Pki::new(&root.join("pki"));
    let fake = FakeImap::start(&pki, messages, faults);
    let install_root = root.join("install");
    std::fs::create_dir_all(&install_root).unwrap();
    let pass = install_root.join("imap-password");
    write_secret(&pass, "x\n");
    let mailbox = format!(
        "host = \"localhost\"\nport = {}\ntls = \"implicit\"\nca_file = \"{}\"\nauth = \"login\"\n\
         username = \"lbm\"\npassword_file = \"{}\"\ntimeout = \"2s\"\npoll_interval = \"1s\"\n",
        fake.port,
        pki.ca.display(),
        pass.display()
    );
    World {
        _tmp: tmp,
        install: Install::new(&install_root, &mailbox),
        fake,
    }
}

#[test]
fn a_download_cut_every_time_is_quarantined_and_blocks_nobody() {
    let messages = (1..=3)
        .map(|n| certificate(n, "690000880", "Négatif", 20_000))
        .collect();
    let w = world(
        messages,
        Faults {
            cut_body: [2].into(),
            ..Faults::default()
        },
    );
    let out = w.install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    let spool = w.install.spool_files("690000880");
    assert_eq!(spool.len(), 2, "{spool:?}");
    assert!(spool.iter().any(|f| f.ends_with(&delivered_name(1))));
    assert!(spool.iter().any(|f| f.ends_with(&delivered_name(3))));
    let st = w.fake.state.lock().unwrap();
    assert!(st.inbox.is_empty());
    assert!(
        st.moved.contains(&(2, "SI-DEP/Quarantaine".to_string())),
        "{:?}",
        st.moved
    );
    assert!(st.moved.contains(&(1, "SI-DEP/Traites".to_string())));
    assert!(st.moved.contains(&(3, "SI-DEP/Traites".to_string())));
    let reason: serde_json::Value = {
        let f = w
            .install
            .files()
            .into_iter()
            .find(|f| f.starts_with("quarantine/") && f.ends_with(".json"))
            .expect("a reason file");
        serde_json::from_slice(&std::fs::read(w.install.root.join(f)).unwrap()).unwrap()
    };
    assert_eq!(reason["reason"], "fetch_failed");
    assert_eq!(
        reason["site"], "690000880",
        "the headers still tell the site"
    );
}

#[test]
fn a_server_that_stops_answering_is_left_and_reconnected() {
    let w = world(
        vec![certificate(1, "690000880", "Négatif", 4_000)],
        Faults {
            stall_once_on: Some("UID SEARCH".into()),
            ..Faults::default()
        },
    );
    let started = Instant::now();
    let out = w.install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(w.install.spool_files("690000880").len(), 1);
    assert!(w.fake.state.lock().unwrap().connections >= 2);
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
}

#[test]
fn an_acknowledgement_lost_in_a_stall_is_repeated_without_a_second_copy() {
    let w = world(
        (1..=4)
            .map(|n| certificate(n, "690000880", "Négatif", 4_000))
            .collect(),
        Faults {
            stall_once_on: Some("UID MOVE".into()),
            ..Faults::default()
        },
    );
    let out = w.install.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.install.spool_files("690000880").len(), 4);
    let st = w.fake.state.lock().unwrap();
    assert!(st.inbox.is_empty());
    assert_eq!(st.moved.len(), 4);
    assert!(
        st.body_fetches.values().all(|n| *n == 1),
        "{:?}",
        st.body_fetches
    );
}
