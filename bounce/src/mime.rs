//! Parsing a message: the MIME parser set up for what this crate reads, and
//! one-pass access to raw header values. Shared by the classifier (the
//! report's own headers) and by `original` (the headers of the copy of the
//! original message).

use std::sync::LazyLock;

use mail_parser::{HeaderName, Message, MessageParser};

/// The MIME parser, set up to decode only the headers we read through it;
/// every other header is skipped (its raw bytes are read on demand).
pub(crate) static PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
    MessageParser::new()
        .header_content_type(HeaderName::ContentType)
        .header_content_type(HeaderName::ContentDisposition)
        .header_text(HeaderName::ContentTransferEncoding)
        .header_text(HeaderName::Subject)
        .header_id(HeaderName::MessageId)
        .default_header_ignore()
});

/// The raw value of the first header of each of `names` (compared without
/// regard to case), in one pass over the message's headers.
pub(crate) fn header_values<'m, const N: usize>(
    message: &'m Message<'_>,
    names: &[&str; N],
) -> [Option<&'m str>; N] {
    let mut values = [None; N];
    for (name, value) in message.headers_raw() {
        if let Some(index) = names.iter().position(|n| n.eq_ignore_ascii_case(name))
            && let Some(slot) = values.get_mut(index)
            && slot.is_none()
        {
            *slot = Some(value);
        }
    }
    values
}
