//! IPP (RFC 8010/8011) over HTTP/1.1, with TLS for `ipps://`: requests built and responses
//! parsed by the `ipp` crate, sent over tokio and rustls (the crate's own clients would bring
//! reqwest or ureq). One connection per request, each under a timeout. Only the operations
//! printing needs: Print-Job, Get-Job-Attributes, Get-Jobs (to find a job by its name after a
//! crash) and Get-Printer-Attributes.

use std::sync::Arc;
use std::time::Duration;

use ipp::attribute::IppAttribute;
use ipp::model::{DelimiterTag, IppVersion, Operation};
use ipp::parser::{IppParseError, IppParser};
use ipp::prelude::Uri;
use ipp::reader::IppReader;
use ipp::request::IppRequestResponse;
use ipp::value::{IppKeyword, IppMimeMediaType, IppName, IppValue};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http::{http_body, tls_config};
use crate::core::config::Printer;

/// What went wrong talking to a printer. `Refused` is the printer's answer (it will say the
/// same again); the others may pass.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IppError {
    /// No connection: the request never reached the printer.
    #[error("{printer}: {what}")]
    NotConnected { printer: String, what: String },
    /// The connection broke or timed out: the request may have reached the printer.
    #[error("{printer}: {what}")]
    Unreachable { printer: String, what: String },
    #[error("{printer}: {operation} refused: {status}")]
    Refused {
        printer: String,
        operation: &'static str,
        status: String,
        code: u16,
        /// The attributes it named as not supported.
        unsupported: Vec<String>,
    },
    #[error("{printer}: {what}")]
    Setup { printer: String, what: String },
}

impl IppError {
    /// The printer surely did not take the request: no connection, or its own refusal.
    pub fn never_reached(&self) -> bool {
        matches!(
            self,
            IppError::NotConnected { .. } | IppError::Refused { .. }
        )
    }

    /// What this says of the printer, as `status` shows it: `busy`, `refuses_pdf`, `failing`
    /// (it answers, and refuses) or `unreachable`.
    pub fn printer_state(&self) -> &'static str {
        match self {
            e if e.is_busy() => "busy",
            e if e.is_format_refused() => "refuses_pdf",
            IppError::Refused { .. } | IppError::Setup { .. } => "failing",
            IppError::NotConnected { .. } | IppError::Unreachable { .. } => "unreachable",
        }
    }

    /// server-error-busy: the printer takes no job now, and will later.
    pub fn is_busy(&self) -> bool {
        matches!(self, IppError::Refused { code: 0x0507, .. })
    }

    /// The printer does not take PDF documents: client-error-document-format-not-supported,
    /// or client-error-attributes-or-values-not-supported naming `document-format`.
    pub fn is_format_refused(&self) -> bool {
        match self {
            IppError::Refused { code: 0x040A, .. } => true,
            IppError::Refused {
                code: 0x040B,
                unsupported,
                ..
            } => unsupported.iter().any(|a| a == "document-format"),
            _ => false,
        }
    }
}

/// A job's state (RFC 8011 §5.3.7) and its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    pub state: i32,
    pub reasons: Vec<String>,
}

pub const PENDING_HELD: i32 = 4;
pub const PROCESSING_STOPPED: i32 = 6;
pub const CANCELED: i32 = 7;
pub const ABORTED: i32 = 8;
pub const COMPLETED: i32 = 9;

/// What a printer says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterState {
    /// 3 idle, 4 processing, 5 stopped.
    pub state: i32,
    pub accepting: bool,
    pub pdf: bool,
    pub reasons: Vec<String>,
}

impl PrinterState {
    pub fn state_name(&self) -> &'static str {
        match self.state {
            3 => "idle",
            4 => "processing",
            5 => "stopped",
            _ => "unknown",
        }
    }
}

/// A printer, ready to be asked.
pub struct Client {
    printer: Printer,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

impl Client {
    /// For `ipps://` the CA file is read now: it is the only trust anchor.
    pub fn new(printer: &Printer, timeout: Duration) -> Result<Client, IppError> {
        let tls = if printer.tls() {
            let setup = |what: String| IppError::Setup {
                printer: printer.uri.clone(),
                what,
            };
            let ca = printer
                .ca_file
                .as_deref()
                .ok_or_else(|| setup("an ipps:// printer needs printer_ca_file".into()))?;
            Some(tls_config(ca).map_err(setup)?)
        } else {
            None
        };
        Ok(Client {
            printer: printer.clone(),
            tls,
            timeout,
        })
    }

    fn not_connected(&self, what: impl std::fmt::Display) -> IppError {
        IppError::NotConnected {
            printer: self.printer.uri.clone(),
            what: what.to_string(),
        }
    }

    fn unreachable(&self, what: impl std::fmt::Display) -> IppError {
        IppError::Unreachable {
            printer: self.printer.uri.clone(),
            what: what.to_string(),
        }
    }

    fn request(&self, operation: Operation) -> Result<IppRequestResponse, IppError> {
        let uri: Uri = self
            .printer
            .uri
            .parse()
            .map_err(|e| self.unreachable(format!("not a URI: {e}")))?;
        IppRequestResponse::new(IppVersion::v1_1(), operation, Some(uri))
            .map_err(|e| self.unreachable(e))
    }

    fn add(
        &self,
        req: &mut IppRequestResponse,
        tag: DelimiterTag,
        name: &str,
        value: Result<IppValue, IppParseError>,
    ) -> Result<(), IppError> {
        let attribute = value
            .and_then(|v| IppAttribute::with_name(name, v))
            .map_err(|e| self.unreachable(format!("{name}: {e}")))?;
        req.attributes_mut().add(tag, attribute);
        Ok(())
    }

    /// Sends `pdf` as a job named `job_name`; returns its job id.
    pub async fn print(
        &self,
        job_name: &str,
        user: &str,
        copies: u32,
        pdf: &[u8],
    ) -> Result<i32, IppError> {
        let mut req = self.request(Operation::PrintJob)?;
        let op = DelimiterTag::OperationAttributes;
        self.add(&mut req, op, "requesting-user-name", name(user))?;
        self.add(&mut req, op, "job-name", name(job_name))?;
        self.add(
            &mut req,
            op,
            "document-format",
            IppMimeMediaType::try_from("application/pdf").map(IppValue::MimeMediaType),
        )?;
        if copies > 1 {
            self.add(
                &mut req,
                DelimiterTag::JobAttributes,
                "copies",
                Ok(IppValue::Integer(copies as i32)),
            )?;
        }
        let resp = self.exchange("Print-Job", req, pdf).await?;
        integer(&resp, DelimiterTag::JobAttributes, "job-id")
            .ok_or_else(|| self.unreachable("Print-Job: no job-id in the answer"))
    }

    pub async fn job_state(&self, job_id: i32, user: &str) -> Result<JobState, IppError> {
        let mut req = self.request(Operation::GetJobAttributes)?;
        let op = DelimiterTag::OperationAttributes;
        self.add(&mut req, op, "job-id", Ok(IppValue::Integer(job_id)))?;
        self.add(&mut req, op, "requesting-user-name", name(user))?;
        let resp = self.exchange("Get-Job-Attributes", req, &[]).await?;
        let state = integer(&resp, DelimiterTag::JobAttributes, "job-state")
            .ok_or_else(|| self.unreachable("Get-Job-Attributes: no job-state"))?;
        Ok(JobState {
            state,
            reasons: words(&resp, DelimiterTag::JobAttributes, "job-state-reasons"),
        })
    }

    /// The id of the job of this name sent by `user`, if the printer still lists it (any
    /// state, finished ones included).
    pub async fn find_job(&self, job_name: &str, user: &str) -> Result<Option<i32>, IppError> {
        let mut req = self.request(Operation::GetJobs)?;
        let op = DelimiterTag::OperationAttributes;
        self.add(&mut req, op, "requesting-user-name", name(user))?;
        self.add(&mut req, op, "which-jobs", keyword("all"))?;
        self.add(&mut req, op, "my-jobs", Ok(IppValue::Boolean(true)))?;
        self.add(
            &mut req,
            op,
            "requested-attributes",
            keyword("job-id")
                .and_then(|a| keyword("job-name").map(|b| IppValue::Array(vec![a, b]))),
        )?;
        let resp = self.exchange("Get-Jobs", req, &[]).await?;
        for group in resp.attributes().groups_of(DelimiterTag::JobAttributes) {
            let named = group
                .get("job-name")
                .is_some_and(|a| a.value().to_string() == job_name);
            if named && let Some(IppValue::Integer(id)) = group.get("job-id").map(|a| a.value()) {
                return Ok(Some(*id));
            }
        }
        Ok(None)
    }

    pub async fn state(&self) -> Result<PrinterState, IppError> {
        let mut req = self.request(Operation::GetPrinterAttributes)?;
        let wanted = [
            "printer-state",
            "printer-state-reasons",
            "printer-is-accepting-jobs",
            "document-format-supported",
        ]
        .iter()
        .map(|a| keyword(a))
        .collect::<Result<Vec<_>, _>>()
        .map(IppValue::Array);
        self.add(
            &mut req,
            DelimiterTag::OperationAttributes,
            "requested-attributes",
            wanted,
        )?;
        let resp = self.exchange("Get-Printer-Attributes", req, &[]).await?;
        let tag = DelimiterTag::PrinterAttributes;
        let accepting = resp
            .attributes()
            .groups_of(tag)
            .find_map(|g| g.get("printer-is-accepting-jobs"))
            .is_some_and(|a| matches!(a.value(), IppValue::Boolean(true)));
        Ok(PrinterState {
            state: integer(&resp, tag, "printer-state").unwrap_or(0),
            accepting,
            pdf: words(&resp, tag, "document-format-supported")
                .iter()
                .any(|f| f == "application/pdf"),
            reasons: words(&resp, tag, "printer-state-reasons"),
        })
    }

    /// One request, its answer parsed; an IPP status other than success is `Refused`.
    async fn exchange(
        &self,
        operation: &'static str,
        req: IppRequestResponse,
        document: &[u8],
    ) -> Result<IppRequestResponse, IppError> {
        let request = req.to_bytes().to_vec();
        drop(req);
        let body = tokio::time::timeout(self.timeout, self.http(&request, document))
            .await
            .map_err(|_| {
                self.unreachable(format!("{operation}: no answer in {:?}", self.timeout))
            })??;
        let resp = IppParser::new(IppReader::new(std::io::Cursor::new(body)))
            .parse()
            .map_err(|e| self.unreachable(format!("{operation}: not an IPP answer: {e}")))?;
        let status = resp.header().status_code();
        if !status.is_success() {
            let unsupported = resp
                .attributes()
                .groups_of(DelimiterTag::UnsupportedAttributes)
                .flat_map(|g| g.attributes().iter().map(|a| a.name().to_string()))
                .collect();
            return Err(IppError::Refused {
                printer: self.printer.uri.clone(),
                operation,
                status: format!("{status} (0x{:04x})", status as u16),
                code: status as u16,
                unsupported,
            });
        }
        Ok(resp)
    }

    /// POSTs `ipp` then `document` as `application/ipp`; returns the answer's body.
    async fn http(&self, ipp: &[u8], document: &[u8]) -> Result<Vec<u8>, IppError> {
        let p = &self.printer;
        let tcp = TcpStream::connect((p.host.as_str(), p.port))
            .await
            .map_err(|e| self.not_connected(format!("cannot connect: {e}")))?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/ipp\r\n\
             Content-Length: {}\r\nConnection: close\r\nUser-Agent: mss-dispatch\r\n\r\n",
            p.path,
            p.host,
            p.port,
            ipp.len() + document.len()
        );
        let answer = match &self.tls {
            None => self.send(tcp, &head, ipp, document).await?,
            Some(config) => {
                let name = ServerName::try_from(p.host.clone())
                    .map_err(|e| self.not_connected(format!("host name: {e}")))?;
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| self.not_connected(format!("TLS: {e}")))?;
                self.send(tls, &head, ipp, document).await?
            }
        };
        Ok(answer)
    }

    async fn send<S>(
        &self,
        mut s: S,
        head: &str,
        ipp: &[u8],
        doc: &[u8],
    ) -> Result<Vec<u8>, IppError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let io = |e: std::io::Error| self.unreachable(format!("connection: {e}"));
        s.write_all(head.as_bytes()).await.map_err(io)?;
        s.write_all(ipp).await.map_err(io)?;
        s.write_all(doc).await.map_err(io)?;
        s.flush().await.map_err(io)?;
        // Printers keep the connection open whatever `Connection: close` says: the answer
        // ends where its length or its last chunk says.
        let mut answer = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = s.read(&mut buf).await.map_err(io)?;
            answer.extend_from_slice(&buf[..n]);
            if let Some(body) = http_body(&answer, n == 0).map_err(|what| self.unreachable(what))? {
                return Ok(body);
            }
        }
    }
}

fn name(s: &str) -> Result<IppValue, IppParseError> {
    IppName::try_from(s).map(IppValue::NameWithoutLanguage)
}

fn keyword(s: &str) -> Result<IppValue, IppParseError> {
    IppKeyword::try_from(s).map(IppValue::Keyword)
}

fn integer(resp: &IppRequestResponse, tag: DelimiterTag, name: &str) -> Option<i32> {
    resp.attributes()
        .groups_of(tag)
        .find_map(|g| g.get(name))
        .and_then(|a| match a.value() {
            IppValue::Integer(n) | IppValue::Enum(n) => Some(*n),
            _ => None,
        })
}

/// A keyword, text or name attribute's values, one or several.
fn words(resp: &IppRequestResponse, tag: DelimiterTag, name: &str) -> Vec<String> {
    let Some(a) = resp.attributes().groups_of(tag).find_map(|g| g.get(name)) else {
        return Vec::new();
    };
    match a.value() {
        IppValue::Array(values) => values.iter().map(ToString::to_string).collect(),
        v => vec![v.to_string()],
    }
}
