//! Test harness: throwaway certificates (`pki`), a real Dovecot started per test on loopback
//! ports with TLS (`dovecot`), SI-DEP messages from the guide's facsimile (`mail`), test
//! installations (`install`), and the binary run as a child killed on drop (`process`);
//! `fake_imap` scripts the faults Dovecot cannot produce.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

mod accounts;
mod dovecot;
pub mod fake_imap;
mod install;
mod mail;
mod pki;
mod printer;
mod process;

pub use accounts::*;
pub use dovecot::*;
pub use install::*;
pub use mail::*;
pub use pki::*;
pub use printer::*;
pub use process::*;

pub const USER: &str = "lbm";
pub const CERT_USER: &str = "lbm-cert";
pub const PASSWORD: &str = "s3cret-pass";

/// Writes a file that holds a secret (a key, a password) `0600`, as the service requires.
pub fn write_secret(path: &Path, text: impl AsRef<[u8]>) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A temporary directory every test user (root, dovecot) can traverse.
pub fn workdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("mssd-").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A TCP port free on loopback now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
