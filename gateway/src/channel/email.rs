//! The e-mail channel as the dispatcher sees it: personalise a claimed
//! message, track its links, give it a verifiable Return-Path, sign it, hand
//! it to a relay.

use std::sync::Arc;

use async_trait::async_trait;
use clicktrack::LinkTable;

use super::{
    Channel, Deps, Parsed, ParticipantCheck, Preview, StartError, Unfit,
    health::ConnectorReport,
    mail::{Dkim, Envelope, MailTemplate, Rendered, is_email},
    smtp::RelayPool,
    test_send_deadline,
};
use rules::RetryPolicy;
use store::Claim;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{links::Links, verp::ReturnPaths};
use domain::{
    CampaignDecl, CampaignRecord, ChannelKind, Delivery, EmailContent, Participant, now_ms,
};

pub struct EmailChannel {
    relays: Arc<RelayPool>,
    /// Stops the relays' probe at shutdown.
    stop: CancellationToken,
    return_paths: ReturnPaths,
    dkim: Option<Arc<Dkim>>,
    links: Arc<Links>,
    templates: Parsed<MailTemplate>,
    retry: RetryPolicy,
    /// Sends in flight at most (`dispatch.concurrency`).
    concurrency: usize,
}

impl std::fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChannel")
            .field("relays", &self.relays)
            .finish_non_exhaustive()
    }
}

impl EmailChannel {
    /// Loads the DKIM key and sets up the relay pool of `[email]`.
    pub fn start(deps: &Deps<'_>) -> Result<Self, StartError> {
        let config = &deps.config.email;
        let dkim = match &config.dkim {
            Some(d) => Some(Arc::new(Dkim::load(&d.domain, &d.selector, &d.key_file)?)),
            None => None,
        };
        let relays = Arc::new(RelayPool::new(&config.relays, &config.helo)?);
        relays.report_health(&deps.metrics);
        let stop = CancellationToken::new();
        tokio::spawn(relays.clone().watch(stop.clone()));
        if relays.is_empty() {
            tracing::warn!(
                "no SMTP relay configured: e-mail campaigns cannot start and /readyz says not ready"
            );
        }
        Ok(Self {
            relays,
            stop,
            return_paths: deps.return_paths.clone(),
            dkim,
            links: deps.links.clone(),
            templates: Parsed::default(),
            retry: config.retry(),
            concurrency: deps.config.dispatch.concurrency,
        })
    }

    fn template(&self, campaign: &CampaignRecord) -> Result<Arc<MailTemplate>, Unfit> {
        self.templates.get(campaign, |campaign| {
            let content = campaign.decl.email().ok_or(Unfit::NoContent("e-mail"))?;
            MailTemplate::new(content).map_err(Unfit::EmailContent)
        })
    }

    /// A built message, signed if DKIM is set up; else what becomes of the
    /// send: a message that cannot be built never can, one whose signing
    /// broke may be signed next time.
    async fn signed(&self, built: std::io::Result<Vec<u8>>) -> Result<Vec<u8>, Delivery> {
        let message = built.map_err(|e| Delivery::Permanent {
            reply: format!("building the message: {e}"),
        })?;
        match &self.dkim {
            Some(dkim) => dkim.sign_apart(message).await.map_err(|reply| {
                tracing::error!(error = %reply, "DKIM signing failed");
                Delivery::Transient {
                    reply,
                    retry_after: None,
                }
            }),
            None => Ok(message),
        }
    }

    /// `p`'s subject and bodies with links as written: a test or a preview
    /// has no message to sign tracked links for.
    fn untracked(&self, template: &MailTemplate, p: &Participant) -> Rendered {
        let mut mail = template.render(p);
        mail.text = self.links.untracked(&mail.text, false);
        mail.html = mail.html.map(|html| self.links.untracked(&html, true));
        mail
    }

    async fn deliver(
        &self,
        campaign: &CampaignRecord,
        claim: &Claim,
        done_by: Instant,
    ) -> Delivery {
        let template = match self.template(campaign) {
            Ok(t) => t,
            Err(unfit) => return Delivery::permanent(unfit),
        };
        if let Err(unfit) = template.check(&claim.participant) {
            return Delivery::permanent(unfit);
        }
        let return_path = self.return_paths.address(claim.msg);
        let mut mail = template.render(&claim.participant);
        let table = self.links.table(campaign, |decl| self.link_table(decl));
        let unsubscribe = self.links.track(
            &table,
            claim.msg,
            &claim.participant,
            &mut mail.text,
            &mut mail.html,
        );
        let envelope = Envelope {
            message_id: &return_path,
            list_unsubscribe: Some(&unsubscribe),
            date: (now_ms() / 1000) as i64,
        };
        let message = match self.signed(template.build(mail, &envelope)).await {
            Ok(m) => m,
            Err(failed) => return failed,
        };
        let to = &claim.participant.address;
        self.relays.send(&return_path, to, &message, done_by).await
    }
}

/// `campaign`'s e-mail content and its template parsed afresh (a declared
/// campaign's content may still change), once `p` can receive it.
fn checked<'c>(
    campaign: &'c CampaignRecord,
    p: &Participant,
) -> Result<(&'c EmailContent, MailTemplate), Unfit> {
    let content = campaign.decl.email().ok_or(Unfit::NoContent("e-mail"))?;
    let template = MailTemplate::new(content).map_err(Unfit::EmailContent)?;
    template.check(p)?;
    Ok((content, template))
}

#[async_trait]
impl Channel for EmailChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    fn is_configured(&self) -> bool {
        !self.relays.is_empty()
    }

    /// Relays are connected per send; one whose last connection failed
    /// (at a send or the pool's own probe) is not ready.
    fn not_ready(&self) -> Vec<String> {
        self.relays.failures()
    }

    fn connectors(&self) -> Vec<ConnectorReport> {
        self.relays.reports()
    }

    fn switch_connector(&self, name: &str, on: bool) -> Option<ConnectorReport> {
        self.relays.switch(name, on)
    }

    fn start_blocker(&self, campaign: &CampaignRecord) -> Option<String> {
        if campaign.decl.email().is_none() {
            Some(Unfit::NoContent("e-mail").to_string())
        } else if !self.is_configured() {
            Some("no SMTP relay is configured".into())
        } else {
            None
        }
    }

    fn content_problems(&self, decl: &CampaignDecl, _seq: u32) -> Vec<String> {
        match decl.email() {
            Some(content) => MailTemplate::new(content).err().unwrap_or_default(),
            None => vec!["content.email: required for an email campaign".into()],
        }
    }

    /// The links of the text and HTML parts.
    fn link_table(&self, decl: &CampaignDecl) -> Result<LinkTable, clicktrack::Error> {
        match decl.email() {
            Some(e) => LinkTable::from_template(Some(&e.text), e.html.as_deref()),
            None => Ok(LinkTable::new()),
        }
    }

    fn participant_check(&self, campaign: &CampaignRecord) -> Result<ParticipantCheck, Unfit> {
        Ok(match campaign.decl.email() {
            Some(content) => {
                let template = MailTemplate::new(content).map_err(Unfit::EmailContent)?;
                Box::new(move |p| template.check(p).err())
            }
            None => Box::new(|p| {
                (!is_email(&p.address)).then(|| Unfit::NotAnEmailAddress(p.address.clone()))
            }),
        })
    }

    fn preview(&self, campaign: &CampaignRecord, p: &Participant) -> Result<Preview, Unfit> {
        let (content, template) = checked(campaign, p)?;
        let mail = self.untracked(&template, p);
        Ok(Preview::Email {
            from: content.from.clone(),
            subject: mail.subject,
            text: mail.text,
            html: mail.html,
        })
    }

    /// From `test-send@` the bounce domain, which names no message: a
    /// bounce of it is recorded as unmatched and suppresses nobody.
    async fn send_test(
        &self,
        campaign: &CampaignRecord,
        p: &Participant,
    ) -> Result<Delivery, Unfit> {
        let (_, template) = checked(campaign, p)?;
        let domain = self.return_paths.domain();
        let message_id = format!("test-{:016x}@{domain}", rand::random::<u64>());
        let envelope = Envelope {
            message_id: &message_id,
            list_unsubscribe: None,
            date: (now_ms() / 1000) as i64,
        };
        let built = template.build(self.untracked(&template, p), &envelope);
        let message = match self.signed(built).await {
            Ok(m) => m,
            Err(failed) => return Ok(failed),
        };
        let sender = format!("test-send@{domain}");
        let done_by = test_send_deadline(self.relays.longest_send());
        Ok(self
            .relays
            .send(&sender, &p.address, &message, done_by)
            .await)
    }

    async fn send(&self, campaign: &CampaignRecord, claim: &Claim, done_by: Instant) -> Delivery {
        self.deliver(campaign, claim, done_by).await
    }

    async fn close(&self) {
        self.stop.cancel();
        self.relays.close().await;
    }
}
