//! `[mailbox]`: the source (an IMAP server, or a Maildir for trials), its TLS and
//! authentication, its folders and timings; and the senders trusted at the top level.

use std::path::Path;
use std::time::Duration;

use toml::Table;

use super::reader::{Reader, Section, Within};
use super::*;

pub(super) fn read_source(r: &mut Reader, s: &mut Section) -> Option<Source> {
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

pub(super) fn read_imap(r: &mut Reader, s: &mut Section) -> Option<Imap> {
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

pub(super) fn read_mailbox(r: &mut Reader, s: &mut Section) -> Option<Mailbox> {
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
    let poll_interval = r.fixed_duration(
        s,
        "poll_interval",
        Within {
            default: Duration::from_secs(60),
            min: Duration::from_secs(1),
            max: Duration::MAX,
            says: "must be at least 1s",
        },
    );
    let timeout = r.fixed_duration(
        s,
        "timeout",
        Within {
            default: Duration::from_secs(60),
            min: Duration::from_secs(1),
            max: Duration::from_secs(600),
            says: "must be between 1s and 10m",
        },
    );
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

pub(super) fn read_senders(
    r: &mut Reader,
    top: &mut Section,
    empty: &Table,
) -> Option<Vec<String>> {
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
