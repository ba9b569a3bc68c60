//! The rule table, row by row: each fact's decision for the message and its
//! address, without an engine.

use std::time::Duration;

use bounce::Reason;

use super::*;
use domain::Upstream;

const NOW: Millis = 1_000_000;

fn pending(attempts: u32) -> MessageState {
    MessageState {
        status: Status::Pending,
        attempts,
        due: 500,
        at: 400,
    }
}

fn submitted() -> MessageState {
    MessageState {
        status: Status::Submitted,
        ..pending(1)
    }
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_secs(10),
        max: Duration::from_secs(60),
    }
}

fn bounced(hard: bool, retry: Option<Millis>) -> Outcome {
    Outcome::Bounced {
        hard,
        retry,
        detail: FactDetail::default(),
        returned: false,
    }
}

#[test]
fn acceptance_submits_and_counts_the_attempt() {
    let d = settle(
        pending(0),
        NOW,
        Outcome::Submitted {
            detail: FactDetail::default(),
            upstream: None,
        },
    );
    assert_eq!(
        d.state,
        MessageState {
            status: Status::Submitted,
            attempts: 1,
            due: 500,
            at: NOW
        }
    );
    assert_eq!(d.fact, FactKind::Submitted);
    assert_eq!(d.suppress, None);
}

#[test]
fn receipts_deliver_or_fail_without_counting_an_attempt() {
    for (delivered, status, fact) in [
        (true, Status::Delivered, FactKind::Delivered),
        (false, Status::Failed, FactKind::Failed),
    ] {
        let d = settle(
            submitted(),
            NOW,
            Outcome::Receipt {
                delivered,
                detail: FactDetail::default(),
            },
        );
        assert_eq!((d.state.status, d.state.attempts), (status, 1));
        assert_eq!(d.fact, fact);
        assert_eq!(d.suppress, None);
    }
}

#[test]
fn a_retry_is_pending_at_its_time_with_its_attempt_in_the_fact() {
    let d = settle(
        pending(1),
        NOW,
        Outcome::Retry {
            due: NOW + 30_000,
            reason: "451 try later".into(),
            detail: FactDetail::default(),
        },
    );
    assert_eq!(
        (d.state.status, d.state.attempts, d.state.due),
        (Status::Pending, 2, NOW + 30_000)
    );
    assert_eq!(d.fact, FactKind::RetryScheduled);
    assert_eq!(d.detail.attempt, Some(2));
    assert_eq!(d.detail.reason.as_deref(), Some("451 try later"));
    assert_eq!(d.detail.retry_at, Some(NOW + 30_000));
}

#[test]
fn a_hard_bounce_ends_the_message_and_suppresses_its_address() {
    let d = settle(submitted(), NOW, bounced(true, None));
    assert_eq!(d.state.status, Status::BouncedHard);
    assert_eq!(d.fact, FactKind::Bounced);
    assert_eq!(d.detail.bounce.as_deref(), Some("hard"));
    assert_eq!(d.suppress, Some(SuppressReason::HardBounce));
}

#[test]
fn a_soft_bounce_resends_or_ends_without_suppressing() {
    let again = settle(submitted(), NOW, bounced(false, Some(NOW + 60_000)));
    assert_eq!(
        (again.state.status, again.state.due),
        (Status::Pending, NOW + 60_000)
    );
    assert_eq!(again.detail.bounce.as_deref(), Some("soft"));
    assert_eq!(again.suppress, None);
    let ended = settle(submitted(), NOW, bounced(false, None));
    assert_eq!(ended.state.status, Status::BouncedSoft);
    assert_eq!(ended.suppress, None);
}

#[test]
fn a_failure_and_a_suppression_say_why() {
    let failed = settle(
        pending(0),
        NOW,
        Outcome::Failed {
            reason: "no such field".into(),
            detail: FactDetail::default(),
        },
    );
    assert_eq!(
        (failed.state.status, failed.state.attempts),
        (Status::Failed, 1)
    );
    assert_eq!(failed.detail.reason.as_deref(), Some("no such field"));
    let suppressed = settle(
        pending(0),
        NOW,
        Outcome::Suppressed {
            why: "quota_exceeded".into(),
        },
    );
    assert_eq!(
        (suppressed.state.status, suppressed.state.attempts),
        (Status::Suppressed, 0)
    );
    assert_eq!(suppressed.fact, FactKind::Suppressed);
    assert_eq!(suppressed.detail.why.as_deref(), Some("quota_exceeded"));
    assert_eq!(
        suppressed.suppress, None,
        "load control suppresses the message, not the address"
    );
}

#[test]
fn only_a_message_waiting_for_its_receipt_is_settled_by_one() {
    for status in Status::ALL {
        assert_eq!(
            receipt_settles(status),
            status == Status::Submitted,
            "{status:?}"
        );
    }
}

#[test]
fn parts_settle_when_all_are_delivered_or_one_failed() {
    use PartReceipt::*;
    assert_eq!(part_receipt(1, None, true), Settle { delivered: true });
    assert_eq!(part_receipt(1, None, false), Settle { delivered: false });
    assert_eq!(part_receipt(3, None, true), Wait { left: 2 });
    assert_eq!(part_receipt(3, Some(2), true), Wait { left: 1 });
    assert_eq!(part_receipt(3, Some(1), true), Settle { delivered: true });
    assert_eq!(part_receipt(3, Some(2), false), Settle { delivered: false });
    assert_eq!(part_receipt(3, Some(0), true), AlreadySettled);
    assert_eq!(part_receipt(3, Some(0), false), AlreadySettled);
}

#[test]
fn delivered_means_accepted_where_the_channel_reports_no_delivery() {
    assert_eq!(
        audience_statuses("delivered", false),
        [Status::Submitted, Status::Delivered]
    );
    assert_eq!(audience_statuses("delivered", true), [Status::Delivered]);
    for status in Status::ALL {
        for reports in [false, true] {
            let selected = audience_statuses(status.as_str(), reports);
            let expected: &[Status] = match (status, reports) {
                (Status::Delivered, false) => &[Status::Submitted, Status::Delivered],
                _ => &[status],
            };
            assert_eq!(selected, expected, "{status:?}");
        }
    }
    assert!(audience_statuses("clicked", false).is_empty());
}

#[test]
fn unsubscribes_and_opt_outs_suppress_clicks_and_opens_do_not() {
    assert_eq!(
        engaged(Engagement::Unsubscribed),
        Some(SuppressReason::Unsubscribed)
    );
    assert_eq!(
        engaged(Engagement::OptedOut),
        Some(SuppressReason::OptedOut)
    );
    assert_eq!(engaged(Engagement::Clicked), None);
    assert_eq!(engaged(Engagement::Opened), None);
}

fn verdict(kind: Kind, reason: Reason) -> impl FnOnce(u16, Phase, &str) -> (Verdict, FactDetail) {
    move |_, _, _| (Verdict { kind, reason }, FactDetail::default())
}

fn refused(code: u16) -> Delivery {
    Delivery::Refused {
        reply: format!("{code} no"),
        code,
        phase: Phase::RcptTo,
    }
}

#[test]
fn a_hard_refusal_bounces_at_once_a_soft_one_retries_while_attempts_last() {
    let hard = answered(
        refused(550),
        1,
        NOW,
        &retry(),
        verdict(Kind::Hard, Reason::UserUnknown),
    );
    assert!(matches!(
        hard,
        Outcome::Bounced {
            hard: true,
            retry: None,
            ..
        }
    ));
    let soft = |attempt| {
        answered(
            refused(552),
            attempt,
            NOW,
            &retry(),
            verdict(Kind::Soft, Reason::MailboxFull),
        )
    };
    assert!(matches!(soft(1), Outcome::Retry { .. }));
    assert!(matches!(
        soft(3),
        Outcome::Bounced {
            hard: false,
            retry: None,
            ..
        }
    ));
    let busy = |attempt| {
        answered(
            refused(451),
            attempt,
            NOW,
            &retry(),
            verdict(Kind::Hard, Reason::UserUnknown),
        )
    };
    assert!(
        matches!(busy(1), Outcome::Retry { .. }),
        "a 4xx is never final while attempts last"
    );
    match busy(3) {
        Outcome::Failed { reason, detail } => {
            assert!(reason.starts_with("gave up after 3 attempts"), "{reason}");
            assert_eq!(detail.attempts, Some(3));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn acceptance_carries_the_reply_and_the_upstream_ids() {
    let upstream = Upstream {
        smsc: 0,
        ids: vec!["A1".into()],
    };
    let accepted = Delivery::Accepted {
        reply: "250 ok".into(),
        upstream: Some(upstream.clone()),
    };
    match answered(
        accepted,
        1,
        NOW,
        &retry(),
        verdict(Kind::Hard, Reason::Undefined),
    ) {
        Outcome::Submitted {
            detail,
            upstream: u,
        } => {
            assert_eq!(detail.reply.as_deref(), Some("250 ok"));
            assert_eq!(u, Some(upstream));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn throttling_waits_without_using_an_attempt_of_the_policy() {
    let throttled = Delivery::Throttled {
        retry_after: Duration::from_secs(2),
    };
    match answered(
        throttled,
        3,
        NOW,
        &retry(),
        verdict(Kind::Hard, Reason::Undefined),
    ) {
        Outcome::Retry { due, .. } => assert_eq!(due, NOW + 2_000),
        other => panic!("even at the last attempt: {other:?}"),
    }
}

#[test]
fn a_returned_soft_bounce_is_resent_after_back_off_until_attempts_run_out() {
    match returned(false, 1, NOW, &retry(), FactDetail::default()) {
        Outcome::Bounced {
            hard: false,
            retry: Some(at),
            ..
        } => {
            assert!((NOW + 8_000..=NOW + 12_000).contains(&at), "{at}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        returned(false, 3, NOW, &retry(), FactDetail::default()),
        Outcome::Bounced {
            hard: false,
            retry: None,
            ..
        }
    ));
    assert!(matches!(
        returned(true, 1, NOW, &retry(), FactDetail::default()),
        Outcome::Bounced {
            hard: true,
            retry: None,
            ..
        }
    ));
}

#[test]
fn a_message_ending_undelivered_says_how_a_fallback_would_see_it() {
    let ended = |before, outcome| settle(before, NOW, outcome).undelivered;
    assert_eq!(
        ended(submitted(), bounced(true, None)),
        Some(Undelivered::BouncedHard)
    );
    assert_eq!(
        ended(submitted(), bounced(false, None)),
        Some(Undelivered::Failed),
        "soft bounces out of retries"
    );
    assert_eq!(
        ended(submitted(), bounced(false, Some(NOW + 1))),
        None,
        "a soft bounce still retried"
    );
    let failed = Outcome::Failed {
        reason: "554 no".into(),
        detail: FactDetail::default(),
    };
    assert_eq!(ended(pending(0), failed), Some(Undelivered::Failed));
    let receipt = |delivered| Outcome::Receipt {
        delivered,
        detail: FactDetail::default(),
    };
    assert_eq!(
        ended(submitted(), receipt(false)),
        Some(Undelivered::Failed)
    );
    assert_eq!(ended(submitted(), receipt(true)), None);
    let accepted = Outcome::Submitted {
        detail: FactDetail::default(),
        upstream: None,
    };
    assert_eq!(ended(pending(0), accepted), None);
    let suppressed = Outcome::Suppressed {
        why: "blacklisted".into(),
    };
    assert_eq!(
        ended(pending(0), suppressed),
        None,
        "not sent is not a failed send"
    );
}
