//! A scripted IMAP server over implicit TLS, for the faults Dovecot cannot produce: a FETCH
//! response cut in the middle of a message, a server that stops answering. It speaks just
//! enough IMAP4rev1 (with MOVE and UIDPLUS) for the daemon's commands.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::Pki;

/// What the server does wrong.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// UIDs whose body download is cut after half of the message, every time.
    pub cut_body: HashSet<u32>,
    /// Stop answering (but keep the connection open) at the first command starting with this
    /// text, on the first connection only.
    pub stall_once_on: Option<String>,
}

#[derive(Debug, Default)]
pub struct State {
    pub inbox: BTreeMap<u32, Vec<u8>>,
    pub moved: Vec<(u32, String)>,
    pub connections: usize,
    pub body_fetches: BTreeMap<u32, usize>,
    next_uid: u32,
    stalled: bool,
}

pub struct FakeImap {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FakeImap {
    pub fn start(pki: &Pki, messages: Vec<Vec<u8>>, faults: Faults) -> FakeImap {
        let certs = CertificateDer::pem_file_iter(&pki.server_cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        );
        let mut state = State::default();
        for m in messages {
            state.next_uid += 1;
            state.inbox.insert(state.next_uid, m);
        }
        let state = Arc::new(Mutex::new(state));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(faults);
        {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((tcp, _)) => {
                            tcp.set_nonblocking(false).unwrap();
                            let (state, config, faults, stop) = (
                                Arc::clone(&state),
                                Arc::clone(&config),
                                Arc::clone(&faults),
                                Arc::clone(&stop),
                            );
                            std::thread::spawn(move || {
                                let _ = serve(tcp, config, state, &faults, &stop);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            });
        }
        FakeImap { port, state, stop }
    }
}

impl Drop for FakeImap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

type Tls = StreamOwned<ServerConnection, TcpStream>;

fn read_line(s: &mut Tls) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match s.read(&mut byte) {
            Ok(0) => return Ok(None),
            Ok(_) => {
                line.push(byte[0]);
                if line.ends_with(b"\r\n") {
                    line.truncate(line.len() - 2);
                    return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
                }
            }
            Err(e) => return Err(e),
        }
    }
}

fn uids_of(set: &str, inbox: &BTreeMap<u32, Vec<u8>>) -> Vec<u32> {
    let mut out = Vec::new();
    for part in set.split(',') {
        match part.split_once(':') {
            Some((a, b)) => {
                let a: u32 = a.parse().unwrap_or(0);
                let b: u32 = if b == "*" {
                    u32::MAX
                } else {
                    b.parse().unwrap_or(0)
                };
                out.extend(inbox.keys().copied().filter(|u| *u >= a && *u <= b));
            }
            None => {
                if let Ok(u) = part.parse::<u32>()
                    && inbox.contains_key(&u)
                {
                    out.push(u);
                }
            }
        }
    }
    out
}

fn header_block(m: &[u8]) -> &[u8] {
    let end = m
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(m.len());
    &m[..end]
}

fn serve(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    state: Arc<Mutex<State>>,
    faults: &Faults,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let first_connection = {
        let mut st = state.lock().unwrap();
        st.connections += 1;
        st.connections == 1
    };
    let conn = ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp);
    s.write_all(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake ready\r\n")?;
    s.flush()?;
    while let Some(line) = read_line(&mut s)? {
        let (tag, rest) = line.split_once(' ').unwrap_or((&line, ""));
        let upper = rest.to_ascii_uppercase();
        if let Some(prefix) = &faults.stall_once_on {
            let mut st = state.lock().unwrap();
            if first_connection && !st.stalled && upper.starts_with(&prefix.to_ascii_uppercase()) {
                st.stalled = true;
                drop(st);
                // Keep the connection open and say nothing.
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return Ok(());
            }
        }
        let mut out: Vec<u8> = Vec::new();
        if upper.starts_with("LOGIN") || upper.starts_with("NOOP") || upper.starts_with("CREATE") {
            out.extend(format!("{tag} OK done\r\n").bytes());
        } else if upper.starts_with("CAPABILITY") {
            out.extend(b"* CAPABILITY IMAP4rev1 MOVE UIDPLUS\r\n");
            out.extend(format!("{tag} OK done\r\n").bytes());
        } else if upper.starts_with("LIST") {
            if upper.ends_with("\"\"") {
                out.extend(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
            } else {
                let name = rest.rsplit(' ').next().unwrap_or("").trim_matches('"');
                out.extend(format!("* LIST () \"/\" \"{name}\"\r\n").bytes());
            }
            out.extend(format!("{tag} OK done\r\n").bytes());
        } else if upper.starts_with("SELECT") {
            let n = state.lock().unwrap().inbox.len();
            out.extend(format!("* {n} EXISTS\r\n* OK [UIDVALIDITY 77] ok\r\n").bytes());
            out.extend(format!("{tag} OK [READ-WRITE] done\r\n").bytes());
        } else if upper.starts_with("UID SEARCH") {
            let uids: Vec<String> = state
                .lock()
                .unwrap()
                .inbox
                .keys()
                .map(|u| u.to_string())
                .collect();
            out.extend(format!("* SEARCH {}\r\n", uids.join(" ")).bytes());
            out.extend(format!("{tag} OK done\r\n").bytes());
        } else if upper.starts_with("UID FETCH") {
            let mut parts = rest.splitn(4, ' ');
            let (_, _, set, what) = (
                parts.next(),
                parts.next(),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let headers_only = what.to_ascii_uppercase().contains("HEADER");
            let items: Vec<(u32, Vec<u8>)> = {
                let st = state.lock().unwrap();
                uids_of(set, &st.inbox)
                    .into_iter()
                    .map(|u| (u, st.inbox[&u].clone()))
                    .collect()
            };
            for (seq, (uid, msg)) in items.into_iter().enumerate() {
                if headers_only {
                    let h = header_block(&msg);
                    out.extend(
                        format!(
                            "* {} FETCH (UID {uid} RFC822.SIZE {} BODY[HEADER] {{{}}}\r\n",
                            seq + 1,
                            msg.len(),
                            h.len()
                        )
                        .bytes(),
                    );
                    out.extend_from_slice(h);
                    out.extend(b")\r\n");
                } else {
                    *state.lock().unwrap().body_fetches.entry(uid).or_default() += 1;
                    out.extend(
                        format!(
                            "* {} FETCH (UID {uid} BODY[] {{{}}}\r\n",
                            seq + 1,
                            msg.len()
                        )
                        .bytes(),
                    );
                    if faults.cut_body.contains(&uid) {
                        out.extend_from_slice(&msg[..msg.len() / 2]);
                        s.write_all(&out)?;
                        s.flush()?;
                        // Cut: close the connection mid-literal.
                        s.conn.send_close_notify();
                        let _ = s.flush();
                        let _ = s.sock.shutdown(std::net::Shutdown::Both);
                        return Ok(());
                    }
                    out.extend_from_slice(&msg);
                    out.extend(b")\r\n");
                }
            }
            out.extend(format!("{tag} OK done\r\n").bytes());
        } else if upper.starts_with("UID MOVE") {
            let mut parts = rest.splitn(4, ' ');
            let (_, _, set, folder) = (
                parts.next(),
                parts.next(),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let folder = folder.trim_matches('"').to_string();
            let mut st = state.lock().unwrap();
            let uids = uids_of(set, &st.inbox);
            let mut dst = Vec::new();
            for (i, u) in uids.iter().enumerate() {
                st.inbox.remove(u);
                st.moved.push((*u, folder.clone()));
                dst.push((1000 + *u + i as u32).to_string());
            }
            let src: Vec<String> = uids.iter().map(|u| u.to_string()).collect();
            out.extend(
                format!(
                    "* OK [COPYUID 9 {} {}] moved\r\n",
                    src.join(","),
                    dst.join(",")
                )
                .bytes(),
            );
            out.extend(format!("{tag} OK done\r\n").bytes());
        } else if upper.starts_with("LOGOUT") {
            out.extend(format!("* BYE bye\r\n{tag} OK done\r\n").bytes());
            s.write_all(&out)?;
            s.flush()?;
            return Ok(());
        } else {
            out.extend(format!("{tag} BAD unknown command\r\n").bytes());
        }
        s.write_all(&out)?;
        s.flush()?;
    }
    Ok(())
}
