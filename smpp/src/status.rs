//! What an SMSC's `submit_sm_resp` status means for the message: slow the
//! bind down, try again later, or give up. Every code SMPP 3.4 defines for
//! `submit_sm` is listed; codes we do not know (vendor range 0x400–0x4FF and
//! anything else) are treated as transient, so retries stay bounded by the
//! attempt limit rather than losing a message to an unknown code.

/// The class of a refused `submit_sm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The SMSC asks us to slow down: pause the bind, resend, never a failure.
    Throttled,
    /// The SMSC no longer takes this session as bound (it lost its state,
    /// the connection stayed): bind again; the message was not taken.
    Unbound,
    /// The SMSC could not take it now: retry the message later.
    Transient,
    /// This message will never be accepted as it is.
    Permanent,
}

/// `ESME_ROK`: the request was accepted.
pub const OK: u32 = 0;

/// `(status, name, class)` for every submit_sm error SMPP 3.4 defines.
const TABLE: &[(u32, &str, Refusal)] = &[
    (0x01, "ESME_RINVMSGLEN", Refusal::Permanent),
    (0x02, "ESME_RINVCMDLEN", Refusal::Permanent),
    (0x03, "ESME_RINVCMDID", Refusal::Permanent),
    (0x04, "ESME_RINVBNDSTS", Refusal::Unbound),
    (0x06, "ESME_RINVPRTFLG", Refusal::Permanent),
    (0x07, "ESME_RINVREGDLVFLG", Refusal::Permanent),
    (0x08, "ESME_RSYSERR", Refusal::Transient),
    (0x0A, "ESME_RINVSRCADR", Refusal::Permanent),
    (0x0B, "ESME_RINVDSTADR", Refusal::Permanent),
    (0x0C, "ESME_RINVMSGID", Refusal::Permanent),
    (0x14, "ESME_RMSGQFUL", Refusal::Throttled),
    (0x15, "ESME_RINVSERTYP", Refusal::Permanent),
    (0x33, "ESME_RINVNUMDESTS", Refusal::Permanent),
    (0x34, "ESME_RINVDLNAME", Refusal::Permanent),
    (0x40, "ESME_RINVDESTFLAG", Refusal::Permanent),
    (0x42, "ESME_RINVSUBREP", Refusal::Permanent),
    (0x43, "ESME_RINVESMCLASS", Refusal::Permanent),
    (0x44, "ESME_RCNTSUBDL", Refusal::Permanent),
    (0x45, "ESME_RSUBMITFAIL", Refusal::Transient),
    (0x48, "ESME_RINVSRCTON", Refusal::Permanent),
    (0x49, "ESME_RINVSRCNPI", Refusal::Permanent),
    (0x50, "ESME_RINVDSTTON", Refusal::Permanent),
    (0x51, "ESME_RINVDSTNPI", Refusal::Permanent),
    (0x53, "ESME_RINVSYSTYP", Refusal::Permanent),
    (0x54, "ESME_RINVREPFLAG", Refusal::Permanent),
    (0x55, "ESME_RINVNUMMSGS", Refusal::Permanent),
    (0x58, "ESME_RTHROTTLED", Refusal::Throttled),
    (0x61, "ESME_RINVSCHED", Refusal::Permanent),
    (0x62, "ESME_RINVEXPIRY", Refusal::Permanent),
    (0x63, "ESME_RINVDFTMSGID", Refusal::Permanent),
    (0x64, "ESME_RX_T_APPN", Refusal::Transient),
    (0x65, "ESME_RX_P_APPN", Refusal::Permanent),
    (0x66, "ESME_RX_R_APPN", Refusal::Permanent),
    (0xC0, "ESME_RINVOPTPARSTREAM", Refusal::Permanent),
    (0xC1, "ESME_ROPTPARNOTALLWD", Refusal::Permanent),
    (0xC2, "ESME_RINVPARLEN", Refusal::Permanent),
    (0xC3, "ESME_RMISSINGOPTPARAM", Refusal::Permanent),
    (0xC4, "ESME_RINVOPTPARAMVAL", Refusal::Permanent),
    (0xFE, "ESME_RDELIVERYFAILURE", Refusal::Transient),
    (0xFF, "ESME_RUNKNOWNERR", Refusal::Transient),
];

/// Statuses that answer a bind rather than a submit, named in logs.
const BIND_ERRORS: &[(u32, &str)] = &[
    (0x05, "ESME_RALYBND"),
    (0x0D, "ESME_RBINDFAIL"),
    (0x0E, "ESME_RINVPASWD"),
    (0x0F, "ESME_RINVSYSID"),
];

/// How to treat a refused submit_sm with `status`.
pub fn classify(status: u32) -> Refusal {
    TABLE
        .iter()
        .find(|(code, ..)| *code == status)
        .map_or(Refusal::Transient, |(_, _, class)| *class)
}

/// `ESME_RINVDSTADR (0x0000000B)`, or just the number for unknown codes.
pub fn describe(status: u32) -> String {
    let name = TABLE
        .iter()
        .map(|&(code, name, _)| (code, name))
        .chain(BIND_ERRORS.iter().copied())
        .find(|(code, _)| *code == status);
    match name {
        Some((_, name)) => format!("{name} (0x{status:08X})"),
        None => format!("status 0x{status:08X}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_never_a_failure() {
        assert_eq!(classify(0x58), Refusal::Throttled);
        assert_eq!(classify(0x14), Refusal::Throttled);
    }

    #[test]
    fn message_errors_are_permanent_and_system_errors_transient() {
        for code in [0x01, 0x0A, 0x0B, 0x43, 0x50, 0x51, 0x62, 0xC4] {
            assert_eq!(classify(code), Refusal::Permanent, "{code:#x}");
        }
        for code in [0x08, 0x45, 0x64, 0xFE, 0xFF] {
            assert_eq!(classify(code), Refusal::Transient, "{code:#x}");
        }
        assert_eq!(
            classify(0x04),
            Refusal::Unbound,
            "ESME_RINVBNDSTS: bind again"
        );
    }

    #[test]
    fn unknown_and_vendor_codes_are_retried() {
        assert_eq!(classify(0x0400), Refusal::Transient);
        assert_eq!(classify(0x1234_5678), Refusal::Transient);
    }

    #[test]
    fn every_code_is_listed_once() {
        let mut codes: Vec<u32> = TABLE.iter().map(|(c, ..)| *c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), TABLE.len());
        assert_eq!(describe(0x0B), "ESME_RINVDSTADR (0x0000000B)");
        assert_eq!(describe(0x401), "status 0x00000401");
        assert_eq!(describe(0x0E), "ESME_RINVPASWD (0x0000000E)");
    }
}
