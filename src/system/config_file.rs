//! Reading a configuration file from disk: the pure parse and validation of `core::config`,
//! plus the checks only the machine can answer (do the CA, certificate and password files
//! exist, does the Maildir). Those are warnings: the file itself may be right for another host.

use std::path::{Path, PathBuf};

use crate::core::config::{self, Config, ConfigError, Source};

/// Why a configuration could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    Read(PathBuf, std::io::Error),
    Invalid(Vec<ConfigError>),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Read(p, e) => write!(f, "{}: cannot read: {e}", p.display()),
            LoadError::Invalid(errors) => {
                for (i, e) in errors.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Read(path.into(), e))?;
    let mut config = parse_at(&text, path).map_err(LoadError::Invalid)?;
    credential_beside(&mut config, path);
    Ok(config)
}

/// Parses the text of the file at `path`. A file of an instance of the template unit
/// (`/etc/mss-dispatch/NAME.toml`) is named by its absolute path, whichever way it was given
/// (`--config nord.toml` from `/etc/mss-dispatch`), so that its default folders are the
/// instance's whoever reads it: the unit or a person.
pub fn parse_at(text: &str, path: &Path) -> Result<Config, Vec<config::ConfigError>> {
    let name = instance_path(path).unwrap_or_else(|| path.display().to_string());
    config::parse(text, &name)
}

/// The absolute path of `path` when it is the file of an instance of the template unit
/// (`/etc/mss-dispatch/NAME.toml`, see [`config::instance_of`]).
pub fn instance_path(path: &Path) -> Option<String> {
    let absolute = std::path::absolute(path).ok()?.display().to_string();
    config::instance_of(&absolute).is_some().then_some(absolute)
}

/// The file the unit passes as the credential `imap-password`: `imap-password` beside
/// `config.toml`, `NAME.imap-password` beside `NAME.toml` (the template unit).
pub fn credential_file(config_path: &Path) -> PathBuf {
    let dir = config_path.parent().unwrap_or(Path::new("."));
    match config_path.file_stem().and_then(|s| s.to_str()) {
        Some("config") | None => dir.join("imap-password"),
        Some(stem) => dir.join(format!("{stem}.imap-password")),
    }
}

/// Outside systemd (a run by hand, `inspect --mailbox`), a password not given by
/// `password_file` is read from the file the unit would pass as its credential.
fn credential_beside(config: &mut Config, path: &Path) {
    use crate::core::config::Auth;
    if std::env::var_os("CREDENTIALS_DIRECTORY").is_some() {
        return;
    }
    if let Source::Imap(imap) = &mut config.source
        && matches!(imap.auth, Auth::Login | Auth::Plain)
        && imap.password_file.is_none()
    {
        let beside = credential_file(path);
        if beside.is_file() {
            imap.password_file = Some(beside);
        }
    }
}

/// Files and folders the configuration names that this machine lacks.
pub fn environment_warnings(config: &Config, file: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut need = |key: &str, path: &Path, dir: bool| {
        let ok = if dir { path.is_dir() } else { path.is_file() };
        if !ok {
            let what = if dir { "folder" } else { "file" };
            out.push(format!(
                "{}: {key}: {what} {} not found on this machine",
                file.display(),
                path.display()
            ));
        }
    };
    match &config.source {
        Source::Maildir(dir) => need("mailbox.maildir", dir, true),
        Source::Imap(imap) => {
            for (key, p) in imap.files() {
                need(key, p, false);
            }
        }
    }
    out
}
