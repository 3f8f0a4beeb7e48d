//! A real IPP printer per test: `ippeveprinter` (cups-ipp-utils) on a loopback port, keeping
//! every job's document (`-k`) and finishing each as soon as it is received (`-c /bin/true`:
//! without a command, it takes ten seconds a job). It needs a D-Bus system bus and avahi even with `-r off`: each
//! printer gets its own, in a private mount and PID namespace (`unshare`), so that tests do
//! not share them and the whole namespace dies with the printer when it is dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// What the printer accepts, and what becomes of its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formats {
    Pdf,
    /// Raster only: a PDF is refused (client-error-attributes-or-values-not-supported).
    RasterOnly,
    /// Takes PDF, and aborts every job (as a jam or a failing engine does).
    PdfAborting,
}

pub struct Printer {
    pub dir: PathBuf,
    pub port: u16,
    formats: Formats,
    child: Option<Child>,
}

/// Whether printers can be started here (root, and the tools installed).
pub fn printers_available() -> bool {
    nix::unistd::geteuid().is_root()
        && ["ippeveprinter", "avahi-daemon", "dbus-daemon", "unshare"]
            .iter()
            .all(|t| {
                Command::new("sh")
                    .arg("-c")
                    .arg(format!("command -v {t}"))
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
}

impl Printer {
    pub fn start(dir: &Path, formats: Formats) -> Printer {
        std::fs::create_dir_all(dir.join("jobs")).unwrap();
        let mut p = Printer {
            dir: dir.to_path_buf(),
            port: free_port(),
            formats,
            child: None,
        };
        p.start_again();
        p
    }

    /// `ipp://localhost:PORT/ipp/print`.
    pub fn uri(&self) -> String {
        format!("ipp://localhost:{}/ipp/print", self.port)
    }

    /// The documents it printed, by job file name (`ID-NAME.pdf`), in job order.
    pub fn jobs(&self) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(u64, String, Vec<u8>)> = std::fs::read_dir(self.dir.join("jobs"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    // `.prn` files are what the command wrote (nothing).
                    .filter(|e| {
                        e.path().is_file() && e.path().extension().is_none_or(|x| x != "prn")
                    })
                    .map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let id = name
                            .split('-')
                            .next()
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0);
                        (id, name, std::fs::read(e.path()).unwrap())
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out.into_iter().map(|(_, n, b)| (n, b)).collect()
    }

    /// Starts it (again, on the same port, with the same kept jobs folder).
    pub fn start_again(&mut self) {
        let (formats, command) = match self.formats {
            Formats::Pdf => ("application/pdf", "/bin/true"),
            Formats::RasterOnly => ("image/pwg-raster", "/bin/true"),
            Formats::PdfAborting => ("application/pdf", "/bin/false"),
        };
        let script = format!(
            r#"set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/dbus /run/avahi-daemon
dbus-daemon --system --nofork --nopidfile &
i=0; while [ ! -S /run/dbus/system_bus_socket ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
cat > {dir}/avahi.conf <<'C'
[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces=lo
[publish]
disable-publishing=yes
C
avahi-daemon -f {dir}/avahi.conf --no-rlimits --no-chroot &
i=0; while [ ! -S /run/avahi-daemon/socket ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
exec ippeveprinter -p {port} -d {dir}/jobs -k -c {command} -f {formats} -r off "Accueil {port}"
"#,
            dir = self.dir.display(),
            port = self.port,
        );
        let log = std::fs::File::create(self.dir.join("printer.log")).unwrap();
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--pid",
                "--fork",
                "--kill-child",
                "--propagation",
                "private",
            ])
            .args(["sh", "-c", &script])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("unshare (util-linux)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "ippeveprinter did not start: {}",
                std::fs::read_to_string(self.dir.join("printer.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it: the namespace and everything in it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        self.stop();
    }
}
