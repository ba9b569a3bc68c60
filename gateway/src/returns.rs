//! Returned mail: synchronous refusals and asynchronous bounces (DSNs and
//! the free text real MTAs write) classified by the `bounce` crate into hard
//! and soft, matched to their message by the verified Return-Path token, and
//! recorded as facts. Hard bounces suppress the address on the channel; soft
//! ones are resent with back-off until the attempts run out. A feedback
//! report (a spam complaint) is recorded as `complained` (`complaint`).

mod complaint;
pub mod listener;
pub mod maildir;
mod per_peer;

use std::sync::Arc;

use bounce::{Classifier, EnhancedStatus, Kind, Recipient, Verdict};
use serde::Serialize;

use crate::{engagements::EngagementLog, metrics::Metrics, unmatched::Kept, verp::ReturnPaths};
use domain::{FactDetail, Phase, Update, now_ms};
use rules::{self, RetryPolicy};
use store::{Store, StoreError};

/// Largest returned message taken (bigger ones are refused at SMTP time and
/// by the import endpoint).
pub const MAX_RETURNED_BYTES: usize = 10 * 1024 * 1024;

/// Returned mails that matched nothing kept at most (the last ones).
const KEPT_MAILS: u64 = 1_000;
/// Bytes kept of each: its headers and reports come first, a copy of the
/// original message (often the bulk) last.
const KEPT_BYTES: usize = 64 << 10;

/// Where returned mails that matched nothing are kept.
pub fn unmatched_mails() -> Kept {
    Kept::new("mail", KEPT_MAILS)
}

/// The bounce rules applied to a relay's refusal at send time, answering
/// the command of `phase`: the verdict, and the reply's fields for the fact
/// (`status`, `replycode`, `diagnostic`). The caller files the verdict's
/// reason: `reason` of a `bounced` fact, `bounce_reason` of a
/// `retry_scheduled` or `failed` one, whose `reason` is the reply itself.
pub fn classify_reply(code: u16, phase: Phase, reply: &str) -> (Verdict, FactDetail) {
    let verdict = bounce::classify_reply(code, None, reply, Some(bounce_phase(phase)));
    let status = bounce::status::find_status(reply);
    (verdict, reply_detail(status, Some(code), Some(reply)))
}

/// The bounce rules' name for the SMTP command a refusal answered.
fn bounce_phase(phase: Phase) -> bounce::Phase {
    match phase {
        Phase::Connect => bounce::Phase::Connect,
        Phase::MailFrom => bounce::Phase::MailFrom,
        Phase::RcptTo => bounce::Phase::RcptTo,
        Phase::Data => bounce::Phase::Data,
    }
}

/// What a server said about a failure, as fact fields.
fn reply_detail(
    status: Option<EnhancedStatus>,
    code: Option<u16>,
    diagnostic: Option<&str>,
) -> FactDetail {
    FactDetail {
        status: status.map(|s| s.to_string()),
        replycode: code,
        diagnostic: diagnostic.map(str::to_owned),
        ..FactDetail::default()
    }
}

/// What became of one returned message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Intake {
    /// The classifier saw a delivery failure report, or a complaint.
    pub is_bounce: bool,
    /// Failed or complaining recipients recorded against their message.
    pub matched: usize,
    /// Kept without a message to attach to (no or forged token, not ours).
    pub unmatched: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("returned message is {size} bytes, above the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Takes returned mail from any intake (SMTP listener, import endpoint).
pub struct Returns {
    pub store: Arc<dyn Store>,
    pub paths: ReturnPaths,
    pub retry: RetryPolicy,
    pub metrics: Arc<Metrics>,
    /// Where complaints are recorded.
    engagements: EngagementLog,
    classifier: Classifier,
    kept: Kept,
}

impl Returns {
    pub fn new(
        store: Arc<dyn Store>,
        paths: ReturnPaths,
        retry: RetryPolicy,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            engagements: EngagementLog::new(store.clone(), metrics.clone()),
            store,
            paths,
            retry,
            metrics,
            classifier: Classifier::new().with_max_size(MAX_RETURNED_BYTES),
            kept: unmatched_mails(),
        }
    }

    /// Classifies `raw`, matches it through the first verifying address among
    /// `envelope_to` (the SMTP recipients), the bounce's own Return-Path and
    /// its VERP detail, and records the facts. Unmatched mail is kept.
    pub async fn take(&self, raw: &[u8], envelope_to: &[String]) -> Result<Intake, IntakeError> {
        if raw.len() > MAX_RETURNED_BYTES {
            return Err(IntakeError::TooLarge {
                size: raw.len(),
                limit: MAX_RETURNED_BYTES,
            });
        }
        let bounce = match self.classifier.classify(raw) {
            Ok(b) => b,
            Err(e) => {
                tracing::info!(error = %e, "returned mail could not be classified; kept");
                self.keep(raw).await?;
                return Ok(Intake {
                    unmatched: 1,
                    ..Intake::default()
                });
            }
        };
        // The classifier finds a VERP detail in To, Delivered-To and
        // X-Original-To, where mailbox copies keep the envelope recipient.
        let domain_token = bounce
            .token
            .as_deref()
            .map(|t| format!("b+{t}@{}", self.paths.domain()));
        // Our Message-ID is the Return-Path too: a copy of the original
        // that lost its Return-Path (a feedback report's often has) still
        // names the message by it.
        let msg = envelope_to
            .iter()
            .map(String::as_str)
            .chain(bounce.original_return_path.as_deref())
            .chain(bounce.original_message_id.as_deref())
            .chain(domain_token.as_deref())
            .find_map(|a| self.paths.verify(a));
        // A feedback report, or a provider's JSON notice of a complaint:
        // the classifier gives either's recipients the reason `feedback`.
        if (bounce.recipients.iter()).any(|r| r.reason == bounce::Reason::Feedback) {
            return self.complaint(raw, &bounce, msg).await;
        }
        // A recipient the reporting MTA is still trying (RFC 3464
        // `Action: delayed`) has not failed: sending again would give them
        // two once it arrives. A failure report follows if it gives up.
        let failures: Vec<_> = bounce
            .recipients
            .iter()
            .filter(|r| r.kind != Kind::Other && r.action.as_deref() != Some("delayed"))
            .collect();
        if failures.is_empty() && !bounce.recipients.is_empty() {
            // A delivery report, a delay notice or an auto-reply: nothing
            // failed, nothing to record, nothing for an operator to look at.
            tracing::info!(format = ?bounce.format, "returned mail reports no failure; nothing recorded");
            return Ok(Intake::default());
        }
        let info = match msg {
            Some(m) => self.store.message(m).await?.map(|i| (m, i)),
            None => None,
        };
        let Some((msg, info)) = info.filter(|_| !failures.is_empty()) else {
            if bounce.is_bounce {
                return self.unmatched(raw, failures.len()).await;
            }
            return Ok(Intake::default());
        };
        let Some(failure) = failure_of(&failures, &info.address) else {
            tracing::info!(recipient = %info.address, "returned mail names other recipients than its message's; kept as unmatched");
            return self.unmatched(raw, failures.len()).await;
        };
        let hard = failure.kind == Kind::Hard;
        let mut detail = reply_detail(
            failure.status,
            failure.reply_code,
            failure.diagnostic.as_deref(),
        );
        detail.reason = Some(failure.reason.as_str().to_owned());
        let now = now_ms();
        let outcome = rules::returned(hard, info.attempts, now, &self.retry, detail);
        if !rules::applies(info.status, info.attempts, &outcome) {
            tracing::info!(recipient = %info.address, status = ?info.status, "returned mail for a message settled or rescheduled already (a copy or a replay); kept as unmatched");
            return self.unmatched(raw, failures.len()).await;
        }
        self.store
            .record(vec![Update {
                msg,
                at: now,
                outcome: outcome.clone(),
            }])
            .await?;
        let verdict = bounce::Verdict {
            kind: failure.kind,
            reason: failure.reason,
        };
        self.metrics.bounce_if_final(&outcome, &verdict);
        Ok(Intake {
            is_bounce: true,
            matched: 1,
            unmatched: 0,
        })
    }

    /// Counts and keeps returned mail that matched no message's recipient.
    async fn unmatched(&self, raw: &[u8], failures: usize) -> Result<Intake, IntakeError> {
        self.metrics.bounces_unmatched.inc();
        self.keep(raw).await?;
        Ok(Intake {
            is_bounce: true,
            unmatched: failures.max(1),
            matched: 0,
        })
    }

    /// Keeps the start of mail that matched nothing, for an operator to
    /// look at: the last `KEPT_MAILS`, `KEPT_BYTES` each, under a header
    /// saying when.
    async fn keep(&self, raw: &[u8]) -> Result<(), StoreError> {
        let mut kept = format!("X-Sluice-Kept-At: {}\r\n", domain::rfc3339(now_ms())).into_bytes();
        let room = KEPT_BYTES - kept.len();
        kept.extend_from_slice(&raw[..raw.len().min(room)]);
        self.kept.keep(self.store.as_ref(), kept).await
    }
}

/// Which of a report's failures is about `address`, the one recipient of
/// the message its token names: the failure naming it; else the first
/// naming no address (the report could not say whose it was; the token
/// says it is ours). A failure naming someone else (mail forwarded on,
/// say) says nothing about our recipient: it suppresses nobody.
fn failure_of<'a>(failures: &[&'a Recipient], address: &str) -> Option<&'a Recipient> {
    let named = failures
        .iter()
        .find(|r| r.address.eq_ignore_ascii_case(address));
    named
        .or_else(|| failures.iter().find(|r| r.address.is_empty()))
        .copied()
}

/// One line of `sluice bounce classify`, fields in the documented order.
#[derive(Serialize)]
struct ClassifiedLine<'a> {
    file: &'a str,
    rcpt: usize,
    recipient: &'a str,
    kind: &'static str,
    reason: &'static str,
    status: Option<String>,
    replycode: Option<u16>,
}

/// `sluice bounce classify`: one NDJSON line per recipient of a returned
/// message, `rcpt` being its 1-based position in the bounce.
pub fn classify_lines(file: &str, raw: &[u8]) -> Result<Vec<String>, bounce::Error> {
    let bounce = Classifier::new()
        .with_max_size(MAX_RETURNED_BYTES)
        .classify(raw)?;
    Ok(bounce
        .recipients
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let line = ClassifiedLine {
                file,
                rcpt: i + 1,
                recipient: &r.address,
                kind: r.kind.as_str(),
                reason: r.reason.as_str(),
                status: r.status.map(|s| s.to_string()),
                replycode: r.reply_code,
            };
            serde_json::to_string(&line).unwrap_or_default()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use store::embedded::Embedded;

    use super::*;
    use crate::test_support::ann_in_a_campaign;

    fn failed(address: &str, reason: bounce::Reason) -> Recipient {
        Recipient {
            address: address.into(),
            kind: reason.kind(false),
            reason,
            status: None,
            reply_code: None,
            diagnostic: None,
            action: None,
            remote_mta: None,
        }
    }

    #[test]
    fn a_failure_naming_no_address_speaks_for_ours_one_naming_another_never() {
        let other = failed("other@example.org", bounce::Reason::UserUnknown);
        let unnamed = failed("", bounce::Reason::MailboxFull);
        let ours = failed("Ann@Example.org", bounce::Reason::Suspend);
        let found = |failures: &[&Recipient]| {
            failure_of(failures, "ann@example.org").map(|r| r.address.clone())
        };
        assert_eq!(found(&[&other, &unnamed]), Some(String::new()));
        assert_eq!(
            found(&[&other, &unnamed, &ours]),
            Some(ours.address.clone())
        );
        assert_eq!(found(&[&other]), None);
    }

    fn returns(store: &Arc<dyn Store>) -> Returns {
        let retry = RetryPolicy {
            max_attempts: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(1),
        };
        Returns::new(
            store.clone(),
            ReturnPaths::new(b"k", "bounces.test"),
            retry,
            Arc::new(Metrics::default()),
        )
    }

    /// `msg` handed to the relay.
    async fn sent(store: &Arc<dyn Store>, msg: domain::MessageNo) {
        let outcome = domain::Outcome::Submitted {
            detail: FactDetail::default(),
            upstream: None,
        };
        let update = Update {
            msg,
            at: 2,
            outcome,
        };
        store.record(vec![update]).await.expect("sent");
    }

    /// A DSN for our recipient, its Action and Status as given.
    fn dsn_for(returns: &Returns, msg: domain::MessageNo, action: &str, status: &str) -> String {
        format!(
            "From: MAILER-DAEMON@mx.example\r\nTo: {}\r\nSubject: Delivery Status Notification\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
             --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n\
             Final-Recipient: rfc822; ann@example.org\r\nAction: {action}\r\nStatus: {status}\r\n\r\n--B--\r\n",
            returns.paths.address(msg)
        )
    }

    /// A delay notice (RFC 3464 `Action: delayed`: the reporting MTA is
    /// still trying) records nothing: sending the message again would give
    /// the recipient two once it arrives. The failure report that may
    /// follow settles it.
    #[tokio::test]
    async fn a_delay_notice_records_nothing_and_the_failure_after_it_settles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(Embedded::open(dir.path()).expect("open"));
        let msg = ann_in_a_campaign(&store, "c").await;
        sent(&store, msg).await;
        let returns = returns(&store);
        let delayed = dsn_for(&returns, msg, "delayed", "4.4.7");
        let intake = returns.take(delayed.as_bytes(), &[]).await.expect("taken");
        assert_eq!(
            (intake.is_bounce, intake.matched, intake.unmatched),
            (false, 0, 0),
            "{intake:?}"
        );
        let status = |info: Option<store::MessageInfo>| info.map(|i| i.status);
        let still = status(store.message(msg).await.expect("read"));
        assert_eq!(still, Some(domain::Status::Submitted), "not rescheduled");
        let failed = dsn_for(&returns, msg, "failed", "5.1.1");
        let intake = returns.take(failed.as_bytes(), &[]).await.expect("taken");
        assert_eq!((intake.is_bounce, intake.matched), (true, 1), "{intake:?}");
        let settled = status(store.message(msg).await.expect("read"));
        assert_eq!(settled, Some(domain::Status::BouncedHard));
    }

    /// A delay warning written as free text (Exim's, without a DSN) is a
    /// delay notice too: the message stays as it was.
    #[tokio::test]
    async fn a_delay_warning_in_free_text_records_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(Embedded::open(dir.path()).expect("open"));
        let msg = ann_in_a_campaign(&store, "c").await;
        sent(&store, msg).await;
        let returns = returns(&store);
        let warning = format!(
            "From: Mail Delivery System <Mailer-Daemon@mx.example>\r\nTo: {}\r\n\
             Subject: Warning: message 1abc-0001 delayed 24 hours\r\nAuto-Submitted: auto-replied\r\n\r\n\
             This message was created automatically by mail delivery software.\r\n\
             A message that you sent has not yet been delivered to one or more of its\r\n\
             recipients after more than 24 hours on the queue on mx.example.\r\n\r\n\
             The address to which the message has not yet been delivered is:\r\n\r\n\
             \x20 ann@example.org\r\n\
             \x20   Delay reason: SMTP error from remote mail server after RCPT TO:<ann@example.org>:\r\n\
             \x20   452 4.2.2 Mailbox full\r\n\r\n\
             No action is required on your part. Delivery attempts will continue for\r\n\
             some time, and this warning may be repeated at intervals if the message\r\n\
             remains undelivered.\r\n",
            returns.paths.address(msg)
        );
        let intake = returns.take(warning.as_bytes(), &[]).await.expect("taken");
        assert_eq!(
            (intake.is_bounce, intake.matched, intake.unmatched),
            (false, 0, 0),
            "{intake:?}"
        );
        let still = store.message(msg).await.expect("read").map(|i| i.status);
        assert_eq!(still, Some(domain::Status::Submitted), "not rescheduled");
    }

    /// An Amazon SES complaint notice (JSON, its `source` our Return-Path)
    /// is a complaint like a feedback report: recorded, and the address
    /// suppressed.
    #[tokio::test]
    async fn a_json_complaint_notice_suppresses_the_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(Embedded::open(dir.path()).expect("open"));
        let msg = ann_in_a_campaign(&store, "c").await;
        let returns = returns(&store);
        let notice = format!(
            "From: complaints@email-abuse.amazonses.com\r\nSubject: Complaint\r\n\r\n\
             {{\"notificationType\":\"Complaint\",\"complaint\":{{\"complainedRecipients\":\
             [{{\"emailAddress\":\"ann@example.org\"}}]}},\"mail\":{{\"source\":\"{}\"}}}}\r\n",
            returns.paths.address(msg)
        );
        let intake = returns.take(notice.as_bytes(), &[]).await.expect("taken");
        assert_eq!(
            (intake.matched, intake.unmatched),
            (0, 1),
            "a message never sent draws no complaint"
        );
        sent(&store, msg).await;
        let intake = returns.take(notice.as_bytes(), &[]).await.expect("taken");
        assert_eq!((intake.is_bounce, intake.matched), (true, 1), "{intake:?}");
        assert_eq!(
            store
                .suppressed(domain::ChannelKind::Email, "ann@example.org")
                .await
                .expect("answers"),
            Some(domain::SuppressReason::Complained)
        );
    }

    /// A bounce with no token of ours, the copy of its original message
    /// 200 KiB: counted unmatched and kept as its first `KEPT_BYTES`, so
    /// that what the public sends the bounce domain cannot fill the store.
    #[tokio::test]
    async fn unmatched_mail_is_kept_as_its_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(Embedded::open(dir.path()).expect("open"));
        let returns = returns(&store);
        let dsn = format!(
            "From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail Returned to Sender\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
             --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n\
             Final-Recipient: rfc822; c1@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
             --B\r\nContent-Type: message/rfc822\r\n\r\nSubject: the original\r\n\r\n{}\r\n--B--\r\n",
            "x".repeat(200 << 10)
        );

        let intake = returns
            .take(dsn.as_bytes(), &["someone@bounces.test".to_owned()])
            .await
            .expect("taken");
        assert_eq!((intake.is_bounce, intake.unmatched), (true, 1));
        let (count, kept) = unmatched_mails()
            .newest(store.as_ref(), None, 10)
            .await
            .expect("listed");
        assert_eq!((count, kept.len()), (1, 1));
        let value = &kept[0].1;
        assert_eq!(value.len(), KEPT_BYTES);
        let line = value
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a header")
            + 2;
        let (header, start) = value.split_at(line);
        let header = String::from_utf8_lossy(header);
        assert!(header.starts_with("X-Sluice-Kept-At: 20"), "{header}");
        assert!(header.ends_with("Z\r\n"), "{header}");
        assert_eq!(start, &dsn.as_bytes()[..start.len()]);
    }
}
