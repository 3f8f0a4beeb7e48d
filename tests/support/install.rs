//! Test installations: a configuration with two sites on a Maildir or on a Dovecot, and
//! what they hold.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{Daemon, Dovecot, DovecotOptions, Pki, bin, login_mailbox, workdir};

/// Folders of a test installation.
pub struct Install {
    pub root: PathBuf,
    pub config: PathBuf,
}

impl Install {
    /// Writes a configuration with `mailbox` lines (the `[mailbox]` body) and two sites.
    pub fn new(root: &Path, mailbox: &str) -> Install {
        std::fs::create_dir_all(root).unwrap();
        let r = root.display();
        let text = format!(
            "[mailbox]\n{mailbox}\n\
             [state]\ndir = \"{r}/state\"\n\
             [quarantine]\ndir = \"{r}/quarantine\"\n\
             [[site]]\nfiness = \"690000880\"\nname = \"Lyon Bellecour\"\nspool = \"{r}/sites/690000880\"\n\
             [[site]]\nfiness = \"750712184\"\nname = \"Paris\"\nspool = \"{r}/sites/750712184\"\nsil = \"{r}/sil\"\n"
        );
        let config = root.join("config.toml");
        std::fs::write(&config, text).unwrap();
        Install {
            root: root.to_path_buf(),
            config,
        }
    }

    pub fn run_once(&self) -> Output {
        Command::new(bin())
            .args(["run", "--once", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .output()
            .unwrap()
    }

    pub fn spawn(&self) -> Daemon {
        Command::new(bin())
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map(Daemon)
            .unwrap()
    }

    /// The daemon with its log written to `log`, to be read while it runs.
    pub fn spawn_logged(&self, log: &Path) -> Daemon {
        Command::new(bin())
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .map(Daemon)
            .unwrap()
    }

    pub fn spawn_once(&self) -> Daemon {
        Command::new(bin())
            .args(["run", "--once", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Daemon)
            .unwrap()
    }

    /// Every file under the installation except state and configuration, relative.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out.retain(|p| !p.starts_with("state/") && p != "config.toml");
        out.sort();
        out
    }

    /// Runs a command of the binary on this installation's configuration.
    pub fn command(&self, args: &[&str]) -> Output {
        super::command(&self.config, args)
    }

    pub fn spool_files(&self, finess: &str) -> Vec<String> {
        self.files()
            .into_iter()
            .filter(|p| p.starts_with(&format!("sites/{finess}/")))
            .collect()
    }
}

pub fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

/// A Dovecot on loopback and an installation logging in to it over STARTTLS. Fields drop in
/// order: the daemon's installation, then the server, then the temporary directory.
pub struct World {
    pub install: Install,
    pub dovecot: Dovecot,
    pub tmp: tempfile::TempDir,
}

impl World {
    /// `mailbox_extra` goes into the `[mailbox]` table, `config_extra` at the end of the file.
    pub fn new(mailbox_extra: &str, config_extra: &str) -> World {
        let tmp = workdir();
        let root = tmp.path().to_path_buf();
        let pki = Pki::new(&root.join("pki"));
        let dovecot = Dovecot::start(&root.join("dovecot"), &pki, DovecotOptions::default());
        let install_root = root.join("install");
        let mailbox = login_mailbox(&dovecot, &pki, &root) + mailbox_extra;
        let install = Install::new(&install_root, &mailbox);
        if !config_extra.is_empty() {
            let text = std::fs::read_to_string(&install.config).unwrap() + config_extra;
            std::fs::write(&install.config, text).unwrap();
        }
        World {
            install,
            dovecot,
            tmp,
        }
    }
}

/// An installation on a Maildir holding the demo's certificates, sampled today.
pub fn demo_install(root: &Path, extra: &str) -> Install {
    let status = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/generate.py"))
        .arg("--demo")
        .arg(root.join("Maildir"))
        .stdout(Stdio::null())
        .status()
        .expect("python3");
    assert!(status.success());
    Install::new(
        root,
        &format!("maildir = \"{}/Maildir\"\n{extra}", root.display()),
    )
}
