use std::time::Duration;

use domain::Phase;

use super::*;
use crate::metrics::BounceLabels;

const NOW: Millis = 1_000_000;

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_secs(10),
        max: Duration::from_secs(60),
    }
}

fn refused(code: u16, phase: Phase, reply: &str) -> Delivery {
    Delivery::Refused {
        reply: reply.into(),
        code,
        phase,
    }
}

fn bounces(metrics: &Metrics, kind: &'static str, reason: &'static str) -> u64 {
    metrics
        .bounces
        .get_or_create(&BounceLabels { kind, reason })
        .get()
}

#[test]
fn a_hard_5xx_at_rcpt_bounces_at_once_and_is_counted() {
    let metrics = Metrics::default();
    let out = of(
        refused(550, Phase::RcptTo, "550 5.1.1 user unknown"),
        1,
        NOW,
        &retry(),
        &metrics,
    );
    let Outcome::Bounced {
        hard,
        retry,
        detail,
        ..
    } = out
    else {
        panic!("{out:?}")
    };
    assert!(hard);
    assert_eq!(retry, None);
    assert_eq!(detail.reason.as_deref(), Some("userunknown"));
    assert_eq!(detail.status.as_deref(), Some("5.1.1"));
    assert_eq!(detail.replycode, Some(550));
    assert_eq!(bounces(&metrics, "hard", "userunknown"), 1);
}

#[test]
fn a_soft_5xx_is_retried_while_attempts_last_then_bounces_soft() {
    let metrics = Metrics::default();
    let sender = || {
        refused(
            553,
            Phase::MailFrom,
            "553 5.1.2 <b-x@bounces.example>: domain not found",
        )
    };
    let first = of(sender(), 1, NOW, &retry(), &metrics);
    let Outcome::Retry {
        due,
        reason,
        detail,
    } = first
    else {
        panic!("{first:?}")
    };
    assert!(due > NOW);
    assert!(reason.starts_with("553 5.1.2"), "{reason}");
    assert_eq!(detail.bounce_reason.as_deref(), Some("rejected"));
    assert!(detail.reason.is_none(), "the store files the reply there");
    assert_eq!(
        bounces(&metrics, "soft", "rejected"),
        0,
        "a retry is no bounce"
    );
    let last = of(sender(), 3, NOW, &retry(), &metrics);
    let Outcome::Bounced { hard, detail, .. } = last else {
        panic!("{last:?}")
    };
    assert!(!hard);
    assert_eq!(detail.reason.as_deref(), Some("rejected"));
    assert_eq!(
        bounces(&metrics, "soft", "rejected"),
        1,
        "a soft 5xx sent again is a retry: only the one that ends the message is a bounce"
    );
}

#[test]
fn a_4xx_is_retried_with_its_reasons_then_fails_and_is_no_bounce() {
    let metrics = Metrics::default();
    let full = || refused(452, Phase::RcptTo, "452 4.2.2 mailbox full");
    let Outcome::Retry { detail, .. } = of(full(), 1, NOW, &retry(), &metrics) else {
        panic!("not a retry")
    };
    assert_eq!(detail.bounce_reason.as_deref(), Some("mailboxfull"));
    assert_eq!(detail.status.as_deref(), Some("4.2.2"));
    let last = of(full(), 3, NOW, &retry(), &metrics);
    let Outcome::Failed { reason, detail } = last else {
        panic!("{last:?}")
    };
    assert!(
        reason.starts_with("gave up after 3 attempts: 452"),
        "{reason}"
    );
    assert_eq!(detail.attempts, Some(3));
    assert_eq!(bounces(&metrics, "soft", "mailboxfull"), 0);
}

#[test]
fn words_of_a_refused_recipient_after_data_are_a_filter_not_a_hard_bounce() {
    let metrics = Metrics::default();
    let out = of(
        refused(550, Phase::Data, "550 no such user here"),
        1,
        NOW,
        &retry(),
        &metrics,
    );
    let Outcome::Retry { detail, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(detail.bounce_reason.as_deref(), Some("filtered"));
}
