-- Schema version 3: printing at the sites. One row per print of a certificate (the first,
-- and each `print again`). The intent is recorded with the delivery, before anything is
-- sent; `job_name` is stable and holds no patient data, so that after a crash between
-- sending and recording the job is found again on the printer (Get-Jobs) before it is sent
-- twice.
CREATE TABLE print_job (
    id          INTEGER PRIMARY KEY,
    certificate INTEGER NOT NULL REFERENCES certificate (id),
    site        TEXT NOT NULL,
    printer     TEXT NOT NULL,         -- the printer's URI
    copies      INTEGER NOT NULL,
    job_name    TEXT NOT NULL UNIQUE,  -- mssd-CERTIFICATE-HASH[-N]
    state       TEXT NOT NULL,         -- pending | sending | sent | printed | failed
    job_id      INTEGER,               -- the printer's, once it accepted the job
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    next_try    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    printed_at  INTEGER,
    by_user     TEXT                   -- who asked for a reprint
);
CREATE INDEX print_job_certificate ON print_job (certificate);
CREATE INDEX print_job_open ON print_job (next_try) WHERE state IN ('pending', 'sending', 'sent');
