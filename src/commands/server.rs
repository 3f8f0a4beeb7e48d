//! The server side of a command run outside the daemon: moving released copies and deleting
//! due ones through a connection of its own (the daemon does the same at its purge passes).

use std::sync::Arc;

use jiff::Timestamp;

use crate::core::config::{Config, Source as SourceConfig};
use crate::source::imap::{ImapSource, tls};
use crate::source::maildir::MaildirSource;
use crate::source::{Done, Source, Work, apply};

/// Does `work` through a connection of its own.
pub fn run(config: &Config, work: Work) -> Done {
    if work.is_empty() {
        return Done::default();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return work.fail(&e.to_string()),
    };
    runtime.block_on(async {
        match &config.source {
            SourceConfig::Maildir(root) => {
                let mut src = MaildirSource::new(root, &config.mailbox);
                apply(&mut src, work).await
            }
            SourceConfig::Imap(imap) => {
                let creds = match tls::load(imap, Timestamp::now()) {
                    Ok(c) => c,
                    Err(e) => return work.fail(&e),
                };
                let mut src = ImapSource::new(imap, &config.mailbox, Arc::new(creds));
                if let Err(e) = src.open().await {
                    return work.fail(&e.to_string());
                }
                let done = apply(&mut src, work).await;
                src.close().await;
                done
            }
        }
    })
}
