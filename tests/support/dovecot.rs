//! A real Dovecot per test, on loopback ports, with TLS (installed by
//! `scripts/install-test-deps`), stopped when dropped.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{CERT_USER, PASSWORD, Pki, USER, free_port, write_secret};

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
