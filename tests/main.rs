//! The integration suite, one binary with a module per concern: the binary as an operator
//! runs it (`cli`, `operations`, `quarantine`, `retention`), the mailbox (`imap`, `faults`,
//! `systemd_notify`), delivery (`exactly_once`, `faults_local`, `hostile`), the certificate
//! core (`golden`, `robustness`, `core_purity`), the layering of the source (`layers`), and
//! the service under a real systemd (`system`). `support` is the harness they share.

mod support;

mod cli;
mod core_purity;
mod exactly_once;
mod faults;
mod faults_local;
mod golden;
mod hostile;
mod imap;
mod layers;
mod operations;
mod printing;
mod quarantine;
mod report;
mod retention;
mod robustness;
mod sites;
mod system;
mod systemd_notify;
