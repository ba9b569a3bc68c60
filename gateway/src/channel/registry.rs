//! The channels of the daemon: started here, found by kind. Adding a channel
//! is its module and one line in [`Registry::start`].

use std::sync::Arc;

use super::{Channel, StartError, email::EmailChannel, sms::SmsChannel};
use domain::ChannelKind;

use store::Store;

use crate::{
    config::Config, links::Links, metrics::Metrics, recorded::Recorded, verp::ReturnPaths,
};

/// What a channel may need to start.
pub struct Deps<'a> {
    pub config: &'a Config,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub links: Arc<Links>,
    pub return_paths: ReturnPaths,
    /// How many of the dispatcher's outcomes are durable (receipts wait
    /// for their submit's).
    pub recorded: Recorded,
}

/// Every channel the daemon runs, one per kind.
#[derive(Clone)]
pub struct Registry {
    channels: Vec<Arc<dyn Channel>>,
}

impl Registry {
    /// Starts every channel; their order is the order of metrics and checks.
    pub fn start(deps: &Deps<'_>) -> Result<Self, StartError> {
        let channels: Vec<Arc<dyn Channel>> = vec![
            Arc::new(EmailChannel::start(deps)?),
            Arc::new(SmsChannel::start(deps)?),
        ];
        for channel in &channels {
            deps.metrics.know_channel(channel.kind().as_str());
        }
        Ok(Self { channels })
    }

    /// The kinds of every channel, in order.
    pub fn kinds(&self) -> impl Iterator<Item = ChannelKind> + '_ {
        self.channels.iter().map(|c| c.kind())
    }

    /// The channel sending campaigns of `kind`, if one runs.
    pub fn get(&self, kind: ChannelKind) -> Option<&Arc<dyn Channel>> {
        self.channels.iter().find(|c| c.kind() == kind)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Channel>> {
        self.channels.iter()
    }
}
