//! Records written now read back; records the first release wrote (its
//! exact JSON) read as the same domain values; unknown versions are refused.

use domain::{
    CampaignDecl, CampaignState, ChannelKind, Content, Engagement, FieldValue, SmsContent, Status,
};

use super::*;

#[test]
fn message_keys_sort_by_campaign_then_participant() {
    let a = message_key(MessageNo {
        campaign: 1,
        participant: 0xFFFF_FFFF,
    });
    let b = message_key(MessageNo {
        campaign: 2,
        participant: 0,
    });
    assert!(a < b);
    let m = MessageNo {
        campaign: 7,
        participant: 42,
    };
    assert_eq!(parse_message_key(&message_key(m)).expect("key"), m);
}

fn campaign() -> CampaignRecord {
    CampaignRecord {
        id: "spring-1".into(),
        seq: 3,
        state: CampaignState::Running,
        decl: CampaignDecl {
            channel: ChannelKind::Sms,
            name: "Unlimited".into(),
            segment: Some("gold".into()),
            priority: Some(5),
            expected_participants: 2,
            window: None,
            content: Some(Content {
                sms: Some(SmsContent {
                    from: "Telco".into(),
                    text: "Hi {{name}} https://t.example/x".into(),
                    track_links: true,
                }),
                email: None,
            }),
            fallback: None,
        },
    }
}

fn participant() -> Participant {
    Participant {
        customer: "ann".into(),
        address: "+4915100000001".into(),
        segment: None,
        fields: [
            ("gb".into(), FieldValue::Number("21.5".into())),
            ("name".into(), FieldValue::Text("Ann".into())),
            ("tags".into(), FieldValue::Json(r#"["a",1]"#.into())),
        ]
        .into(),
    }
}

fn facts() -> Vec<Fact> {
    vec![
        Fact {
            cursor: 41,
            at: 1_764_842_400_123,
            campaign: "spring-1".into(),
            customer: "ann".into(),
            kind: FactKind::RetryScheduled,
            detail: FactDetail {
                attempt: Some(1),
                reason: Some("451 4.2.2 mailbox full".into()),
                retry_at: Some(1_764_842_430_000),
                status: Some("4.2.2".into()),
                replycode: Some(451),
                ..FactDetail::default()
            },
        },
        Fact {
            cursor: 42,
            at: 1_764_842_500_000,
            campaign: "spring-1".into(),
            customer: "ann".into(),
            kind: FactKind::Engaged(Engagement::Clicked),
            detail: FactDetail {
                url: Some("https://shop.example/?a=1".into()),
                ..FactDetail::default()
            },
        },
    ]
}

fn state() -> MessageState {
    MessageState {
        status: Status::BouncedSoft,
        attempts: 2,
        due: 1_764_842_430_000,
        at: 1_764_842_400_123,
    }
}

#[test]
fn records_written_now_read_back_the_same() {
    assert_eq!(
        decode::<CampaignRecord>(&encode(&campaign())).expect("campaign"),
        campaign()
    );
    assert_eq!(
        decode::<Participant>(&encode(&participant())).expect("participant"),
        participant()
    );
    assert_eq!(
        decode::<Vec<Fact>>(&encode(&facts())).expect("facts"),
        facts()
    );
    assert_eq!(
        decode::<MessageState>(&encode(&state())).expect("status"),
        state()
    );
    assert_eq!(
        encode(&state())[0],
        VERSION,
        "every record starts with its version"
    );
}

/// The bytes the first release wrote for the same values (serde_json of
/// its records, copied from a data directory it wrote).
#[test]
fn records_the_first_release_wrote_read_as_the_same_values() {
    let campaign_json = br#"{"id":"spring-1","seq":3,"state":"running","decl":{"channel":"sms","name":"Unlimited","segment":"gold","priority":5,"expected_participants":2,"content":{"sms":{"from":"Telco","text":"Hi {{name}} https://t.example/x","track_links":true}}}}"#;
    assert_eq!(
        decode::<CampaignRecord>(campaign_json).expect("campaign"),
        campaign()
    );
    let participant_json =
        br#"{"customer":"ann","address":"+4915100000001","fields":{"gb":21.5,"name":"Ann","tags":["a",1]}}"#;
    assert_eq!(
        decode::<Participant>(participant_json).expect("participant"),
        participant()
    );
    let facts_json = br#"[{"cursor":41,"at":"2025-12-04T10:00:00.123Z","campaign":"spring-1","customer":"ann","type":"retry_scheduled","attempt":1,"reason":"451 4.2.2 mailbox full","replycode":451,"retry_at":"2025-12-04T10:00:30Z","status":"4.2.2"},{"cursor":42,"at":"2025-12-04T10:01:40Z","campaign":"spring-1","customer":"ann","type":"clicked","url":"https://shop.example/?a=1"}]"#;
    assert_eq!(decode::<Vec<Fact>>(facts_json).expect("facts"), facts());
    let state_json = br#"{"s":"bounced_soft","a":2,"d":1764842430000,"t":1764842400123}"#;
    assert_eq!(decode::<MessageState>(state_json).expect("status"), state());
}

#[test]
fn unknown_versions_and_garbage_are_named_errors() {
    let mut future = encode(&state());
    future[0] = 9;
    let err = decode::<MessageState>(&future).expect_err("version 9");
    assert!(
        err.to_string().contains("status") && err.to_string().contains("unknown record version 9"),
        "{err}"
    );
    let truncated = &encode(&campaign())[..10];
    let err = decode::<CampaignRecord>(truncated).expect_err("truncated");
    assert!(err.to_string().contains("campaign"), "{err}");
    assert!(decode::<Participant>(b"").is_err());
    assert!(decode::<Participant>(b"{\"customer\":").is_err());
}

/// Binary records are smaller than the first release's JSON for the same
/// participant and fact run (sizes printed; BENCHMARKS.md has them).
#[test]
fn binary_records_are_smaller_than_json() {
    let participant_json = br#"{"customer":"ann","address":"+4915100000001","fields":{"gb":21.5,"name":"Ann","tags":["a",1]}}"#;
    let facts_json = br#"[{"cursor":41,"at":"2025-12-04T10:00:00.123Z","campaign":"spring-1","customer":"ann","type":"retry_scheduled","attempt":1,"reason":"451 4.2.2 mailbox full","replycode":451,"retry_at":"2025-12-04T10:00:30Z","status":"4.2.2"},{"cursor":42,"at":"2025-12-04T10:01:40Z","campaign":"spring-1","customer":"ann","type":"clicked","url":"https://shop.example/?a=1"}]"#;
    for (what, binary, json) in [
        (
            "participant",
            encode(&participant()).len(),
            participant_json.len(),
        ),
        ("facts", encode(&facts()).len(), facts_json.len()),
    ] {
        println!("{what}: {binary} bytes binary, {json} bytes JSON");
        assert!(binary < json, "{what}: {binary} vs {json}");
    }
}
