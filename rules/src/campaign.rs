//! What a campaign's lifecycle allows: who may still join it, and when it
//! is done. The dispatcher and the API ask, and an engine checks the same
//! in the write that would break it, so no race gets past them.

use domain::CampaignState;

/// Whether a campaign in `state` takes new participants: a finished or
/// cancelled one never silently sends again (new participants go to a new
/// campaign, which may be built from this one's audience). Returns the
/// state's name when it does not.
pub fn closed_to_participants(state: CampaignState) -> Option<&'static str> {
    match state {
        CampaignState::Cancelled => Some("cancelled"),
        CampaignState::Finished => Some("finished"),
        _ => None,
    }
}

/// Whether a running campaign is done: nothing left to send, nothing in
/// flight, and no upload to it still being read.
pub fn may_finish(pending: u64, in_flight: u64, staged: u64) -> bool {
    pending == 0 && in_flight == 0 && staged == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ended_campaigns_are_closed_and_an_upload_keeps_one_open() {
        assert_eq!(closed_to_participants(CampaignState::Running), None);
        assert_eq!(closed_to_participants(CampaignState::Declared), None);
        assert_eq!(closed_to_participants(CampaignState::Paused), None);
        assert_eq!(
            closed_to_participants(CampaignState::Cancelled),
            Some("cancelled")
        );
        assert_eq!(
            closed_to_participants(CampaignState::Finished),
            Some("finished")
        );
        assert!(may_finish(0, 0, 0));
        assert!(!may_finish(0, 0, 1), "an upload being read");
        assert!(!may_finish(1, 0, 0));
        assert!(!may_finish(0, 1, 0));
    }
}
