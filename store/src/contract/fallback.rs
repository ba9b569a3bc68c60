//! The contract of a campaign's fallback: the engine applies it with the
//! fact that triggers it, once per participant, durably.

use domain::{
    CampaignDecl, ChannelKind, FactDetail, FactKind, Fallback, MessageNo, Outcome, Participant,
    Status, Update, fields_from_json,
};

use super::{Harness, decl, status_of};

/// Customer `customer` at `customer@example.org` (none when `mail` is
/// false) with the SMS number `phone` in its `phone` field.
fn with_phone(customer: &str, mail: bool, phone: &str) -> Participant {
    Participant {
        customer: customer.into(),
        address: if mail {
            format!("{customer}@example.org")
        } else {
            String::new()
        },
        segment: None,
        fields: fields_from_json([
            ("phone".to_owned(), serde_json::json!(phone)),
            ("name".to_owned(), serde_json::json!(customer)),
        ]),
    }
}

const HOUR: u64 = 3_600_000;

/// An e-mail campaign with an SMS fallback (bounces count for an hour
/// after the hand-off): a hard bounce and a failure send their participant
/// there once, same customer and fields, at the number in `phone`; one
/// without an address goes at once and is never sent; a number that is not
/// +E.164 becomes a `failed` fact on the fallback campaign; a soft bounce
/// with retries left, a bounce past the hour and a second hard bounce do
/// nothing more. All of it survives a reopen, and counts and audiences
/// include `fallback`.
pub async fn a_fallback_takes_each_undelivered_participant_once(h: &dyn Harness) {
    let customers = |members: Vec<domain::AudienceMember>| {
        let mut c: Vec<String> = members.into_iter().map(|m| m.customer).collect();
        c.sort();
        c
    };
    let (mail_seq, nomail);
    {
        let store = h.open().await;
        store
            .put_campaign("sms", CampaignDecl::new(ChannelKind::Sms, "stage 2"))
            .await
            .expect("declare the fallback");
        let mut fallback = Fallback::to("sms");
        fallback.after = Some("PT1H".into());
        let email = CampaignDecl {
            fallback: Some(fallback),
            ..decl()
        };
        mail_seq = store
            .put_campaign("mail", email)
            .await
            .expect("declare")
            .seq;
        let people = vec![
            with_phone("hard", true, "+4915100000001"),
            with_phone("failed", true, "+4915100000002"),
            with_phone("late", true, "+4915100000003"),
            with_phone("bad", true, "0151 04"),
            with_phone("soft", true, "+4915100000005"),
            with_phone("nomail", false, "+4915100000006"),
        ];
        let fresh = store
            .add_participants("mail", people, 1_000)
            .await
            .expect("add");
        assert_eq!(fresh, vec![true; 6]);
        let msg = |participant| MessageNo {
            campaign: mail_seq,
            participant,
        };
        nomail = msg(5);
        let update = |n, at, outcome| Update {
            msg: msg(n),
            at,
            outcome,
        };
        let submitted = || Outcome::Submitted {
            detail: FactDetail::default(),
            upstream: None,
        };
        let bounced = |hard, retry| Outcome::Bounced {
            hard,
            retry,
            detail: FactDetail::default(),
            returned: true,
        };
        let failed = || Outcome::Failed {
            reason: "550 refused for good".into(),
            detail: FactDetail::default(),
        };
        store
            .record(vec![
                update(0, 2_000, submitted()),
                update(2, 2_000, submitted()),
                update(4, 2_000, submitted()),
            ])
            .await
            .expect("submitted");
        store
            .record(vec![
                update(0, 2_000 + HOUR, bounced(true, None)),
                update(1, 5_000, failed()),
                update(2, 2_001 + HOUR, bounced(true, None)),
                update(3, 5_000, failed()),
                update(4, 5_000, bounced(false, Some(9_000))),
            ])
            .await
            .expect("undelivered");
        store
            .record(vec![update(0, 3 * HOUR, bounced(true, None))])
            .await
            .expect("bounced again");
    }
    let store = h.open().await;
    assert_eq!(status_of(store.as_ref(), nomail).await, Status::Fallback);
    assert_eq!(
        customers(store.audience("sms", "pending").await.expect("audience")),
        ["failed", "hard", "nomail"],
        "each once; not the late bounce, the soft one, or the bad number"
    );
    assert_eq!(
        customers(store.audience("mail", "fallback").await.expect("audience")),
        ["bad", "failed", "hard", "nomail"]
    );
    let counts = store.counts("mail").await.expect("counts");
    assert_eq!(counts.by_status["fallback"], 4, "{counts:?}");
    assert_eq!(store.counts("sms").await.expect("counts").participants, 3);

    let sms = store.audience("sms", "pending").await.expect("audience");
    let hard = sms.iter().find(|m| m.customer == "hard").expect("hard");
    assert_eq!(hard.address, "+4915100000001");
    let fields = store
        .participant(hard.msg)
        .await
        .expect("store answers")
        .expect("participant")
        .fields;
    assert_eq!(fields["name"].render(), "hard", "the same fields");

    let facts = store.events(0, 1000).await.expect("events");
    let fallbacks: Vec<_> = facts
        .iter()
        .filter(|f| f.kind == FactKind::Fallback)
        .map(|f| (f.campaign.as_str(), f.detail.to.as_deref()))
        .collect();
    assert_eq!(fallbacks, vec![("mail", Some("sms")); 4]);
    let bad = facts
        .iter()
        .find(|f| f.campaign == "sms" && f.customer == "bad")
        .expect("a fact for the bad number on the fallback campaign");
    assert_eq!(bad.kind, FactKind::Failed);
    assert_eq!(
        bad.detail.reason.as_deref(),
        Some("fallback address `0151 04` (field `phone`) is not a +E.164 number")
    );
    let accepted_on_sms = facts
        .iter()
        .filter(|f| f.campaign == "sms" && f.kind == FactKind::Accepted)
        .count();
    assert_eq!(accepted_on_sms, 3);
}
