//! The fuzzer's bytes as a source of choices (a structured input read front to back): each
//! choice consumes bytes; once they run out every choice is `None` and the driver stops. Small
//! changes to the bytes make small changes to the choices, which is what libFuzzer's mutations
//! need.

/// Choices read from the input.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Choices from `data`.
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    /// Whether every byte was used.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte.
    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    /// Up to 8 bytes, little-endian (fewer at the end of the input).
    pub fn u64(&mut self) -> Option<u64> {
        if self.data.is_empty() {
            return None;
        }
        let n = self.data.len().min(8);
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Some(
            head.iter()
                .rev()
                .fold(0, |acc, &b| (acc << 8) | u64::from(b)),
        )
    }

    /// A value in `lo..=hi`, from as few bytes as the span needs.
    pub fn range(&mut self, lo: u64, hi: u64) -> Option<u64> {
        let span = hi.checked_sub(lo)?;
        let raw = if span < 256 {
            u64::from(self.byte()?)
        } else if span < 65_536 {
            u64::from(self.byte()?) | (u64::from(self.byte()?) << 8)
        } else {
            self.u64()?
        };
        Some(match span.checked_add(1) {
            Some(n) => lo + raw % n,
            None => raw,
        })
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        let i = self.range(0, items.len().checked_sub(1)? as u64)?;
        items.get(i as usize).copied()
    }

    /// True in about `percent` of the cases.
    pub fn chance(&mut self, percent: u64) -> Option<bool> {
        Some(self.range(0, 99)? < percent)
    }
}
