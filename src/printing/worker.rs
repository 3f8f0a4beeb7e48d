//! The print worker: takes the prints that are due from the ledger, one printer at a time,
//! and moves each along pending → sending → sent → printed (or failed), recording every step
//! before the next is taken. A job that may have reached the printer (`sending`) is looked
//! for by its name before it is sent again; a canceled or aborted job is sent again under a
//! new name, up to `MAX_ATTEMPTS`. A printer that does not answer, is stopped, or holds a job
//! is an ALERT naming the site and the printer (never the patient), and its prints wait.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::health::Printers;
use super::ipp::{self, Client, IppError};
use crate::core::audit::Event;
use crate::core::config::{Config, Printer};
use crate::ledger::locked::with_ledger;
use crate::ledger::{Ledger, LedgerRead, PrintJobRow, PrintRead, PrintState};
use crate::system::failure::LocalFailure;

/// The name the service sends jobs under (`requesting-user-name`): Get-Jobs finds its own.
pub const USER: &str = "mss-dispatch";
/// Sends of one print, counting those the printer canceled or aborted.
pub const MAX_ATTEMPTS: i64 = 3;
/// How long one IPP exchange may take.
const TIMEOUT: Duration = Duration::from_secs(30);
pub struct Worker {
    pub ledger: Arc<Mutex<Ledger>>,
    pub state_dir: PathBuf,
    pub tz: TimeZone,
    pub printers: Printers,
}

/// What became of one print in a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// Its state changed (sent, printed, failed, sent again).
    Progress,
    /// Its job is under way on the printer: the next print may be sent.
    Printing,
    /// The printer takes no job now (busy, down, stopped): its prints wait this long.
    PrinterWaits(Duration),
}

impl Worker {
    pub fn new(ledger: Arc<Mutex<Ledger>>, state_dir: PathBuf, tz: TimeZone) -> Worker {
        Worker {
            ledger,
            state_dir,
            tz,
            printers: Printers::default(),
        }
    }

    /// One pass over the prints due now (or only those of `certificate`). Returns how many
    /// prints are still open, and the ledger failure that stopped it, if any.
    pub async fn pass(
        &mut self,
        config: &Config,
        certificate: Option<i64>,
    ) -> Result<usize, LocalFailure> {
        let now = Timestamp::now().as_second();
        let due = self
            .ledger(move |l| Ok(l.due_prints(now, 200)?))
            .await?
            .into_iter()
            .filter(|j| certificate.is_none_or(|c| j.certificate == c))
            .collect::<Vec<_>>();
        let mut by_printer: BTreeMap<String, Vec<PrintJobRow>> = BTreeMap::new();
        for job in due {
            by_printer.entry(job.printer.clone()).or_default().push(job);
        }
        for (uri, jobs) in by_printer {
            if self.printers.held(&uri) {
                continue;
            }
            let printer = printer_of(config, &uri, &jobs[0].site);
            let client = match printer.as_ref().map(|p| Client::new(p, TIMEOUT)) {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    self.printers
                        .note(&uri, &jobs[0].site, e.printer_state(), Some(e.to_string()));
                    continue;
                }
                None => {
                    for job in jobs {
                        self.fail(&job, "the site has no printer configured any more")
                            .await?;
                    }
                    continue;
                }
            };
            for job in jobs {
                if let Moved::PrinterWaits(pause) = self.step(&client, &job).await? {
                    // The printer is not taking jobs: the others wait with this one.
                    self.printers.hold(&uri, pause);
                    break;
                }
            }
        }
        let open = self
            .ledger(move |l| Ok(l.due_prints(i64::MAX, usize::MAX >> 1)?.len()))
            .await?;
        Ok(open)
    }

    async fn ledger<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Ledger) -> Result<T, LocalFailure> + Send + 'static,
    ) -> Result<T, LocalFailure> {
        with_ledger::<_, LocalFailure>(&self.ledger, &self.state_dir, move |l, _| f(l)).await
    }

    /// Moves one print along.
    async fn step(&mut self, client: &Client, job: &PrintJobRow) -> Result<Moved, LocalFailure> {
        match job.state {
            PrintState::Sending => match client.find_job(&job.job_name, USER).await {
                Ok(Some(job_id)) => {
                    // Sent before a crash: not sent again.
                    let id = job.id;
                    self.ledger(move |l| {
                        let tx = l.tx()?;
                        tx.print_sent(id, job_id, Timestamp::now().as_second())?;
                        Ok(tx.commit()?)
                    })
                    .await?;
                    self.printers.ok(&job.printer, &job.site);
                    Ok(Moved::Progress)
                }
                Ok(None) => self.send(client, job).await,
                Err(e) => self.unreachable(job, &e).await,
            },
            PrintState::Pending => self.send(client, job).await,
            PrintState::Sent => self.follow(client, job).await,
            PrintState::Printed | PrintState::Failed => Ok(Moved::Progress),
        }
    }

    /// Sends the spool copy, recorded as `sending` first.
    async fn send(&mut self, client: &Client, job: &PrintJobRow) -> Result<Moved, LocalFailure> {
        let (id, certificate) = (job.id, job.certificate);
        let pdf = self
            .ledger(move |l| {
                let pdf = super::spool_pdf(l, certificate);
                if pdf.is_ok() {
                    let tx = l.tx()?;
                    tx.print_sending(id)?;
                    tx.commit()?;
                }
                Ok(pdf)
            })
            .await?;
        let pdf = match pdf {
            Ok(pdf) => pdf,
            Err(why) => {
                self.fail(job, &why).await?;
                return Ok(Moved::Progress);
            }
        };
        match client.print(&job.job_name, USER, job.copies, &pdf).await {
            Ok(job_id) => {
                self.ledger(move |l| {
                    let tx = l.tx()?;
                    tx.print_sent(id, job_id, Timestamp::now().as_second() + 1)?;
                    Ok(tx.commit()?)
                })
                .await?;
                self.printers.ok(&job.printer, &job.site);
                tracing::info!(
                    certificate,
                    site = job.site,
                    printer = job.printer,
                    job_id,
                    "sent to the printer"
                );
                Ok(Moved::Progress)
            }
            Err(e) if e.never_reached() && !e.is_format_refused() => {
                // Busy, not accepting jobs, or no connection: the job is not on the printer.
                self.printers.note(
                    &job.printer,
                    &job.site,
                    e.printer_state(),
                    Some(e.to_string()),
                );
                let pause = if e.is_busy() {
                    Duration::from_secs(1)
                } else {
                    self.printers.pause(&job.printer)
                };
                let why = e.to_string();
                let next = Timestamp::now().as_second();
                self.ledger(move |l| {
                    let tx = l.tx()?;
                    tx.print_refused(id, &why, next)?;
                    Ok(tx.commit()?)
                })
                .await?;
                Ok(Moved::PrinterWaits(pause))
            }
            Err(e) if e.is_format_refused() => {
                self.printers.note(
                    &job.printer,
                    &job.site,
                    e.printer_state(),
                    Some(e.to_string()),
                );
                self.fail(job, &format!("the printer does not take PDF: {e}"))
                    .await?;
                Ok(Moved::Progress)
            }
            Err(e) => self.unreachable(job, &e).await,
        }
    }

    /// Follows a sent job to its end.
    async fn follow(&mut self, client: &Client, job: &PrintJobRow) -> Result<Moved, LocalFailure> {
        let Some(job_id) = job.job_id else {
            return self.send(client, job).await;
        };
        let state = match client.job_state(job_id, USER).await {
            Ok(s) => s,
            Err(IppError::Refused { code: 0x0406, .. }) => {
                // client-error-not-found: the printer forgot the job (restarted). Whether it
                // printed cannot be known; sending it again could print it twice.
                self.done(
                    job,
                    job_id,
                    "the printer no longer lists the job; taken as printed",
                )
                .await?;
                return Ok(Moved::Progress);
            }
            Err(e) => return self.unreachable(job, &e).await,
        };
        let now = Timestamp::now().as_second();
        let id = job.id;
        match state.state {
            ipp::COMPLETED => {
                self.done(job, job_id, "completed").await?;
                Ok(Moved::Progress)
            }
            ipp::CANCELED | ipp::ABORTED if job.attempts < MAX_ATTEMPTS => {
                let name = retry_name(&job.job_name, job.attempts);
                let why = format!("job {job_id} {}", state_word(state.state));
                // Soon, then later: a jam is cleared in minutes, not hours.
                let delay = 5 * job.attempts.max(1);
                self.ledger(move |l| {
                    let tx = l.tx()?;
                    tx.print_retry(id, &name, &why, now + delay)?;
                    Ok(tx.commit()?)
                })
                .await?;
                Ok(Moved::Progress)
            }
            ipp::CANCELED | ipp::ABORTED => {
                self.fail(
                    job,
                    &format!(
                        "job {job_id} {} {} times",
                        state_word(state.state),
                        job.attempts
                    ),
                )
                .await?;
                Ok(Moved::Progress)
            }
            ipp::PENDING_HELD | ipp::PROCESSING_STOPPED => {
                let kind = if state.state == ipp::PENDING_HELD {
                    "held"
                } else {
                    "stopped"
                };
                let why = format!(
                    "job {job_id} is {} ({}): someone must release it or restart the printer",
                    state_word(state.state),
                    state.reasons.join(", ")
                );
                self.printers
                    .note(&job.printer, &job.site, kind, Some(why.clone()));
                self.ledger(move |l| {
                    let tx = l.tx()?;
                    tx.print_wait(id, Some(&why), now + 10)?;
                    Ok(tx.commit()?)
                })
                .await?;
                Ok(Moved::PrinterWaits(Duration::from_secs(10)))
            }
            _ => {
                self.printers.ok(&job.printer, &job.site);
                self.ledger(move |l| {
                    let tx = l.tx()?;
                    tx.print_wait(id, None, now + 1)?;
                    Ok(tx.commit()?)
                })
                .await?;
                Ok(Moved::Printing)
            }
        }
    }

    /// The printer did not answer: the print waits, still `sending` when the request may have
    /// reached the printer, so that it is looked for before it is sent again.
    async fn unreachable(
        &mut self,
        job: &PrintJobRow,
        e: &IppError,
    ) -> Result<Moved, LocalFailure> {
        self.printers.note(
            &job.printer,
            &job.site,
            e.printer_state(),
            Some(e.to_string()),
        );
        let pause = self.printers.pause(&job.printer);
        let (id, why) = (job.id, e.to_string());
        let next = Timestamp::now().as_second() + pause.as_secs() as i64;
        self.ledger(move |l| {
            let tx = l.tx()?;
            tx.print_wait(id, Some(&why), next)?;
            Ok(tx.commit()?)
        })
        .await?;
        Ok(Moved::PrinterWaits(pause))
    }

    async fn done(
        &mut self,
        job: &PrintJobRow,
        job_id: i32,
        how: &str,
    ) -> Result<(), LocalFailure> {
        let detail = format!("job {job_id} ({}): {how}", job.job_name);
        self.finish(job, Event::Printed, detail).await?;
        self.printers.ok(&job.printer, &job.site);
        tracing::info!(
            certificate = job.certificate,
            site = job.site,
            printer = job.printer,
            job_id,
            "printed"
        );
        Ok(())
    }

    async fn fail(&mut self, job: &PrintJobRow, why: &str) -> Result<(), LocalFailure> {
        tracing::error!(
            certificate = job.certificate,
            site = job.site,
            printer = job.printer,
            "ALERT: certificate {} not printed at site {} on {}: {why}; its file is in the \
             site's spool folder",
            job.certificate,
            job.site,
            job.printer
        );
        self.finish(job, Event::PrintFailed, why.to_string()).await
    }

    /// Records the end of a print and its retention-log record, in one commit.
    async fn finish(
        &self,
        job: &PrintJobRow,
        event: Event,
        detail: String,
    ) -> Result<(), LocalFailure> {
        let (id, certificate, printer) = (job.id, job.certificate, job.printer.clone());
        let dir = self.state_dir.clone();
        let tz = self.tz.clone();
        self.ledger(move |l| {
            let now = Timestamp::now();
            let tx = l.tx()?;
            match event {
                Event::Printed => tx.print_done(id, now.as_second())?,
                _ => tx.print_failed(id, &detail)?,
            }
            if let Some(cert) = tx.certificate(certificate)? {
                super::record(&tx, &cert.facts(), event, &printer, detail, None, &tz)?;
            }
            tx.commit()?;
            crate::retention::log::flush(l, &dir)?;
            Ok(())
        })
        .await
    }
}

/// The printer a job goes to: the one configured with its address, else its site's current one.
fn printer_of(config: &Config, uri: &str, site: &str) -> Option<Printer> {
    let printers = || config.sites.iter().filter_map(|s| s.printer.as_ref());
    printers()
        .find(|p| p.uri == uri)
        .or_else(|| {
            config
                .sites
                .iter()
                .find(|s| s.finess.as_str() == site)
                .and_then(|s| s.printer.as_ref())
        })
        .cloned()
}

/// The name of the next send of a job the printer canceled or aborted.
fn retry_name(name: &str, attempts: i64) -> String {
    let base = match name.rsplit_once("-a") {
        Some((b, n)) if n.bytes().all(|c| c.is_ascii_digit()) => b,
        _ => name,
    };
    format!("{base}-a{attempts}")
}

fn state_word(state: i32) -> &'static str {
    match state {
        3 => "pending",
        4 => "held",
        5 => "processing",
        6 => "stopped",
        7 => "canceled",
        8 => "aborted",
        9 => "completed",
        _ => "in an unknown state",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retried_jobs_get_new_names_without_patient_data() {
        assert_eq!(retry_name("mssd-12-0a1b2c3d", 1), "mssd-12-0a1b2c3d-a1");
        assert_eq!(retry_name("mssd-12-0a1b2c3d-a1", 2), "mssd-12-0a1b2c3d-a2");
    }
}
