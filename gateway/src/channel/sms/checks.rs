//! What the API checks of an SMS campaign before it is sent: the declared
//! sender and text, and each participant's number and fields, with tracked
//! links counted at their longest.

use std::sync::Arc;

use domain::{CampaignRecord, SmsContent, is_msisdn};

use super::{SmsTemplate, sender_problem};
use crate::{
    channel::{ParticipantCheck, Unfit},
    links::{Links, sms_table},
};

/// Why an SMS content of campaign number `seq` cannot be sent to anyone, a
/// problem each: a bad sender; a text that does not parse, or needs more
/// than `max_parts` parts even without its fields (with tracked links at
/// their longest).
pub fn content_problems(
    content: &SmsContent,
    seq: u32,
    max_parts: usize,
    links: &Links,
) -> Vec<String> {
    let sender = sender_problem(&content.from).map(|unfit| unfit.to_string());
    let text = match SmsTemplate::with_any_sender(content, max_parts) {
        Ok(template) => {
            let table = sms_table(content).unwrap_or_default();
            template.problem(|p, text| links.longest_sms(&table, p, text, seq))
        }
        Err(unfit) => Some(unfit.to_string()),
    };
    sender.into_iter().chain(text).collect()
}

/// Each participant of `campaign`: an E.164 number, and a personalised text
/// that fits once its links are tracked.
pub fn participant_check(
    campaign: &CampaignRecord,
    max_parts: usize,
    links: Arc<Links>,
) -> Result<ParticipantCheck, Unfit> {
    let content = campaign.decl.sms();
    let template = content
        .map(|c| SmsTemplate::new(c, max_parts))
        .transpose()?;
    // The links are the same for every participant: found once.
    let table = content
        .map(|c| sms_table(c).unwrap_or_default())
        .unwrap_or_default();
    let seq = campaign.seq;
    Ok(Box::new(move |p| {
        if !is_msisdn(&p.address) {
            return Some(Unfit::NotANumber(p.address.clone()));
        }
        let longest = |p: &_, text: &str| links.longest_sms(&table, p, text, seq);
        template.as_ref().and_then(|t| t.check(p, longest).err())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::test_links as links;

    fn sms(text: &str, track_links: bool) -> SmsContent {
        SmsContent {
            from: "Sluice".into(),
            text: text.into(),
            track_links,
        }
    }

    #[test]
    fn numbers_are_e164() {
        assert!(is_msisdn("+4915112345678"));
        assert!(!is_msisdn("015112345678"));
        assert!(!is_msisdn("+49 151"));
    }

    #[test]
    fn an_sms_text_too_long_even_without_fields_is_refused_with_its_part_count() {
        let long = "x".repeat(153 * 3 + 1);
        let problems =
            content_problems(&sms(&format!("{long}{{{{name}}}}"), false), 0, 3, &links());
        assert!(
            problems.len() == 1 && problems[0].contains("needs 4 parts"),
            "{problems:?}"
        );
        assert!(content_problems(&sms("Hi {{name}}", false), 0, 3, &links()).is_empty());
    }

    #[test]
    fn a_bad_sender_and_a_bad_text_are_told_together() {
        let bad_sender = SmsContent {
            from: "not a sender!".into(),
            ..sms("Hi", false)
        };
        assert_eq!(content_problems(&bad_sender, 0, 3, &links()).len(), 1);
        let both = SmsContent {
            from: "not a sender!".into(),
            ..sms(&"x".repeat(153 * 3 + 1), false)
        };
        let problems = content_problems(&both, 0, 3, &links());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[1].contains("needs 4 parts"), "{problems:?}");
    }

    #[test]
    fn a_tracked_sms_is_checked_with_its_links_at_their_longest() {
        // 160 characters fit one part; a short link grows to the tracking URL.
        let text = format!("{} https://a.b/c", "x".repeat(160 - 14));
        assert_eq!(text.len(), 160);
        assert!(content_problems(&sms(&text, false), 0, 1, &links()).is_empty());
        let problems = content_problems(&sms(&text, true), 0, 1, &links());
        assert!(
            problems.len() == 1 && problems[0].contains("needs 2 parts"),
            "{problems:?}"
        );
    }
}
