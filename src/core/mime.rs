//! The MIME layer: one RFC 5322 message (mail-parser) reduced to what a certificate needs:
//! sender, subject, Message-ID, text bodies and attachments with decoded names. A parser panic
//! (mail-parser 0.11 had some on crafted input) is caught and reported as malformed input.

use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::{Address, Message, MessageParser, MimeHeaders, PartType};

use super::html;
use super::words;

#[derive(Debug, Default, Clone)]
pub struct Mail {
    /// Lower-case address of the first `From` mailbox.
    pub from: Option<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    /// text/plain bodies, then html-only bodies converted to text.
    pub texts: Vec<String>,
    pub htmls: Vec<String>,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone)]
pub struct Attachment {
    /// Decoded from RFC 2231 / RFC 2047 (or `Content-Type; name=`).
    pub name: Option<String>,
    pub content_type: String,
    pub bytes: Vec<u8>,
    /// Where the encoded body lies in the raw message.
    pub raw_range: std::ops::Range<usize>,
}

impl Attachment {
    /// `%PDF-` magic at offset 0: the type header is not trusted (SPEC §2).
    pub fn is_pdf(&self) -> bool {
        self.bytes.starts_with(b"%PDF-")
    }
}

/// Parses a whole message. `None` when it is not a message at all, or the parser failed.
pub fn parse(raw: &[u8]) -> Option<Mail> {
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        MessageParser::default()
            .parse(raw)
            .map(|m| extract(m, true))
    }));
    parsed.ok().flatten()
}

/// Parses the header block only (sender and subject), for a message too large to download.
pub fn parse_headers(raw: &[u8]) -> Option<Mail> {
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        MessageParser::default()
            .parse_headers(raw)
            .map(|m| extract(m, false))
    }));
    parsed.ok().flatten()
}

fn extract(mut m: Message, with_parts: bool) -> Mail {
    let mut mail = Mail {
        from: m.from().and_then(first_address),
        subject: m.subject().map(words::decode_leftovers),
        message_id: m.message_id().map(str::to_string),
        ..Mail::default()
    };
    if !with_parts {
        return mail;
    }
    for id in &m.text_body {
        match m.parts.get(*id as usize).map(|p| &p.body) {
            Some(PartType::Text(t)) => mail.texts.push(t.to_string()),
            Some(PartType::Html(h)) => mail.htmls.push(html::to_text(h)),
            _ => {}
        }
    }
    for id in &m.html_body {
        if let Some(PartType::Html(h)) = m.parts.get(*id as usize).map(|p| &p.body)
            && !m.text_body.contains(id)
        {
            mail.htmls.push(html::to_text(h));
        }
    }
    for id in m.attachments.clone() {
        let Some(part) = m.parts.get_mut(id as usize) else {
            continue;
        };
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub).to_lowercase(),
                None => ct.ctype().to_lowercase(),
            })
            .unwrap_or_default();
        let name = part.attachment_name().map(words::decode_leftovers);
        let raw_range = part.offset_body as usize..part.offset_end as usize;
        // Decoded bodies are moved out, not copied: a PDF is the largest thing here.
        let bytes = match std::mem::take(&mut part.body) {
            PartType::Binary(b) | PartType::InlineBinary(b) => b.into_owned(),
            PartType::Text(t) | PartType::Html(t) => t.into_owned().into_bytes(),
            PartType::Message(inner) => inner.raw_message.into_owned(),
            PartType::Multipart(_) => Vec::new(),
        };
        mail.attachments.push(Attachment {
            name,
            content_type,
            bytes,
            raw_range,
        });
    }
    mail
}

fn first_address(a: &Address) -> Option<String> {
    a.first()
        .and_then(|addr| addr.address())
        .map(|s| s.trim().to_lowercase())
}
