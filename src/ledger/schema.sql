-- mss-dispatch ledger, schema version 1.
-- Times are Unix seconds (UTC). Personal fields (dossier, names, birth date, INS, and the
-- paths of delivered files, which carry names) are erased when a certificate is purged.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One certificate (or quarantined message) the product took charge of.
CREATE TABLE certificate (
    id             INTEGER PRIMARY KEY,
    state          TEXT NOT NULL,      -- delivering | delivered | quarantining | quarantined
    reason         TEXT,               -- quarantine reason code
    detail         TEXT,               -- quarantine detail, no patient data
    site           TEXT,               -- FINESS of the site (subject), when valid
    result         TEXT,               -- positive | negative | unknown
    rule           TEXT NOT NULL,      -- negative | positive | quarantine
    received_at    INTEGER NOT NULL,
    sampled_at     INTEGER,
    integrated_at  INTEGER,
    purge_at       INTEGER NOT NULL,
    content_sha256 BLOB NOT NULL,      -- the raw message
    pdf_sha256     BLOB,
    message_id     TEXT,
    dossier        TEXT,
    nom            TEXT,
    prenom         TEXT,
    sexe           TEXT,
    birth_date     TEXT,
    ins            TEXT
);
CREATE INDEX certificate_content ON certificate (content_sha256);
CREATE INDEX certificate_pdf ON certificate (site, dossier, pdf_sha256);
CREATE INDEX certificate_purge ON certificate (purge_at);

-- Every file the product writes for a certificate. `temp` is the staging name in the same
-- directory; a copy goes planned → staged (temp written and synced) → published (renamed).
CREATE TABLE copy (
    id          INTEGER PRIMARY KEY,
    certificate INTEGER NOT NULL REFERENCES certificate (id),
    kind        TEXT NOT NULL,         -- spool | sil_json | sil_pdf | quarantine_eml | quarantine_json
    path        TEXT NOT NULL,
    temp        TEXT NOT NULL,
    sha256      BLOB NOT NULL,
    state       TEXT NOT NULL          -- planned | staged | published | gone
);
CREATE INDEX copy_certificate ON copy (certificate);
CREATE UNIQUE INDEX copy_live_path ON copy (path) WHERE state <> 'gone';

-- Every message seen at the source, keyed by mailbox, UIDVALIDITY and UID (or Maildir name).
CREATE TABLE message (
    mailbox     TEXT NOT NULL,
    validity    TEXT NOT NULL,
    item        TEXT NOT NULL,
    disposition TEXT NOT NULL,         -- pending | ignored | delivered | quarantined | duplicate
    reason      TEXT,
    certificate INTEGER REFERENCES certificate (id),
    attempts    INTEGER NOT NULL DEFAULT 0,
    acked       INTEGER NOT NULL DEFAULT 0,
    first_seen  INTEGER NOT NULL,
    PRIMARY KEY (mailbox, validity, item)
);
CREATE INDEX message_certificate ON message (certificate);

-- Where a certificate's message went on the server once acknowledged.
CREATE TABLE server_copy (
    id          INTEGER PRIMARY KEY,
    certificate INTEGER NOT NULL REFERENCES certificate (id),
    mailbox     TEXT NOT NULL,
    folder      TEXT NOT NULL,
    validity    TEXT,
    item        TEXT,                  -- UID in `folder` (from COPYUID) or Maildir name
    message_id  TEXT,
    state       TEXT NOT NULL          -- present | purged
);
CREATE INDEX server_copy_certificate ON server_copy (certificate);
