//! Opening an IMAP session: TCP with keepalive, implicit TLS or STARTTLS (no second greeting
//! after STARTTLS), authentication (EXTERNAL with the client certificate, LOGIN or PLAIN), and
//! the capabilities that decide IDLE, MOVE and UIDPLUS. Errors say what failed in words an
//! operator can act on; trust and authentication failures are fatal, the rest transient.

use std::sync::Arc;
use std::time::Duration;

use async_imap::imap_proto::{Response, Status};
use async_imap::{Authenticator, Client};
use rustls::pki_types::ServerName;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::super::SourceError;
use super::tls::Credentials;
use crate::core::config::{Auth, Imap, TlsMode};

/// TLS over a buffered socket: rustls asks for at most 4 KiB at a time, so without the
/// buffer a 120 KB message costs some thirty `recvfrom` calls, each with its share of TCP
/// work, where one read of what has arrived serves several records.
pub type Stream = TlsStream<BufReader<TcpStream>>;
pub type Session = async_imap::Session<Stream>;

/// The socket reads' size under TLS.
const READ_BUFFER: usize = 64 * 1024;

/// What the server offers that changes how we work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    pub idle: bool,
    pub moves: bool,
    pub uidplus: bool,
}

/// Connects and authenticates; every step waits at most `limit` (`mailbox.timeout`).
pub async fn connect(
    imap: &Imap,
    creds: &Credentials,
    limit: Duration,
) -> Result<(Session, Caps), SourceError> {
    let endpoint = format!("{}:{}", imap.host, imap.port);
    let tcp = timeout(limit, TcpStream::connect((imap.host.as_str(), imap.port)))
        .await
        .map_err(|_| {
            SourceError::Transient(format!("{endpoint}: no answer within {}s", limit.as_secs()))
        })?
        .map_err(|e| SourceError::Transient(format!("{endpoint}: cannot connect: {e}")))?;
    keepalive(&tcp);

    let server_name = ServerName::try_from(imap.host.clone()).map_err(|e| {
        SourceError::Fatal(format!(
            "mailbox.host: {:?} is not a host name: {e}",
            imap.host
        ))
    })?;
    let connector = TlsConnector::from(Arc::clone(&creds.tls));
    let tls = match imap.tls {
        TlsMode::Implicit => handshake(&connector, server_name, tcp, imap, limit).await?,
        TlsMode::StartTls => {
            let mut plain = Client::new(tcp);
            greeting(&mut plain, &endpoint, limit).await?;
            timeout(limit, plain.run_command_and_check_ok("STARTTLS", None))
                .await
                .map_err(|_| SourceError::Transient(format!("{endpoint}: STARTTLS timed out")))?
                .map_err(|e| {
                    SourceError::Fatal(format!(
                        "{endpoint}: the server refused STARTTLS ({e}); check mailbox.tls and \
                         mailbox.port"
                    ))
                })?;
            handshake(&connector, server_name, plain.into_inner(), imap, limit).await?
        }
    };
    let mut client = Client::new(tls);
    if imap.tls == TlsMode::Implicit {
        greeting(&mut client, &endpoint, limit).await?;
    }
    let mut session = authenticate(client, imap, creds, &endpoint, limit).await?;
    let caps = timeout(limit, session.capabilities())
        .await
        .map_err(|_| SourceError::Transient(format!("{endpoint}: CAPABILITY timed out")))?
        .map_err(|e| classify(&endpoint, "CAPABILITY", e, imap))?;
    let caps = Caps {
        idle: caps.has_str("IDLE"),
        moves: caps.has_str("MOVE"),
        uidplus: caps.has_str("UIDPLUS"),
    };
    Ok((session, caps))
}

/// Keepalive probes find a connection a NAT or firewall dropped silently.
fn keepalive(tcp: &TcpStream) {
    let ka = TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(15))
        .with_retries(4);
    if let Err(e) = SockRef::from(tcp).set_tcp_keepalive(&ka) {
        tracing::warn!(error = %e, "cannot enable TCP keepalive");
    }
}

async fn handshake(
    connector: &TlsConnector,
    name: ServerName<'static>,
    tcp: TcpStream,
    imap: &Imap,
    limit: Duration,
) -> Result<Stream, SourceError> {
    let endpoint = format!("{}:{}", imap.host, imap.port);
    let tcp = BufReader::with_capacity(READ_BUFFER, tcp);
    timeout(limit, connector.connect(name, tcp))
        .await
        .map_err(|_| SourceError::Transient(format!("{endpoint}: TLS handshake timed out")))?
        .map_err(|e| tls_error(&endpoint, &e, imap))
}

async fn greeting<T>(
    client: &mut Client<T>,
    endpoint: &str,
    limit: Duration,
) -> Result<(), SourceError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let response = timeout(limit, client.read_response())
        .await
        .map_err(|_| SourceError::Transient(format!("{endpoint}: no greeting in time")))?
        .map_err(|e| SourceError::Transient(format!("{endpoint}: {e}")))?
        .ok_or_else(|| SourceError::Transient(format!("{endpoint}: closed before greeting")))?;
    match response.parsed() {
        Response::Data {
            status: Status::Ok | Status::PreAuth,
            ..
        } => Ok(()),
        other => Err(SourceError::Transient(format!(
            "{endpoint}: unexpected greeting {other:?}"
        ))),
    }
}

struct External;

impl Authenticator for External {
    type Response = String;
    // The identity is the client certificate's: an empty response (RFC 4422 §A.1).
    fn process(&mut self, _: &[u8]) -> String {
        String::new()
    }
}

struct Plain<'a> {
    user: &'a str,
    password: &'a str,
}

impl Authenticator for Plain<'_> {
    type Response = String;
    fn process(&mut self, _: &[u8]) -> String {
        format!("\0{}\0{}", self.user, self.password)
    }
}

async fn authenticate(
    client: Client<Stream>,
    imap: &Imap,
    creds: &Credentials,
    endpoint: &str,
    limit: Duration,
) -> Result<Session, SourceError> {
    let user = imap.username.as_deref().unwrap_or("");
    let password = creds.password.as_deref().unwrap_or("");
    let result = match imap.auth {
        Auth::External => timeout(limit, client.authenticate("EXTERNAL", External)).await,
        Auth::Plain => {
            timeout(
                limit,
                client.authenticate("PLAIN", Plain { user, password }),
            )
            .await
        }
        Auth::Login => timeout(limit, client.login(user, password)).await,
    };
    let mechanism = match imap.auth {
        Auth::External => "EXTERNAL",
        Auth::Plain => "PLAIN",
        Auth::Login => "LOGIN",
    };
    match result {
        Err(_) => Err(SourceError::Transient(format!(
            "{endpoint}: {mechanism} authentication timed out"
        ))),
        Ok(Ok(session)) => Ok(session),
        Ok(Err((e, _))) => Err(match e {
            async_imap::error::Error::No(text) | async_imap::error::Error::Bad(text) => {
                SourceError::Fatal(format!(
                    "{endpoint}: the server refused {mechanism} authentication: {}",
                    text.trim()
                ))
            }
            other => classify(endpoint, mechanism, other, imap),
        }),
    }
}

/// Maps an error of a command to fatal (the peer refused our identity or trust) or transient.
pub fn classify(
    endpoint: &str,
    what: &str,
    e: async_imap::error::Error,
    imap: &Imap,
) -> SourceError {
    match e {
        async_imap::error::Error::Io(io) => {
            if let Some(fatal) = tls_fatal(&io, imap) {
                return SourceError::Fatal(format!("{endpoint}: {fatal}"));
            }
            SourceError::Transient(format!("{endpoint}: {what}: {io}"))
        }
        other => SourceError::Transient(format!("{endpoint}: {what}: {other}")),
    }
}

fn tls_error(endpoint: &str, e: &std::io::Error, imap: &Imap) -> SourceError {
    match tls_fatal(e, imap) {
        Some(text) => SourceError::Fatal(format!("{endpoint}: {text}")),
        None => SourceError::Transient(format!("{endpoint}: TLS: {e}")),
    }
}

/// A TLS failure that retrying will not fix, in an operator's words.
fn tls_fatal(e: &std::io::Error, imap: &Imap) -> Option<String> {
    use rustls::{AlertDescription as A, CertificateError as C, Error as R};
    let inner = e.get_ref()?.downcast_ref::<R>()?;
    let ca = imap.ca_file.display();
    Some(match inner {
        R::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => format!(
            "the server's certificate is not issued by an authority of mailbox.ca_file ({ca}); \
             point ca_file at the IGC-Santé chain"
        ),
        R::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the server's certificate has expired".into()
        }
        R::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => format!(
            "the server's certificate is not valid for {}; check mailbox.host",
            imap.host
        ),
        R::InvalidCertificate(other) => format!("the server's certificate is refused: {other:?}"),
        R::AlertReceived(
            alert @ (A::CertificateExpired
            | A::BadCertificate
            | A::CertificateRequired
            | A::UnknownCA
            | A::CertificateRevoked
            | A::CertificateUnknown
            | A::AccessDenied),
        ) => format!(
            "the server refused our client certificate (mailbox.client_cert): {alert:?}; \
             is it expired, revoked or from another authority?"
        ),
        R::AlertReceived(A::ProtocolVersion | A::HandshakeFailure) => {
            "no common TLS version or cipher with the server (TLS 1.2 minimum)".into()
        }
        _ => return None,
    })
}
