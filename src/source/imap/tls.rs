//! TLS for MSSanté (SPEC §5): TLS 1.2 minimum, the `ring` provider chosen explicitly, the
//! configured `ca_file` as the only trust anchors (IGC-Santé, never the system or web roots),
//! and an optional client certificate from PEM files or a PKCS#12 bundle as IGC-Santé
//! delivers them. Also the IMAP password, from `password_file` or the systemd credential
//! `imap-password`. Every error names the configuration key and file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::core::config::{Auth, Imap, is_pkcs12};

/// Everything read from files once, at start.
pub struct Credentials {
    pub tls: Arc<ClientConfig>,
    /// The client certificate's validity, when there is one.
    pub client_cert_validity: Option<(Timestamp, Timestamp)>,
    pub password: Option<String>,
}

/// The systemd credential name for the IMAP password (`LoadCredential=imap-password:…`).
pub const PASSWORD_CREDENTIAL: &str = "imap-password";

/// A file of the mailbox's TLS or authentication settings that cannot be used: the key
/// that names it, the file, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("mailbox.{key}: {}: {what}", path.display())]
    File {
        key: &'static str,
        path: PathBuf,
        what: String,
    },
    #[error(
        "mailbox.password_file: not set, and no systemd credential {PASSWORD_CREDENTIAL} \
         (LoadCredential=) is available"
    )]
    NoPassword,
    #[error("credential {}: {source}", path.display())]
    Credential {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS setup: {0}")]
    Setup(rustls::Error),
}

fn fail(key: &'static str, path: &Path, what: impl std::fmt::Display) -> CredentialError {
    CredentialError::File {
        key,
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

/// Reads the CA, the client certificate and the password; checks the certificate's dates.
pub fn load(imap: &Imap, now: Timestamp) -> Result<Credentials, CredentialError> {
    let (tls, client_cert_validity) = load_tls(imap, now)?;
    let password = match imap.auth {
        Auth::External => None,
        Auth::Login | Auth::Plain => Some(read_password(imap.password_file.as_deref())?),
    };
    Ok(Credentials {
        tls,
        client_cert_validity,
        password,
    })
}

/// What `check-config` checks of the mailbox's files, exactly as `run` reads them: the CA,
/// the client certificate and key (parsed, dates checked), and the secret files' modes. The
/// password given by the systemd credential is checked only where the credential is there
/// (under the unit, as its `ExecStartPre=` runs).
pub fn check(imap: &Imap, now: Timestamp) -> Vec<CredentialError> {
    let mut errors = Vec::new();
    if let Err(e) = load_tls(imap, now) {
        errors.push(e);
    }
    if matches!(imap.auth, Auth::Login | Auth::Plain)
        && (imap.password_file.is_some() || std::env::var_os("CREDENTIALS_DIRECTORY").is_some())
        && let Err(e) = read_password(imap.password_file.as_deref())
    {
        errors.push(e);
    }
    errors
}

/// A validity period: not before, not after.
type Validity = (Timestamp, Timestamp);

/// The TLS configuration: the trust anchors and the client identity, with its validity.
fn load_tls(
    imap: &Imap,
    now: Timestamp,
) -> Result<(Arc<ClientConfig>, Option<Validity>), CredentialError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(CredentialError::Setup)?;

    let mut roots = RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(&imap.ca_file)
        .map_err(|e| fail("ca_file", &imap.ca_file, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail("ca_file", &imap.ca_file, e))?;
    if cas.is_empty() {
        return Err(fail(
            "ca_file",
            &imap.ca_file,
            "no PEM certificate in this file",
        ));
    }
    for ca in cas {
        roots
            .add(ca)
            .map_err(|e| fail("ca_file", &imap.ca_file, e))?;
    }
    let builder = builder.with_root_certificates(roots);

    let (config, validity) = match &imap.client_cert {
        None => (builder.with_no_client_auth(), None),
        Some(cert_path) => {
            let (chain, key) = if is_pkcs12(cert_path) {
                read_pkcs12(cert_path, imap.client_cert_password_file.as_deref())?
            } else {
                read_pem(cert_path, imap.client_key.as_deref())?
            };
            let validity = validity(&chain[0]);
            if let Some((not_before, not_after)) = validity {
                if now > not_after {
                    return Err(fail(
                        "client_cert",
                        cert_path,
                        format!(
                            "the client certificate expired on {}; install the renewed one",
                            not_after.strftime("%Y-%m-%d")
                        ),
                    ));
                }
                if now < not_before {
                    return Err(fail(
                        "client_cert",
                        cert_path,
                        format!(
                            "the client certificate is not valid before {}; check the clock",
                            not_before.strftime("%Y-%m-%d")
                        ),
                    ));
                }
            }
            let config = builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| fail("client_cert", cert_path, e))?;
            (config, validity)
        }
    };
    Ok((Arc::new(config), validity))
}

/// A file holding a secret (a private key, a password) must not be open to every user of the
/// machine, as ssh refuses a loose key: at most `0640` (its group may be the service's).
pub fn check_private(key: &'static str, path: &Path) -> Result<(), CredentialError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| fail(key, path, e))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        return Err(fail(
            key,
            path,
            format!(
                "holds a secret but is open to every user of this machine (mode {:04o}); \
                 make it 0600 (or 0640 with the service's group): chmod o-rwx {}",
                mode & 0o7777,
                path.display()
            ),
        ));
    }
    Ok(())
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn read_pem(cert_path: &Path, key_path: Option<&Path>) -> Result<Identity, CredentialError> {
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| fail("client_cert", cert_path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail("client_cert", cert_path, e))?;
    if chain.is_empty() {
        return Err(fail(
            "client_cert",
            cert_path,
            "no PEM certificate in this file",
        ));
    }
    let key_path = key_path.unwrap_or(cert_path);
    check_private("client_key", key_path)?;
    let key =
        PrivateKeyDer::from_pem_file(key_path).map_err(|e| fail("client_key", key_path, e))?;
    Ok((chain, key))
}

fn read_pkcs12(path: &Path, password_file: Option<&Path>) -> Result<Identity, CredentialError> {
    // The bundle holds the private key.
    check_private("client_cert", path)?;
    let data = std::fs::read(path).map_err(|e| fail("client_cert", path, e))?;
    let password = match password_file {
        Some(p) => {
            check_private("client_cert_password_file", p)?;
            read_secret(p).map_err(|e| fail("client_cert_password_file", p, e))?
        }
        None => String::new(),
    };
    let store =
        p12_keystore::KeyStore::from_pkcs12(&data, &password, Default::default()).map_err(|e| {
            fail(
                "client_cert",
                path,
                format!(
                    "cannot open the PKCS#12 bundle ({e}); check the password, or convert it \
                     to PEM (`openssl pkcs12 -legacy -in BUNDLE -clcerts -nokeys` for \
                     client_cert, `… -nocerts -nodes` for client_key)"
                ),
            )
        })?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| fail("client_cert", path, "the bundle holds no private key"))?;
    let certs: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    if certs.is_empty() {
        return Err(fail("client_cert", path, "the bundle holds no certificate"));
    }
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
    Ok((certs, key))
}

/// The password: `password_file`, else `$CREDENTIALS_DIRECTORY/imap-password` (systemd).
fn read_password(password_file: Option<&Path>) -> Result<String, CredentialError> {
    if let Some(p) = password_file {
        check_private("password_file", p)?;
        return read_secret(p).map_err(|e| fail("password_file", p, e));
    }
    let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
        return Err(CredentialError::NoPassword);
    };
    let p = PathBuf::from(dir).join(PASSWORD_CREDENTIAL);
    read_secret(&p).map_err(|source| CredentialError::Credential { path: p, source })
}

/// A secret file's content without its trailing line break.
fn read_secret(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let secret = text.trim_end_matches(['\n', '\r']).to_string();
    if secret.is_empty() {
        return Err(std::io::Error::other("the file is empty"));
    }
    Ok(secret)
}

/// A certificate's `notBefore` and `notAfter` (RFC 5280 §4.1.2.5), which rustls does not
/// expose: an expired client certificate is refused with its date rather than a TLS alert,
/// and `status` says when it expires. `None` when it cannot be read.
pub fn validity(der: &[u8]) -> Option<(Timestamp, Timestamp)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let v = cert.validity();
    let at = |t: &x509_parser::time::ASN1Time| Timestamp::from_second(t.timestamp()).ok();
    Some((at(&v.not_before)?, at(&v.not_after)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_validity_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2021, 7, 1);
        params.not_after = rcgen::date_time_ymd(2051, 1, 2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (nb, na) = validity(cert.der()).unwrap();
        assert_eq!(nb.to_string(), "2021-07-01T00:00:00Z");
        assert_eq!(na.to_string(), "2051-01-02T00:00:00Z");
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(validity(b""), None);
        assert_eq!(validity(&[0x30, 0x82, 0xff]), None);
        assert_eq!(validity(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
    }
}
