//! Finding one byte in a path. Paths are short, and for a few bytes
//! memchr's dispatch costs more than the search: the first
//! [`SHORT_PATH`] bytes are looked at a word at a time (a shorter tail
//! byte by byte), and only a longer path falls through to memchr.

/// Path bytes looked at a word at a time before memchr takes over.
pub(crate) const SHORT_PATH: usize = 16;

/// The index of the first `needle` in `haystack`, if any.
#[inline(always)]
pub(crate) fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let pattern = u64::from_le_bytes([needle; 8]);
    let mut at = 0;
    while at < SHORT_PATH {
        let Some(word) = haystack.get(at..at + 8) else {
            let tail = haystack.get(at..)?;
            return tail.iter().position(|&b| b == needle).map(|found| at + found);
        };
        // A byte equal to the needle becomes zero; the lowest high bit set
        // marks the word's first zero byte (bits above it may be false,
        // which the lowest one never is).
        let word =
            u64::from_le_bytes([word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7]]) ^ pattern;
        let zeros = word.wrapping_sub(ONES) & !word & HIGHS;
        if zeros != 0 {
            return Some(at + zeros.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    memchr::memchr(needle, haystack.get(at..)?).map(|found| at + found)
}

/// Whether `a` and `b` hold the same bytes. Routes are short: up to 16
/// bytes are compared as two overlapping words, with no call to memcmp.
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        8..=16 => word(a) == word(b) && word(&a[n - 8..]) == word(&b[n - 8..]),
        4..=7 => half(a) == half(b) && half(&a[n - 4..]) == half(&b[n - 4..]),
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

/// The first eight bytes of `bytes` (at least eight) as a word.
#[inline(always)]
fn word(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_ne_bytes(word)
}

/// The first four bytes of `bytes` (at least four) as a word.
#[inline(always)]
fn half(bytes: &[u8]) -> u32 {
    let mut half = [0u8; 4];
    half.copy_from_slice(&bytes[..4]);
    u32::from_ne_bytes(half)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The word-at-a-time search finds the first needle, as a plain scan does.
        #[test]
        fn find_byte_finds_the_first(
            needle in proptest::sample::select(vec![0u8, b'?', 0xff]),
            bytes in proptest::collection::vec(proptest::sample::select(vec![0u8, 1, b'?', b'>', 0x80, 0xff, b'/']), 0..40),
        ) {
            proptest::prop_assert_eq!(find_byte(needle, &bytes), bytes.iter().position(|&b| b == needle));
        }

        /// The word-at-a-time comparison says what `==` says, for lengths
        /// on both sides of every boundary and bytes that differ anywhere.
        #[test]
        fn same_bytes_agrees_with_eq(
            a in proptest::collection::vec(proptest::sample::select(vec![0u8, b'/', b'e', 0xff]), 0..24),
            change in proptest::option::of((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>())),
            cut in proptest::option::of(proptest::prelude::any::<proptest::sample::Index>()),
        ) {
            let mut b = a.clone();
            if let (Some((at, byte)), false) = (change, b.is_empty()) {
                let at = at.index(b.len());
                b[at] = byte;
            }
            if let (Some(at), false) = (cut, b.is_empty()) {
                b.truncate(at.index(b.len()));
            }
            proptest::prop_assert_eq!(same_bytes(&a, &b), a == b);
            proptest::prop_assert!(same_bytes(&a, &a));
        }
    }
}
