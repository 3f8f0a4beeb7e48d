//! A throwaway PKI: a CA, a server certificate for localhost, client certificates (valid,
//! expired, expiring, PKCS#12), as PEM files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::{CERT_USER, write_secret};

/// PEM files of a test PKI: a CA, a server certificate for localhost, client certificates.
pub struct Pki {
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub expired_cert: PathBuf,
    pub expired_key: PathBuf,
    /// Valid, but expiring ten days from now.
    pub expiring_cert: PathBuf,
    pub expiring_key: PathBuf,
    pub client_p12: PathBuf,
    pub client_p12_password: PathBuf,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

fn leaf(names: &[&str], cn: &str, client: bool) -> CertificateParams {
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    p
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            // Keys are private; certificates are readable by Dovecot's processes.
            let mode = if name.ends_with(".key") || name.ends_with(".pass") {
                0o600
            } else {
                0o644
            };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params("Test IGC-Sante CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let other_key = KeyPair::generate().unwrap();
        let other = ca_params("Some Other CA").self_signed(&other_key).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let server = leaf(&["localhost", "127.0.0.1"], "localhost", false)
            .signed_by(&server_key, &issuer)
            .unwrap();

        let client_key = KeyPair::generate().unwrap();
        let client = leaf(&[], CERT_USER, true)
            .signed_by(&client_key, &issuer)
            .unwrap();

        let expired_key = KeyPair::generate().unwrap();
        let mut expired = leaf(&[], CERT_USER, true);
        expired.not_before = rcgen::date_time_ymd(2019, 1, 1);
        expired.not_after = rcgen::date_time_ymd(2020, 1, 1);
        let expired = expired.signed_by(&expired_key, &issuer).unwrap();

        let expiring_key = KeyPair::generate().unwrap();
        let mut expiring = leaf(&[], CERT_USER, true);
        let soon = jiff::tz::TimeZone::UTC
            .to_datetime(
                jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::from_hours(10 * 24))
                    .unwrap(),
            )
            .date();
        expiring.not_before = rcgen::date_time_ymd(2020, 1, 1);
        expiring.not_after =
            rcgen::date_time_ymd(soon.year().into(), soon.month() as u8, soon.day() as u8);
        let expiring = expiring.signed_by(&expiring_key, &issuer).unwrap();

        // The same client identity as a PKCS#12 bundle, the way IGC-Santé delivers it.
        let mut store = p12_keystore::KeyStore::new();
        let chain = p12_keystore::PrivateKeyChain::new(
            b"1".to_vec(),
            p12_keystore::PrivateKey::from_der(&client_key.serialize_der()).unwrap(),
            vec![
                p12_keystore::Certificate::from_der(client.der()).unwrap(),
                p12_keystore::Certificate::from_der(ca_cert.der()).unwrap(),
            ],
        );
        store.add_entry("lbm", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
        let p12 = store.writer("p12-pass").write().unwrap();
        let client_p12 = dir.join("client.p12");
        write_secret(&client_p12, p12);

        Pki {
            ca: write("ca.pem", &ca_cert.pem()),
            other_ca: write("other-ca.pem", &other.pem()),
            server_cert: write("server.pem", &server.pem()),
            server_key: write("server.key", &server_key.serialize_pem()),
            client_cert: write("client.pem", &client.pem()),
            client_key: write("client.key", &client_key.serialize_pem()),
            expired_cert: write("expired.pem", &expired.pem()),
            expired_key: write("expired.key", &expired_key.serialize_pem()),
            expiring_cert: write("expiring.pem", &expiring.pem()),
            expiring_key: write("expiring.key", &expiring_key.serialize_pem()),
            client_p12,
            client_p12_password: write("client.p12.pass", "p12-pass\n"),
        }
    }
}
