//! Reading the log back: every record's chain checked, and its end against the ledger's head.

use std::path::Path;

use super::*;

/// Verifies the whole chain, and that it holds the record the ledger says was written last
/// (`head`, read *before* the file: records the service appends meanwhile only lengthen the
/// file, so a snapshot taken in that order never raises a false alarm).
pub fn verify(state_dir: &Path, head: Option<&Head>) -> Result<Chain, AuditError> {
    let path = path(state_dir);
    let lines = read_lines(&path)?;
    verify_lines(&path, &lines, head)
}

/// `verify` over the lines of `path` already read (`read_lines`); without `head`, the chain
/// alone (a copied log).
pub fn verify_lines(
    path: &Path,
    lines: &[String],
    head: Option<&Head>,
) -> Result<Chain, AuditError> {
    let path = path.to_path_buf();
    let chain =
        audit::verify(lines.iter().map(String::as_str)).map_err(|broken| AuditError::Broken {
            path: path.clone(),
            broken,
        })?;
    let Some(head) = head.filter(|h| h.seq > 0) else {
        return Ok(chain);
    };
    let at = lines.iter().rposition(|l| seq_of(l) == Some(head.seq));
    match at {
        None if chain.head.seq < head.seq => Err(AuditError::Broken {
            path,
            broken: Broken {
                line: lines.len() + 1,
                seq: Some(chain.head.seq + 1),
                why: format!(
                    "missing: the log ends at record {} but {} were written",
                    chain.head.seq, head.seq
                ),
            },
        }),
        Some(i) if audit::line_hash(&lines[i]) == head.hash => Ok(chain),
        Some(i) => Err(AuditError::Broken {
            path,
            broken: Broken {
                line: i + 1,
                seq: Some(head.seq),
                why: "it is not the record that was written".into(),
            },
        }),
        None => Err(AuditError::Broken {
            path,
            broken: Broken {
                line: lines.len(),
                seq: Some(head.seq),
                why: "the record the ledger wrote last is not in the log".into(),
            },
        }),
    }
}

/// Every complete line of the log (none when it does not exist yet).
pub fn read_lines(path: &Path) -> Result<Vec<String>, AuditError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    let mut text = Vec::new();
    BufReader::new(file)
        .read_to_end(&mut text)
        .map_err(io(path))?;
    // A last line without its line break was cut by a crash: it is not a record yet.
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    Ok(text[..complete]
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.is_empty())
        .collect())
}
