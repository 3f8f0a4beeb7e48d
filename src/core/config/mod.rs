//! The configuration file (TOML): its shape, its defaults and its validation, in one pure step
//! from text to a `Config` or to the complete list of what is wrong, each with its key. Reads
//! no file and checks nothing on disk; the shell adds those checks (`check-config`).

mod reader;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use super::duration::{self, Span};
use super::finess::Finess;
use super::retention::{NEGATIVE_MAX, POSITIVE_MAX_FIXED, POSITIVE_MAX_MONTHS, Policy};
use reader::{Reader, Section};

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

/// Parses and validates `text`, read from `file` (used in messages only).
pub fn parse(text: &str, file: &str) -> Result<Config, Vec<ConfigError>> {
    let root: Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            return Err(vec![ConfigError {
                file: file.to_string(),
                key: String::new(),
                message: format!("not valid TOML: {}", e.to_string().trim_end()),
            }]);
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
    let state_dir = path_or(&mut r, &mut state, "dir", "/var/lib/mss-dispatch");
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
    let quarantine_dir = path_or(
        &mut r,
        &mut quar,
        "dir",
        "/var/spool/mss-dispatch/quarantine",
    );
    r.finish(quar);

    let mut met = Section::new("metrics", r.table(&mut top, "metrics").unwrap_or(&empty));
    let metrics = read_metrics(&mut r, &mut met);
    r.finish(met);

    let sites = read_sites(&mut r, &mut top);
    r.finish(top);

    if let (Some(q), Some(st)) = (&quarantine_dir, &state_dir) {
        check_separation(&mut r, &sites, q, st);
    }

    match (
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
    }
}

fn path_or(r: &mut Reader, s: &mut Section, key: &'static str, default: &str) -> Option<PathBuf> {
    if s.has(key) {
        r.path(s, key)
    } else {
        Some(PathBuf::from(default))
    }
}

fn read_source(r: &mut Reader, s: &mut Section) -> Option<Source> {
    let has_host = s.has("host");
    let has_maildir = s.has("maildir");
    if s.has("password") {
        r.error(
            s.key("password"),
            "inline passwords are not accepted: use password_file, or the systemd credential \
             imap-password",
        );
    }
    match (has_host, has_maildir) {
        (true, true) => {
            r.error(
                s.key("host"),
                "give either host (IMAP) or maildir, not both",
            );
            None
        }
        (false, false) => {
            r.error(s.key("host"), "give either host (IMAP) or maildir");
            None
        }
        (false, true) => r.path(s, "maildir").map(Source::Maildir),
        (true, false) => read_imap(r, s).map(Source::Imap),
    }
}

fn read_imap(r: &mut Reader, s: &mut Section) -> Option<Imap> {
    let host = r.required_string(s, "host");
    let tls = match r.string(s, "tls").as_deref() {
        None | Some("starttls") => Some(TlsMode::StartTls),
        Some("implicit") => Some(TlsMode::Implicit),
        Some(other) => {
            r.error(
                s.key("tls"),
                format!("{other:?}: expected \"starttls\" or \"implicit\""),
            );
            None
        }
    };
    let default_port = match tls {
        Some(TlsMode::Implicit) => 993,
        _ => 143,
    };
    let port = match r.integer(s, "port") {
        None => Some(default_port),
        Some(p) => match u16::try_from(p) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                r.error(s.key("port"), format!("{p} is not a TCP port (1–65535)"));
                None
            }
        },
    };
    let ca_file = r.required_path(s, "ca_file");
    let client_cert = r.path(s, "client_cert");
    let client_key = r.path(s, "client_key");
    let p12_password = r.path(s, "client_cert_password_file");
    let bundle = client_cert.as_deref().is_some_and(is_pkcs12);
    match (&client_cert, &client_key) {
        (Some(_), None) if !bundle => r.error(
            s.key("client_key"),
            "client_cert is PEM, so client_key is required (or give a .p12 bundle)",
        ),
        (Some(_), Some(_)) if bundle => r.error(
            s.key("client_key"),
            "client_cert is a PKCS#12 bundle that holds the key: remove client_key",
        ),
        (None, Some(_)) => r.error(s.key("client_key"), "client_key needs client_cert"),
        _ => {}
    }
    if p12_password.is_some() && !bundle {
        r.error(
            s.key("client_cert_password_file"),
            "only used with a PKCS#12 (.p12/.pfx) client_cert",
        );
    }
    let auth = match r.string(s, "auth").as_deref() {
        None if client_cert.is_some() => Some(Auth::External),
        None | Some("login") => Some(Auth::Login),
        Some("external") => Some(Auth::External),
        Some("plain") => Some(Auth::Plain),
        Some(other) => {
            r.error(
                s.key("auth"),
                format!("{other:?}: expected \"external\", \"login\" or \"plain\""),
            );
            None
        }
    };
    let username = r.string(s, "username");
    let password_file = r.path(s, "password_file");
    match auth {
        Some(Auth::External) if client_cert.is_none() => r.error(
            s.key("auth"),
            "\"external\" authenticates with the client certificate: set client_cert",
        ),
        Some(Auth::Login | Auth::Plain) if username.as_deref().is_none_or(str::is_empty) => r
            .error(
                s.key("username"),
                "is required with auth \"login\" or \"plain\"",
            ),
        _ => {}
    }
    Some(Imap {
        host: host?,
        port: port?,
        tls: tls?,
        ca_file: ca_file?,
        client_cert,
        client_key,
        client_cert_password_file: p12_password,
        auth: auth?,
        username,
        password_file,
    })
}

/// `.p12` / `.pfx`: how IGC-Santé delivers organisation certificates.
pub fn is_pkcs12(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("p12") || e.eq_ignore_ascii_case("pfx"))
}

fn read_mailbox(r: &mut Reader, s: &mut Section) -> Option<Mailbox> {
    let folder_key = |r: &mut Reader, s: &mut Section, key: &'static str, default: &str| {
        let v = r.string(s, key).unwrap_or_else(|| default.to_string());
        if v.chars().any(char::is_control) {
            r.error(s.key(key), "must not contain control characters");
        }
        v
    };
    let folder = folder_key(r, s, "folder", "INBOX");
    let processed = folder_key(r, s, "processed_folder", "SI-DEP/Traites");
    let quarantine = folder_key(r, s, "quarantine_folder", "SI-DEP/Quarantaine");
    if folder.trim().is_empty() {
        r.error(s.key("folder"), "must not be empty");
    }
    if quarantine.trim().is_empty() {
        r.error(
            s.key("quarantine_folder"),
            "must not be empty: quarantined mail is moved there",
        );
    }
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b) && !a.is_empty();
    if same(&processed, &folder) {
        r.error(s.key("processed_folder"), "must differ from folder");
    }
    if same(&quarantine, &folder) {
        r.error(s.key("quarantine_folder"), "must differ from folder");
    }
    if same(&quarantine, &processed) {
        r.error(
            s.key("quarantine_folder"),
            "must differ from processed_folder",
        );
    }
    let idle = r.boolean(s, "idle").unwrap_or(true);
    let poll_interval = match r.string(s, "poll_interval") {
        None if s.has("poll_interval") => None,
        None => Some(Duration::from_secs(60)),
        Some(text) => match duration::parse_fixed(&text) {
            Ok(d) if d >= Duration::from_secs(1) => Some(d),
            Ok(_) => {
                r.error(s.key("poll_interval"), "must be at least 1s");
                None
            }
            Err(e) => {
                r.error(s.key("poll_interval"), e.to_string());
                None
            }
        },
    };
    let timeout = match r.string(s, "timeout") {
        None if s.has("timeout") => None,
        None => Some(Duration::from_secs(60)),
        Some(text) => match duration::parse_fixed(&text) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(600) => Some(d),
            Ok(_) => {
                r.error(s.key("timeout"), "must be between 1s and 10m");
                None
            }
            Err(e) => {
                r.error(s.key("timeout"), e.to_string());
                None
            }
        },
    };
    let max_message_bytes = match r.integer(s, "max_message_bytes") {
        None if s.has("max_message_bytes") => None,
        None => Some(5 * 1024 * 1024),
        Some(n) if n > 0 && n.unsigned_abs() <= MAX_MESSAGE_BYTES_LIMIT => Some(n.unsigned_abs()),
        Some(n) => {
            r.error(
                s.key("max_message_bytes"),
                format!("{n}: expected 1 to {MAX_MESSAGE_BYTES_LIMIT} bytes"),
            );
            None
        }
    };
    Some(Mailbox {
        folder,
        processed_folder: processed,
        quarantine_folder: quarantine,
        idle,
        poll_interval: poll_interval?,
        max_message_bytes: max_message_bytes?,
        timeout: timeout?,
    })
}

fn read_senders(r: &mut Reader, top: &mut Section, empty: &Table) -> Option<Vec<String>> {
    let table = r.table(top, "senders");
    let mut s = Section::new("senders", table.unwrap_or(empty));
    let out = match r.array(&mut s, "allow") {
        None if s.has("allow") => None,
        None => Some(vec![SIDEP_SENDER.to_string()]),
        Some(values) => {
            let mut out = Vec::new();
            for (i, v) in values.iter().enumerate() {
                match v.as_str() {
                    Some(a) if looks_like_address(a) => out.push(a.trim().to_lowercase()),
                    _ => r.error(format!("senders.allow[{i}]"), "expected an e-mail address"),
                }
            }
            if values.is_empty() {
                r.error("senders.allow", "must list at least one sender");
            }
            Some(out)
        }
    };
    r.finish(s);
    out
}

fn looks_like_address(a: &str) -> bool {
    let a = a.trim();
    match a.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !a.chars().any(|c| c.is_whitespace() || c == '<' || c == '>')
        }
        None => false,
    }
}

fn read_retention(r: &mut Reader, s: &mut Section) -> Option<Policy> {
    let legal = Policy::default();
    let negative = match r.string(s, "negative") {
        None if s.has("negative") => None,
        None => Some(legal.negative),
        Some(text) => match duration::parse(&text) {
            Ok(Span::Fixed(d)) if d.is_positive() && d <= NEGATIVE_MAX => Some(Span::Fixed(d)),
            Ok(Span::Fixed(d)) if !d.is_positive() => {
                r.error(s.key("negative"), "must be longer than zero");
                None
            }
            Ok(_) => {
                r.error(
                    s.key("negative"),
                    format!("{text:?} is longer than the legal maximum of 72h (SPEC §4)"),
                );
                None
            }
            Err(e) => {
                r.error(s.key("negative"), e.to_string());
                None
            }
        },
    };
    let positive = match r.string(s, "positive") {
        None if s.has("positive") => None,
        None => Some(legal.positive),
        Some(text) => match duration::parse(&text) {
            Ok(Span::Months(m)) if (1..=POSITIVE_MAX_MONTHS).contains(&m) => Some(Span::Months(m)),
            Ok(Span::Fixed(d)) if d.is_positive() && d <= POSITIVE_MAX_FIXED => {
                Some(Span::Fixed(d))
            }
            Ok(Span::Months(0)) => {
                r.error(s.key("positive"), "must be longer than zero");
                None
            }
            Ok(Span::Fixed(d)) if !d.is_positive() => {
                r.error(s.key("positive"), "must be longer than zero");
                None
            }
            Ok(_) => {
                r.error(
                    s.key("positive"),
                    format!(
                        "{text:?} is longer than the legal maximum of 6 months (SPEC §4); \
                         as a fixed duration, 179d at most"
                    ),
                );
                None
            }
            Err(e) => {
                r.error(s.key("positive"), e.to_string());
                None
            }
        },
    };
    Some(Policy {
        negative: negative?,
        positive: positive?,
    })
}

fn read_metrics(r: &mut Reader, s: &mut Section) -> Option<Metrics> {
    let file = if s.has("file") {
        Some(r.path(s, "file")?)
    } else {
        None
    };
    let interval = match r.string(s, "interval") {
        None if s.has("interval") => None,
        None => Some(Duration::from_secs(15)),
        Some(text) => match duration::parse_fixed(&text) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(3600) => Some(d),
            Ok(_) => {
                r.error(s.key("interval"), "must be between 1s and 1h");
                None
            }
            Err(e) => {
                r.error(s.key("interval"), e.to_string());
                None
            }
        },
    };
    Some(Metrics {
        file,
        interval: interval?,
    })
}

fn read_purge(r: &mut Reader, s: &mut Section) -> Option<PurgeSettings> {
    let mut fixed = |key: &'static str, default: u64, min: u64, max: u64| match r.string(s, key) {
        None if s.has(key) => None,
        None => Some(Duration::from_secs(default)),
        Some(text) => match duration::parse_fixed(&text) {
            Ok(d) if d.as_secs() >= min && d.as_secs() <= max => Some(d),
            Ok(_) => {
                r.error(s.key(key), format!("{text:?}: expected {min}s to {max}s"));
                None
            }
            Err(e) => {
                r.error(s.key(key), e.to_string());
                None
            }
        },
    };
    let check_interval = fixed("check_interval", 60, 1, 3600);
    let max_clock_jump = fixed("max_clock_jump", 7 * 86_400, 60, 90 * 86_400);
    Some(PurgeSettings {
        check_interval: check_interval?,
        max_clock_jump: max_clock_jump?,
    })
}

/// Sites, each with its index in the file (for messages).
fn read_sites(r: &mut Reader, top: &mut Section) -> Vec<(usize, Site)> {
    let Some(values) = r.array(top, "site") else {
        if !top.has("site") {
            r.error("site", "at least one [[site]] is required");
        }
        return Vec::new();
    };
    if values.is_empty() {
        r.error("site", "at least one [[site]] is required");
    }
    let mut sites: Vec<(usize, Site)> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let Value::Table(t) = v else {
            r.error(format!("site[{i}]"), "expected a table ([[site]])");
            continue;
        };
        let mut s = Section::new(format!("site[{i}]"), t);
        let finess = r.required_string(&mut s, "finess").and_then(|f| {
            Finess::parse(&f)
                .map_err(|e| r.error(s.key("finess"), format!("{f:?} is not a valid FINESS: {e}")))
                .ok()
        });
        if let Some(f) = &finess
            && let Some((j, _)) = sites.iter().find(|(_, site)| &site.finess == f)
        {
            r.error(
                s.key("finess"),
                format!("duplicate site {f} (already site[{j}])"),
            );
        }
        let name = r.required_string(&mut s, "name");
        let spool = r.path(&mut s, "spool");
        let sil = r.path(&mut s, "sil");
        if !s.has("spool") && !s.has("sil") {
            r.error(
                s.key("spool"),
                "a site needs a spool folder, a sil folder, or both",
            );
        }
        let group = r.string(&mut s, "group");
        if let Some(g) = &group
            && (g.trim().is_empty() || g.contains([':', '/', '\n', '\0']))
        {
            r.error(s.key("group"), format!("{g:?} is not a group name"));
        }
        r.finish(s);
        // Kept even when other keys are wrong, so that the folder checks still run.
        if let Some(finess) = finess {
            sites.push((
                i,
                Site {
                    finess,
                    name: name.unwrap_or_default().trim().to_string(),
                    spool,
                    sil,
                    group,
                },
            ));
        }
    }
    sites
}

/// A site's spool holds its own certificates only (DESIGN invariant 4): no spool may equal or
/// contain another site's spool, the quarantine or the state directory.
fn check_separation(r: &mut Reader, sites: &[(usize, Site)], quarantine: &Path, state: &Path) {
    let overlaps = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
    for (i, a) in sites {
        let Some(spool) = &a.spool else { continue };
        for (j, b) in sites.iter().filter(|(j, _)| j != i) {
            if j > i
                && b.spool
                    .as_deref()
                    .is_some_and(|other| overlaps(spool, other))
            {
                r.error(
                    format!("site[{j}].spool"),
                    format!("overlaps site[{i}].spool: each site needs a folder of its own"),
                );
            }
            if b.sil.as_deref().is_some_and(|other| overlaps(spool, other)) {
                r.error(
                    format!("site[{j}].sil"),
                    format!("overlaps site[{i}].spool: another site's staff would see it"),
                );
            }
        }
    }
    for (i, site) in sites {
        for (key, dir) in [("spool", &site.spool), ("sil", &site.sil)] {
            let Some(dir) = dir else { continue };
            for (what, other) in [("quarantine.dir", quarantine), ("state.dir", state)] {
                if overlaps(dir, other) {
                    r.error(format!("site[{i}].{key}"), format!("overlaps {what}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
