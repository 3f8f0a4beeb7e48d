//! The benchmark's floor: one `UID FETCH 1:* BODY.PEEK[]` of the configured folder, every
//! message written to its own file and synced, with the same TLS and authentication code as
//! the daemon. No parsing, no decision, no ledger. Used by `scripts/bench`.
//!
//!     cargo run --release --example raw_fetch -- CONFIG OUTPUT_DIR

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use futures_util::TryStreamExt;
use mss_dispatch::core::config::Source;
use mss_dispatch::source::imap::{connect, tls};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let config = PathBuf::from(args.next().ok_or("usage: raw_fetch CONFIG OUTPUT_DIR")?);
    let out = PathBuf::from(args.next().ok_or("usage: raw_fetch CONFIG OUTPUT_DIR")?);
    let config = mss_dispatch::system::config_file::load(&config).map_err(|e| e.to_string())?;
    let Source::Imap(imap) = &config.source else {
        return Err("an IMAP configuration is needed".into());
    };
    let creds = tls::load(imap, jiff::Timestamp::now())?;
    std::fs::create_dir_all(&out)?;
    let started = Instant::now();
    let (mut session, _) = connect::connect(imap, &creds, config.mailbox.timeout).await?;
    session.select(&config.mailbox.folder).await?;
    let mut n = 0usize;
    let mut bytes = 0usize;
    {
        let mut stream = session.uid_fetch("1:*", "(UID BODY.PEEK[])").await?;
        while let Some(fetch) = stream.try_next().await? {
            let (Some(uid), Some(body)) = (fetch.uid, fetch.body()) else {
                continue;
            };
            let mut f = std::fs::File::create(out.join(format!("{uid}.eml")))?;
            f.write_all(body)?;
            f.sync_all()?;
            n += 1;
            bytes += body.len();
        }
    }
    std::fs::File::open(&out)?.sync_all()?;
    session.logout().await?;
    println!(
        "{n} messages, {bytes} bytes in {:.3}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
