//! What a campaign's customers hash holds for a customer: the number of
//! its live participant (`keys::number`), or the participants that uploads
//! still being read staged for it, `N/UPLOAD` each, joined by `,`. Most
//! customers have one; uploads read at the same time (a CRM's retry beside
//! its timed-out first try, a dry run beside the real one) each stage a
//! twin, and the first published is kept, so that an upload abandoned
//! never loses a customer another upload took.

/// A participant staged by an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Twin {
    pub number: u32,
    pub upload: u64,
}

/// A customer's holding, parsed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Holding<'a> {
    /// Its live participant's number as stored (or a value not understood,
    /// which keeps the customer taken).
    Live(&'a [u8]),
    /// Staged by uploads still being read.
    Staged(Vec<Twin>),
}

impl<'a> Holding<'a> {
    pub fn parse(value: &'a [u8]) -> Self {
        let twins: Option<Vec<Twin>> = std::str::from_utf8(value).ok().and_then(|text| {
            text.split(',')
                .map(|twin| {
                    let (number, upload) = twin.split_once('/')?;
                    Some(Twin {
                        number: number.parse().ok()?,
                        upload: upload.parse().ok()?,
                    })
                })
                .collect()
        });
        match twins {
            Some(twins) if !twins.is_empty() => Self::Staged(twins),
            _ => Self::Live(value),
        }
    }
}

/// The value of a customer staged by `twins`.
pub(super) fn staged(twins: &[Twin]) -> Vec<u8> {
    (twins.iter())
        .map(|t| format!("{}/{}", t.number, t.upload))
        .collect::<Vec<_>>()
        .join(",")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holding_reads_back_as_written() {
        let twins = vec![
            Twin {
                number: 7,
                upload: 1 << 40,
            },
            Twin {
                number: 9,
                upload: 3,
            },
        ];
        let value = staged(&twins);
        assert_eq!(Holding::parse(&value), Holding::Staged(twins.clone()));
        // A value written before twins: one staged participant.
        assert_eq!(
            Holding::parse(b"7/3"),
            Holding::Staged(vec![Twin {
                number: 7,
                upload: 3
            }])
        );
        let live = crate::redis::keys::number(7);
        assert_eq!(Holding::parse(&live), Holding::Live(&live));
        assert_eq!(Holding::parse(b"7/x"), Holding::Live(b"7/x"));
    }
}
