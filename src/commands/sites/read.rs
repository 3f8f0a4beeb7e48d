//! Reading a FINESS register file as a stream: gzip or not, the JSON flow or the CSV extract
//! (told apart by their first bytes, never their names), one establishment at a time, so
//! that a 50 MB gzip file or a 100,000-line extract is read in little memory. Every error says
//! where: the line, or the JSON path.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::core::register::{self, Establishment, Pmej, RegisterError};

/// Reads `path`, handing each establishment to `keep`; `keep` may fail it (a kept record with
/// a bad FINESS). Returns the format read.
pub fn read(
    path: &Path,
    keep: &mut dyn FnMut(Establishment) -> Result<(), RegisterError>,
) -> Result<Format, RegisterError> {
    let file = File::open(path)
        .map_err(|e| RegisterError::new(path.display().to_string(), format!("cannot read: {e}")))?;
    let mut input = BufReader::with_capacity(64 * 1024, file);
    let gzip = input
        .fill_buf()
        .map_err(|e| RegisterError::new(path.display().to_string(), e.to_string()))?
        .starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn BufRead> = if gzip {
        Box::new(BufReader::with_capacity(
            64 * 1024,
            flate2::bufread::MultiGzDecoder::new(input),
        ))
    } else {
        Box::new(input)
    };
    let mut reader = reader;
    let json = first_meaningful_byte(&mut reader, gzip)? == Some(b'{');
    if json {
        read_json(reader, gzip, keep)?;
        Ok(Format::Json { gzip })
    } else {
        read_csv(reader, gzip, keep)?;
        Ok(Format::Csv { gzip })
    }
}

/// What a file held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json { gzip: bool },
    Csv { gzip: bool },
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Format::Json { gzip } => write!(f, "JSON flow{}", if *gzip { " (gzip)" } else { "" }),
            Format::Csv { gzip } => write!(f, "CSV extract{}", if *gzip { " (gzip)" } else { "" }),
        }
    }
}

/// A read error: a cut or damaged gzip stream said as such.
fn io_error(e: &std::io::Error, gzip: bool, at: &str) -> RegisterError {
    if gzip {
        RegisterError::new(
            at,
            format!("the gzip data is truncated or damaged ({e}); download the file again"),
        )
    } else {
        RegisterError::new(at, format!("cannot read: {e}"))
    }
}

/// The first byte that is not white space or a byte-order mark, left in the reader.
fn first_meaningful_byte(
    reader: &mut dyn BufRead,
    gzip: bool,
) -> Result<Option<u8>, RegisterError> {
    loop {
        let buf = reader
            .fill_buf()
            .map_err(|e| io_error(&e, gzip, "the start of the file"))?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        if b.is_ascii_whitespace() {
            reader.consume(1);
        } else if buf.starts_with(&[0xef, 0xbb, 0xbf]) {
            reader.consume(3);
        } else {
            return Ok(Some(b));
        }
    }
}

fn read_csv(
    mut reader: Box<dyn BufRead>,
    gzip: bool,
    keep: &mut dyn FnMut(Establishment) -> Result<(), RegisterError>,
) -> Result<(), RegisterError> {
    let mut bytes = Vec::new();
    let mut line_no = 0usize;
    loop {
        bytes.clear();
        let start = line_no + 1;
        let mut text = String::new();
        // A record: one line, or more while a quoted field holds a line break.
        loop {
            bytes.clear();
            let n = reader
                .read_until(b'\n', &mut bytes)
                .map_err(|e| io_error(&e, gzip, &format!("line {}", line_no + 1)))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&register::decode_line(&bytes));
            if register::record_is_complete(&text) {
                break;
            }
        }
        if text.is_empty() && bytes.is_empty() {
            return Ok(());
        }
        let at = format!("line {start}");
        if start == 1 && text.starts_with("finess;") {
            continue; // the comment line: finess;etalab;111;2026-05-12
        }
        if !text.starts_with("structureet;") {
            // Other sections (geolocalisation) and blank lines.
            continue;
        }
        let fields = register::split_record(&text).map_err(|why| RegisterError::new(&at, why))?;
        keep(register::from_structureet(&fields, &at)?)?;
    }
}

fn read_json(
    reader: Box<dyn BufRead>,
    gzip: bool,
    keep: &mut dyn FnMut(Establishment) -> Result<(), RegisterError>,
) -> Result<(), RegisterError> {
    let mut failure: Option<RegisterError> = None;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let result = Root {
        keep,
        failure: &mut failure,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Some(f) = failure {
        return Err(f);
    }
    result.map_err(|e| {
        let at = format!("line {} column {}", e.line(), e.column());
        if e.is_io() {
            let io: std::io::Error = e.into();
            io_error(&io, gzip, &at)
        } else if e.is_eof() && gzip {
            RegisterError::new(at, "the JSON ends early: the gzip data is truncated")
        } else {
            RegisterError::new(at, format!("not the FINESS JSON flow: {e}"))
        }
    })
}

/// The flow's top object: only `pmej` is read, an entity at a time.
struct Root<'k> {
    keep: &'k mut dyn FnMut(Establishment) -> Result<(), RegisterError>,
    failure: &'k mut Option<RegisterError>,
}

impl<'de> DeserializeSeed<'de> for Root<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Root<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("the FINESS JSON flow: an object with a pmej array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut saw_pmej = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "pmej" {
                saw_pmej = true;
                map.next_value_seed(Entities {
                    keep: &mut *self.keep,
                    failure: &mut *self.failure,
                })?;
                if self.failure.is_some() {
                    return Err(serde::de::Error::custom("stopped"));
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if !saw_pmej {
            return Err(serde::de::Error::custom("no pmej array"));
        }
        Ok(())
    }
}

struct Entities<'k> {
    keep: &'k mut dyn FnMut(Establishment) -> Result<(), RegisterError>,
    failure: &'k mut Option<RegisterError>,
}

impl<'de> DeserializeSeed<'de> for Entities<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entities<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("the pmej array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while let Some(pmej) = seq.next_element::<Pmej>()? {
            let legal = register::legal_of(&pmej);
            for (j, ege) in pmej.ege.iter().enumerate() {
                let at = format!("pmej[{i}].ege[{j}]");
                if let Err(e) = (self.keep)(register::from_ege(ege, &legal, &at)) {
                    *self.failure = Some(e);
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
            i += 1;
        }
        Ok(())
    }
}

/// Reads a whole file into memory: for tests of small fixtures.
#[cfg(test)]
pub fn read_all(path: &Path) -> Result<Vec<Establishment>, RegisterError> {
    let mut all = Vec::new();
    read(path, &mut |e| {
        all.push(e);
        Ok(())
    })?;
    Ok(all)
}
