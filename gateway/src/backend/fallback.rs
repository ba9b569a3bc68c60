//! A declaration's fallback, checked against the campaigns it names: an
//! e-mail campaign falls back to an SMS campaign that exists, without a
//! cycle through the fallbacks of others.

use domain::{CampaignDecl, ChannelKind, Fallback};
use store::Store;

use super::store_error;
use admin_api::{BackendResult, types::v1::valid_id};

/// Every problem of campaign `id`'s fallback `f`, each naming its field.
pub(super) async fn problems(
    store: &dyn Store,
    id: &str,
    decl: &CampaignDecl,
    f: &Fallback,
) -> BackendResult<Vec<String>> {
    let mut problems = own_problems(decl, f);
    if !valid_id(&f.campaign) {
        return Ok(problems);
    }
    let mut next = Some(f.campaign.clone());
    let mut hops = 0;
    while let Some(target) = next.take() {
        if target == id {
            problems.push(format!(
                "fallback.campaign: `{}` would form a cycle back to `{id}`",
                f.campaign
            ));
            break;
        }
        let Some(record) = store.campaign(&target).await.map_err(store_error)? else {
            if hops == 0 {
                problems.push(format!(
                    "fallback.campaign: no campaign `{target}` (declare it first)"
                ));
            }
            break;
        };
        if hops == 0 && record.decl.channel != ChannelKind::Sms {
            problems.push(format!(
                "fallback.campaign: `{target}` is an {} campaign; a fallback goes to SMS",
                record.decl.channel.as_str()
            ));
        }
        next = record.decl.fallback.map(|f| f.campaign);
        hops += 1;
    }
    Ok(problems)
}

/// What the fallback's own fields say, whatever the campaigns.
fn own_problems(decl: &CampaignDecl, f: &Fallback) -> Vec<String> {
    let mut problems = Vec::new();
    if decl.channel != ChannelKind::Email {
        problems.push("fallback: only an e-mail campaign falls back (to SMS)".to_owned());
    }
    if !valid_id(&f.campaign) {
        problems.push(format!(
            "fallback.campaign: `{}` is not a campaign id",
            f.campaign
        ));
    }
    if f.on.is_empty() {
        problems.push(
            "fallback.on: empty; name at least one of bounced_hard, failed, no_address".to_owned(),
        );
    }
    if f.address_field.trim().is_empty() {
        problems.push("fallback.address_field: must name a participant field".to_owned());
    }
    if let Err(e) = f.after_ms() {
        problems.push(format!("fallback.after: {e}"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use domain::{CampaignDecl, ChannelKind, Fallback};
    use store::{Store, embedded::Embedded};

    use super::problems;

    fn email(fallback: Fallback) -> CampaignDecl {
        CampaignDecl {
            fallback: Some(fallback),
            ..CampaignDecl::new(ChannelKind::Email, "stage 1")
        }
    }

    #[tokio::test]
    async fn a_fallback_names_an_sms_campaign_that_exists_without_a_cycle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(Embedded::open(dir.path()).expect("store"));
        let s = store.as_ref();
        store
            .put_campaign("sms", CampaignDecl::new(ChannelKind::Sms, "stage 2"))
            .await
            .expect("sms");
        store
            .put_campaign("other-mail", email(Fallback::to("mail")))
            .await
            .expect("mail");
        let check = |id: &'static str, decl: CampaignDecl| async move {
            let f = decl.fallback.clone().expect("a fallback");
            problems(s, id, &decl, &f).await.expect("store answers")
        };
        assert_eq!(
            check("mail", email(Fallback::to("sms"))).await,
            Vec::<String>::new()
        );
        assert_eq!(
            check("mail", email(Fallback::to("ghost"))).await,
            ["fallback.campaign: no campaign `ghost` (declare it first)"]
        );
        assert_eq!(
            check("mail", email(Fallback::to("other-mail"))).await,
            [
                "fallback.campaign: `other-mail` is an email campaign; a fallback goes to SMS",
                "fallback.campaign: `other-mail` would form a cycle back to `mail`",
            ]
        );
        assert_eq!(
            check("mail", email(Fallback::to("mail"))).await,
            ["fallback.campaign: `mail` would form a cycle back to `mail`"]
        );
        let bad = Fallback {
            on: vec![],
            after: Some("P1M".into()),
            address_field: " ".into(),
            ..Fallback::to("bad id")
        };
        let sms_with_fallback = CampaignDecl {
            fallback: Some(bad),
            ..CampaignDecl::new(ChannelKind::Sms, "x")
        };
        assert_eq!(
            check("x", sms_with_fallback).await,
            [
                "fallback: only an e-mail campaign falls back (to SMS)",
                "fallback.campaign: `bad id` is not a campaign id",
                "fallback.on: empty; name at least one of bounced_hard, failed, no_address",
                "fallback.address_field: must name a participant field",
                "fallback.after: `P1M` is not an ISO 8601 duration in weeks, days, hours, minutes or seconds",
            ]
        );
    }
}
