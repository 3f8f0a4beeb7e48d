//! HTTP/1.1 for IPP: the answer's body read as its length or its chunks say (printers keep
//! the connection open), and the TLS setup of `ipps://` printers.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The body of an HTTP/1.1 answer (Content-Length, chunked, or up to the end), once `answer`
/// holds all of it; `None` while more is to come. `eof`: the connection was closed. An HTTP
/// status other than 200 is an error.
pub fn http_body(answer: &[u8], eof: bool) -> Result<Option<Vec<u8>>, String> {
    let cut = |what: &str| {
        if eof { Err(what.to_string()) } else { Ok(None) }
    };
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return cut("the printer closed the connection before answering");
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let body = &answer[end + 4..];
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code == "100" {
        // "100 Continue": the real answer follows.
        return http_body(body, eof);
    }
    if code != "200" {
        return Err(format!("HTTP {}", status.trim()));
    }
    let header = |n: &str| {
        head.lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.trim().eq_ignore_ascii_case(n))
            })
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return match dechunk(body)? {
            Some(b) => Ok(Some(b)),
            None => cut("a chunked answer was cut"),
        };
    }
    match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(n) if n <= body.len() => Ok(Some(body[..n].to_vec())),
        Some(_) => cut("the answer was cut"),
        None if eof => Ok(Some(body.to_vec())),
        None => Ok(None),
    }
}

/// A chunked body, once its last chunk is in; `None` while more is to come.
fn dechunk(mut body: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "a chunk size is not hexadecimal")?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if body.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// TLS 1.2+ with `ca` as the only trust anchor.
pub fn tls_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("printer_ca_file {}: {e}", ca.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("printer_ca_file {}: {e}", ca.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "printer_ca_file {}: no PEM certificate",
            ca.display()
        ));
    }
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("printer_ca_file {}: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_bodies_by_length_chunks_or_end() {
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(http_body(a, false).unwrap().unwrap(), b"abc");
        let c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(http_body(c, false).unwrap().unwrap(), b"abcde");
        let e = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nxyz";
        assert_eq!(http_body(e, false).unwrap(), None, "more may come");
        assert_eq!(http_body(e, true).unwrap().unwrap(), b"xyz");
        let cont = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(http_body(cont, false).unwrap().unwrap(), b"ok");
        assert!(
            http_body(b"HTTP/1.1 404 Not Found\r\n\r\n", false)
                .unwrap_err()
                .contains("404")
        );
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
        assert_eq!(http_body(cut, false).unwrap(), None);
        assert!(http_body(cut, true).is_err());
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab";
        assert_eq!(http_body(short, false).unwrap(), None);
        assert!(http_body(short, true).is_err());
        assert!(http_body(b"HTTP/1.1 2", true).is_err());
    }
}
