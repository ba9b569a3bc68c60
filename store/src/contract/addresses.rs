//! The contract of addresses: an engine may keep them out of memory, but
//! every answer that carries one carries it as recorded, and an inbound
//! reply finds the latest message sent to its address.

use domain::{CampaignDecl, CampaignState, ChannelKind, FactDetail, MessageNo, Outcome, Update};

use super::{Harness, decl, participant};

/// `message`, `audience` and `last_message_to` give each participant's
/// own address (any case finds it; the newest campaign, and in it the
/// newest message, wins; another channel's messages never), before and
/// after a reopen, among enough participants that a lookup cannot be
/// luck.
pub async fn answers_carry_each_address_and_replies_find_their_message(h: &dyn Harness) {
    const N: usize = 2_000;
    let sms = || CampaignDecl::new(ChannelKind::Sms, "texts");
    let (older, newer, mail);
    {
        let store = h.open().await;
        older = store
            .put_campaign("older", sms())
            .await
            .expect("declare")
            .seq;
        newer = store
            .put_campaign("newer", sms())
            .await
            .expect("declare")
            .seq;
        mail = store
            .put_campaign("mail", decl())
            .await
            .expect("declare")
            .seq;
        let people: Vec<_> = (0..N).map(|i| participant(&format!("c{i}"))).collect();
        for id in ["older", "mail"] {
            store
                .add_participants(id, people.clone(), 1_000)
                .await
                .expect("add");
        }
        // In `newer` only every other customer, and c0 twice over (a
        // second customer with the same address, added later).
        let mut some: Vec<_> = people.iter().step_by(2).cloned().collect();
        some.push(domain::Participant {
            customer: "c0-again".into(),
            ..participant("c0")
        });
        store
            .add_participants("newer", some, 2_000)
            .await
            .expect("add");
        store
            .set_state("older", CampaignState::Running)
            .await
            .expect("state");
        let claims = store.claim(older, 5_000, N, 60_000).await.expect("claim");
        let updates = claims
            .iter()
            .map(|c| Update {
                msg: c.msg,
                at: 6_000,
                outcome: Outcome::Submitted {
                    detail: FactDetail::default(),
                    upstream: None,
                },
            })
            .collect();
        store.record(updates).await.expect("record");
    }
    for round in ["before a reopen", "after a reopen"] {
        let store = h.open().await;
        for i in [0, 1, 7, 1_234, N - 1] {
            let msg = MessageNo {
                campaign: older,
                participant: i as u32,
            };
            let info = store.message(msg).await.expect("message").expect("exists");
            assert_eq!(info.address, format!("c{i}@example.org"), "{round}");
            assert_eq!(info.customer, format!("c{i}"), "{round}");
        }
        let audience = store
            .audience("older", "submitted")
            .await
            .expect("audience");
        assert_eq!(audience.len(), N, "{round}");
        for member in &audience {
            assert_eq!(
                member.address,
                format!("{}@example.org", member.customer),
                "{round}"
            );
        }
        let last = |address: String| {
            let store = store.clone();
            async move {
                store
                    .last_message_to(ChannelKind::Sms, &address)
                    .await
                    .expect("last message")
            }
        };
        assert_eq!(
            last("C0@Example.ORG".into()).await,
            Some(MessageNo {
                campaign: newer,
                participant: (N / 2) as u32,
            }),
            "{round}: the newest campaign's newest message to the address"
        );
        assert_eq!(
            last("c2@example.org".into()).await,
            Some(MessageNo {
                campaign: newer,
                participant: 1,
            }),
            "{round}"
        );
        assert_eq!(
            last("c3@example.org".into()).await,
            Some(MessageNo {
                campaign: older,
                participant: 3,
            }),
            "{round}: not in the newer campaign"
        );
        assert_eq!(last("nobody@example.org".into()).await, None, "{round}");
        let by_mail = store
            .last_message_to(ChannelKind::Email, "c5@example.org")
            .await
            .expect("last message");
        assert_eq!(
            by_mail,
            Some(MessageNo {
                campaign: mail,
                participant: 5,
            }),
            "{round}: only the channel's own campaigns"
        );
    }
}

/// `participants` answers each message's participant as `participant`
/// does, in the order asked, across campaigns and with `None` for a
/// message that has none.
pub async fn participants_of_many_messages_come_in_the_order_asked(h: &dyn Harness) {
    let store = h.open().await;
    let mut claims = Vec::new();
    for (id, n) in [("a", 300), ("b", 200)] {
        let seq = store.put_campaign(id, decl()).await.expect("declare").seq;
        let people: Vec<_> = (0..n)
            .map(|i| domain::Participant {
                fields: [("n".to_owned(), domain::FieldValue::Text(format!("{id}{i}")))].into(),
                ..participant(&format!("{id}{i}"))
            })
            .collect();
        store
            .add_participants(id, people, 1_000)
            .await
            .expect("add");
        store
            .set_state(id, CampaignState::Running)
            .await
            .expect("state");
        claims.extend(store.claim(seq, 5_000, n, 60_000).await.expect("claim"));
    }
    assert_eq!(claims.len(), 500);
    // Interleaved, descending, and one number no one has.
    claims.reverse();
    claims.swap(0, 450);
    let mut msgs: Vec<MessageNo> = claims.iter().map(|c| c.msg).collect();
    let nobody = MessageNo {
        campaign: claims[0].msg.campaign,
        participant: 1_000_000,
    };
    msgs.insert(17, nobody);
    let mut expected: Vec<Option<domain::Participant>> =
        claims.into_iter().map(|c| Some(c.participant)).collect();
    expected.insert(17, None);

    let read = store.participants(&msgs).await.expect("participants");
    assert_eq!(read, expected);
    assert_eq!(store.participant(msgs[3]).await.expect("one"), expected[3]);
}
