//! The outcome vocabulary: [`Kind`] (what the gateway does) and [`Reason`]
//! (why), and the one rule that derives the first from the second.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// What the gateway should do with the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Permanent: never retry, suppress the address.
    Hard,
    /// Transient or not the address's fault: retry a limited number of times.
    Soft,
    /// Not a delivery failure (delivery report, feedback report, auto-reply).
    Other,
}

impl Kind {
    /// The lowercase name used on the wire (`hard`, `soft`, `other`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Hard => "hard",
            Kind::Soft => "soft",
            Kind::Other => "other",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// Fine reason of a non-delivery (or of a non-failure report).
        ///
        /// The names are the lowercase words of the bounce corpus vocabulary.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum Reason {
            $($(#[doc = $doc])* #[serde(rename = $name)] $variant,)*
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The lowercase name (`userunknown`, `mailboxfull`, ...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $name,)*
                }
            }
        }

        impl FromStr for Reason {
            type Err = crate::Error;

            fn from_str(s: &str) -> crate::Result<Self> {
                match s {
                    $($name => Ok(Reason::$variant),)*
                    _ => Err(crate::Error::UnknownReason(s.to_owned())),
                }
            }
        }
    };
}

reasons! {
    /// The mailbox does not exist.
    UserUnknown => "userunknown",
    /// The domain does not exist or has no usable mail host.
    HostUnknown => "hostunknown",
    /// The recipient has moved and left no forwarding.
    HasMoved => "hasmoved",
    /// The destination accepts no mail at all (e.g. null MX).
    NotAccept => "notaccept",
    /// The mailbox is over its quota.
    MailboxFull => "mailboxfull",
    /// The message exceeds the recipient's size limit.
    MesgTooBig => "mesgtoobig",
    /// The message exceeds some other limit of the recipient.
    ExceedLimit => "exceedlimit",
    /// The mailbox exists but is disabled or suspended.
    Suspend => "suspend",
    /// A recipient-side filter refused the message.
    Filtered => "filtered",
    /// The sending host or IP address is blocked.
    Blocked => "blocked",
    /// The sender address or domain was refused.
    Rejected => "rejected",
    /// The message was judged to be spam.
    SpamDetected => "spamdetected",
    /// The message carries a virus.
    VirusDetected => "virusdetected",
    /// The message breaks a local policy of the receiver.
    PolicyViolation => "policyviolation",
    /// SPF, DKIM or DMARC failed.
    AuthFailure => "authfailure",
    /// The sending host has no (matching) reverse DNS.
    RequirePtr => "requireptr",
    /// The sending IP or domain has a bad reputation.
    BadReputation => "badreputation",
    /// The sender is sending too fast.
    Speeding => "speeding",
    /// Too many connections from the sender.
    TooManyConn => "toomanyconn",
    /// The receiver refused to relay.
    NoRelaying => "norelaying",
    /// Security requirement not met (TLS, authentication, ...).
    SecurityError => "securityerror",
    /// STARTTLS could not be negotiated.
    FailedStartTls => "failedstarttls",
    /// The message content or headers are invalid.
    ContentError => "contenterror",
    /// The message does not comply with RFC 5322.
    NotCompliantRfc => "notcompliantrfc",
    /// An SMTP syntax error.
    SyntaxError => "syntaxerror",
    /// A network problem (connection refused, timeout, loop, ...).
    NetworkError => "networkerror",
    /// The message stayed in the queue too long and was given up.
    Expired => "expired",
    /// A problem on the receiving system.
    SystemError => "systemerror",
    /// The receiving system is out of storage.
    SystemFull => "systemfull",
    /// A local delivery program failed.
    MailerError => "mailererror",
    /// The failure could not be attributed; decide later.
    OnHold => "onhold",
    /// The failure could not be classified at all.
    Undefined => "undefined",
    /// Not a failure: a successful delivery report.
    Delivered => "delivered",
    /// Not a failure: a feedback-loop (ARF) report.
    Feedback => "feedback",
    /// Not a failure: an auto-reply (out of office, vacation).
    Vacation => "vacation",
}

impl Reason {
    /// The hard/soft rule, in one place.
    ///
    /// `temporary` is true when the status class or the reply code says the
    /// condition is temporary (4.x.x or 4xx).
    ///
    /// - userunknown, hostunknown and hasmoved are hard;
    /// - notaccept is hard unless the condition is temporary;
    /// - delivered, feedback and vacation are not failures (`other`);
    /// - everything else is soft.
    pub fn kind(self, temporary: bool) -> Kind {
        match self {
            Reason::UserUnknown | Reason::HostUnknown | Reason::HasMoved => Kind::Hard,
            Reason::NotAccept if temporary => Kind::Soft,
            Reason::NotAccept => Kind::Hard,
            Reason::Delivered | Reason::Feedback | Reason::Vacation => Kind::Other,
            _ => Kind::Soft,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for reason in Reason::ALL {
            assert_eq!(reason.as_str().parse::<Reason>().ok(), Some(*reason));
        }
    }

    #[test]
    fn hard_soft_rule() {
        assert_eq!(Reason::UserUnknown.kind(true), Kind::Hard);
        assert_eq!(Reason::HostUnknown.kind(false), Kind::Hard);
        assert_eq!(Reason::NotAccept.kind(false), Kind::Hard);
        assert_eq!(Reason::NotAccept.kind(true), Kind::Soft);
        assert_eq!(Reason::MailboxFull.kind(false), Kind::Soft);
        assert_eq!(Reason::Vacation.kind(false), Kind::Other);
    }
}
