//! E-mail content: a campaign's templates parsed once, then per participant
//! a personalised MIME message (text, optional HTML) built with
//! `mail-builder`, optionally DKIM-signed.

use std::{num::NonZero, path::Path, sync::Arc};

use tokio::sync::Semaphore;

use mail_auth::{
    common::{
        crypto::{RsaKey, Sha256},
        headers::HeaderWriter,
    },
    dkim::DkimSigner,
};
use mail_builder::{MessageBuilder, headers::raw::Raw};
use rustls::pki_types::{PrivateKeyDer, pem::PemObject};

use super::{StartError, Unfit};
use crate::BoxError;
use crate::template::{Escape, Template, missing_fields};
use domain::{EmailContent, Participant};

/// Headers covered by the DKIM signature.
const SIGNED_HEADERS: [&str; 7] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// A campaign's e-mail content, ready to personalise.
#[derive(Debug, Clone)]
pub struct MailTemplate {
    from_name: Option<String>,
    from_address: String,
    subject: Template,
    text: Template,
    html: Option<Template>,
}

/// A participant's subject and bodies, before the MIME message is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// Per-message values that are not template fields.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub message_id: &'a str,
    /// Value for `List-Unsubscribe` (already in `<...>` form), if any.
    pub list_unsubscribe: Option<&'a str>,
    pub date: i64,
}

impl MailTemplate {
    /// Parses the campaign's content; every problem is returned.
    pub fn new(content: &EmailContent) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut parse = |what: &str, text: &str| {
            Template::parse(text)
                .map_err(|e| problems.push(format!("content.email.{what}: {e}")))
                .ok()
        };
        let subject = parse("subject", &content.subject);
        let text = parse("text", &content.text);
        let html = content.html.as_deref().map(|h| parse("html", h));
        let (from_name, from_address) = split_mailbox(&content.from);
        if !is_email(&from_address) {
            problems.push(format!(
                "content.email.from: `{}` is not an e-mail address",
                content.from
            ));
        }
        match (subject, text, html) {
            (Some(subject), Some(text), Some(Some(html))) if problems.is_empty() => Ok(Self {
                from_name,
                from_address,
                subject,
                text,
                html: Some(html),
            }),
            (Some(subject), Some(text), None) if problems.is_empty() => Ok(Self {
                from_name,
                from_address,
                subject,
                text,
                html: None,
            }),
            _ => Err(problems),
        }
    }

    fn templates(&self) -> impl Iterator<Item = &Template> {
        [&self.subject, &self.text]
            .into_iter()
            .chain(self.html.as_ref())
    }

    /// Why a participant cannot receive this mail, if it cannot.
    pub fn check(&self, p: &Participant) -> Result<(), Unfit> {
        if !is_email(&p.address) {
            return Err(Unfit::NotAnEmailAddress(p.address.clone()));
        }
        let missing = missing_fields(self.templates(), p);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Unfit::MissingTemplateFields(missing))
        }
    }

    /// The personalised subject and bodies.
    pub fn render(&self, p: &Participant) -> Rendered {
        Rendered {
            to: p.address.clone(),
            subject: self.subject.render(p, Escape::Header),
            text: self.text.render(p, Escape::None),
            html: self.html.as_ref().map(|h| h.render(p, Escape::Html)),
        }
    }

    /// The personalised RFC 5322 message, unsigned.
    #[cfg(test)]
    fn compose(&self, p: &Participant, env: &Envelope<'_>) -> std::io::Result<Vec<u8>> {
        self.build(self.render(p), env)
    }

    /// The RFC 5322 message of rendered (and possibly link-tracked)
    /// content, unsigned ([`Dkim::sign_apart`] signs it).
    pub fn build(&self, mail: Rendered, env: &Envelope<'_>) -> std::io::Result<Vec<u8>> {
        let from = match &self.from_name {
            Some(name) => mail_builder::headers::address::Address::new_address(
                Some(name.as_str()),
                self.from_address.as_str(),
            ),
            None => mail_builder::headers::address::Address::new_address(
                None::<&str>,
                self.from_address.as_str(),
            ),
        };
        let mut builder = MessageBuilder::new()
            .from(from)
            .to(mail.to.as_str())
            .subject(mail.subject)
            .message_id(env.message_id)
            .date(env.date)
            .text_body(mail.text);
        if let Some(html) = mail.html {
            builder = builder.html_body(html);
        }
        if let Some(unsubscribe) = env.list_unsubscribe {
            builder = builder
                .header("List-Unsubscribe", Raw::new(unsubscribe))
                .header(
                    "List-Unsubscribe-Post",
                    Raw::new("List-Unsubscribe=One-Click"),
                );
        }
        builder.write_to_vec()
    }
}

/// Signatures under way at once, per core ([`Dkim::sign_apart`]).
const SIGNING_PER_CORE: usize = 8;

/// DKIM signing with an RSA key.
pub struct Dkim {
    signer: DkimSigner<RsaKey<Sha256>, mail_auth::dkim::Done>,
    /// Signatures under way at most: a few a core. One a core left the
    /// cores idle between a signature's end and the next one's start, and
    /// signed a quarter fewer messages a second (BENCHMARKS.md, issue 19).
    signing: Semaphore,
}

impl std::fmt::Debug for Dkim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dkim")
    }
}

impl Dkim {
    pub fn load(domain: &str, selector: &str, key_file: &Path) -> Result<Self, StartError> {
        let unusable = |source: BoxError| StartError::DkimKey {
            file: key_file.to_owned(),
            source,
        };
        let der = PrivateKeyDer::from_pem_file(key_file).map_err(|e| unusable(Box::new(e)))?;
        let key = RsaKey::<Sha256>::from_key_der(der).map_err(|e| unusable(Box::new(e)))?;
        Ok(Self {
            signer: DkimSigner::from_key(key)
                .domain(domain)
                .selector(selector)
                .headers(SIGNED_HEADERS),
            signing: Semaphore::new(
                SIGNING_PER_CORE * std::thread::available_parallelism().map_or(1, NonZero::get),
            ),
        })
    }

    /// Signs `message` on the blocking pool. An RSA signature costs far
    /// more than the rest of a send; on the runtime it would hold up every
    /// other send that its driver polls (`dispatch/drivers.rs`). An error
    /// only if the signing thread panicked.
    pub async fn sign_apart(self: &Arc<Self>, message: Vec<u8>) -> Result<Vec<u8>, String> {
        // Never closed: the permit is always there once waited for.
        let _signing = self.signing.acquire().await;
        let dkim = Arc::clone(self);
        tokio::task::spawn_blocking(move || dkim.sign(message))
            .await
            .map_err(|e| format!("DKIM signing failed: {e}"))
    }

    /// Prepends the signature; a message that cannot be signed goes unsigned
    /// (and says so in the log) rather than not at all.
    fn sign(&self, message: Vec<u8>) -> Vec<u8> {
        match self.signer.sign(&message) {
            Ok(signature) => {
                let mut signed = signature.to_header().into_bytes();
                signed.extend_from_slice(&message);
                signed
            }
            Err(e) => {
                tracing::warn!(error = %e, "DKIM signing failed; sending unsigned");
                message
            }
        }
    }
}

/// `Name <addr>` or `addr`.
fn split_mailbox(text: &str) -> (Option<String>, String) {
    match (text.find('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => {
            let name = text[..open].trim().trim_matches('"').trim();
            (
                (!name.is_empty()).then(|| name.to_owned()),
                text[open + 1..close].trim().to_owned(),
            )
        }
        _ => (None, text.trim().to_owned()),
    }
}

/// A pragmatic check of an addr-spec: what a relay would accept in RCPT TO.
/// The domain must be a host name (labels of up to 63 letters, digits and
/// hyphens, none at a label's ends: RFC 1123), which no mail can reach
/// otherwise, so that a typo is refused at upload, naming its line, rather
/// than hard-bounced and suppressed at send. The local part is taken as
/// relays take it: dots doubled or at its ends are not RFC 5321's
/// Dot-string, but Japanese mobile carriers gave out such addresses and
/// many relays deliver to them.
pub fn is_email(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    address.len() <= 254
        && local.len() <= 64
        && domain.contains('.')
        && domain.split('.').all(label)
        && !local.is_empty()
        && local.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'<' | b'>'
                        | b'('
                        | b')'
                        | b'['
                        | b']'
                        | b','
                        | b';'
                        | b':'
                        | b'\\'
                        | b'"'
                        | b'@'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{EmailContent, FieldValue};

    fn content() -> EmailContent {
        EmailContent {
            from: "Telco Offers <offers@telco.example>".into(),
            subject: "{{name}}, unlimited data".into(),
            text: "Hello {{name}}, see {{url}}".into(),
            html: Some("<p>Hello {{name}}</p>".into()),
        }
    }

    fn participant(name: &str) -> Participant {
        let mut p = Participant {
            customer: "c1".into(),
            address: "ann@example.org".into(),
            segment: None,
            fields: Default::default(),
        };
        p.fields.insert(
            "name".into(),
            FieldValue::from_json(serde_json::json!(name)),
        );
        p.fields.insert(
            "url".into(),
            FieldValue::from_json(serde_json::json!("https://telco.example/offer")),
        );
        p
    }

    #[test]
    fn composes_a_personalised_multipart_message() {
        let t = MailTemplate::new(&content()).expect("template");
        let env = Envelope {
            message_id: "m1@bounces.example",
            list_unsubscribe: Some("<http://t/u/x>"),
            date: 0,
        };
        let raw = String::from_utf8(t.compose(&participant("Ann & Bob"), &env).expect("compose"))
            .expect("utf8");
        assert!(
            raw.contains("From: \"Telco Offers\" <offers@telco.example>"),
            "{raw}"
        );
        assert!(raw.contains("To: <ann@example.org>"), "{raw}");
        assert!(raw.contains("Subject: Ann & Bob, unlimited data"), "{raw}");
        assert!(
            raw.contains("Hello Ann & Bob, see https://telco.example/offer"),
            "{raw}"
        );
        assert!(raw.contains("<p>Hello Ann &amp; Bob</p>"), "{raw}");
        assert!(raw.contains("List-Unsubscribe: <http://t/u/x>"), "{raw}");
        assert!(
            raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
            "{raw}"
        );
        assert!(raw.contains("Message-ID: <m1@bounces.example>"), "{raw}");
    }

    #[tokio::test]
    async fn dkim_signs_the_composed_message_apart() {
        let key =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/dkim-test-key.pem");
        let dkim = Arc::new(Dkim::load("telco.example", "s2026", &key).expect("test key loads"));
        let t = MailTemplate::new(&content()).expect("template");
        let env = Envelope {
            message_id: "m1@bounces.example",
            list_unsubscribe: None,
            date: 0,
        };
        let raw = String::from_utf8(
            dkim.sign_apart(t.compose(&participant("Ann"), &env).expect("compose"))
                .await
                .expect("signed"),
        )
        .expect("utf8");
        assert!(
            raw.starts_with("DKIM-Signature: v=1; a=rsa-sha256;"),
            "{raw}"
        );
        let header: String = raw
            .split("\r\n")
            .take_while(|l| !l.starts_with("From:"))
            .collect();
        assert!(header.contains("d=telco.example"), "{header}");
        assert!(header.contains("s=s2026"), "{header}");
        assert!(header.contains("bh="), "{header}");
        assert!(
            raw.contains("Subject: Ann, unlimited data"),
            "the message follows unchanged"
        );
    }

    #[test]
    fn refuses_participants_it_cannot_fill() {
        let t = MailTemplate::new(&content()).expect("template");
        let mut p = participant("Ann");
        p.fields.remove("url");
        assert!(
            t.check(&p)
                .expect_err("missing")
                .to_string()
                .contains("`url`")
        );
        p.address = "not-an-address".into();
        assert!(
            t.check(&p)
                .expect_err("bad")
                .to_string()
                .contains("not an e-mail")
        );
    }

    #[test]
    fn bad_content_lists_every_problem() {
        let bad = EmailContent {
            from: "nobody".into(),
            subject: "{{".into(),
            text: "{{}}".into(),
            html: None,
        };
        assert_eq!(MailTemplate::new(&bad).expect_err("bad").len(), 3);
    }

    #[test]
    fn address_check() {
        let long_ok = format!("a@{}.co", "b".repeat(63));
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "a@x-y.b2.co",
            &long_ok,
            // Japanese mobile carriers' addresses, delivered by many relays.
            "taro..yamada@docomo.ne.jp",
            "taro.@ezweb.ne.jp",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        let long_label = format!("a@{}.co", "b".repeat(64));
        for bad in [
            "",
            "a",
            "@b.co",
            "a@b",
            "a@.b.co",
            "a b@c.co",
            "a@b..co",
            "<a@b.co>",
            "a@b-.co",
            "a@-b.co",
            &long_label,
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
