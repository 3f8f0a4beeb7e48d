//! Command-line definitions (clap). Only the shape of the interface lives here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Dispatches SI-DEP COVID-19 test certificates from a shared MSSanté mailbox to the spool
/// folders of the lab sites, and purges every copy on the legal schedule.
#[derive(Debug, Parser)]
#[command(name = "mss-dispatch", version, about, long_about = None)]
#[command(
    after_help = "Exit status: 0 success, 1 runtime failure, 2 configuration or usage error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: deliver every certificate of the mailbox, exactly once.
    #[command(
        after_help = "Examples:\n  mss-dispatch run --config /etc/mss-dispatch/config.toml\n  \
        mss-dispatch run --once --config config/demo.toml"
    )]
    Run {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Process every message present, then exit (0 when all were processed).
        #[arg(long)]
        once: bool,
    },
    /// Validate a configuration file and report every error at once.
    #[command(
        after_help = "Example:\n  mss-dispatch check-config --config /etc/mss-dispatch/config.toml"
    )]
    CheckConfig {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Also ask each site's printer for its state (Get-Printer-Attributes): whether it
        /// answers, is accepting jobs, and takes PDF.
        #[arg(long)]
        printers: bool,
        /// Also check each site against the FINESS register (the JSON flow, .json or
        /// .json.gz, or the CSV extract): a warning for a site unknown, closed, not a
        /// laboratory, or under another legal entity than the others.
        #[arg(long, value_name = "FILE")]
        finess: Option<PathBuf>,
        /// Run as root: the account the service runs as, whose site groups and read access
        /// to the configured files are checked.
        #[arg(long, value_name = "NAME", default_value = "mss-dispatch")]
        account: String,
    },
    /// Purge what is due now (the daemon also does it every retention.check_interval).
    #[command(
        after_help = "Examples:\n  mss-dispatch purge --config /etc/mss-dispatch/config.toml --dry-run\n  \
        mss-dispatch purge --config /etc/mss-dispatch/config.toml --confirm-clock"
    )]
    Purge {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Print what would be purged now, one JSON object per line; delete nothing.
        #[arg(long, conflicts_with = "confirm_clock")]
        dry_run: bool,
        /// Confirm that the system clock is right, lifting a clock-safety hold.
        #[arg(long)]
        confirm_clock: bool,
    },
    /// What the service is doing: connection, deliveries, quarantine, purges, certificate.
    #[command(
        after_help = "Examples:\n  mss-dispatch status --config /etc/mss-dispatch/config.toml\n  \
        mss-dispatch status --config /etc/mss-dispatch/config.toml --json"
    )]
    Status {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Read the retention log: export it, or verify its chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The sites table from the public FINESS register.
    #[command(subcommand)]
    Sites(SitesCommand),
    /// The prints at the sites' printers: list them, or print a certificate again.
    #[command(subcommand)]
    Print(PrintCommand),
    /// Resolve quarantined certificates: list, show, release, discard, retry.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Ask the running service to read its configuration again (SIGHUP), as `systemctl
    /// reload` does: a valid file takes effect between two passes, an invalid one is
    /// rejected with every error in the log and the running one stays.
    #[command(
        after_help = "Examples:\n  mss-dispatch reload --config /etc/mss-dispatch/config.toml\n  \
        mss-dispatch reload --pid $MAINPID   (the unit's ExecReload=)"
    )]
    Reload {
        /// The configuration file: the service running on its state directory is signalled.
        #[arg(long, short, value_name = "FILE", required_unless_present = "pid")]
        config: Option<PathBuf>,
        /// The service's process id.
        #[arg(long, value_name = "PID", conflicts_with = "config")]
        pid: Option<i32>,
    },
    /// Print a manual page (roff), generated from these definitions: mss-dispatch (8, the
    /// default) or mss-dispatch.toml (5).
    #[command(hide = true)]
    Man {
        /// mss-dispatch or mss-dispatch.toml.
        page: Option<String>,
    },
    /// Show what the daemon would decide for messages (.eml files, or the live mailbox with
    /// --mailbox), touching nothing.
    #[command(
        after_help = "Examples:\n  mss-dispatch inspect --config /etc/mss-dispatch/config.toml --json fixtures/corpus/*.eml\n  \
        mss-dispatch inspect --config /etc/mss-dispatch/config.toml --mailbox --limit 50"
    )]
    Inspect {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Decide the messages of the configured mailbox instead of files: the folder is
        /// opened read-only (EXAMINE, BODY.PEEK); no flag, no move, no ledger row, no file.
        #[arg(long, conflicts_with = "messages")]
        mailbox: bool,
        /// With --mailbox: the N oldest messages only.
        #[arg(long, value_name = "N", requires = "mailbox")]
        limit: Option<usize>,
        /// RFC 5322 message files.
        #[arg(value_name = "MESSAGE.eml", required_unless_present = "mailbox")]
        messages: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Export retention-log records, filtered, as JSON lines or CSV.
    #[command(
        after_help = "Examples:\n  mss-dispatch audit export --config /etc/mss-dispatch/config.toml \\\n      \
        --since 2021-10-01 --until 2021-11-01 --site 690000880 --format csv > audit.csv"
    )]
    Export {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Records at or after this time (RFC 3339, or a day: 2021-10-01, Europe/Paris).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Records before this time (RFC 3339, or a day: the start of that day).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Records of this site only.
        #[arg(long, value_name = "FINESS")]
        site: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
    /// The monthly retention report, for the data-protection officer: the certificates
    /// sampled that month, what became of each (purged on time, late, still held, or overdue
    /// and not purged), quarantine outcomes, clock holds, and the retention log's verdict and
    /// head. No patient data. Exit 1 when a certificate is overdue or the log is broken.
    #[command(
        after_help = "Examples:\n  mss-dispatch audit report --config /etc/mss-dispatch/config.toml \
        --month 2026-10 --format html > retention-2026-10.html\n  \
        mss-dispatch audit report --config /etc/mss-dispatch/config.toml --month 2026-10"
    )]
    Report {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// The sampling month, YYYY-MM (Europe/Paris).
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
    },
    /// Verify the retention log's hash chain: exit 0 with the number of records and the
    /// final hash (keep it elsewhere: `--expect-head` checks against it later), or 1 naming
    /// the first record that breaks it. With `--log`, a copied log is checked on its own,
    /// without the configuration or the ledger.
    #[command(
        after_help = "Examples:\n  mss-dispatch audit verify --config /etc/mss-dispatch/config.toml\n  \
        mss-dispatch audit verify --log retention-2026-11.log --expect-head 3f1c…"
    )]
    Verify {
        /// The configuration file (TOML): the installation's log, checked against its ledger.
        #[arg(long, short, value_name = "FILE", required_unless_present = "log")]
        config: Option<PathBuf>,
        /// A copy of a retention log, checked on its own.
        #[arg(long, value_name = "FILE", conflicts_with = "config")]
        log: Option<PathBuf>,
        /// The final hash the log must end with (as printed by an earlier `verify`).
        #[arg(long, value_name = "HASH")]
        expect_head: Option<String>,
    },
    /// Carry on after a real loss: the log was cut, deleted or replaced (the service then
    /// appends nothing and says "retention log broken"), or the ledger was lost. Starts a new
    /// segment whose first record names the break, the ledger's head and the file's, so that
    /// the gap stays visible forever; the records waiting in the ledger follow it.
    #[command(
        after_help = "Examples:\n  mss-dispatch audit reseal --config /etc/mss-dispatch/config.toml \\\n      \
        --reason 'retention.log restored from the backup of 2026-11-01'\n  \
        mss-dispatch audit reseal --config /etc/mss-dispatch/config.toml --new-ledger \\\n      \
        --reason 'ledger lost with the disk, no backup'"
    )]
    Reseal {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// What happened, in words: kept in the log forever.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// The ledger was lost and cannot be restored: start a new one.
        #[arg(long)]
        new_ledger: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// One line per quarantined certificate: id, received, reason, site, sampling day, purge
    /// time. No patient names.
    #[command(
        after_help = "Example:\n  mss-dispatch quarantine list --config /etc/mss-dispatch/config.toml"
    )]
    List {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Everything known about one quarantined certificate, patient fields included (on
    /// standard output only), the reason in plain words, and where its copies are.
    #[command(
        after_help = "Example:\n  mss-dispatch quarantine show --config /etc/mss-dispatch/config.toml 42"
    )]
    Show {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// The certificate's id (from `quarantine list`).
        id: i64,
    },
    /// Decide one certificate again with the configuration of now and your overrides, and
    /// deliver it as the service would. A release that would still quarantine changes nothing.
    #[command(
        after_help = "Examples:\n  mss-dispatch quarantine release --config /etc/mss-dispatch/config.toml 42 --result negative\n  \
        mss-dispatch quarantine release --config /etc/mss-dispatch/config.toml 43 --site 690000880\n  \
        mss-dispatch quarantine release --config /etc/mss-dispatch/config.toml 44 --sampled-at '28/10/2021 09:30'"
    )]
    Release {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// The certificate's id (from `quarantine list`).
        id: i64,
        /// Deliver to this site of the table, whatever the subject's FINESS.
        #[arg(long, value_name = "FINESS")]
        site: Option<String>,
        /// The result, when the certificate's wording was not understood.
        #[arg(long, value_enum)]
        result: Option<ResultArg>,
        /// The sampling time: RFC 3339, `2021-10-28T09:30` or `28/10/2021 09:30` (Paris time).
        #[arg(long, value_name = "TIME")]
        sampled_at: Option<String>,
    },
    /// Purge one quarantined certificate now: its quarantine files, its server copy and its
    /// personal fields.
    #[command(
        after_help = "Example:\n  mss-dispatch quarantine discard --config /etc/mss-dispatch/config.toml 42"
    )]
    Discard {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// The certificate's id (from `quarantine list`).
        id: i64,
    },
    /// Decide every quarantined certificate again with the configuration of now (after adding
    /// a missing site, say) and deliver those that pass; print what was released and what
    /// stays.
    #[command(
        after_help = "Example:\n  mss-dispatch quarantine retry --config /etc/mss-dispatch/config.toml"
    )]
    Retry {
        /// The configuration file (TOML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResultArg {
    Positive,
    Negative,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Html,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum SitesCommand {
    /// Print the `[[site]]` table of a lab group's open laboratories, read from the FINESS
    /// register; with --config, what differs from the configuration instead.
    #[command(
        after_help = "The register: the daily \"FINESS - Structures\" JSON flow (data.gouv.fr, \
        dataset finess-structures-1, .json.gz), or the historic CSV extract (etalab \
        cs1100502, frozen since May 2026). The format is read from the content.\n\n\
        Examples:\n  mss-dispatch sites import --ej 690000013 --file finess-structures-journalier-20261126.json.gz\n  \
        mss-dispatch sites import --ej 690000013 --file etalab-cs1100502-stock.csv --config /etc/mss-dispatch/config.toml\n  \
        mss-dispatch sites import --ej 690000013 --file finess.json.gz --config /etc/mss-dispatch/config.toml --write"
    )]
    Import {
        /// The legal entity (FINESS juridique) whose sites are wanted; repeat for several.
        #[arg(long = "ej", value_name = "FINESS_JURIDIQUE", required = true)]
        ej: Vec<String>,
        /// The register file: JSON flow (.json or .json.gz) or CSV extract.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// The categories kept (codes, never labels).
        #[arg(long, value_delimiter = ',', default_value = "610,611,612")]
        categories: Vec<String>,
        /// Where each site's spool folder goes: DIR/FINESS.
        #[arg(
            long,
            value_name = "DIR",
            default_value = "/var/spool/mss-dispatch/sites"
        )]
        spool_root: String,
        /// Compare with this configuration instead of printing a table.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
        /// With --config: add the missing sites and correct typed FINESS in the file, keeping
        /// its comments and layout, after a backup (FILE.bak-DATE).
        #[arg(long, requires = "config")]
        write: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrintCommand {
    /// Every print: certificate id, site, printer, state, job id, times and attempts (no
    /// names), newest first.
    #[command(
        after_help = "Examples:\n  mss-dispatch print list --config /etc/mss-dispatch/config.toml\n  \
        mss-dispatch print list --config /etc/mss-dispatch/config.toml --site 690000880 --json"
    )]
    List {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Only this site's (FINESS).
        #[arg(long, value_name = "FINESS")]
        site: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Print a certificate once more (a paper jam, a lost page), by its id; you are recorded
    /// in the retention log.
    #[command(
        after_help = "Example:\n  mss-dispatch print again --config /etc/mss-dispatch/config.toml 1234"
    )]
    Again {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// The certificate id (`print list`, `status`, the retention log).
        id: i64,
    },
}
