//! The manual pages, generated from the program's own definitions so that they cannot drift:
//! `mss-dispatch(8)` from the command line's (every command, every option, the examples of
//! `--help`), `mss-dispatch.toml(5)` from the configuration's key table
//! ([`crate::core::config::keys`]) and the shipped example file.

use std::process::ExitCode;

use clap::CommandFactory;

use super::Outcome;
use crate::core::config::keys::TABLES;

/// Prints a page: `mss-dispatch` (8, the default) or `mss-dispatch.toml` (5).
pub fn run(page: Option<&str>) -> Outcome {
    let text = match page {
        None | Some("mss-dispatch") | Some("8") => command_page(),
        Some("mss-dispatch.toml") | Some("5") => configuration_page(),
        Some(other) => {
            eprintln!("no manual page {other:?}: mss-dispatch (8) or mss-dispatch.toml (5)");
            return Ok(ExitCode::from(2));
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Text for roff: backslashes and hyphens escaped, characters beyond ASCII named (`\[u00E9]`),
/// no line read as a request.
fn esc(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line: String = line
                .chars()
                .map(|c| match c {
                    '\\' => "\\e".to_string(),
                    '-' => "\\-".to_string(),
                    c if c.is_ascii() => c.to_string(),
                    c => format!("\\[u{:04X}]", c as u32),
                })
                .collect();
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paragraphs of prose: blank lines become `.PP`.
fn prose(out: &mut String, text: &str) {
    for para in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        out.push_str(".PP\n");
        out.push_str(&esc(para.trim()));
        out.push('\n');
    }
}

/// Verbatim lines (examples, a file).
fn verbatim(out: &mut String, text: &str) {
    out.push_str(".PP\n.RS 4\n.nf\n");
    out.push_str(&esc(text.trim_end()));
    out.push_str("\n.fi\n.RE\n");
}

fn header(out: &mut String, name: &str, section: &str, title: &str) {
    out.push_str(&format!(
        ".TH {} {section} \"\" \"mss-dispatch {}\" \"{title}\"\n",
        name.to_uppercase().replace('-', "\\-"),
        env!("CARGO_PKG_VERSION")
    ));
}

/// `mss-dispatch(8)`: every command, with its synopsis, its options and its examples.
pub fn command_page() -> String {
    let mut cli = super::cli::Cli::command();
    cli.build();
    let mut out = String::new();
    header(&mut out, "mss-dispatch", "8", "System Administration");
    out.push_str(".SH NAME\nmss\\-dispatch \\- ");
    out.push_str(&esc(
        "dispatch SI-DEP COVID-19 test certificates from an MSSanté mailbox to the lab's sites",
    ));
    out.push('\n');
    out.push_str(".SH SYNOPSIS\n.B mss\\-dispatch\n.I COMMAND\n[\\fIOPTIONS\\fR]\n");
    out.push_str(".SH DESCRIPTION\n");
    prose(
        &mut out,
        "mss-dispatch polls the lab group's shared MSSanté mailbox over IMAP (TLS, often with \
         an IGC-Santé client certificate), recognises each SI-DEP certificate e-mail, writes \
         its PDF into the folder of the lab site that did the test (by its FINESS number) or \
         into the lab information system's drop folder, exactly once, and purges every copy \
         on the legal schedule: 72 hours after sampling for a negative result, six months \
         for a positive one. Every event is written to a hash-chained retention log that \
         holds no patient data.\n\n\
         It runs as the systemd service mss-dispatch.service (configuration \
         /etc/mss-dispatch/config.toml), or one instance of mss-dispatch@.service per \
         mailbox (/etc/mss-dispatch/NAME.toml). Run as root, the commands that read or write \
         the installation (status, purge, audit, quarantine, print) act as the account that \
         owns the state directory, with the sites' groups.",
    );
    out.push_str(".SH COMMANDS\n");
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        command(&mut out, sub, "mss-dispatch");
    }
    out.push_str(".SH \"EXIT STATUS\"\n");
    out.push_str(".TP\n.B 0\nSuccess.\n");
    out.push_str(
        ".TP\n.B 1\nA runtime failure: a server that cannot be trusted or reached, a message \
         left unprocessed, a second run on the same state directory, an overdue certificate \
         in a report, a broken retention log.\n",
    );
    out.push_str(
        ".TP\n.B 2\nA configuration or usage error, every one listed with its file and key.\n",
    );
    out.push_str(".SH ENVIRONMENT\n");
    for (name, what) in [
        (
            "RUST_LOG",
            "The log level (error, warn, info, debug). Logs never name a patient.",
        ),
        (
            "CREDENTIALS_DIRECTORY",
            "Set by systemd: where the credential imap-password is read.",
        ),
        (
            "NOTIFY_SOCKET",
            "Set by systemd: readiness, status and watchdog notifications.",
        ),
        (
            "JOURNAL_STREAM",
            "Set by systemd: logs go to the journal with their priorities.",
        ),
    ] {
        out.push_str(&format!(".TP\n.B {}\n{}\n", esc(name), esc(what)));
    }
    out.push_str(".SH FILES\n");
    for (path, what) in [
        (
            "/etc/mss-dispatch/config.toml",
            "The configuration (mss-dispatch.toml(5)); NAME.toml for the instance NAME.",
        ),
        (
            "/etc/mss-dispatch/imap-password",
            "The IMAP password, handed over by the unit as a credential (NAME.imap-password).",
        ),
        (
            "/var/lib/mss-dispatch/",
            "The state directory (NAME/ for an instance): ledger.sqlite, ledger.keys, \
             retention.log, secret, daemon.json.",
        ),
        (
            "/var/spool/mss-dispatch/sites/",
            "The sites' folders; quarantine/ beside it (NAME/quarantine for an instance).",
        ),
        (
            "/var/spool/sil/",
            "Where the lab information system's drop folders go.",
        ),
        (
            "/usr/share/doc/mss-dispatch/",
            "install-debian.md, operations.md, audit.md, accueil.md (for reception staff, in \
             French), internals.md, NEWS.Debian.gz.",
        ),
    ] {
        out.push_str(&format!(".TP\n.I {}\n{}\n", esc(path), esc(what)));
    }
    out.push_str(
        ".SH \"SEE ALSO\"\n.BR mss\\-dispatch.toml (5),\n.BR systemctl (1),\n.BR journalctl (1)\n",
    );
    out
}

/// One command of the page: a leaf gets its synopsis, description, options and examples;
/// a group (audit, quarantine…) its description, then each of its commands.
fn command(out: &mut String, cmd: &clap::Command, parent: &str) {
    let name = format!("{parent} {}", cmd.get_name());
    let about = cmd
        .get_long_about()
        .or(cmd.get_about())
        .map(|s| s.to_string())
        .unwrap_or_default();
    out.push_str(&format!(".SS \"{}\"\n", esc(&name)));
    if cmd.has_subcommands() {
        prose(out, &about);
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            command(out, sub, &name);
        }
        return;
    }
    let usage = cmd.clone().bin_name(&name).render_usage().to_string();
    let usage = usage.trim().trim_start_matches("Usage:").trim();
    out.push_str(&format!(".B {}\n", esc(usage)));
    prose(out, &about);
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let values = arg
            .get_value_names()
            .map(|v| {
                v.iter()
                    .map(|n| format!(" \\fI{}\\fR", esc(n)))
                    .collect::<String>()
            })
            .unwrap_or_default();
        let mut names = Vec::new();
        if let Some(s) = arg.get_short() {
            names.push(format!("\\fB\\-{s}\\fR"));
        }
        if let Some(l) = arg.get_long() {
            names.push(format!("\\fB\\-\\-{}\\fR", esc(l)));
        }
        let head = if names.is_empty() {
            format!("\\fI{}\\fR", esc(&id.to_uppercase()))
        } else {
            format!(
                "{}{}",
                names.join(", "),
                if arg.get_action().takes_values() {
                    values
                } else {
                    String::new()
                }
            )
        };
        let mut help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if !help.is_empty() && !help.ends_with('.') {
            help.push('.');
        }
        if !defaults.is_empty() && arg.get_action().takes_values() {
            help.push_str(&format!(" Default: {}.", defaults.join(", ")));
        }
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        if !possible.is_empty() && arg.get_action().takes_values() {
            help.push_str(&format!(" One of: {}.", possible.join(", ")));
        }
        out.push_str(&format!(".TP\n{head}\n{}\n", esc(help.trim())));
    }
    if let Some(after) = cmd.get_after_long_help().or(cmd.get_after_help()) {
        verbatim(out, &after.to_string());
    }
}

/// `mss-dispatch.toml(5)`: every key of every table, with its default, then the example file.
pub fn configuration_page() -> String {
    let mut out = String::new();
    header(&mut out, "mss-dispatch.toml", "5", "File Formats");
    out.push_str(".SH NAME\nmss\\-dispatch.toml \\- configuration of mss\\-dispatch\n");
    out.push_str(".SH SYNOPSIS\n/etc/mss\\-dispatch/config.toml, /etc/mss\\-dispatch/NAME.toml\n");
    out.push_str(".SH DESCRIPTION\n");
    prose(
        &mut out,
        "One TOML file per mailbox: config.toml for mss-dispatch.service, NAME.toml for the \
         instance mss-dispatch@NAME.service. Every path is absolute and may not contain \"..\". \
         mss-dispatch check-config --config FILE lists every error at once, each with the file \
         and its key; an unknown key is an error (with a \"did you mean\" for a near miss), \
         never silently ignored. The running service reads the file again on systemctl reload: \
         sites, routes, senders, retention, intervals and metrics take effect at once; the \
         server, credentials, folders and state.dir need a restart.\n\n\
         Durations are written 60s, 5m, 72h, 3d, 2w or 6 months (also 1h30m, and the French \
         jours and mois).",
    );
    for table in TABLES {
        let title = if table.array {
            format!("[[{}]]", table.name)
        } else {
            format!("[{}]", table.name)
        };
        out.push_str(&format!(".SH \"{}\"\n", esc(&title)));
        prose(&mut out, table.about);
        for key in table.keys {
            out.push_str(&format!(
                ".TP\n\\fB{}\\fR (default: {})\n{}\n",
                esc(key.name),
                esc(key.default),
                esc(key.meaning)
            ));
        }
    }
    out.push_str(".SH VALIDATION\n");
    prose(
        &mut out,
        "Besides each key's own checks, a file is refused when two sites have the same FINESS, \
         when a site's spool overlaps another site's spool or SIL folder, the quarantine \
         folder or the state directory, or when a site's group does not exist or the service \
         account is not in it. check-config, run as root, also checks that the service account \
         can read every file it names, and warns when another configuration beside this one, \
         whose service is in use, shares one of its folders.",
    );
    out.push_str(".SH EXAMPLE\n");
    verbatim(&mut out, include_str!("../../config/mss-dispatch.toml"));
    out.push_str(".SH \"SEE ALSO\"\n.BR mss\\-dispatch (8)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command the program has, and every option of each, is in the page.
    #[test]
    fn the_command_page_has_every_command_and_option() {
        let page = command_page();
        let mut cli = super::super::cli::Cli::command();
        cli.build();
        fn walk(cmd: &clap::Command, path: &str, page: &str) -> usize {
            let mut n = 0;
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                let name = format!("{path} {}", sub.get_name());
                assert!(
                    page.contains(&format!(".SS \"{}\"", esc(&name))),
                    "{name} missing"
                );
                for arg in sub.get_arguments() {
                    if let Some(l) = arg.get_long().filter(|l| *l != "help") {
                        assert!(
                            page.contains(&format!("\\fB\\-\\-{}\\fR", esc(l))),
                            "{name} --{l} missing"
                        );
                        n += 1;
                    }
                }
                n += walk(sub, &name, page);
            }
            n
        }
        let options = walk(&cli, "mss-dispatch", &page);
        assert!(options > 40, "{options} options");
        assert!(page.contains(".SS \"mss\\-dispatch audit report\""));
        assert!(page.contains("\\fB\\-\\-month\\fR"));
    }

    #[test]
    fn the_configuration_page_has_every_key() {
        let page = configuration_page();
        for table in TABLES {
            for key in table.keys {
                assert!(
                    page.contains(&format!(".TP\n\\fB{}\\fR", esc(key.name))),
                    "{}.{}",
                    table.name,
                    key.name
                );
            }
        }
        assert!(page.contains(".SH \"[[site]]\""));
    }
}
