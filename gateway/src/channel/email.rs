//! The e-mail channel as the dispatcher sees it: personalise a claimed
//! message, track its links, give it a verifiable Return-Path, sign it, hand
//! it to a relay.

use std::sync::Arc;

use super::{
    Parsed,
    mail::{Dkim, Envelope, MailTemplate},
    smtp::RelayPool,
};
use crate::{
    domain::{CampaignRecord, Delivery},
    store::Claim,
    tracking::Links,
    verp::ReturnPaths,
};

pub struct EmailChannel {
    pub relays: RelayPool,
    pub return_paths: ReturnPaths,
    pub dkim: Option<Dkim>,
    pub links: Arc<Links>,
    templates: Parsed<MailTemplate>,
}

impl std::fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChannel")
            .field("relays", &self.relays)
            .finish_non_exhaustive()
    }
}

impl EmailChannel {
    pub fn new(
        relays: RelayPool,
        return_paths: ReturnPaths,
        dkim: Option<Dkim>,
        links: Arc<Links>,
    ) -> Self {
        Self {
            relays,
            return_paths,
            dkim,
            links,
            templates: Parsed::default(),
        }
    }

    fn template(&self, campaign: &CampaignRecord) -> Result<Arc<MailTemplate>, String> {
        self.templates.get(campaign, |campaign| {
            let content = campaign
                .decl
                .content
                .as_ref()
                .and_then(|c| c.email.as_ref())
                .ok_or_else(|| "campaign has no e-mail content".to_owned())?;
            MailTemplate::new(content).map_err(|p| p.join("; "))
        })
    }

    pub async fn send(&self, campaign: &CampaignRecord, claim: &Claim, now_secs: i64) -> Delivery {
        let template = match self.template(campaign) {
            Ok(t) => t,
            Err(reply) => return Delivery::Permanent { reply },
        };
        if let Err(reply) = template.check(&claim.participant) {
            return Delivery::Permanent { reply };
        }
        let return_path = self.return_paths.address(claim.msg);
        let mut mail = template.render(&claim.participant);
        let unsubscribe = self
            .links
            .track(campaign, claim.msg, &claim.participant, &mut mail);
        let envelope = Envelope {
            message_id: &return_path,
            list_unsubscribe: Some(&unsubscribe),
            date: now_secs,
        };
        let message = match template.build(mail, &envelope, self.dkim.as_ref()) {
            Ok(m) => m,
            Err(e) => {
                return Delivery::Permanent {
                    reply: format!("building the message: {e}"),
                };
            }
        };
        self.relays
            .send(&return_path, &claim.participant.address, &message)
            .await
    }
}
