//! The configuration file (TOML): its shape, its defaults and its validation, in one pure step
//! from text to a `Config` or to the complete list of what is wrong, each with its key. Reads
//! no file and checks nothing on disk; the shell adds those checks (`check-config`).

pub mod keys;
mod mailbox;
mod policy;
mod reader;
mod sites;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use super::duration::{self, Period};
use super::finess::Finess;
use super::retention::{NEGATIVE_MAX, POSITIVE_MAX_FIXED, POSITIVE_MAX_MONTHS, Policy};
pub use mailbox::is_pkcs12;
use mailbox::{read_mailbox, read_senders, read_source};
use policy::{read_metrics, read_purge, read_retention};
use reader::{Reader, Section};
use sites::{check_separation, read_sites};

/// The address SI-DEP sends certificates from (SPEC §2).
pub const SIDEP_SENDER: &str = "noreply.sidep@enovacom.mssante.fr";
/// Messages are buffered whole in memory; this bounds what `max_message_bytes` may ask for.
pub const MAX_MESSAGE_BYTES_LIMIT: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub source: Source,
    pub mailbox: Mailbox,
    /// Lower-case sender addresses whose mail is read.
    pub senders: Vec<String>,
    pub state_dir: PathBuf,
    pub retention: Policy,
    /// When and how the purger runs (`[retention]` too).
    pub purge: PurgeSettings,
    pub quarantine_dir: PathBuf,
    pub sites: Vec<Site>,
    /// Prometheus text file for node_exporter's textfile collector (`[metrics]`).
    pub metrics: Metrics,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    /// Off when `None`.
    pub file: Option<PathBuf>,
    pub interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeSettings {
    /// How often the daemon runs a purge pass (`retention.check_interval`).
    pub check_interval: Duration,
    /// A forward step of the wall clock beyond this holds purging (`retention.max_clock_jump`).
    pub max_clock_jump: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Imap(Imap),
    Maildir(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    StartTls,
    Implicit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    External,
    Login,
    Plain,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Imap {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub ca_file: PathBuf,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Password of a PKCS#12 `client_cert` bundle.
    pub client_cert_password_file: Option<PathBuf>,
    pub auth: Auth,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
}

impl Imap {
    /// Every file the mailbox settings name, with its key: the CA, and the client
    /// certificate, its key and the password files when given.
    pub fn files(&self) -> Vec<(&'static str, &Path)> {
        let mut out = vec![("mailbox.ca_file", self.ca_file.as_path())];
        for (key, p) in [
            ("mailbox.client_cert", &self.client_cert),
            ("mailbox.client_key", &self.client_key),
            (
                "mailbox.client_cert_password_file",
                &self.client_cert_password_file,
            ),
            ("mailbox.password_file", &self.password_file),
        ] {
            if let Some(p) = p {
                out.push((key, p.as_path()));
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mailbox {
    pub folder: String,
    /// Empty: delete from the server once delivered.
    pub processed_folder: String,
    pub quarantine_folder: String,
    pub idle: bool,
    pub poll_interval: Duration,
    pub max_message_bytes: u64,
    /// How long one IMAP command may take before the connection is dropped and reopened.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub finess: Finess,
    pub name: String,
    pub spool: Option<PathBuf>,
    pub sil: Option<PathBuf>,
    pub group: Option<String>,
    /// The site's printer: each certificate delivered to its spool is printed there.
    pub printer: Option<Printer>,
}

/// A site's printer (IPP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printer {
    /// `ipp://HOST[:PORT]/PATH` or `ipps://…`, as written.
    pub uri: String,
    pub host: String,
    pub port: u16,
    /// The resource path (`/ipp/print`, `/printers/accueil`).
    pub path: String,
    /// For `ipps`: the CA that signed the printer's certificate (only anchor).
    pub ca_file: Option<PathBuf>,
    pub copies: u32,
    pub print: PrintWhich,
}

impl Printer {
    pub fn tls(&self) -> bool {
        self.uri.starts_with("ipps:")
    }
}

/// Which certificates a site prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrintWhich {
    All,
    Positives,
    Negatives,
}

impl PrintWhich {
    pub fn as_str(self) -> &'static str {
        match self {
            PrintWhich::All => "all",
            PrintWhich::Positives => "positives",
            PrintWhich::Negatives => "negatives",
        }
    }

    /// Whether a certificate of this result (`positive`, `negative`, …) is printed.
    pub fn wants(self, result: Option<&str>) -> bool {
        match self {
            PrintWhich::All => true,
            PrintWhich::Positives => result == Some("positive"),
            PrintWhich::Negatives => result == Some("negative"),
        }
    }
}

impl Config {
    pub fn site(&self, finess: &Finess) -> Option<&Site> {
        self.sites.iter().find(|s| &s.finess == finess)
    }

    /// True when `addr` (any case) may send certificates.
    pub fn sender_allowed(&self, addr: &str) -> bool {
        let addr = addr.trim().to_lowercase();
        self.senders.contains(&addr)
    }
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// Dotted key (`site[1].finess`); empty for a syntax error.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.message)
        }
    }
}

/// The instance of the template unit (`mss-dispatch@NAME`) that a file configures:
/// `/etc/mss-dispatch/NAME.toml`, except `config.toml` (the plain unit's).
pub fn instance_of(file: &str) -> Option<&str> {
    let name = file
        .strip_prefix("/etc/mss-dispatch/")?
        .strip_suffix(".toml")?;
    (!name.is_empty() && name != "config" && !name.contains('/')).then_some(name)
}

/// Parses and validates `text`, read from `file` (named in messages; an instance's file
/// gives the instance's default folders, see [`instance_of`]).
pub fn parse(text: &str, file: &str) -> Result<Config, Vec<ConfigError>> {
    parse_reading(text, file).0
}

/// [`parse`], and every key the reader looked at (dotted; `site.finess`).
pub fn parse_reading(
    text: &str,
    file: &str,
) -> (
    Result<Config, Vec<ConfigError>>,
    std::collections::BTreeSet<String>,
) {
    let root: Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let error = ConfigError {
                file: file.to_string(),
                key: String::new(),
                message: format!("not valid TOML: {}", e.to_string().trim_end()),
            };
            return (Err(vec![error]), Default::default());
        }
    };
    let mut r = Reader::new(file);
    let mut top = Section::new("", &root);
    let empty = Table::new();

    let mailbox_table = r.table(&mut top, "mailbox");
    if mailbox_table.is_none() && !top.has("mailbox") {
        r.error("mailbox", "the [mailbox] section is required");
    }
    let mut mailbox = Section::new("mailbox", mailbox_table.unwrap_or(&empty));
    let source = read_source(&mut r, &mut mailbox);
    let mailbox_opts = read_mailbox(&mut r, &mut mailbox);
    r.finish(mailbox);

    let senders = read_senders(&mut r, &mut top, &empty);

    let mut state = Section::new("state", r.table(&mut top, "state").unwrap_or(&empty));
    let instance = instance_of(file);
    let default_state = match instance {
        Some(name) => format!("/var/lib/mss-dispatch/{name}"),
        None => "/var/lib/mss-dispatch".to_string(),
    };
    let state_dir = path_or(&mut r, &mut state, "dir", &default_state);
    r.finish(state);

    let mut ret = Section::new(
        "retention",
        r.table(&mut top, "retention").unwrap_or(&empty),
    );
    let retention = read_retention(&mut r, &mut ret);
    let purge = read_purge(&mut r, &mut ret);
    r.finish(ret);

    let mut quar = Section::new(
        "quarantine",
        r.table(&mut top, "quarantine").unwrap_or(&empty),
    );
    let default_quarantine = match instance {
        Some(name) => format!("/var/spool/mss-dispatch/{name}/quarantine"),
        None => "/var/spool/mss-dispatch/quarantine".to_string(),
    };
    let quarantine_dir = path_or(&mut r, &mut quar, "dir", &default_quarantine);
    r.finish(quar);

    let mut met = Section::new("metrics", r.table(&mut top, "metrics").unwrap_or(&empty));
    let metrics = read_metrics(&mut r, &mut met);
    r.finish(met);

    let sites = read_sites(&mut r, &mut top);
    r.finish(top);

    if let (Some(q), Some(st)) = (&quarantine_dir, &state_dir) {
        check_separation(&mut r, &sites, q, st);
    }
    name_sites(&mut r.errors, &root);

    let config = match (
        source,
        mailbox_opts,
        senders,
        state_dir,
        retention.zip(purge),
        quarantine_dir.zip(metrics),
    ) {
        (
            Some(source),
            Some(mailbox),
            Some(senders),
            Some(state_dir),
            Some((retention, purge)),
            Some((q, metrics)),
        ) if r.errors.is_empty() => Ok(Config {
            source,
            mailbox,
            senders,
            state_dir,
            retention,
            purge,
            quarantine_dir: q,
            sites: sites.into_iter().map(|(_, s)| s).collect(),
            metrics,
        }),
        _ => Err(r.errors),
    };
    (config, r.known)
}

/// Names the site of each `site[N]…` error as the file has it, so that a person finds it
/// among forty: `site[7].spool (690000880 "Lyon Bellecour"): …`.
fn name_sites(errors: &mut [ConfigError], root: &Table) {
    let Some(toml::Value::Array(sites)) = root.get("site") else {
        return;
    };
    for e in errors.iter_mut() {
        let Some(rest) = e.key.strip_prefix("site[") else {
            continue;
        };
        let Some(i) = rest.split(']').next().and_then(|n| n.parse::<usize>().ok()) else {
            continue;
        };
        let Some(toml::Value::Table(t)) = sites.get(i) else {
            continue;
        };
        let text = |k: &str| t.get(k).and_then(|v| v.as_str()).map(str::trim);
        let label = match (text("finess"), text("name")) {
            (Some(f), Some(n)) if !n.is_empty() => format!("{f} {n:?}"),
            (Some(f), _) => f.to_string(),
            (None, Some(n)) if !n.is_empty() => format!("{n:?}"),
            _ => continue,
        };
        e.key = format!("{} ({label})", e.key);
    }
}

fn path_or(r: &mut Reader, s: &mut Section, key: &'static str, default: &str) -> Option<PathBuf> {
    if s.has(key) {
        r.path(s, key)
    } else {
        Some(PathBuf::from(default))
    }
}

#[cfg(test)]
mod tests;
