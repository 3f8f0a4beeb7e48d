//! Shared test fixtures: a temporary installation with three sites and the golden corpus.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::core::config::{self, Config};
use crate::core::finess::Finess;
use crate::delivery::{Fetched, Setting};
use crate::ledger::{Ledger, MailboxKey};

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: Config,
    pub tz: TimeZone,
    pub groups: HashMap<Finess, u32>,
    pub key: MailboxKey,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let text = format!(
            r#"
[mailbox]
maildir = "{r}/Maildir"
max_message_bytes = 300000
[state]
dir = "{r}/state"
[quarantine]
dir = "{r}/quarantine"
[[site]]
finess = "690000880"
name = "Lyon Bellecour"
spool = "{r}/sites/690000880"
[[site]]
finess = "750712184"
name = "Paris Montparnasse"
spool = "{r}/sites/750712184"
sil = "{r}/sil"
[[site]]
finess = "2A0000154"
name = "Ajaccio"
sil = "{r}/sil"
"#,
            r = root.display()
        );
        Fixture {
            config: config::parse(&text, "t").unwrap(),
            tz: crate::system::tz::paris(),
            groups: HashMap::new(),
            key: MailboxKey {
                mailbox: "maildir:/test".into(),
                validity: "1".into(),
            },
            _dir: dir,
            root,
        }
    }

    pub fn set(&self) -> Setting<'_> {
        Setting {
            config: &self.config,
            tz: &self.tz,
            groups: &self.groups,
            mailbox: &self.key,
            secret: b"a test secret of thirty-two byte",
        }
    }

    pub fn ledger(&self) -> Ledger {
        std::fs::create_dir_all(self.root.join("state")).unwrap();
        Ledger::open(&self.root.join("state")).unwrap()
    }

    /// Every file under the root except the state directory, relative.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out.retain(|p| !p.starts_with("state/"));
        out.sort();
        out
    }
}

/// Every file below `dir`, relative to `root`; links are listed, never followed.
pub fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

pub fn corpus(name: &str) -> Fetched {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/corpus/{name}.eml"));
    Fetched::Whole {
        item: name.to_string(),
        raw: std::fs::read(path).unwrap(),
    }
}

pub fn now() -> Timestamp {
    "2021-10-30T12:00:00Z".parse().unwrap()
}

/// The zone the tests decide in (the core's own tests cannot look it up).
pub fn paris() -> TimeZone {
    crate::system::tz::paris()
}
