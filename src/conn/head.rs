//! Spotting the end of a request head (its blank line) as its bytes arrive,
//! across reads, for the connection guard's limits.

use std::time::Instant;

/// Where the guard is in reading one request head.
#[derive(Debug)]
pub(super) struct HeadState {
    /// When the wait for this head began (the idle deadline counts from it).
    pub(super) started: Instant,
    /// When its first byte came (the header deadline counts from it).
    pub(super) first_byte: Option<Instant>,
    /// Head bytes seen so far.
    pub(super) bytes: usize,
    /// The last byte seen ended a line (ignoring `\r`).
    pub(super) after_newline: bool,
}

impl HeadState {
    /// Feed bytes; returns how many belong to the head if its end is in them.
    pub(super) fn feed(&mut self, data: &[u8]) -> Option<usize> {
        for (i, b) in data.iter().enumerate() {
            match b {
                b'\n' if self.after_newline && self.bytes + i > 1 => return Some(i + 1),
                b'\n' => self.after_newline = true,
                b'\r' => {}
                _ => self.after_newline = false,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> HeadState {
        HeadState {
            started: Instant::now(),
            first_byte: None,
            bytes: 0,
            after_newline: false,
        }
    }

    #[test]
    fn head_end_is_found_across_reads() {
        let mut h = state();
        assert_eq!(h.feed(b"GET / HTTP/1.1\r\nHost: a\r"), None);
        h.bytes += 24;
        assert_eq!(h.feed(b"\n\r\nBODY"), Some(3));
    }

    #[test]
    fn bare_newlines_end_a_head_too() {
        let mut h = state();
        assert_eq!(h.feed(b"GET / HTTP/1.1\nHost: a\n\nrest"), Some(24));
    }

    #[test]
    fn leading_empty_line_is_not_an_end() {
        let mut h = state();
        assert_eq!(h.feed(b"\r\nGET / HTTP/1.1\r\n"), None);
    }
}
