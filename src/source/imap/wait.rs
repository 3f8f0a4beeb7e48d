//! Waiting for new mail: IDLE, or a poll.

use async_imap::extensions::idle::IdleResponse;

use super::*;

impl ImapSource {
    /// Waits for a change in the folder: IDLE when the server and the configuration allow
    /// it, else a sleep and a NOOP.
    pub(super) async fn wait_for_mail(
        &mut self,
        max: Duration,
        cancel: &CancellationToken,
    ) -> Result<Woken, SourceError> {
        // Mail announced during the last pass, after its listing: no wait.
        if std::mem::take(&mut self.announced) {
            tracing::debug!("the server announced a change during the pass");
            return Ok(Woken::Change);
        }
        if !(self.mailbox.idle && self.caps.idle) {
            tokio::select! {
                _ = tokio::time::sleep(max) => {}
                _ = cancel.cancelled() => return Ok(Woken::Cancelled),
            }
            let mut s = self.take()?;
            let r = timeout(self.limit, s.noop()).await;
            self.settle(s, "NOOP", r)?;
            return Ok(Woken::Timeout);
        }
        let session = self.take()?;
        let mut handle = session.idle();
        match timeout(self.limit, handle.init()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(connect::classify(&self.endpoint, "IDLE", e, &self.imap)),
            Err(_) => {
                return Err(SourceError::Transient(format!(
                    "{}: IDLE timed out",
                    self.endpoint
                )));
            }
        }
        let woken = {
            let (idle, _stop) = handle.wait_with_timeout(max + Duration::from_secs(60));
            tokio::select! {
                r = timeout(max, idle) => match r {
                    Ok(Ok(IdleResponse::NewData(_))) => {
                        tracing::debug!("the server announced a change (IDLE)");
                        Woken::Change
                    }
                    // The stream ended: the connection is gone; DONE below will say so.
                    Ok(Ok(IdleResponse::ManualInterrupt | IdleResponse::Timeout)) | Err(_) => {
                        Woken::Timeout
                    }
                    Ok(Err(e)) => {
                        return Err(connect::classify(&self.endpoint, "IDLE", e, &self.imap));
                    }
                },
                _ = cancel.cancelled() => Woken::Cancelled,
            }
        };
        match timeout(self.limit, handle.done()).await {
            Ok(Ok(session)) => {
                self.session = Some(session);
                Ok(woken)
            }
            Ok(Err(e)) => Err(connect::classify(&self.endpoint, "DONE", e, &self.imap)),
            Err(_) => Err(SourceError::Transient(format!(
                "{}: the server did not end IDLE",
                self.endpoint
            ))),
        }
    }
}
