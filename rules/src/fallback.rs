//! A campaign's fallback: whether a message that ended undelivered goes to
//! the fallback campaign, and the participant that campaign gets.

use domain::{Fallback, FieldValue, Millis, Participant, Undelivered, is_msisdn};

/// Whether fallback `f` takes a message that ended `how` at `at`;
/// `handed_at` is when it was handed to the relay, if it was (a bounce
/// returning later than `f.after` after it no longer counts).
pub fn falls_back(f: &Fallback, how: Undelivered, handed_at: Option<Millis>, at: Millis) -> bool {
    if !f.on.contains(&how) {
        return false;
    }
    match (f.after_ms(), handed_at) {
        (Ok(Some(after)), Some(handed)) => at.saturating_sub(handed) <= after,
        // No limit, or refused at declaration (never stored).
        _ => true,
    }
}

/// The participant the fallback campaign gets: the same customer, segment
/// and fields, addressed to the number in `f.address_field`; or why there
/// is none.
pub fn fallback_participant(f: &Fallback, p: &Participant) -> Result<Participant, String> {
    let address = p
        .fields
        .get(&f.address_field)
        .map(FieldValue::render)
        .unwrap_or_default();
    if address.is_empty() {
        return Err(format!(
            "no fallback address: field `{}` is missing or empty",
            f.address_field
        ));
    }
    if !is_msisdn(address) {
        return Err(format!(
            "fallback address `{address}` (field `{}`) is not a +E.164 number",
            f.address_field
        ));
    }
    Ok(Participant {
        address: address.to_owned(),
        ..p.clone()
    })
}

#[cfg(test)]
mod tests {
    use domain::fields_from_json;

    use super::*;

    fn participant(fields: serde_json::Value) -> Participant {
        Participant {
            customer: "c1".into(),
            address: "ann@example.org".into(),
            segment: Some("gold".into()),
            fields: fields_from_json(fields.as_object().cloned().unwrap_or_default()),
        }
    }

    #[test]
    fn only_the_declared_triggers_fall_back_and_a_late_bounce_does_not() {
        let mut f = Fallback::to("sms");
        f.on = vec![Undelivered::BouncedHard];
        f.after = Some("PT6H".into());
        let hour = 3_600_000;
        assert!(falls_back(&f, Undelivered::BouncedHard, None, 10 * hour));
        assert!(falls_back(
            &f,
            Undelivered::BouncedHard,
            Some(hour),
            7 * hour
        ));
        assert!(!falls_back(
            &f,
            Undelivered::BouncedHard,
            Some(hour),
            7 * hour + 1
        ));
        assert!(!falls_back(&f, Undelivered::Failed, None, hour));
        assert!(!falls_back(&f, Undelivered::NoAddress, None, hour));
    }

    #[test]
    fn the_fallback_participant_is_the_same_customer_at_the_number_in_its_field() {
        let f = Fallback::to("sms");
        let p = participant(serde_json::json!({"phone": "+4915112345678", "name": "Ann"}));
        let sms = fallback_participant(&f, &p).expect("a number");
        assert_eq!(sms.address, "+4915112345678");
        assert_eq!(
            (sms.customer.as_str(), &sms.segment, &sms.fields),
            ("c1", &p.segment, &p.fields)
        );

        let missing = fallback_participant(&f, &participant(serde_json::json!({"name": "Ann"})));
        assert_eq!(
            missing,
            Err("no fallback address: field `phone` is missing or empty".into())
        );
        let bad = fallback_participant(&f, &participant(serde_json::json!({"phone": "0151 123"})));
        assert_eq!(
            bad,
            Err("fallback address `0151 123` (field `phone`) is not a +E.164 number".into())
        );
    }
}
