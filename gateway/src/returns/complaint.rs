//! Feedback reports (RFC 5965, ARF) and JSON complaint notices (Amazon
//! SES): a mailbox provider's word that the recipient marked a message as
//! spam. The recipient withdrew consent as
//! surely as by unsubscribing: the complaint is recorded as `complained`
//! and suppresses the address (`rules::engaged`).
//!
//! A report is matched by its token alone. Providers redact the recipient
//! (or name the address a message was forwarded to), and the token's tag
//! already binds the one address the message went to.

use bounce::Bounce;
use domain::{Engaged, Engagement, FactDetail, MessageNo, now_ms};

use super::{Intake, IntakeError, Returns};

/// What a report with no `Feedback-Type` is taken for: feedback loops
/// send spam complaints. (A type a later RFC added is taken as stated:
/// RFC 5965 reads an unknown one as `other`, a complaint too.)
const UNSTATED: &str = "abuse";

/// Whether a feedback type says the recipient did not want the message.
/// `not-spam` says the opposite (RFC 6430); `auth-failure` reports our
/// DKIM or SPF, not the recipient (RFC 6591).
fn is_complaint(feedback_type: &str) -> bool {
    !["not-spam", "auth-failure"]
        .iter()
        .any(|t| feedback_type.eq_ignore_ascii_case(t))
}

impl Returns {
    /// Records a complaint against `msg`, the message the report's token
    /// names, once it was sent; a complaint naming no message of ours, or
    /// one never handed to a relay, is kept as unmatched.
    pub(super) async fn complaint(
        &self,
        raw: &[u8],
        report: &Bounce,
        msg: Option<MessageNo>,
    ) -> Result<Intake, IntakeError> {
        let feedback_type = report
            .recipients
            .first()
            .and_then(|r| r.diagnostic.as_deref())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .unwrap_or(UNSTATED)
            .to_ascii_lowercase();
        if !is_complaint(&feedback_type) {
            tracing::info!(
                feedback_type,
                "feedback report that is not a complaint; nothing recorded"
            );
            return Ok(Intake::default());
        }
        let sent = match msg {
            Some(msg) => (self.store.message(msg).await?)
                .filter(|info| info.attempts > 0)
                .map(|_| msg),
            None => None,
        };
        let Some(msg) = sent else {
            return self.unmatched(raw, 1).await;
        };
        let complained = Engaged {
            msg,
            at: now_ms(),
            kind: Engagement::Complained,
            detail: FactDetail {
                reason: Some(feedback_type),
                ..FactDetail::default()
            },
        };
        self.engagements.record(vec![complained]).await?;
        Ok(Intake {
            is_bounce: true,
            matched: 1,
            unmatched: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_feedback_type_but_not_spam_and_auth_failure_is_a_complaint() {
        for t in ["abuse", "fraud", "virus", "other", "opt-out", "ABUSE"] {
            assert!(is_complaint(t), "{t}");
        }
        for t in ["not-spam", "Auth-Failure"] {
            assert!(!is_complaint(t), "{t}");
        }
    }
}
