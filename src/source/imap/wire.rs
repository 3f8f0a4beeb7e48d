//! Pieces of the IMAP wire format the library does not give: UID sets, quoted strings, and
//! a tagged command read to its end with its COPYUID.

use std::collections::HashMap;

use async_imap::imap_proto::rfc4315::UidSetMember;
use async_imap::imap_proto::{Response, ResponseCode, Status};

use super::connect::Session;

pub(super) fn uids(items: &[String]) -> Vec<u32> {
    items.iter().filter_map(|i| i.parse().ok()).collect()
}

/// `1:3,7,9:10` from a list of UIDs.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// A quoted IMAP string (RFC 3501 §4.3).
pub(super) fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Runs a tagged command, reading responses until its completion; collects COPYUID.
pub(super) async fn tagged(
    session: &mut Session,
    command: &str,
) -> Result<(Option<u32>, HashMap<u32, u32>), async_imap::error::Error> {
    let id = session.run_command(command).await?;
    let mut validity = None;
    let mut map = HashMap::new();
    loop {
        let Some(response) = session.read_response().await? else {
            return Err(async_imap::error::Error::ConnectionLost);
        };
        let (outcome, done) = match response.parsed() {
            Response::Done {
                tag,
                status,
                outcome,
            } if *tag == id => (outcome, Some(status)),
            Response::Data { outcome, .. } => (outcome, None),
            _ => continue,
        };
        if let Some(ResponseCode::CopyUid(v, src, dst)) = &outcome.code {
            validity = Some(*v);
            map.extend(expand(src).into_iter().zip(expand(dst)));
        }
        match done {
            None => {}
            Some(Status::Ok) => return Ok((validity, map)),
            Some(Status::No) => {
                return Err(async_imap::error::Error::No(
                    outcome
                        .information
                        .as_deref()
                        .unwrap_or_default()
                        .to_string(),
                ));
            }
            Some(_) => {
                return Err(async_imap::error::Error::Bad(
                    outcome
                        .information
                        .as_deref()
                        .unwrap_or_default()
                        .to_string(),
                ));
            }
        }
    }
}

pub(super) fn expand(set: &[UidSetMember]) -> Vec<u32> {
    set.iter()
        .flat_map(|m| match m {
            UidSetMember::Uid(u) => vec![*u],
            UidSetMember::UidRange(r) => r.clone().collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compressed() {
        assert_eq!(uid_set(&[3, 1, 2, 7, 9, 10, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("SI-DEP.Traites"), "\"SI-DEP.Traites\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
