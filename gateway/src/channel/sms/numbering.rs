//! A handset's number as an SMSC writes it in a `deliver_sm`, turned into
//! the form participants are uploaded in (`+E.164`), so that a STOP finds
//! the messages sent to it. SMSCs write numbers international (TON 1),
//! national (TON 2: `015112345678` or `15112345678`), or of unknown type
//! in either form; a national number needs the country's code
//! (`sms.country_code`).

/// How this gateway's SMSCs number handsets.
#[derive(Debug, Clone, Default)]
pub struct Numbering {
    /// The country code (`49`) national numbers are read in.
    pub country_code: Option<String>,
}

/// SMPP type of number (SMPP 3.4 §5.2.5).
const INTERNATIONAL: u8 = 1;
const NATIONAL: u8 = 2;

impl Numbering {
    /// `addr` (of type `ton`) as `+digits` when it is a number whose
    /// country is known; otherwise as given.
    pub fn international(&self, addr: &str, ton: u8) -> String {
        let digits = addr.trim_start_matches('+');
        let numeric = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        if !numeric {
            return addr.to_owned();
        }
        if ton == INTERNATIONAL || addr.starts_with('+') {
            return format!("+{digits}");
        }
        if let Some(cc) = &self.country_code {
            if let Some(rest) = digits.strip_prefix("00") {
                // Dialled with the international prefix.
                return format!("+{rest}");
            }
            if let Some(rest) = digits.strip_prefix('0') {
                // The national trunk prefix.
                return format!("+{cc}{rest}");
            }
            if ton == NATIONAL {
                return format!("+{cc}{digits}");
            }
        }
        // A long number of unknown type is international without its `+`
        // (most SMSCs leave it out); no country code starts with 0. A
        // national one stays as written without a country to read it in.
        if ton != NATIONAL && digits.len() > 8 && !digits.starts_with('0') {
            format!("+{digits}")
        } else {
            addr.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn germany() -> Numbering {
        Numbering {
            country_code: Some("49".into()),
        }
    }

    #[test]
    fn international_numbers_get_their_plus() {
        for numbering in [Numbering::default(), germany()] {
            assert_eq!(
                numbering.international("4915112345678", 1),
                "+4915112345678"
            );
            assert_eq!(
                numbering.international("+4915112345678", 0),
                "+4915112345678"
            );
        }
        assert_eq!(
            Numbering::default().international("4915112345678", 0),
            "+4915112345678"
        );
    }

    #[test]
    fn national_numbers_are_read_in_the_country_configured() {
        let de = germany();
        assert_eq!(de.international("015112345678", 2), "+4915112345678");
        assert_eq!(de.international("15112345678", 2), "+4915112345678");
        assert_eq!(de.international("015112345678", 0), "+4915112345678");
        assert_eq!(de.international("4915112345678", 0), "+4915112345678");
        assert_eq!(de.international("004315112345678", 0), "+4315112345678");
        // A foreign number of unknown type is not taken for a national one.
        assert_eq!(de.international("447700900123", 0), "+447700900123");
    }

    #[test]
    fn without_a_country_a_national_number_stays_as_given() {
        let none = Numbering::default();
        assert_eq!(none.international("015112345678", 2), "015112345678");
        assert_eq!(none.international("015112345678", 0), "015112345678");
        assert_eq!(none.international("12345", 0), "12345");
        assert_eq!(none.international("SHOP", 5), "SHOP");
    }
}
