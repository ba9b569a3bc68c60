//! A message's flags (the engagement bits and `FELL_BACK`) with when each
//! was first set, as an engine keeps them: the flags byte, then the time of
//! each set flag in bit order, 8 bytes little-endian each. The first
//! release wrote the flags byte alone; its times read as unknown.

use domain::Millis;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    bits: u8,
    /// When each bit was first set; 0 where unknown or unset.
    at: [Millis; 8],
}

impl Flags {
    /// Bits known to be set, times unknown (an index's view).
    pub fn from_bits(bits: u8) -> Self {
        Self { bits, at: [0; 8] }
    }

    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Sets every bit of `mask` not set before, at `at`; a bit set before
    /// keeps its first time.
    pub fn set(&mut self, mask: u8, at: Millis) {
        for (bit, time) in self.at.iter_mut().enumerate() {
            if mask & (1 << bit) != 0 && self.bits & (1 << bit) == 0 {
                *time = at;
            }
        }
        self.bits |= mask;
    }

    /// When the lowest bit of `mask` that is set was first set, if known.
    pub fn at(&self, mask: u8) -> Option<Millis> {
        (0..8)
            .find(|bit| mask & self.bits & (1 << bit) != 0)
            .map(|bit| self.at[bit])
            .filter(|&t| t > 0)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.bits];
        for bit in (0..8).filter(|bit| self.bits & (1 << bit) != 0) {
            out.extend_from_slice(&self.at[bit].to_le_bytes());
        }
        out
    }

    /// Reads what [`encode`](Self::encode) wrote, or the first release's
    /// single byte; missing or short times read as unknown.
    pub fn decode(bytes: &[u8]) -> Self {
        let Some((&bits, mut rest)) = bytes.split_first() else {
            return Self::default();
        };
        let mut flags = Self::from_bits(bits);
        for bit in (0..8).filter(|bit| bits & (1 << bit) != 0) {
            let Some((time, tail)) = rest.split_first_chunk::<8>() else {
                break;
            };
            flags.at[bit] = Millis::from_le_bytes(*time);
            rest = tail;
        }
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_flag_keeps_its_first_time_through_a_round_trip() {
        let mut flags = Flags::default();
        flags.set(0b0001, 1_000);
        flags.set(0b0101, 2_000);
        flags.set(0x80, 3_000);
        assert_eq!(flags.bits(), 0x85);
        let read = Flags::decode(&flags.encode());
        assert_eq!(read, flags);
        assert_eq!(read.at(0b0001), Some(1_000), "the first click's time stays");
        assert_eq!(read.at(0b0100), Some(2_000));
        assert_eq!(read.at(0x80), Some(3_000));
        assert_eq!(read.at(0b0010), None);
        assert_eq!(flags.encode().len(), 1 + 3 * 8);
    }

    #[test]
    fn the_first_releases_single_byte_reads_with_unknown_times() {
        let read = Flags::decode(&[0b11]);
        assert_eq!((read.bits(), read.at(0b01)), (0b11, None));
        assert_eq!(Flags::decode(&[]), Flags::default());
    }
}
