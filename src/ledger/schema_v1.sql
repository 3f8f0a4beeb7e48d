-- mss-dispatch ledger, schema version 1 (as released): kept to test the upgrade to version 2.
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
                                       -- | superseded | stale | expired
    reason         TEXT,               -- quarantine reason code
    detail         TEXT,               -- quarantine detail, no patient data
    site           TEXT,               -- FINESS of the site (subject), when valid
    result         TEXT,               -- positive | negative | unknown
    rule           TEXT NOT NULL,      -- negative | positive | quarantine
    received_at    INTEGER NOT NULL,
    sampled_at     INTEGER,
    integrated_at  INTEGER,
    purge_at       INTEGER NOT NULL,
    purged_at      INTEGER,            -- set when every local copy is gone and the row scrubbed
    superseded_by  INTEGER,            -- the re-send that replaced it
    content_sha256 BLOB NOT NULL,      -- the raw message
    pdf_sha256     BLOB,
    message_id     TEXT,
    dossier_hmac   TEXT,               -- keyed pseudonym of site + dossier, kept after the purge
    dossier        TEXT,
    nom            TEXT,
    prenom         TEXT,
    sexe           TEXT,
    birth_date     TEXT,
    ins            TEXT
);
CREATE INDEX certificate_content ON certificate (content_sha256);
CREATE INDEX certificate_pdf ON certificate (dossier_hmac, pdf_sha256);
CREATE INDEX certificate_received ON certificate (received_at);
-- What is due costs what is due: only certificates not yet purged are in this index.
CREATE INDEX certificate_due ON certificate (purge_at) WHERE purged_at IS NULL;

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
                                       -- | stale | expired
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
    state       TEXT NOT NULL,         -- present | purged
    due         INTEGER NOT NULL,      -- the certificate's purge time
    purged_at   INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    move_to     TEXT                   -- a released quarantine's copy, to move to this folder
);
CREATE INDEX server_copy_certificate ON server_copy (certificate);
CREATE INDEX server_copy_due ON server_copy (due) WHERE state = 'present';
CREATE INDEX server_copy_moves ON server_copy (id) WHERE state = 'present' AND move_to IS NOT NULL;
CREATE INDEX certificate_quarantined ON certificate (id)
    WHERE state = 'quarantined' AND purged_at IS NULL;

-- Retention-log records not yet appended to retention.log (written in the same transaction as
-- what they record, appended after it; `id` orders them and makes the append idempotent, so it
-- must never be reused: AUTOINCREMENT).
CREATE TABLE audit_outbox (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    record TEXT NOT NULL
);
