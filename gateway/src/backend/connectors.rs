//! `GET /v1/channels`: each channel's connectors as the API shows them.

use admin_api::types::v1::{self, ChannelHealth, ChannelsView, ConnectorHealth, ConnectorState};
use domain::rfc3339;

use crate::channel::{
    Registry,
    health::{Condition, ConnectorReport},
};

pub(super) fn view(channels: &Registry) -> ChannelsView {
    let channels = channels
        .iter()
        .map(|channel| ChannelHealth {
            channel: v1::ChannelKind::from(channel.kind()),
            connectors: channel.connectors().into_iter().map(health).collect(),
        })
        .collect();
    ChannelsView { channels }
}

pub(super) fn health(report: ConnectorReport) -> ConnectorHealth {
    let (last_error, last_error_at) = report
        .last_error
        .map(|(error, at)| (error, rfc3339(at)))
        .unzip();
    ConnectorHealth {
        kind: report.kind.to_owned(),
        name: report.name,
        address: report.address,
        state: match report.condition {
            Condition::Up => ConnectorState::Up,
            Condition::Connecting => ConnectorState::Connecting,
            Condition::Failing => ConnectorState::Failing,
            Condition::Stopped => ConnectorState::Stopped,
        },
        last_error,
        last_error_at,
        binds_up: report.binds.map(|(up, _)| up),
        binds: report.binds.map(|(_, all)| all),
    }
}
