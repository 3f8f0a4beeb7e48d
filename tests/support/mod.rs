//! Test harness: throwaway certificates, a real Dovecot started per test on loopback ports
//! with TLS (installed by `scripts/install-test-deps`), generated SI-DEP messages, and the
//! daemon binary run against them.
#![allow(dead_code)] // each test binary uses part of it

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod fake_imap;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub const USER: &str = "lbm";
pub const CERT_USER: &str = "lbm-cert";
pub const PASSWORD: &str = "s3cret-pass";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mss-dispatch"))
}

/// A temporary directory every test user (root, dovecot) can traverse.
/// Writes a file that holds a secret (a key, a password) `0600`, as the service requires.
pub fn write_secret(path: &Path, text: impl AsRef<[u8]>) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

pub fn workdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("mssd-").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

// ------------------------------------------------------------------ certificates

/// PEM files of a test PKI: a CA, a server certificate for localhost, client certificates.
pub struct Pki {
    pub dir: PathBuf,
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
            dir: dir.to_path_buf(),
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

// ------------------------------------------------------------------ Dovecot

#[derive(Clone, Debug, Default)]
pub struct DovecotOptions {
    /// Require and accept client certificates (SASL EXTERNAL).
    pub client_certs: bool,
    /// Replace the advertised capabilities (to hide MOVE, UIDPLUS or IDLE).
    pub capability: Option<String>,
}

pub struct Dovecot {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub starttls_port: u16,
    pub implicit_port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mail_user() -> (u32, u32) {
    let user = nix::unistd::User::from_name("dovecot")
        .unwrap()
        .expect("the dovecot user (apt-get install dovecot-imapd)");
    (user.uid.as_raw(), user.gid.as_raw())
}

impl Dovecot {
    pub fn start(dir: &Path, pki: &Pki, opts: DovecotOptions) -> Dovecot {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "the Dovecot tests run as root (Dovecot switches to its own user for mail access)"
        );
        std::fs::create_dir_all(dir.join("mail")).unwrap();
        std::fs::create_dir_all(dir.join("state")).unwrap();
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let (uid, gid) = mail_user();
        nix::unistd::chown(&dir.join("mail"), Some(uid.into()), Some(gid.into())).unwrap();
        std::fs::write(
            dir.join("passwd"),
            format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n{CERT_USER}:::::::nopassword=y\n"),
        )
        .unwrap();
        let client = if opts.client_certs {
            format!(
                "ssl_ca = <{ca}\nssl_verify_client_cert = yes\nauth_ssl_require_client_cert = yes\n\
                 auth_ssl_username_from_cert = yes\nssl_require_crl = no\n",
                ca = pki.ca.display()
            )
        } else {
            String::new()
        };
        let capability = opts
            .capability
            .map(|c| format!("protocol imap {{\n  imap_capability = {c}\n}}\n"))
            .unwrap_or_default();
        let d = dir.display();
        let conf = format!(
            r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
{client}disable_plaintext_auth = yes
auth_mechanisms = plain login external
first_valid_uid = 1
mail_location = maildir:{d}/mail/%u
imap_idle_notify_interval = 2 secs
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {{STARTTLS}}
  }}
  inet_listener imaps {{
    port = {{IMPLICIT}}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
{capability}"#,
            cert = pki.server_cert.display(),
            key = pki.server_key.display(),
        );
        // A port found free may be taken by another test before Dovecot binds it: then
        // Dovecot exits at once, and it is started again on other ports.
        for _ in 0..5 {
            let starttls_port = free_port();
            let implicit_port = free_port();
            let text = conf
                .replace("{STARTTLS}", &starttls_port.to_string())
                .replace("{IMPLICIT}", &implicit_port.to_string());
            let conf_path = dir.join("dovecot.conf");
            std::fs::write(&conf_path, text).unwrap();
            let mut d = Dovecot {
                dir: dir.to_path_buf(),
                conf: conf_path,
                starttls_port,
                implicit_port,
                child: None,
            };
            if d.try_spawn() {
                return d;
            }
        }
        panic!(
            "dovecot did not start: {}",
            std::fs::read_to_string(dir.join("dovecot.log")).unwrap_or_default()
        );
    }

    fn spawn(&mut self) {
        if !self.try_spawn() {
            panic!("dovecot did not start: {}", self.log());
        }
    }

    /// Starts Dovecot; false if it exited (a port taken) or did not listen within 15 s.
    fn try_spawn(&mut self) -> bool {
        let mut child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dovecot (apt-get install dovecot-imapd)");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            // Exited first: a listener on these ports would be another test's.
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.implicit_port)).is_ok()
                && TcpStream::connect(("127.0.0.1", self.starttls_port)).is_ok()
            {
                self.child = Some(child);
                return true;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
        // Wait until the ports are free again.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && (TcpStream::connect(("127.0.0.1", self.implicit_port)).is_ok()
                || TcpStream::connect(("127.0.0.1", self.starttls_port)).is_ok())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server outright (SIGKILL), mid-whatever it was doing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Its processes (imap, imap-login) die with their master.
        let _ = Command::new("pkill")
            .args(["-KILL", "-f"])
            .arg(self.conf.display().to_string())
            .status();
        self.stop();
    }

    /// Starts the server again, on the same ports.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }

    fn doveadm(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new("doveadm");
        cmd.arg("-c").arg(&self.conf).args(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("doveadm");
        if let Some(bytes) = stdin {
            child.stdin.take().unwrap().write_all(bytes).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "doveadm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Appends a message to a folder (created if needed).
    pub fn deliver(&self, user: &str, folder: &str, message: &[u8]) {
        if !folder.eq_ignore_ascii_case("INBOX") && !self.folders(user).iter().any(|f| f == folder)
        {
            self.doveadm(&["mailbox", "create", "-u", user, folder], None);
        }
        self.doveadm(&["save", "-u", user, "-m", folder], Some(message));
    }

    pub fn folders(&self, user: &str) -> Vec<String> {
        let out = self.doveadm(&["mailbox", "list", "-u", user], None);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Messages in a folder (0 when the folder does not exist).
    pub fn count(&self, user: &str, folder: &str) -> usize {
        if !folder.eq_ignore_ascii_case("INBOX") && !self.folders(user).iter().any(|f| f == folder)
        {
            return 0;
        }
        let out = self.doveadm(&["mailbox", "status", "-u", user, "messages", folder], None);
        // "INBOX messages=3"
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.rsplit("messages=")
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("doveadm mailbox status: {text:?}"))
    }

    /// `uid flags` of every message in a folder.
    pub fn flags(&self, user: &str, folder: &str) -> Vec<(u32, String)> {
        let out = self.doveadm(&["fetch", "-u", user, "uid flags", "mailbox", folder], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut result = Vec::new();
        let mut uid = None;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("uid: ") {
                uid = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("flags: ") {
                // \Recent belongs to sessions, not to the message.
                let flags: Vec<&str> = v.split_whitespace().filter(|f| *f != "\\Recent").collect();
                result.push((uid.take().unwrap_or(0), flags.join(" ")));
            } else if line.trim() == "flags:" {
                result.push((uid.take().unwrap_or(0), String::new()));
            }
        }
        result
    }

    /// A `doveadm mailbox status` field of a folder (`recent`, `unseen`, `messages`, …).
    pub fn status(&self, user: &str, folder: &str, field: &str) -> u64 {
        let out = self.doveadm(&["mailbox", "status", "-u", user, field, folder], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.rsplit(&format!("{field}="))
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("doveadm mailbox status: {text:?}"))
    }

    /// Flags added to the messages of a folder whose UIDs are in `uids` (`1,3:5`).
    pub fn add_flags(&self, user: &str, folder: &str, flags: &str, uids: &str) {
        self.doveadm(
            &[
                "flags", "add", "-u", user, flags, "mailbox", folder, "uid", uids,
            ],
            None,
        );
    }

    pub fn set_flags(&self, user: &str, folder: &str, flags: &str) {
        self.doveadm(
            &["flags", "add", "-u", user, flags, "mailbox", folder, "all"],
            None,
        );
    }

    pub fn delete_folder(&self, user: &str, folder: &str) {
        self.doveadm(&["mailbox", "delete", "-u", user, "-s", folder], None);
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

// ------------------------------------------------------------------ messages

pub const SIDEP: &str = "noreply.sidep@enovacom.mssante.fr";

/// A certificate message for dossier `D{n}` at site `finess`, with a PDF of about `pdf_bytes`
/// (unique per `n`), sampled yesterday.
pub fn certificate(n: u32, finess: &str, result: &str, pdf_bytes: usize) -> Vec<u8> {
    let yesterday = jiff::ZonedDateTime::now()
        .in_tz("Europe/Paris")
        .unwrap()
        .checked_sub(jiff::SignedDuration::from_hours(24))
        .unwrap();
    certificate_sampled(n, finess, result, pdf_bytes, &yesterday)
}

/// `certificate`, sampled at `sampled` (to the minute).
pub fn certificate_sampled(
    n: u32,
    finess: &str,
    result: &str,
    pdf_bytes: usize,
    sampled: &jiff::ZonedDateTime,
) -> Vec<u8> {
    let nom = format!("PATIENT{n}");
    let prenom = "Test";
    let dossier = format!("D{n:06}");
    let sampled = sampled.strftime("%d/%m/%Y %H:%M").to_string();
    let mut pdf = format!("%PDF-1.4\n% certificate {n}\n").into_bytes();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(n);
    while pdf.len() < pdf_bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pdf.extend_from_slice(&x.to_le_bytes());
    }
    pdf.extend_from_slice(b"\n%%EOF\n");
    let name = format!("{finess}_{dossier}_{nom}_{prenom}.pdf");
    let body = facsimile(&[
        ("{Nom}", &nom),
        ("{Prénom}", prenom),
        ("{Sexe}", "F"),
        ("{DDN}", "01/01/1980"),
        ("{Matricule INS}", "280017512345603"),
        ("{Code analyse}", "94309-2"),
        (
            "{Libellé analyse}",
            "SARS-CoV-2 (Covid 19) ARN [Présence] Echantillon respiratoire ; Résultat nominal ; \
             Amplification génique",
        ),
        ("{FINESS site/ET}", finess),
        ("{Date et heure de prélèvement}", &sampled),
        (
            "{Date et heure d’intégration du résultat dans SI-DEP}",
            &sampled,
        ),
        ("{Résultat}", result),
    ])
    .replace('\n', "\r\n");
    format!(
        "From: SI-DEP <{SIDEP}>\r\nTo: {USER}@labo.mssante.fr\r\n\
         Subject: [Projet SI-DEP] Certificat de test :  {finess} | {dossier} | {nom} | {prenom}\r\n\
         Message-ID: <cert-{n}@sidep.test>\r\nDate: Mon, 1 Nov 2021 10:00:00 +0100\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         {body}\r\n--b\r\nContent-Type: application/pdf\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        base64_lines(&pdf)
    )
    .into_bytes()
}

/// The body SI-DEP sends, from the guide's facsimile (`fixtures/facsimile/body.txt`), with its
/// placeholders filled in.
pub fn facsimile(values: &[(&str, &str)]) -> String {
    let mut text = include_str!("../../fixtures/facsimile/body.txt").to_string();
    for (placeholder, value) in values {
        text = text.replace(placeholder, value);
    }
    text
}

/// The file name the daemon gives certificate `n`.
pub fn delivered_name(n: u32) -> String {
    format!("PATIENT{n}_Test_D{n:06}.pdf")
}

pub fn plain_mail(n: u32) -> Vec<u8> {
    format!(
        "From: secretariat@labo.mssante.fr\r\nTo: {USER}@labo.mssante.fr\r\n\
         Subject: Planning {n}\r\nMessage-ID: <plain-{n}@labo.test>\r\n\r\nBonjour.\r\n"
    )
    .into_bytes()
}

fn base64_lines(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, chunk) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push_str("\r\n");
        }
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for j in 0..4 {
            if j <= chunk.len() {
                out.push(T[((n >> (18 - 6 * j)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ------------------------------------------------------------------ the daemon

/// A child process of a test, killed when dropped: a test that fails or panics leaves no
/// daemon behind.
pub struct Daemon(pub Child);

impl std::ops::Deref for Daemon {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Folders of a test installation.
pub struct Install {
    pub root: PathBuf,
    pub config: PathBuf,
}

impl Install {
    /// Writes a configuration with `mailbox` lines (the `[mailbox]` body) and two sites.
    pub fn new(root: &Path, mailbox: &str) -> Install {
        std::fs::create_dir_all(root).unwrap();
        let r = root.display();
        let text = format!(
            "[mailbox]\n{mailbox}\n\
             [state]\ndir = \"{r}/state\"\n\
             [quarantine]\ndir = \"{r}/quarantine\"\n\
             [[site]]\nfiness = \"690000880\"\nname = \"Lyon Bellecour\"\nspool = \"{r}/sites/690000880\"\n\
             [[site]]\nfiness = \"750712184\"\nname = \"Paris\"\nspool = \"{r}/sites/750712184\"\nsil = \"{r}/sil\"\n"
        );
        let config = root.join("config.toml");
        std::fs::write(&config, text).unwrap();
        Install {
            root: root.to_path_buf(),
            config,
        }
    }

    pub fn run_once(&self) -> Output {
        Command::new(bin())
            .args(["run", "--once", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .output()
            .unwrap()
    }

    pub fn spawn(&self) -> Daemon {
        Command::new(bin())
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map(Daemon)
            .unwrap()
    }

    /// The daemon with its log written to `log`, to be read while it runs.
    pub fn spawn_logged(&self, log: &Path) -> Daemon {
        Command::new(bin())
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .map(Daemon)
            .unwrap()
    }

    pub fn spawn_once(&self) -> Daemon {
        Command::new(bin())
            .args(["run", "--once", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Daemon)
            .unwrap()
    }

    /// Every file under the installation except state and configuration, relative.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out.retain(|p| !p.starts_with("state/") && p != "config.toml");
        out.sort();
        out
    }

    pub fn spool_files(&self, finess: &str) -> Vec<String> {
        self.files()
            .into_iter()
            .filter(|p| p.starts_with(&format!("sites/{finess}/")))
            .collect()
    }
}

pub fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

/// The `[mailbox]` lines for a Dovecot with LOGIN over STARTTLS.
/// A Dovecot on loopback and an installation logging in to it over STARTTLS. Fields drop in
/// order: the daemon's installation, then the server, then the temporary directory.
pub struct World {
    pub install: Install,
    pub dovecot: Dovecot,
    pub tmp: tempfile::TempDir,
}

impl World {
    /// `mailbox_extra` goes into the `[mailbox]` table, `config_extra` at the end of the file.
    pub fn new(mailbox_extra: &str, config_extra: &str) -> World {
        let tmp = workdir();
        let root = tmp.path().to_path_buf();
        let pki = Pki::new(&root.join("pki"));
        let dovecot = Dovecot::start(&root.join("dovecot"), &pki, DovecotOptions::default());
        let install_root = root.join("install");
        let mailbox = login_mailbox(&dovecot, &pki, &root) + mailbox_extra;
        let install = Install::new(&install_root, &mailbox);
        if !config_extra.is_empty() {
            let text = std::fs::read_to_string(&install.config).unwrap() + config_extra;
            std::fs::write(&install.config, text).unwrap();
        }
        World {
            install,
            dovecot,
            tmp,
        }
    }
}

/// An installation on a Maildir holding the demo's certificates, sampled today.
pub fn demo_install(root: &Path, extra: &str) -> Install {
    let status = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/generate.py"))
        .arg("--demo")
        .arg(root.join("Maildir"))
        .stdout(Stdio::null())
        .status()
        .expect("python3");
    assert!(status.success());
    Install::new(
        root,
        &format!("maildir = \"{}/Maildir\"\n{extra}", root.display()),
    )
}

pub fn login_mailbox(d: &Dovecot, pki: &Pki, root: &Path) -> String {
    let pass = root.join("imap-password");
    write_secret(&pass, format!("{PASSWORD}\n"));
    format!(
        "host = \"localhost\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\nauth = \"login\"\n\
         username = \"{USER}\"\npassword_file = \"{}\"\npoll_interval = \"2s\"\n",
        d.starttls_port,
        pki.ca.display(),
        pass.display()
    )
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Polls `f` until it is true or `secs` pass.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

pub fn sigterm(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

pub fn sigkill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
