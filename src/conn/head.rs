//! Finding a request head in the bytes read so far: the empty lines a
//! client may send before it (RFC 9112 §2.2) are skipped, and its end is
//! the first empty line after the request line. Pure.

/// Where the next head stands in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan {
    /// Not complete yet. `leading` bytes of empty lines come first; the
    /// search may resume at `resume` when more bytes arrive.
    Partial { leading: usize, resume: usize },
    /// The head is `buf[start..end]`, after `start` bytes of empty lines.
    Complete { start: usize, end: usize },
}

/// Scan `buf` for a head, resuming a search that already covered
/// `buf[..from]` (so a head trickling in is not scanned over and over).
pub(super) fn scan(buf: &[u8], from: usize) -> Scan {
    let start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    // Resume two bytes back: the end may straddle the previous read.
    let mut at = from.saturating_sub(2).max(start);
    while let Some(i) = memchr::memchr(b'\n', &buf[at..]) {
        let nl = at + i;
        match &buf[nl + 1..] {
            [b'\n', ..] => return Scan::Complete { start, end: nl + 2 },
            [b'\r', b'\n', ..] => return Scan::Complete { start, end: nl + 3 },
            _ => at = nl + 1,
        }
    }
    Scan::Partial {
        leading: start,
        resume: buf.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (usize, usize) {
        match scan(buf, 0) {
            Scan::Complete { start, end } => (start, end),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_end_is_the_first_empty_line() {
        assert_eq!(complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY"), (0, 27));
        assert_eq!(complete(b"GET / HTTP/1.1\nHost: a\n\nrest"), (0, 24));
    }

    #[test]
    fn leading_empty_lines_are_skipped_not_taken_for_an_end() {
        assert_eq!(
            scan(b"\r\n\r\n", 0),
            Scan::Partial {
                leading: 4,
                resume: 4
            }
        );
        assert_eq!(
            scan(b"\n\n\n", 0),
            Scan::Partial {
                leading: 3,
                resume: 3
            }
        );
        assert_eq!(
            complete(b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"),
            (4, 31)
        );
        assert!(matches!(
            scan(b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n", 0),
            Scan::Partial { leading: 4, .. }
        ));
    }

    #[test]
    fn a_resumed_scan_finds_an_end_split_across_reads() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 0..buf.len() {
            let first = scan(&buf[..cut], 0);
            let from = match first {
                Scan::Partial { resume, .. } => resume,
                Scan::Complete { .. } => panic!("complete at {cut}"),
            };
            assert_eq!(scan(buf, from), Scan::Complete { start: 0, end: 27 });
        }
    }
}
