//! The customers of a campaign's participants, packed. The index holds one
//! for every participant (each fact names it, and deduplication needs it
//! without a read), so a `Box<str>` each, a pointer, a length and an
//! allocation, would cost more than the text itself. Here an entry is the
//! text after its length as a LEB128 varint, in chunks that are never
//! reallocated once filled.

/// Where a participant's text is: an offset into the packed chunks, or
/// (from [`BIG`] on) an index into the texts kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRef(u32);

impl TextRef {
    /// The text of a participant that has none (an empty slot).
    pub const NONE: Self = Self(u32::MAX);
}

/// Chunks are this big; an entry never spans two.
const CHUNK_BITS: u32 = 20;
const CHUNK: usize = 1 << CHUNK_BITS;
/// References from here on are texts kept apart: those longer than a chunk
/// and, once the packed ones fill the 2 GiB an offset reaches, every new one.
const BIG: u32 = 1 << 31;

#[derive(Debug, Default)]
pub struct Texts {
    chunks: Vec<Vec<u8>>,
    big: Vec<Box<str>>,
    /// Bytes of entries that are still referenced.
    live: usize,
    /// Bytes of entries forgotten (participants of dropped uploads).
    dead: usize,
}

impl Texts {
    pub fn push(&mut self, text: &str) -> TextRef {
        let need = encoded_len(text);
        self.live += need;
        let fits = self.chunks.last().is_some_and(|c| CHUNK - c.len() >= need);
        let room = self.chunks.len() < (BIG as usize >> CHUNK_BITS);
        if need > CHUNK || (!fits && !room) {
            self.big.push(text.into());
            // Past 2^31 texts kept apart the references would collide with
            // NONE; no campaign holds that many participants.
            return TextRef(BIG + (self.big.len() - 1) as u32);
        }
        if !fits {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let chunk_no = self.chunks.len() - 1;
        let chunk = &mut self.chunks[chunk_no];
        let offset = (chunk_no << CHUNK_BITS) + chunk.len();
        put_varint(chunk, text.len());
        chunk.extend_from_slice(text.as_bytes());
        TextRef(offset as u32)
    }

    /// The text of `r` (empty for [`TextRef::NONE`]).
    pub fn get(&self, r: TextRef) -> &str {
        if r == TextRef::NONE {
            return "";
        }
        if r.0 >= BIG {
            return self.big.get((r.0 - BIG) as usize).map_or("", |t| t);
        }
        let (chunk, pos) = ((r.0 >> CHUNK_BITS) as usize, r.0 as usize & (CHUNK - 1));
        self.chunks
            .get(chunk)
            .and_then(|c| c.get(pos..))
            .map_or("", take_text)
    }

    /// Notes that nothing refers to `r` any more.
    pub fn forget(&mut self, r: TextRef) {
        if r == TextRef::NONE {
            return;
        }
        let size = encoded_len(self.get(r));
        self.live -= size;
        self.dead += size;
        if r.0 >= BIG
            && let Some(text) = self.big.get_mut((r.0 - BIG) as usize)
        {
            *text = "".into();
        }
    }

    /// Whether forgotten entries take more room than live ones (and more
    /// than a chunk): then the owner copies the live ones into new texts.
    pub fn is_wasteful(&self) -> bool {
        self.dead > self.live.max(CHUNK)
    }
}

fn encoded_len(text: &str) -> usize {
    let mut len = text.len();
    let mut bytes = 1;
    while len >= 0x80 {
        len >>= 7;
        bytes += 1;
    }
    bytes + text.len()
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The text at the start of `bytes`.
fn take_text(bytes: &[u8]) -> &str {
    let mut len = 0usize;
    let mut shift = 0;
    let mut used = 0;
    for &b in bytes {
        used += 1;
        len |= usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    let rest = &bytes[used..];
    let end = len.min(rest.len());
    // Written from `&str` by `push`: always UTF-8.
    std::str::from_utf8(&rest[..end]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_come_back_as_pushed_across_chunks_and_long_lengths() {
        let mut texts = Texts::default();
        let long = "x".repeat(CHUNK + 300);
        let cases = [
            "c1",
            "",
            "kunde-ü",
            long.as_str(),
            "after-big",
            &long[..200],
        ];
        let refs: Vec<_> = cases.iter().map(|c| texts.push(c)).collect();
        for (r, case) in refs.iter().zip(cases) {
            assert_eq!(texts.get(*r), case);
        }
        assert_eq!(texts.get(TextRef::NONE), "");
        // Many chunks' worth, none of them split between two.
        let many: Vec<_> = (0..100_000)
            .map(|i| (i, texts.push(&format!("customer-{i:021}"))))
            .collect();
        assert!(texts.chunks.len() >= 3);
        for (i, r) in many {
            assert_eq!(texts.get(r), format!("customer-{i:021}"));
        }
    }

    #[test]
    fn forgotten_entries_make_the_texts_wasteful_past_a_chunk() {
        let mut texts = Texts::default();
        let refs: Vec<_> = (0..200_000)
            .map(|i| texts.push(&format!("cust-{i:09}")))
            .collect();
        assert!(!texts.is_wasteful());
        for r in &refs[..80_000] {
            texts.forget(*r);
        }
        assert!(!texts.is_wasteful(), "less dead than live");
        for r in &refs[80_000..140_000] {
            texts.forget(*r);
        }
        assert!(texts.is_wasteful(), "more dead than live, and over a chunk");
    }
}
