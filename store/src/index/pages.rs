//! A vector in fixed pages: growing it allocates one page, never a copy of
//! everything at twice the size, so a campaign of ten million participants
//! holds ten million slots, not up to sixteen.

const PAGE_BITS: u32 = 16;
const PAGE: usize = 1 << PAGE_BITS;

#[derive(Debug)]
pub struct Pages<T> {
    pages: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Pages<T> {
    fn default() -> Self {
        Self {
            pages: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Pages<T> {
    pub fn get(&self, n: usize) -> Option<&T> {
        self.pages.get(n >> PAGE_BITS)?.get(n & (PAGE - 1))
    }

    pub fn get_mut(&mut self, n: usize) -> Option<&mut T> {
        self.pages.get_mut(n >> PAGE_BITS)?.get_mut(n & (PAGE - 1))
    }

    /// Makes the vector at least `len` long, filling with `fill()`.
    pub fn grow_to(&mut self, len: usize, mut fill: impl FnMut() -> T) {
        while self.len < len {
            if self.len.is_multiple_of(PAGE) {
                self.pages.push(Vec::with_capacity(PAGE));
            }
            if let Some(page) = self.pages.last_mut() {
                page.push(fill());
            }
            self.len += 1;
        }
    }

    /// Every item with its number, in number order.
    pub fn enumerate(&self) -> impl DoubleEndedIterator<Item = (usize, &T)> {
        self.pages.iter().enumerate().flat_map(|(p, page)| {
            page.iter()
                .enumerate()
                .map(move |(i, item)| ((p << PAGE_BITS) + i, item))
        })
    }

    /// Every item from number `first` on with its number, in number order.
    pub fn enumerate_from(&self, first: usize) -> impl Iterator<Item = (usize, &T)> {
        let (first_page, skipped) = (first >> PAGE_BITS, first & (PAGE - 1));
        self.pages
            .iter()
            .enumerate()
            .skip(first_page)
            .flat_map(move |(p, page)| {
                let skip = if p == first_page { skipped } else { 0 };
                page.iter()
                    .enumerate()
                    .skip(skip)
                    .map(move |(i, item)| ((p << PAGE_BITS) + i, item))
            })
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.pages.iter_mut().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_keep_their_numbers_across_pages() {
        let mut pages = Pages::default();
        let mut next = 0;
        pages.grow_to(3 * PAGE + 5, || {
            next += 1;
            next - 1
        });
        assert_eq!(pages.len, 3 * PAGE + 5);
        assert_eq!(pages.get(PAGE + 7), Some(&(PAGE + 7)));
        assert_eq!(pages.get(3 * PAGE + 5), None);
        *pages.get_mut(2 * PAGE).expect("within") = 0;
        assert_eq!(pages.enumerate().filter(|&(_, &v)| v == 0).count(), 2);
        assert!(pages.enumerate().all(|(n, &v)| v == n || v == 0));
        let last = 3 * PAGE + 4;
        assert_eq!(pages.enumerate().next_back(), Some((last, &last)));
        assert!(pages.pages.iter().all(|p| p.capacity() == PAGE));
    }

    #[test]
    fn enumerating_from_a_number_starts_there_on_any_page() {
        let mut next = 0;
        let mut pages = Pages::default();
        pages.grow_to(2 * PAGE + 3, || {
            next += 1;
            next - 1
        });
        for first in [0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE + 2] {
            let from: Vec<usize> = pages.enumerate_from(first).map(|(n, _)| n).collect();
            assert_eq!(
                from,
                (first..2 * PAGE + 3).collect::<Vec<_>>(),
                "from {first}"
            );
            assert!(pages.enumerate_from(first).all(|(n, &v)| v == n));
        }
        assert_eq!(pages.enumerate_from(2 * PAGE + 3).count(), 0);
        assert_eq!(pages.enumerate_from(5 * PAGE).count(), 0);
    }
}
