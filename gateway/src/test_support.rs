//! What the gateway's unit tests build alike.

use std::sync::Arc;

use domain::{CampaignDecl, ChannelKind, MessageNo, Participant};
use store::Store;

/// E-mail campaign `id` with one participant, `ann@example.org`
/// (customer `ann`): her message.
pub async fn ann_in_a_campaign(store: &Arc<dyn Store>, id: &str) -> MessageNo {
    let decl = CampaignDecl::new(ChannelKind::Email, id);
    let seq = store.put_campaign(id, decl).await.expect("declare").seq;
    let ann = Participant {
        customer: "ann".into(),
        address: "ann@example.org".into(),
        segment: None,
        fields: Default::default(),
    };
    store.add_participants(id, vec![ann], 1).await.expect("add");
    MessageNo {
        campaign: seq,
        participant: 0,
    }
}
