//! A TOML table walker that records every problem instead of stopping at the first, so that
//! `check-config` can list them all, each with its dotted key (`site[1].spool`).

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use super::ConfigError;

pub(super) struct Reader<'f> {
    file: &'f str,
    pub errors: Vec<ConfigError>,
    /// Every key looked at, dotted, with `site[N]` written `site`: the keys this reader
    /// accepts, for the manual page's check.
    pub known: std::collections::BTreeSet<String>,
}

/// The default and the bounds of a fixed duration, and how to say them.
pub(super) struct Within {
    pub default: Duration,
    pub min: Duration,
    pub max: Duration,
    pub says: &'static str,
}

/// One table being read: its dotted prefix and the keys looked at, for the unknown-key check.
pub(super) struct Section<'t> {
    pub prefix: String,
    pub table: &'t Table,
    seen: Vec<&'static str>,
}

impl<'t> Section<'t> {
    pub fn new(prefix: impl Into<String>, table: &'t Table) -> Self {
        Section {
            prefix: prefix.into(),
            table,
            seen: Vec::new(),
        }
    }

    pub fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'t Value> {
        self.seen.push(key);
        self.table.get(key)
    }

    pub fn has(&mut self, key: &'static str) -> bool {
        self.get(key).is_some()
    }
}

impl<'f> Reader<'f> {
    pub fn new(file: &'f str) -> Self {
        Reader {
            file,
            errors: Vec::new(),
            known: Default::default(),
        }
    }

    pub fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            key: key.into(),
            message: message.into(),
        });
    }

    fn type_error(&mut self, s: &Section, key: &str, want: &str, got: &Value) {
        let k = s.key(key);
        self.error(k, format!("expected {want}, found {}", got.type_str()));
    }

    pub fn table<'t>(&mut self, s: &mut Section<'t>, key: &'static str) -> Option<&'t Table> {
        match s.get(key)? {
            Value::Table(t) => Some(t),
            other => {
                self.type_error(s, key, "a table", other);
                None
            }
        }
    }

    pub fn string(&mut self, s: &mut Section, key: &'static str) -> Option<String> {
        match s.get(key)? {
            Value::String(v) => Some(v.clone()),
            other => {
                self.type_error(s, key, "a string", other);
                None
            }
        }
    }

    /// A string that must be present and not blank.
    pub fn required_string(&mut self, s: &mut Section, key: &'static str) -> Option<String> {
        match self.string(s, key) {
            Some(v) if !v.trim().is_empty() => Some(v),
            Some(_) => {
                self.error(s.key(key), "must not be empty");
                None
            }
            None if !s.has(key) => {
                self.error(s.key(key), "is required");
                None
            }
            None => None,
        }
    }

    pub fn boolean(&mut self, s: &mut Section, key: &'static str) -> Option<bool> {
        match s.get(key)? {
            Value::Boolean(v) => Some(*v),
            other => {
                self.type_error(s, key, "true or false", other);
                None
            }
        }
    }

    /// A fixed duration (`60s`, `5m`): `within.default` when the key is absent, an error
    /// saying the range when it is outside `within.min..=within.max`.
    pub fn fixed_duration(
        &mut self,
        s: &mut Section,
        key: &'static str,
        within: Within,
    ) -> Option<Duration> {
        match self.string(s, key) {
            None if s.has(key) => None,
            None => Some(within.default),
            Some(text) => match crate::core::duration::parse_fixed(&text) {
                Ok(d) if d >= within.min && d <= within.max => Some(d),
                Ok(_) => {
                    self.error(s.key(key), format!("{text:?}: {}", within.says));
                    None
                }
                Err(e) => {
                    self.error(s.key(key), e.to_string());
                    None
                }
            },
        }
    }

    pub fn integer(&mut self, s: &mut Section, key: &'static str) -> Option<i64> {
        match s.get(key)? {
            Value::Integer(v) => Some(*v),
            other => {
                self.type_error(s, key, "an integer", other);
                None
            }
        }
    }

    pub fn array<'t>(&mut self, s: &mut Section<'t>, key: &'static str) -> Option<&'t [Value]> {
        match s.get(key)? {
            Value::Array(v) => Some(v),
            other => {
                self.type_error(s, key, "an array", other);
                None
            }
        }
    }

    /// An absolute path without `..` components: the daemon runs from `/` under systemd, and
    /// the spool separation checks compare paths lexically.
    pub fn path(&mut self, s: &mut Section, key: &'static str) -> Option<PathBuf> {
        let raw = self.string(s, key)?;
        let path = PathBuf::from(&raw);
        if raw.trim().is_empty() {
            self.error(s.key(key), "must not be empty");
            None
        } else if !path.is_absolute() {
            self.error(
                s.key(key),
                format!("{raw:?} is relative: give an absolute path"),
            );
            None
        } else if path.components().any(|c| c == Component::ParentDir) {
            self.error(s.key(key), format!("{raw:?} must not contain \"..\""));
            None
        } else {
            Some(normalise(&path))
        }
    }

    pub fn required_path(&mut self, s: &mut Section, key: &'static str) -> Option<PathBuf> {
        if !s.has(key) {
            self.error(s.key(key), "is required");
            return None;
        }
        self.path(s, key)
    }

    /// Reports keys of the table that nothing read: a typo must not silently fall back to a
    /// default.
    pub fn finish(&mut self, s: Section) {
        let table = s.prefix.split('[').next().unwrap_or_default();
        for key in &s.seen {
            self.known.insert(if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            });
        }
        for key in s.table.keys() {
            if s.seen.contains(&key.as_str()) {
                continue;
            }
            let hint = match closest(key, &s.seen) {
                Some(k) => format!("unknown key; did you mean {:?}?", s.key(k)),
                None => "unknown key".to_string(),
            };
            self.error(s.key(key), hint);
        }
    }
}

/// The known key nearest to a misspelt one (two edits at most), for a "did you mean".
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let key = key.to_lowercase();
    known
        .iter()
        .map(|k| (edits(&key, k), *k))
        .filter(|(d, k)| *d <= 2.min(k.len() / 3 + 1))
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Drops `.` components and trailing slashes.
fn normalise(p: &Path) -> PathBuf {
    p.components().filter(|c| *c != Component::CurDir).collect()
}
