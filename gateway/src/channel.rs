//! Upstream channels behind one trait. Each send ends in a
//! [`domain::Delivery`] that the rules turn into an outcome:
//! record success, fail for good, retry later, or slow the whole upstream
//! down. The [`Registry`] is the one place that lists the channels: a new
//! channel is a module implementing [`Channel`] and one line there.

pub mod email;
pub mod health;
pub mod mail;
mod registry;
pub mod sms;
pub mod smtp;
mod switch;
mod unfit;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use tokio::{
    sync::{Semaphore, SemaphorePermit, TryAcquireError},
    time::Instant,
};

pub use registry::{Deps, Registry};
pub use unfit::Unfit;

use crate::BoxError;
use clicktrack::LinkTable;
use domain::{CampaignDecl, CampaignRecord, ChannelKind, Delivery, Participant};
use rules::RetryPolicy;
use store::Claim;

/// Why a channel could not start, naming the configuration at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The DKIM key file could not be read or holds no RSA key.
    #[error("{}: {source}", .file.display())]
    DkimKey { file: PathBuf, source: BoxError },
    /// A TLS connector for `at` (`relay NAME`, `sms.smsc[i]`) could not be built.
    #[error("{at}: TLS: {source}")]
    Tls { at: String, source: BoxError },
    #[error("relay {relay}: environment variable {var} is not set")]
    RelaySecret { relay: String, var: String },
    #[error("sms.smsc[{index}]: {source}")]
    SmscPassword {
        index: usize,
        source: crate::config::PasswordError,
    },
    #[error("too many SMSCs")]
    TooManySmscs,
}

/// Why one participant cannot be sent to, if it cannot.
pub type ParticipantCheck = Box<dyn Fn(&Participant) -> Option<Unfit> + Send + Sync>;

/// One participant's message as a campaign would send it, without tracking
/// (`POST /v1/campaigns/{id}/preview`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preview {
    Email {
        from: String,
        subject: String,
        text: String,
        html: Option<String>,
    },
    Sms {
        from: String,
        text: String,
        /// The alphabet and parts of the text as sent, its tracked links at
        /// their longest.
        coding: smpp::text::Coding,
        parts: usize,
    },
}

/// One channel as the dispatcher and the API see it.
#[async_trait]
pub trait Channel: Send + Sync + 'static {
    /// The campaigns it sends (a campaign's declared `channel`).
    fn kind(&self) -> ChannelKind;

    /// Sends in flight at most (the dispatcher's permits).
    fn concurrency(&self) -> usize;

    /// Back-off and attempts after a temporary failure.
    fn retry(&self) -> &RetryPolicy;

    /// Some upstream is configured.
    fn is_configured(&self) -> bool;

    /// Why a configured upstream cannot take messages now, one reason per
    /// upstream naming it and its address (for `/readyz`); empty when all can.
    fn not_ready(&self) -> Vec<String>;

    /// Each configured upstream's health, in configured order.
    fn connectors(&self) -> Vec<health::ConnectorReport>;

    /// Starts (`on`) or stops the connector named `name`; its health
    /// after, or `None` when the channel has no connector of that name.
    fn switch_connector(&self, name: &str, on: bool) -> Option<health::ConnectorReport>;

    /// Why `campaign` cannot start on this channel, if it cannot.
    fn start_blocker(&self, campaign: &CampaignRecord) -> Option<String>;

    /// Every problem of the content `decl` gives this channel, each naming
    /// its field; `seq` is the campaign's number (an SMS text's tracked
    /// links, and so its length, depend on it).
    fn content_problems(&self, decl: &CampaignDecl, seq: u32) -> Vec<String>;

    /// The links of a campaign's content that tracking rewrites, in order.
    fn link_table(&self, decl: &CampaignDecl) -> Result<LinkTable, clicktrack::Error>;

    /// The check of each participant of `campaign` at upload: why it cannot
    /// be sent to (its address, the template's fields), if it cannot.
    fn participant_check(&self, campaign: &CampaignRecord) -> Result<ParticipantCheck, Unfit>;

    /// `p`'s message of `campaign`, parsed afresh (a declared campaign's
    /// content may still change), or why `p` cannot be sent to.
    fn preview(&self, campaign: &CampaignRecord, p: &Participant) -> Result<Preview, Unfit>;

    /// Sends `p`'s message of `campaign` now, links untracked, outside the
    /// campaign: no message is stored, no fact written, no limit counted.
    async fn send_test(
        &self,
        campaign: &CampaignRecord,
        p: &Participant,
    ) -> Result<Delivery, Unfit>;

    /// Personalises and sends one claimed message, done by `done_by` (its
    /// lease's margin): a send that could not reach the upstream in time to
    /// be answered by then (all connections busy, the window full) is
    /// handed back unsent rather than cut off on its way.
    async fn send(&self, campaign: &CampaignRecord, claim: &Claim, done_by: Instant) -> Delivery;

    /// Stops taking messages and closes upstream connections.
    async fn close(&self);
}

/// How long a test send (no lease) may wait for the upstream to take it.
const TEST_SEND_WAIT: Duration = Duration::from_secs(30);

/// The deadline of a test send whose answer can take `longest`: it waits
/// [`TEST_SEND_WAIT`] at most for the upstream to take it.
fn test_send_deadline(longest: Duration) -> Instant {
    Instant::now() + TEST_SEND_WAIT + longest
}

/// The latest moment a send may wait until before it starts, to be
/// answered by `done_by` when an answer can take `longest`.
fn start_by(done_by: Instant, longest: Duration) -> Instant {
    done_by.checked_sub(longest).unwrap_or_else(Instant::now)
}

/// Why [`permits_by`] got none.
enum NoPermit {
    /// None came free by the time asked.
    TooLate,
    /// The semaphore is closed (its upstream is going away).
    Closed,
}

/// `n` permits of `room` (an SMPP window, a relay's connections) by `by`.
/// Free ones are taken without arming a timer, as most are.
async fn permits_by(
    room: &Semaphore,
    n: u32,
    by: Instant,
) -> Result<SemaphorePermit<'_>, NoPermit> {
    match room.try_acquire_many(n) {
        Ok(permit) => Ok(permit),
        Err(TryAcquireError::Closed) => Err(NoPermit::Closed),
        Err(TryAcquireError::NoPermits) => {
            match tokio::time::timeout_at(by, room.acquire_many(n)).await {
                Ok(acquired) => acquired.map_err(|_| NoPermit::Closed),
                Err(_) => Err(NoPermit::TooLate),
            }
        }
    }
}

/// A campaign's content parsed once, per campaign number: content is fixed
/// once a campaign starts, so the parse is kept for every later message.
pub struct Parsed<T>(Mutex<HashMap<u32, Arc<T>>>);

impl<T> Default for Parsed<T> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<T> Parsed<T> {
    /// The campaign's parsed content, parsing it with `parse` the first time.
    pub fn get(
        &self,
        campaign: &CampaignRecord,
        parse: impl FnOnce(&CampaignRecord) -> Result<T, Unfit>,
    ) -> Result<Arc<T>, Unfit> {
        let mut cache = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = cache.get(&campaign.seq) {
            return Ok(t.clone());
        }
        let parsed = Arc::new(parse(campaign)?);
        cache.insert(campaign.seq, parsed.clone());
        Ok(parsed)
    }
}
