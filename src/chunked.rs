//! Finding the end of a chunked body passed through as is, strictly by RFC
//! 9112 §7.1. Both directions use it: the connection guard hands Pingora's
//! proxy exactly one chunked request body (and not the pipelined request
//! behind it), and the fast path relays a backend's chunked response
//! without decoding it. Neither rewrites the chunks, so both must agree with
//! every later reader on where the body ends: anything a reader could take
//! two ways (a bare LF for CRLF, whitespace after the size, control bytes
//! in an extension, a malformed trailer line) is an error, and the
//! connection is closed instead of relaying it. Pure.

/// The body's chunk framing is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub(crate) struct ChunkError;

/// Chunk sizes above this are refused (no real body comes near).
const MAX_CHUNK: u64 = 1 << 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a chunk size: its value so far and whether a digit was seen.
    Size { n: u64, digit: bool },
    /// Whitespace after the size: only more of it or `;` may follow.
    SizeWs { n: u64 },
    /// In the chunk extensions, up to the line's CR.
    Ext { n: u64 },
    /// The size line's CR: its LF must follow.
    SizeLf { n: u64 },
    /// In chunk data: bytes left.
    Data(u64),
    /// After chunk data: its CR.
    DataCr,
    /// After chunk data's CR: its LF.
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    LineStart,
    /// In a trailer field name.
    Name,
    /// In a trailer field value, up to the line's CR.
    Value,
    /// A trailer line's CR: its LF must follow (`last`: the empty line).
    LineLf { last: bool },
    /// The body is complete.
    Done,
}

const SIZE_START: State = State::Size { n: 0, digit: false };

/// A `token` character (RFC 9110 §5.6.2).
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A character allowed in a field value or a chunk extension: visible
/// ASCII, space, tab and obs-text; never a control byte.
fn vchar_or_ws(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// What [`ChunkedEnd::feed_with`] hands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part<'a> {
    /// Chunk data: the body's bytes.
    Data(&'a [u8]),
    /// One byte of the trailer section.
    Trailer(u8),
}

/// Tracks chunk framing across the reads of one body.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedEnd {
    state: State,
}

impl Default for ChunkedEnd {
    fn default() -> Self {
        ChunkedEnd { state: SIZE_START }
    }
}

impl ChunkedEnd {
    /// Whether the whole body has been seen.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feed the next bytes of the body; returns how many of them belong to it
    /// once its end is among them.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<Option<usize>, ChunkError> {
        self.feed_with(data, &mut |_| {})
    }

    /// [`feed`](Self::feed), handing on the body without its framing: each
    /// piece of chunk data, and the trailer section's bytes (its field lines
    /// and the final empty line). How an HTTP/2 client gets a backend's
    /// chunked body and its trailers.
    pub(crate) fn feed_with(
        &mut self,
        data: &[u8],
        out: &mut dyn FnMut(Part<'_>),
    ) -> Result<Option<usize>, ChunkError> {
        let mut i = 0;
        while i < data.len() {
            if let State::Data(left) = self.state {
                let take = left.min((data.len() - i) as u64);
                out(Part::Data(&data[i..i + take as usize]));
                i += take as usize;
                self.state = if take == left {
                    State::DataCr
                } else {
                    State::Data(left - take)
                };
                continue;
            }
            if self.state == State::Done {
                return Ok(Some(i));
            }
            if matches!(
                self.state,
                State::LineStart | State::Name | State::Value | State::LineLf { .. }
            ) {
                out(Part::Trailer(data[i]));
            }
            self.state = step(self.state, data[i])?;
            i += 1;
        }
        Ok(self.is_done().then_some(data.len()))
    }
}

/// The state after byte `b` in `state` (not `Data` or `Done`).
fn step(state: State, b: u8) -> Result<State, ChunkError> {
    Ok(match state {
        State::Size { n, digit } => match b {
            b'\r' if digit => State::SizeLf { n },
            b' ' | b'\t' if digit => State::SizeWs { n },
            b';' if digit => State::Ext { n },
            _ => {
                let d = (b as char).to_digit(16).ok_or(ChunkError)?;
                let n = n * 16 + u64::from(d);
                if n > MAX_CHUNK {
                    return Err(ChunkError);
                }
                State::Size { n, digit: true }
            }
        },
        State::SizeWs { n } => match b {
            b' ' | b'\t' => State::SizeWs { n },
            b';' => State::Ext { n },
            _ => return Err(ChunkError),
        },
        State::Ext { n } => match b {
            b'\r' => State::SizeLf { n },
            _ if vchar_or_ws(b) => State::Ext { n },
            _ => return Err(ChunkError),
        },
        State::SizeLf { n } => match (b, n) {
            (b'\n', 0) => State::LineStart,
            (b'\n', n) => State::Data(n),
            _ => return Err(ChunkError),
        },
        State::DataCr if b == b'\r' => State::DataLf,
        State::DataLf if b == b'\n' => SIZE_START,
        State::LineStart => match b {
            b'\r' => State::LineLf { last: true },
            _ if tchar(b) => State::Name,
            _ => return Err(ChunkError),
        },
        State::Name => match b {
            b':' => State::Value,
            _ if tchar(b) => State::Name,
            _ => return Err(ChunkError),
        },
        State::Value => match b {
            b'\r' => State::LineLf { last: false },
            _ if vchar_or_ws(b) => State::Value,
            _ => return Err(ChunkError),
        },
        State::LineLf { last } if b == b'\n' => {
            if last {
                State::Done
            } else {
                State::LineStart
            }
        }
        _ => return Err(ChunkError),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BODY: &[u8] =
        b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 1\r\n\r\n";

    fn whole(data: &[u8]) -> Result<Option<usize>, ChunkError> {
        ChunkedEnd::default().feed(data)
    }

    #[test]
    fn the_end_is_found_in_one_piece() {
        let mut data = BODY.to_vec();
        data.extend_from_slice(b"HTTP/1.1 200");
        assert_eq!(whole(&data), Ok(Some(BODY.len())));
        assert_eq!(whole(b"0\r\n\r\nX"), Ok(Some(5)));
        assert_eq!(whole(b"000\r\n\r\n"), Ok(Some(7)));
        // Whitespace before an extension, quoted values.
        assert_eq!(whole(b"0 \t;x=\"a b\"\r\n\r\n"), Ok(Some(15)));
    }

    #[test]
    fn anything_a_reader_could_take_two_ways_is_an_error() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b";x\r\n",
            b"2\r\nabX",
            b"2\r\nab\n",
            b"3\nabc\n0\n\n",
            b"5\nhello\r\n",
            b"1 0\r\n",
            b"5 \r\nhello\r\n",
            b"1\r0\n",
            b" 5\r\n",
            b"5;a\x00b\r\n",
            b"5;a\nb\r\n",
            b"5;a\rb\r\n",
            b"0\r\nX: 1\rY\n",
            b"0\r\nX: 1\n\r\n",
            b"0\r\nno colon\r\n\r\n",
            b"0\r\n: empty name\r\n\r\n",
            b"0\r\nX: a\x01b\r\n\r\n",
            b"0\r\n\n",
            b"ffffffffffffffffff\r\n",
        ] {
            assert_eq!(
                whole(bad),
                Err(ChunkError),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest! {
        /// However the body is cut into reads, the end is found at the same
        /// place and not before.
        #[test]
        fn any_split_finds_the_same_end(cuts in proptest::collection::vec(0..BODY.len(), 0..6)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            cuts.push(BODY.len());
            let mut c = ChunkedEnd::default();
            let mut start = 0;
            let mut end = None;
            for cut in cuts {
                if cut < start { continue; }
                if let Some(n) = c.feed(&BODY[start..cut]).unwrap() {
                    end = Some(start + n);
                    break;
                }
                start = cut;
            }
            prop_assert_eq!(end, Some(BODY.len()));
        }
    }
}
