#!/usr/bin/env python3
"""The IMAP clients `scripts/bench` measures the service against, and its IDLE probe.

    bench-clients.py script PORT CA USER PASSWORD OUT
        The "afternoon script" a lab would write: imaplib and email, one message at a time
        (UID FETCH of one message, parse it, write its PDF attachment, fsync). Prints the
        number of PDFs written.

    bench-clients.py idle PORT CA USER PASSWORD MESSAGES SPOOL
        APPENDs each message file of MESSAGES to USER's INBOX, one at a time, while the
        service idles on it, and times each from the APPEND's answer to its PDF appearing
        under SPOOL. A second connection idles on the same folder and times the server's own
        notification (`* N EXISTS`), which the service cannot get sooner. Prints, per
        message, the latency and the server's share of it, in seconds.
"""

import email
import email.policy
import imaplib
import os
import ssl
import sys
import threading
import time
from pathlib import Path


def connect(port, ca, user, password):
    ctx = ssl.create_default_context(cafile=ca)
    imap = imaplib.IMAP4_SSL("localhost", int(port), ssl_context=ctx)
    imap.login(user, password)
    return imap


def script(port, ca, user, password, out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    imap = connect(port, ca, user, password)
    imap.select("INBOX")
    _, data = imap.uid("SEARCH", None, "ALL")
    written = 0
    for uid in data[0].split():
        _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
        msg = email.message_from_bytes(parts[0][1], policy=email.policy.default)
        for part in msg.walk():
            if part.get_content_type() == "application/pdf":
                path = out / f"{uid.decode()}.pdf"
                with open(path, "wb") as f:
                    f.write(part.get_payload(decode=True))
                    f.flush()
                    os.fsync(f.fileno())
                written += 1
    imap.logout()
    print(written)


def pdfs(spool):
    return sum(1 for _ in Path(spool).rglob("*.pdf"))


def watch(imap, seen):
    """Idles on INBOX and records when each EXISTS arrives."""
    imap.select("INBOX")
    imap.send(b"W1 IDLE\r\n")
    imap.readline()  # "+ idling"
    while True:
        line = imap.readline()
        if not line:
            return
        if line.rstrip().endswith(b"EXISTS"):
            seen.append(time.monotonic())


def idle(port, ca, user, password, messages, spool):
    imap = connect(port, ca, user, password)
    seen = []
    threading.Thread(target=watch, args=(connect(port, ca, user, password), seen), daemon=True).start()
    time.sleep(0.5)
    files = sorted(f for f in Path(messages).rglob("*") if f.is_file())
    for f in files:
        before = pdfs(spool)
        imap.append("INBOX", None, None, f.read_bytes())
        start = time.monotonic()
        deadline = start + 30
        while pdfs(spool) == before:
            if time.monotonic() > deadline:
                sys.exit(f"bench: {f.name} was not delivered within 30 s")
            time.sleep(0.002)
        total = time.monotonic() - start
        server = next((t - start for t in seen if t >= start), float("nan"))
        print(f"{total:.4f} {server:.4f}", flush=True)
        # Each message arrives on a quiet mailbox, as mail does. Dovecot tells an idling
        # client 500 ms after the first change it sees: with a shorter pause, the watcher's
        # delay would start at the service's move of the message before, and it would see
        # the next one sooner than any client idling on a quiet mailbox can.
        time.sleep(1.0)
    imap.logout()


if __name__ == "__main__":
    {"script": script, "idle": idle}[sys.argv[1]](*sys.argv[2:])
