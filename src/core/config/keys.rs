//! Every configuration key as a person reads it: its default and its meaning. This table is
//! the source of the manual page `mss-dispatch.toml(5)`; a test checks it against the keys
//! the reader accepts, so that the page and the program cannot drift apart.

/// One key of a table.
pub struct Key {
    pub name: &'static str,
    /// The value when the key is absent, as a person would write it ("required" when none).
    pub default: &'static str,
    pub meaning: &'static str,
}

/// One table of the file (`[mailbox]`) or array of tables (`[[site]]`).
pub struct Table {
    /// As written in the file: `mailbox`, or `site` for `[[site]]`.
    pub name: &'static str,
    pub array: bool,
    pub about: &'static str,
    pub keys: &'static [Key],
}

const fn key(name: &'static str, default: &'static str, meaning: &'static str) -> Key {
    Key {
        name,
        default,
        meaning,
    }
}

pub const TABLES: &[Table] = &[
    Table {
        name: "mailbox",
        array: false,
        about: "The lab's MSSanté mailbox: an IMAP server over TLS (or a local Maildir, for \
                trials), its trust, its authentication and its folders. Required.",
        keys: &[
            key(
                "host",
                "none",
                "The IMAP server's name. Exactly one of host or maildir.",
            ),
            key(
                "maildir",
                "none",
                "A local Maildir read instead of an IMAP server (demonstrations, trials).",
            ),
            key(
                "port",
                "143 (993 with tls = \"implicit\")",
                "The IMAP server's TCP port.",
            ),
            key(
                "tls",
                "\"starttls\"",
                "\"starttls\" (the ANS client specification, port 143) or \"implicit\" (993). \
                 TLS 1.2 at least; there is no clear-text mode.",
            ),
            key(
                "ca_file",
                "required with host",
                "A PEM file of the authorities trusted for the server's certificate (the \
                 IGC-Santé chain): the only trust anchors, no system or web roots.",
            ),
            key(
                "client_cert",
                "none",
                "Mutual TLS: the organisation certificate, as PEM (then client_key) or as the \
                 PKCS#12 bundle IGC-Santé delivers (.p12 or .pfx, then \
                 client_cert_password_file). An expired certificate is refused at start; one \
                 expiring within 30 days raises an alert.",
            ),
            key(
                "client_key",
                "none",
                "The PEM private key of a PEM client_cert. Not readable by every user.",
            ),
            key(
                "client_cert_password_file",
                "none",
                "A file holding the password of a PKCS#12 client_cert.",
            ),
            key(
                "auth",
                "\"external\" with a client certificate, else \"login\"",
                "\"external\" (SASL EXTERNAL: the certificate), \"login\" or \"plain\".",
            ),
            key(
                "username",
                "none",
                "The mailbox's user name; required for login and plain.",
            ),
            key(
                "password_file",
                "the systemd credential imap-password",
                "For login and plain: a file holding the password. Under systemd, leave it \
                 out and write the password in /etc/mss-dispatch/imap-password (NAME.imap-password \
                 for an instance), which the unit hands over as a credential.",
            ),
            key(
                "password",
                "refused",
                "An inline password is refused: use password_file or the credential.",
            ),
            key(
                "folder",
                "\"INBOX\"",
                "The folder where SI-DEP's mail arrives.",
            ),
            key(
                "processed_folder",
                "\"SI-DEP/Traites\"",
                "Where delivered mail is moved (created when missing; \"/\" separates levels \
                 whatever the server's separator). \"\" deletes it from the server instead.",
            ),
            key(
                "quarantine_folder",
                "\"SI-DEP/Quarantaine\"",
                "Where quarantined mail is moved.",
            ),
            key("idle", "true", "Use IMAP IDLE when the server offers it."),
            key(
                "poll_interval",
                "\"60s\"",
                "The safety poll, even while idling (IDLE is re-issued at each). At least 1s.",
            ),
            key(
                "max_message_bytes",
                "5242880",
                "Larger mail is quarantined (too_large) from its headers, without being \
                 downloaded. 64 MiB at most.",
            ),
            key(
                "timeout",
                "\"60s\"",
                "The longest one IMAP command may take (a body download gets three times as \
                 long) before the connection is dropped and reopened; 1s to 10m.",
            ),
        ],
    },
    Table {
        name: "senders",
        array: false,
        about: "Whose mail is read.",
        keys: &[key(
            "allow",
            "[\"noreply.sidep@enovacom.mssante.fr\"]",
            "The senders whose mail is read; any other mail is left alone, unread and \
             unflagged.",
        )],
    },
    Table {
        name: "state",
        array: false,
        about: "Where the service keeps its ledger and the retention log.",
        keys: &[key(
            "dir",
            "/var/lib/mss-dispatch; /var/lib/mss-dispatch/NAME for /etc/mss-dispatch/NAME.toml",
            "The state directory: ledger.sqlite, ledger.keys, retention.log, secret and the \
             lock files. The default of an instance of the template unit is its own \
             StateDirectory=.",
        )],
    },
    Table {
        name: "retention",
        array: false,
        about: "How long certificates are kept. The legal rules are the longest possible: a \
                rule may be shortened, never lengthened.",
        keys: &[
            key(
                "negative",
                "\"72h\"",
                "A negative result is purged this long after sampling (72 hours at most).",
            ),
            key(
                "positive",
                "\"6 months\"",
                "A positive result is purged at the start of the day this many calendar \
                 months after sampling (1 to 6), or after a fixed duration of at most 179d.",
            ),
            key(
                "check_interval",
                "\"1m\"",
                "How often the service runs a purge pass (1s to 1h).",
            ),
            key(
                "max_clock_jump",
                "\"7d\"",
                "A forward step of the wall clock larger than this, between two passes or \
                 since the last one recorded, holds purging until an operator runs purge \
                 --confirm-clock (1min to 90d).",
            ),
        ],
    },
    Table {
        name: "quarantine",
        array: false,
        about: "Where certificates that cannot be delivered safely wait for a person.",
        keys: &[key(
            "dir",
            "/var/spool/mss-dispatch/quarantine; /var/spool/mss-dispatch/NAME/quarantine for \
             /etc/mss-dispatch/NAME.toml",
            "The quarantine folder: each message as ID.eml and its reason as ID.json.",
        )],
    },
    Table {
        name: "metrics",
        array: false,
        about: "Metrics for Prometheus, as a text file for node_exporter's textfile collector.",
        keys: &[
            key(
                "file",
                "none (no metrics)",
                "The file, replaced atomically (its folder must be writable by the unit: \
                 ReadWritePaths=).",
            ),
            key(
                "interval",
                "\"15s\"",
                "How often the file is written (1s to 1h).",
            ),
        ],
    },
    Table {
        name: "site",
        array: true,
        about: "One per lab site: where its certificates go. At least one.",
        keys: &[
            key(
                "finess",
                "required",
                "The site's FINESS number (établissement, géographique), nine characters; \
                 spaces and dots are allowed. Its check key is verified.",
            ),
            key("name", "required", "The site's name, shown to operators."),
            key(
                "spool",
                "none",
                "The site's folder: certificates go in a sub-folder per sampling day. At \
                 least one of spool and sil. Two sites never share a spool.",
            ),
            key(
                "sil",
                "none",
                "The lab information system's drop folder: a JSON sidecar, then the PDF. May \
                 be shared between sites.",
            ),
            key(
                "group",
                "none (the service's own group)",
                "The Unix group of the site's reception staff: its folders and files get it. \
                 The service account must be a member.",
            ),
            key(
                "printer",
                "none (no printing)",
                "ipp://HOST[:PORT]/PATH or ipps://... (port 631 by default): each \
                 certificate of the site is printed there once, after delivery.",
            ),
            key(
                "printer_ca_file",
                "required with ipps://",
                "The only authority trusted for the printer's certificate, PEM.",
            ),
            key("copies", "1", "Copies printed per certificate, 1 to 10."),
            key(
                "print",
                "\"all\"",
                "Which certificates the site prints: \"all\", \"positives\" or \
                 \"negatives\".",
            ),
        ],
    },
];
