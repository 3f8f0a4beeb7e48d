//! The MIME layer: one RFC 5322 message (mail-parser) reduced to what a certificate needs:
//! sender, subject, Message-ID, text bodies and attachments with decoded names. A parser panic
//! (mail-parser 0.11 had some on crafted input) is caught and reported as malformed input.
//!
//! S/MIME wrappers are opened: a `multipart/signed` is an ordinary multipart; a whole message
//! wrapped in `message/rfc822` (RFC 8551 §3.1) and the content of an opaque
//! `application/pkcs7-mime` signed-data (RFC 8551 §3.5.2) are read as if they were the
//! message's own parts. Signatures are not checked: the sender is authenticated by the
//! MSSanté transport, and the subject, the attachment and the body must still agree.

use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::{Address, Message, MessageParser, MimeHeaders, PartType};

use super::encoded_words;
use super::html;

#[derive(Debug, Default, Clone)]
pub struct Mail {
    /// Lower-case address of the first `From` mailbox.
    pub from: Option<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    /// text/plain bodies, then html-only bodies converted to text.
    pub texts: Vec<String>,
    /// The subject of a wrapped message, used when the envelope has none.
    inner_subject: Option<String>,
    pub htmls: Vec<String>,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone)]
pub struct Attachment {
    /// Decoded from RFC 2231 / RFC 2047 (or `Content-Type; name=`).
    pub name: Option<String>,
    pub content_type: String,
    pub bytes: Vec<u8>,
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

/// Wrappers opened inside one another, at most.
const MAX_DEPTH: usize = 4;

fn extract(m: Message, with_parts: bool) -> Mail {
    let mut mail = extract_at(m, with_parts, 0);
    if mail.subject.is_none() {
        mail.subject = mail.inner_subject.take();
    }
    mail
}

fn extract_at(mut m: Message, with_parts: bool, depth: usize) -> Mail {
    let mut mail = Mail {
        from: m.from().and_then(first_address),
        subject: m.subject().map(encoded_words::decode_leftovers),
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
        let name = part.attachment_name().map(encoded_words::decode_leftovers);
        // Decoded bodies are moved out, not copied: a PDF is the largest thing here.
        let bytes = match std::mem::take(&mut part.body) {
            PartType::Message(inner) if depth < MAX_DEPTH => {
                mail.absorb(extract_at(inner, true, depth + 1));
                continue;
            }
            PartType::Binary(b) | PartType::InlineBinary(b) => b.into_owned(),
            PartType::Text(t) | PartType::Html(t) => t.into_owned().into_bytes(),
            PartType::Message(inner) => inner.raw_message.into_owned(),
            PartType::Multipart(_) => Vec::new(),
        };
        if depth < MAX_DEPTH
            && is_pkcs7_mime(&content_type)
            && let Some(inner) = signed_content(&bytes)
        {
            let parsed = catch_unwind(AssertUnwindSafe(|| {
                MessageParser::default()
                    .parse(&inner[..])
                    .map(|m| extract_at(m, true, depth + 1))
            }));
            if let Ok(Some(inner)) = parsed {
                mail.absorb(inner);
                continue;
            }
        }
        mail.attachments.push(Attachment {
            name,
            content_type,
            bytes,
        });
    }
    mail
}

impl Mail {
    /// Takes in the bodies and attachments of a wrapped message.
    fn absorb(&mut self, inner: Mail) {
        self.texts.extend(inner.texts);
        self.htmls.extend(inner.htmls);
        self.attachments.extend(inner.attachments);
        if self.inner_subject.is_none() {
            self.inner_subject = inner.subject.or(inner.inner_subject);
        }
    }
}

fn is_pkcs7_mime(content_type: &str) -> bool {
    matches!(
        content_type,
        "application/pkcs7-mime" | "application/x-pkcs7-mime"
    )
}

/// The MIME entity an opaque S/MIME signed-data carries (CMS `SignedData`, RFC 5652 §5,
/// BER or DER); `None` for anything else (enveloped-data cannot be read without its key).
fn signed_content(ber: &[u8]) -> Option<Vec<u8>> {
    use cms::content_info::ContentInfo;
    use cms::signed_data::SignedData;
    use der::asn1::{ObjectIdentifier, OctetString};
    use der::{Decode, EncodingRules};
    const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
    let info = ContentInfo::from_ber(ber).ok()?;
    if info.content_type != SIGNED_DATA {
        return None;
    }
    let signed: SignedData = info.content.decode_as_encoding(EncodingRules::Ber).ok()?;
    let content = signed.encap_content_info.econtent?;
    if let Some(joined) = segments(content.value()) {
        return Some(joined);
    }
    let octets: OctetString = content.decode_as_encoding(EncodingRules::Ber).ok()?;
    Some(octets.into_bytes().into_vec())
}

/// The content of a BER constructed OCTET STRING (what streaming S/MIME writers emit): its
/// segments joined. The `der` crate hands such a value over with the segments' own headers
/// still in it; a MIME entity, which starts with a header name, never looks like one.
fn segments(value: &[u8]) -> Option<Vec<u8>> {
    use der::asn1::OctetString;
    use der::{Decode, EncodingRules, Reader, SliceReader};
    if value.first() != Some(&0x04) {
        return None;
    }
    let mut reader = SliceReader::new_with_encoding_rules(value, EncodingRules::Ber).ok()?;
    let mut out = Vec::with_capacity(value.len());
    while !reader.is_finished() {
        out.extend_from_slice(OctetString::decode(&mut reader).ok()?.as_bytes());
    }
    Some(out)
}

fn first_address(a: &Address) -> Option<String> {
    a.first()
        .and_then(|addr| addr.address())
        .map(|s| s.trim().to_lowercase())
}
